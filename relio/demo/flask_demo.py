"""``python -m relio demo --sync``: a Flask-SocketIO app on Flask-SocketIO, then on relio.

The same app (``create_app(SocketIO)``: numbered ``tick`` events up, numbered ``news`` down, a
``double`` call) is served by werkzeug (threaded, ``async_mode='threading'``) on 127.0.0.1, once
with ``flask_socketio.SocketIO`` and a ``socketio.Client``, once with ``relio.flask.SocketIO`` (its
one-line change) and a ``relio.Client``, each time through the demo's flaky link (the FaultProxy:
cuts, and a stall longer than the heartbeat). The table says what got through. Needs the ``flask``
extra. Exit code 1 if relio lost, duplicated or reordered anything.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from types import ModuleType
from typing import Any, TextIO

from relio.demo import QUIET_LOGGERS, Flow, measure
from relio.demo.faultproxy import FaultProxy, Schedule

MESSAGES = 300          # numbered messages each way
DURATION = 6.0          # seconds they are spread over
CALLS = 20


def create_app(SocketIO: Any) -> tuple[Any, Any, dict]:
    """The demo's Flask-SocketIO app, for ``flask_socketio.SocketIO`` or ``relio.flask.SocketIO``
    (the only line that differs)."""
    from flask import Flask, request
    from flask_socketio import join_room

    app = Flask(__name__)
    socketio = SocketIO(app, async_mode='threading', ping_interval=1, ping_timeout=1)
    seen: dict = {'ticks': [], 'sids': []}

    @socketio.on('connect')
    def connect(auth):
        seen['sids'].append(request.sid)  # type: ignore[attr-defined]
        join_room('feed')

    @socketio.on('tick')
    def tick(n):
        seen['ticks'].append(n)

    @socketio.on('double')
    def double(n):
        return 2 * n

    return app, socketio, seen


class _Loop:
    """The fault proxy's asyncio loop, in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float | None = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def run_library(name: str, plan: Schedule, messages: int = MESSAGES,
                duration: float = DURATION) -> tuple[str, Flow, Flow, int, int, bool]:
    """One run: ``name`` is ``'flask_socketio'`` or ``'relio'``. Returns the row of the table."""
    import flask_socketio
    import socketio
    from werkzeug.serving import make_server

    import relio
    import relio.flask

    socketio_class: Any = relio.flask.SocketIO if name == 'relio' else flask_socketio.SocketIO
    client_lib: ModuleType = relio if name == 'relio' else socketio
    app, sio, seen = create_app(socketio_class)
    server = make_server('127.0.0.1', 0, app, threaded=True)
    server.daemon_threads = True  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1},
                     daemon=True).start()
    loop = _Loop()
    proxy = FaultProxy(server.socket.getsockname()[1])
    loop.run(proxy.start())
    news: list[int] = []
    refused = calls_ok = calls_failed = 0
    client = client_lib.Client(reconnection_delay=0.1, reconnection_delay_max=0.3,
                               randomization_factor=0.0, handle_sigint=False)
    client.on('news', lambda n: news.append(n))
    try:
        client.connect(proxy.url, transports=['websocket'], wait_timeout=5)
        faults = threading.Thread(target=lambda: loop.run(proxy.run_schedule(plan), 120),
                                  daemon=True)
        faults.start()
        t0 = time.monotonic()
        for n in range(messages):
            wait = t0 + n * duration / messages - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                client.emit('tick', n)
            except Exception:
                refused += 1            # python-socketio while reconnecting
            sio.server.emit('news', n, room='feed')
            if n % (messages // CALLS) == 0:
                try:
                    client.call('double', n, timeout=3)
                    calls_ok += 1
                except Exception:
                    calls_failed += 1
        faults.join(60)
        loop.loop.call_soon_threadsafe(proxy.clear)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (len(seen['ticks']) < messages - refused
                                               or len(news) < messages):
            time.sleep(0.05)
        client.disconnect()
    finally:
        loop.run(proxy.close())
        loop.close()
        sio.server.shutdown()
        server.shutdown()
        server.server_close()
    up = measure(list(seen['ticks']), messages, refused)
    down = measure(list(news), messages)
    return name, up, down, calls_ok, calls_failed, len(set(seen['sids'])) == 1


def report(rows: list, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    out.write(f"{'':16s}{'up: lost dup reord':>22s}{'down: lost dup reord':>24s}"
              f"{'calls failed':>14s}{'one session':>13s}\n")
    relio_clean = False
    for name, up, down, _, failed, same in rows:
        out.write(f"{name:16s}{up.lost + up.refused:>12d}{up.duplicated:>5d}{up.out_of_order:>6d}"
                  f"{down.lost:>14d}{down.duplicated:>5d}{down.out_of_order:>6d}"
                  f"{failed:>14d}{'yes' if same else 'no':>13s}\n")
        if name == 'relio':
            relio_clean = up.clean and down.clean and not failed and same
    out.write("relio: nothing lost, duplicated or reordered.\n" if relio_clean
              else "relio: NOT CLEAN (see above).\n")
    return 0 if relio_clean else 1


def main(seed: int, messages: int = MESSAGES, duration: float = DURATION) -> int:
    """``python -m relio demo --sync``."""
    quieted = [(logging.getLogger(n), logging.getLogger(n).level)
               for n in (*QUIET_LOGGERS, 'werkzeug', 'engineio.client', 'engineio.server')]
    for logger, _ in quieted:
        logger.setLevel(logging.CRITICAL)
    try:
        rows = []
        for name in ('flask_socketio', 'relio'):
            plan = Schedule.cuts_and_stall(seed, duration)
            print(f"{name}: {messages} numbered messages each way over {duration:g} s, "
                  f"{len(plan.faults)} faults...", flush=True)
            rows.append(run_library(name, plan, messages, duration))
        return report(rows)
    finally:
        for logger, level in quieted:
            logger.setLevel(level)
