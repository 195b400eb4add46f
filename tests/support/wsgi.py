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

__all__ = ['serve_wsgi', 'serve_sync_socketio']


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
