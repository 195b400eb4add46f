"""One Socket.IO server node for multi-node tests, run as its own OS process:

    python -m tests.support.multinode_app --port P --redis redis://127.0.0.1:R/0 \
        --mode relio|relio-sync|flask|socketio --name n1 --datadir DIR [--redis-mode fast|durable]

mode 'relio':    relio.AsyncServer(async_mode='asgi',
                                   client_manager=relio.AsyncRedisManager(url, mode=REDIS_MODE))
                 (--redis-mode, default 'durable'; ignored in mode 'socketio')
mode 'relio-sync': relio.Server(async_mode='threading',
                                client_manager=relio.RedisManager(url, mode=REDIS_MODE))
mode 'flask':    relio.flask.SocketIO(app, message_queue=url, async_mode='threading') (channel
                 'flask-socketio', durable), handlers written as for Flask-SocketIO
mode 'socketio': socketio.AsyncServer(async_mode='asgi',
                                      client_manager=socketio.AsyncRedisManager(url))

The asyncio modes are served by uvicorn on 127.0.0.1:P (wsproto, no uvicorn ws pings, no
per-message-deflate), see tests/support/servers.py; the thread-based ones by werkzeug's threaded
server (with simple-websocket), as tests/support/wsgi.py does, and SIGTERM stops serving, then
``sio.shutdown()`` (graceful: the sessions are handed over). After shutdown a relio node prints
its manager's counters to stderr as one line ``relio-stats <json>`` (``Node.final_stats()``).
Event handlers (namespace '/'):

    join(sid, room)          -> await sio.enter_room(sid, room);
                                await sio.save_session(sid, {'joined': room}); returns the node name
    m(sid, n)                -> appends "<sid> <n>\\n" to DIR/<name>.log (flushed); returns n
    work(sid, n[, delay])    -> appends "call <sid> <n>\\n" to the log, sleeps delay s (default 0,
                                at most 30); returns n * 10
    where(sid)               -> [node name, sorted rooms except sid, await sio.get_session(sid)]
    broadcast(sid, room, n[, event])  -> await sio.emit(event (default 'b'), n, room=room)
                                (crosses nodes via the manager); returns n
    whoami(sid)              -> the node name
    ask(sid, target)         -> sio.call('question', name, to=target) (a client of any node:
                                the answer crosses back through the manager); returns it

Lifecycle lines in the same log: "connect <sid>", "disconnect <sid>" and (relio mode)
"resume <sid>" (the server's relio_resume event).  Every line is written with one write() and
flushed at once, so a node killed with SIGKILL leaves every line of the handlers that ran.

SIGTERM shuts uvicorn down gracefully; tests/support/nodes.py runs and kills these processes.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys


def _recorder(datadir: str, name: str):
    log = open(os.path.join(datadir, f'{name}.log'), 'a', encoding='utf-8')

    def record(line: str) -> None:
        log.write(line + '\n')
        log.flush()
    return log, record


def build_sync_server(redis_url: str, name: str, datadir: str, redis_mode: str = 'default'):
    """mode 'relio-sync': the same handlers, thread-based."""
    import time

    import relio
    kwargs = {} if redis_mode == 'default' else {'mode': redis_mode}
    sio = relio.Server(async_mode='threading',
                       client_manager=relio.RedisManager(redis_url, **kwargs))
    log, record = _recorder(datadir, name)

    @sio.event
    def connect(sid, environ, auth=None):
        record(f'connect {sid}')

    @sio.event
    def disconnect(sid, reason=None):
        record(f'disconnect {sid}')

    @sio.on('relio_resume')
    def relio_resume(sid, environ, auth=None):
        record(f'resume {sid}')
        return True

    @sio.event
    def join(sid, room):
        sio.enter_room(sid, room)
        sio.save_session(sid, {'joined': room})
        return name

    @sio.event
    def m(sid, n):
        record(f'{sid} {n}')
        return n

    @sio.event
    def work(sid, n, delay=0):
        record(f'call {sid} {n}')
        if delay:
            time.sleep(min(float(delay), 30.0))
        return n * 10

    @sio.event
    def where(sid):
        rooms = sorted(r for r in sio.rooms(sid) if r != sid)
        return [name, rooms, sio.get_session(sid)]

    @sio.event
    def broadcast(sid, room, n, event='b'):
        sio.emit(event, n, room=room)
        return n

    @sio.event
    def whoami(sid):
        return name

    @sio.event
    def ask(sid, target):
        return sio.call('question', name, to=target, timeout=10)

    return sio, relio.WSGIApp(sio), log


def build_flask_server(redis_url: str, name: str, datadir: str):
    """mode 'flask': a Flask-SocketIO app moved to relio, sharing a message queue."""
    from flask import Flask, request
    from flask_socketio import join_room, rooms

    import relio.flask
    app = Flask(__name__)
    socketio = relio.flask.SocketIO(app, message_queue=redis_url, async_mode='threading')
    log, record = _recorder(datadir, name)

    @socketio.on('connect')
    def on_connect(auth=None):
        record(f'connect {request.sid}')

    @socketio.on('join')
    def on_join(room):
        join_room(room)
        return name

    @socketio.on('broadcast')
    def on_broadcast(room, n):
        socketio.emit('b', n, to=room)
        return n

    @socketio.on('where')
    def on_where():
        return [name, sorted(r for r in rooms() if r != request.sid), None]

    @socketio.on('whoami')
    def on_whoami():
        return name

    return socketio.server, app, log


def serve_sync(sio, app, log, port: int) -> None:
    """Serve a thread-based app until SIGTERM, then shut the server down gracefully."""
    import logging
    import signal
    import threading

    from werkzeug.serving import make_server
    logging.getLogger('werkzeug').setLevel(logging.CRITICAL)
    server = make_server('127.0.0.1', port, app, threaded=True)
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.1},
                              daemon=True)
    thread.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    try:
        sio.shutdown()
    except Exception as exc:  # pragma: no cover - diagnostics only
        print(f'sio.shutdown() failed: {exc!r}', file=sys.stderr)
    print_stats(sio)
    server.server_close()
    log.close()


def print_stats(sio) -> None:
    import json
    stats = getattr(sio.manager, 'relio_cluster_stats', None)
    if stats is not None:
        print('relio-stats ' + json.dumps(stats), file=sys.stderr, flush=True)


def build_server(mode: str, redis_url: str, name: str, datadir: str,
                 redis_mode: str = 'default'):
    if mode == 'relio':
        import relio
        # Lazy: relio.AsyncRedisManager may not exist in older checkouts; only this mode needs it.
        manager_cls = getattr(relio, 'AsyncRedisManager', None)
        if manager_cls is None:
            raise SystemExit('relio.AsyncRedisManager is not available in this checkout')
        # 'default': no mode argument, as an application moving over writes it
        kwargs = {} if redis_mode == 'default' else {'mode': redis_mode}
        sio = relio.AsyncServer(async_mode='asgi',
                                client_manager=manager_cls(redis_url, **kwargs))
        app = relio.ASGIApp(sio)
    elif mode == 'socketio':
        import socketio
        sio = socketio.AsyncServer(async_mode='asgi',
                                   client_manager=socketio.AsyncRedisManager(redis_url))
        app = socketio.ASGIApp(sio)
    else:
        raise SystemExit(f'unknown mode {mode!r}')

    log_path = os.path.join(datadir, f'{name}.log')
    log = open(log_path, 'a', encoding='utf-8')

    def record(line: str) -> None:
        log.write(line + '\n')
        log.flush()

    @sio.event
    async def connect(sid, environ, auth=None):
        record(f'connect {sid}')

    @sio.event
    async def disconnect(sid, reason=None):
        record(f'disconnect {sid}')

    if mode == 'relio':
        @sio.on('relio_resume')
        async def relio_resume(sid, environ, auth=None):
            record(f'resume {sid}')
            return True

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        await sio.save_session(sid, {'joined': room})
        return name

    @sio.event
    async def m(sid, n):
        record(f'{sid} {n}')
        return n

    @sio.event
    async def work(sid, n, delay=0):
        record(f'call {sid} {n}')
        if delay:
            await asyncio.sleep(min(float(delay), 30.0))
        return n * 10

    @sio.event
    async def where(sid):
        rooms = sorted(r for r in sio.rooms(sid) if r != sid)
        return [name, rooms, await sio.get_session(sid)]

    @sio.event
    async def broadcast(sid, room, n, event='b'):
        await sio.emit(event, n, room=room)  # relio: returns a Delivery, not awaited here
        return n

    @sio.event
    async def whoami(sid):
        return name

    @sio.event
    async def ask(sid, target):
        return await sio.call('question', name, to=target, timeout=10)

    return sio, app, log


def _graceful_server_class():
    import contextlib
    import signal

    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM once it has stopped serving, which would end the process
        before ``sio.shutdown()`` (the graceful hand-over): here the signal only stops serving."""

        @contextlib.contextmanager
        def capture_signals(self):
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
            yield
    return GracefulServer


async def amain(args) -> None:
    import uvicorn

    _GracefulServer = _graceful_server_class()
    sio, app, log = build_server(args.mode, args.redis, args.name, args.datadir,
                                 args.redis_mode)
    config = uvicorn.Config(
        app, host='127.0.0.1', port=args.port,
        ws='wsproto', ws_ping_interval=None, ws_ping_timeout=None,
        ws_per_message_deflate=False, lifespan='off', log_level='warning',
        access_log=False, timeout_graceful_shutdown=2, timeout_keep_alive=5)
    server = _GracefulServer(config)
    try:
        await server.serve()
    finally:
        try:
            await asyncio.wait_for(sio.shutdown(), 5)
        except Exception as exc:  # pragma: no cover - diagnostics only
            print(f'sio.shutdown() failed: {exc!r}', file=sys.stderr)
        print_stats(sio)
        log.close()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog='python -m tests.support.multinode_app')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--redis', required=True, help='redis://127.0.0.1:PORT/0')
    p.add_argument('--mode', choices=('relio', 'relio-sync', 'flask', 'socketio'),
                   required=True)
    p.add_argument('--name', required=True)
    p.add_argument('--datadir', required=True)
    p.add_argument('--redis-mode', choices=('fast', 'durable', 'default'), default='default',
                   help="relio.AsyncRedisManager(mode=...) in mode 'relio' (default: none given)")
    args = p.parse_args(argv)
    os.makedirs(args.datadir, exist_ok=True)
    if args.mode == 'relio-sync':
        serve_sync(*build_sync_server(args.redis, args.name, args.datadir, args.redis_mode),
                   args.port)
    elif args.mode == 'flask':
        serve_sync(*build_flask_server(args.redis, args.name, args.datadir), args.port)
    else:
        asyncio.run(amain(args))


if __name__ == '__main__':
    main()
