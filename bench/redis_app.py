"""One Socket.IO server for ``bench.redis_bench``, run as its own OS process:

    python -m bench.redis_app --port P --kind K [--redis redis://127.0.0.1:R/0]

K (the server configuration measured):

    socketio        socketio.AsyncServer, default (in-process) manager
    socketio-redis  socketio.AsyncServer(client_manager=socketio.AsyncRedisManager(url))
    relio           relio.AsyncServer, default (in-process) manager
    relio-fast      relio.AsyncServer(client_manager=relio.AsyncRedisManager(url, mode='fast'))
    relio-durable   relio.AsyncServer(client_manager=relio.AsyncRedisManager(url, mode='durable'))

Served by uvicorn on 127.0.0.1:P (wsproto, no uvicorn websocket pings, no per-message-deflate,
log_level='warning'; the settings of tests/support/servers.py). SIGTERM shuts down gracefully.

Event handlers (namespace '/'; counters are per sid so that clients do not disturb each other):

    m(sid, n)                 counts one message (and whether n is the next number expected);
                              no await: the cheapest possible handler
    reset(sid)                zeroes this sid's counters
    count(sid)                -> {'count', 'disorder'}
    wait_count(sid, n, t)     -> waits (at most t s) until this sid counted n messages, then
                                 returns {'count', 'disorder', 'ok'}: one call instead of polling,
                                 so that waiting costs the server (almost) no CPU
    join(sid, room)           enter_room
    blast(sid, n, room)       emits ('s', i) for i in 0..n-1 to ``room`` (a room name; None or ''
                              means room=sid, the client itself)
                              in a task of its own and returns at once; relio: the last emit's
                              Delivery is awaited and its outcome kept for blast_status
    blast_status(sid)         -> {'sent', 'done', 'confirmed', 'error'} of this sid's last blast
    echo(sid, i)              -> i
    pid(sid)                  -> os.getpid()
    manager_stats(sid)        -> relio.AsyncRedisManager.stats (relio-fast/-durable), else None
    state_bytes(sid)          -> relio kinds: the size in bytes of this session's engine snapshot
                                 (what durable mode writes to Redis at every save); diagnostics
                                 only, through relio's private attributes; None for socketio

Profiling: with RELIO_BENCH_PROFILE=<path> in the environment the process runs under cProfile from
the first client connect (startup excluded) and writes pstats to <path> on graceful exit.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

KINDS = ('socketio', 'socketio-redis', 'relio', 'relio-fast', 'relio-durable')
REDIS_KINDS = ('socketio-redis', 'relio-fast', 'relio-durable')


def build_server(kind: str, redis_url: str | None):
    common = dict(async_mode='asgi', logger=False, engineio_logger=False)
    channel = f'bench-{kind}'
    if kind in REDIS_KINDS and not redis_url:
        raise SystemExit(f'--kind {kind} needs --redis URL')
    if kind.startswith('relio'):
        import relio
        manager = None
        if kind == 'relio-fast':
            manager = relio.AsyncRedisManager(redis_url, channel=channel, mode='fast')
        elif kind == 'relio-durable':
            manager = relio.AsyncRedisManager(redis_url, channel=channel, mode='durable')
        if manager is not None:
            common['client_manager'] = manager
        sio = relio.AsyncServer(**common)
        app = relio.ASGIApp(sio)
        is_relio = True
    elif kind.startswith('socketio'):
        import socketio
        if kind == 'socketio-redis':
            common['client_manager'] = socketio.AsyncRedisManager(redis_url, channel=channel)
        sio = socketio.AsyncServer(**common)
        app = socketio.ASGIApp(sio)
        is_relio = False
    else:
        raise SystemExit(f'unknown kind {kind!r}')

    counts: dict[str, list[int]] = {}           # sid -> [count, next expected, disorder]
    waiters: dict[str, tuple[int, asyncio.Event]] = {}
    blasts: dict[str, dict] = {}
    tasks: set[asyncio.Task] = set()
    profiler = {'started': False}

    def maybe_profile() -> None:
        if profiler['started'] or not os.environ.get('RELIO_BENCH_PROFILE'):
            return
        import cProfile
        profiler['started'] = True
        profiler['prof'] = cProfile.Profile()
        profiler['prof'].enable()

    @sio.event
    async def connect(sid, environ, auth=None):
        maybe_profile()
        counts[sid] = [0, 0, 0]

    @sio.event
    async def disconnect(sid, reason=None):
        counts.pop(sid, None)
        waiters.pop(sid, None)
        blasts.pop(sid, None)

    @sio.event
    async def m(sid, n):
        c = counts.get(sid)
        if c is None:
            c = counts[sid] = [0, 0, 0]
        c[0] += 1
        if n != c[1]:
            c[2] += 1
        c[1] = n + 1
        w = waiters.get(sid)
        if w is not None and c[0] >= w[0]:
            w[1].set()

    @sio.event
    def reset(sid):
        counts[sid] = [0, 0, 0]
        return True

    @sio.event
    def count(sid):
        c = counts.get(sid, [0, 0, 0])
        return {'count': c[0], 'disorder': c[2]}

    @sio.event
    async def wait_count(sid, n, timeout):
        c = counts.setdefault(sid, [0, 0, 0])
        if c[0] < n:
            ev = asyncio.Event()
            waiters[sid] = (n, ev)
            try:
                await asyncio.wait_for(ev.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            finally:
                waiters.pop(sid, None)
        c = counts.get(sid, [0, 0, 0])
        return {'count': c[0], 'disorder': c[2], 'ok': c[0] >= n}

    @sio.event
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return True

    async def run_blast(sid: str, n: int, room: str, state: dict) -> None:
        try:
            last = None
            for i in range(n):
                last = await sio.emit('s', i, room=room)
                state['sent'] = i + 1
            if is_relio and last is not None:
                await last
                state['confirmed'] = True
        except Exception as exc:
            state['error'] = repr(exc)
        finally:
            state['done'] = True

    @sio.event
    def blast(sid, n, room):
        state = {'sent': 0, 'done': False, 'confirmed': False, 'error': None}
        blasts[sid] = state
        task = asyncio.get_running_loop().create_task(run_blast(sid, n, room or sid, state))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return True

    @sio.event
    def blast_status(sid):
        return blasts.get(sid)

    @sio.event
    def echo(sid, i):
        return i

    @sio.event
    def pid(sid):
        return os.getpid()

    @sio.event
    def manager_stats(sid):
        stats = getattr(sio.manager, 'stats', None)
        return dict(stats) if isinstance(stats, dict) else None

    @sio.event
    def state_bytes(sid):
        if not is_relio:
            return None
        session = sio.relio_registry.get(sid)
        if session is None:
            return None
        return len(session.channel.engine.snapshot(asyncio.get_running_loop().time()))

    return sio, app, profiler


async def amain(args) -> None:
    import uvicorn

    sio, app, profiler = build_server(args.kind, args.redis)
    config = uvicorn.Config(
        app, host='127.0.0.1', port=args.port,
        ws='wsproto', ws_ping_interval=None, ws_ping_timeout=None,
        ws_per_message_deflate=False, lifespan='off', log_level='warning',
        access_log=False, timeout_graceful_shutdown=2, timeout_keep_alive=5)

    class Server(uvicorn.Server):
        # uvicorn re-raises a captured SIGTERM when serve() returns, which would kill the process
        # before the finally below (profile dump, sio.shutdown()): handle the signals here instead.
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    server = Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, 'should_exit', True))
    try:
        await server.serve()
    finally:
        prof = profiler.get('prof')
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ['RELIO_BENCH_PROFILE'])
        try:
            await asyncio.wait_for(sio.shutdown(), 5)
        except Exception as exc:  # pragma: no cover - diagnostics only
            print(f'sio.shutdown() failed: {exc!r}', file=sys.stderr)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog='python -m bench.redis_app')
    p.add_argument('--port', type=int, required=True)
    p.add_argument('--kind', choices=KINDS, required=True)
    p.add_argument('--redis', default=None, help='redis://127.0.0.1:PORT/0 (redis kinds)')
    args = p.parse_args(argv)
    asyncio.run(amain(args))


if __name__ == '__main__':
    main()
