"""Run a real thread-based WSGI server (werkzeug, threaded, with simple-websocket for engine.io's
websocket transport) on 127.0.0.1 in a background thread.

    with serve_wsgi(app) as port: ...              # any WSGI app
    with serve_sync_socketio(sio) as port: ...     # socketio.WSGIApp(sio), then sio.shutdown()

The server binds port 0 (ephemeral) and the real port is read from the listening socket.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import socketio
from werkzeug.serving import make_server

__all__ = ['serve_wsgi', 'serve_sync_socketio', 'LoopThread', 'wait_for']


@contextlib.contextmanager
def serve_wsgi(app: Any) -> Iterator[int]:
    logging.getLogger('werkzeug').setLevel(logging.CRITICAL)   # closed websockets' stray bytes
    server = make_server('127.0.0.1', 0, app, threaded=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1},
                              name='wsgi-test-server', daemon=True)
    thread.start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def serve_sync_socketio(sio: Any) -> Iterator[int]:
    with serve_wsgi(socketio.WSGIApp(sio)) as port:
        try:
            yield port
        finally:
            sio.shutdown()


class LoopThread:
    """An asyncio loop in a daemon thread, for the asyncio pieces of a thread-based test (the
    fault proxy, an asyncio server or client): ``run(coro, timeout)`` waits for a coroutine's
    result from any other thread."""

    def __init__(self) -> None:
        import asyncio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name='test-loop',
                                       daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = 60) -> Any:
        import asyncio
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_for(pred: Any, timeout: float, step: float = 0.01) -> bool:
    """Poll ``pred`` every ``step`` seconds for at most ``timeout`` seconds (bounded); whether it
    held."""
    import time
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / step) + 2):
        if pred():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(step)
    return bool(pred())
