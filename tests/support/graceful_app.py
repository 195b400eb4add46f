"""A relio server node with graceful shutdown on SIGTERM, run as its own OS process:

    python -m tests.support.graceful_app --port P --log FILE [--redis redis://127.0.0.1:R/0]

uvicorn on 127.0.0.1:P (lifespan on) serves Socket.IO, ``/metrics``, ``/readyz`` and ``/livez``;
``relio.observe.health.Health.install_signal_handlers`` runs at lifespan startup. Handlers:

    up(sid, n)      -> appends "up <sid> <n>" to the log
    feed(sid)       -> starts a task that emits 'down' 0, 1, 2... to sid every 5 ms while the
                       server is ready, appending "down <sid> <n>" after each emit was queued

"stopped" is appended once the graceful shutdown has finished (before uvicorn exits). Lines are
written with one write() each and flushed. Under gunicorn (uvicorn's worker class):

    RELIO_TEST_LOG=FILE python -m gunicorn -k uvicorn.workers.UvicornWorker -w 1 \
        -b 127.0.0.1:P 'tests.support.graceful_app:create_app()'
"""
from __future__ import annotations

import argparse
import asyncio
import os

import socketio
import uvicorn

import relio
from relio.asyncio.dispatch import spawn
from relio.observe import RelioMetrics
from relio.observe.health import Health
from relio.observe.prometheus import metrics_app


def build(log_path: str, redis_url: str | None):
    manager = relio.AsyncRedisManager(redis_url) if redis_url else None
    sio = relio.AsyncServer(async_mode='asgi', client_manager=manager)
    metrics = RelioMetrics(sio)
    health = Health(sio, drain_timeout=5)
    log = open(log_path, 'a', encoding='utf-8')

    def record(line: str) -> None:
        log.write(line + '\n')
        log.flush()

    @sio.event
    def up(sid, n):
        record(f'up {sid} {n}')

    async def run_feed(sid):
        for n in range(100_000):
            if not health.ready:
                return
            await sio.emit('down', n, to=sid)
            record(f'down {sid} {n}')
            await asyncio.sleep(0.005)

    @sio.event
    def feed(sid):
        spawn(run_feed(sid))

    async def on_shutdown():
        await health.shutdown()
        record('stopped')

    app = socketio.ASGIApp(sio, other_asgi_app=health.app(metrics_app(metrics)),
                           on_startup=health.install_signal_handlers,
                           on_shutdown=on_shutdown)          # as docs/OPERATIONS.md shows
    return app


def create_app():
    """The app for gunicorn (``tests.support.graceful_app:create_app()``): the log file and the
    Redis URL come from ``RELIO_TEST_LOG`` and ``RELIO_TEST_REDIS``."""
    return build(os.environ['RELIO_TEST_LOG'], os.environ.get('RELIO_TEST_REDIS') or None)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog='python -m tests.support.graceful_app')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--log', required=True)
    p.add_argument('--redis', default=None)
    args = p.parse_args(argv)
    app = build(args.log, args.redis)
    uvicorn.run(app, host='127.0.0.1', port=args.port, ws='wsproto', ws_ping_interval=None,
                ws_ping_timeout=None, ws_per_message_deflate=False, lifespan='on',
                log_level='warning', access_log=False, timeout_graceful_shutdown=10)


if __name__ == '__main__':
    main()
