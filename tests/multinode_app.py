"""One Socket.IO server node for multi-node tests, run as its own OS process:

    python -m tests.multinode_app --port P --redis redis://127.0.0.1:R/0 \
        --mode relio|socketio --name n1 --datadir DIR

mode 'relio':    relio.AsyncServer(async_mode='asgi', client_manager=relio.AsyncRedisManager(url))
mode 'socketio': socketio.AsyncServer(async_mode='asgi', client_manager=socketio.AsyncRedisManager(url))

Served by uvicorn on 127.0.0.1:P (wsproto, no uvicorn ws pings, no per-message-deflate), see
tests/servers.py.  Event handlers (namespace '/'):

    join(sid, room)          -> await sio.enter_room(sid, room); returns the node name
    m(sid, n)                -> appends "<sid> <n>\\n" to DIR/<name>.log (flushed); returns n
    broadcast(sid, room, n)  -> await sio.emit('b', n, room=room) (crosses nodes via the manager);
                                returns n
    whoami(sid)              -> the node name

SIGTERM shuts uvicorn down gracefully; tests/nodes.py runs and kills these processes.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys


def build_server(mode: str, redis_url: str, name: str, datadir: str):
    if mode == 'relio':
        import relio
        # Lazy: relio.AsyncRedisManager may not exist in older checkouts; only this mode needs it.
        manager_cls = getattr(relio, 'AsyncRedisManager', None)
        if manager_cls is None:
            raise SystemExit('relio.AsyncRedisManager is not available in this checkout')
        sio = relio.AsyncServer(async_mode='asgi', client_manager=manager_cls(redis_url))
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

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return name

    @sio.event
    async def m(sid, n):
        log.write(f'{sid} {n}\n')
        log.flush()
        return n

    @sio.event
    async def broadcast(sid, room, n):
        await sio.emit('b', n, room=room)  # relio: returns a Delivery, not awaited here
        return n

    @sio.event
    async def whoami(sid):
        return name

    return sio, app, log


async def amain(args) -> None:
    import uvicorn

    sio, app, log = build_server(args.mode, args.redis, args.name, args.datadir)
    config = uvicorn.Config(
        app, host='127.0.0.1', port=args.port,
        ws='wsproto', ws_ping_interval=None, ws_ping_timeout=None,
        ws_per_message_deflate=False, lifespan='off', log_level='warning',
        access_log=False, timeout_graceful_shutdown=2, timeout_keep_alive=5)
    server = uvicorn.Server(config)  # installs SIGINT/SIGTERM handlers -> graceful exit
    try:
        await server.serve()
    finally:
        try:
            await asyncio.wait_for(sio.shutdown(), 5)
        except Exception as exc:  # pragma: no cover - diagnostics only
            print(f'sio.shutdown() failed: {exc!r}', file=sys.stderr)
        log.close()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog='python -m tests.multinode_app')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--redis', required=True, help='redis://127.0.0.1:PORT/0')
    p.add_argument('--mode', choices=('relio', 'socketio'), required=True)
    p.add_argument('--name', required=True)
    p.add_argument('--datadir', required=True)
    args = p.parse_args(argv)
    os.makedirs(args.datadir, exist_ok=True)
    asyncio.run(amain(args))


if __name__ == '__main__':
    main()
