"""Benchmark server process: ``python -m bench.e2e.server --lib relio --workload emit_c2s``.

Serves ``<lib>.AsyncServer`` through ``<lib>.ASGIApp`` on uvicorn (127.0.0.1, ephemeral port,
wsproto, per-message-deflate off) in the default asyncio loop (or uvloop), prints
``{"event": "ready", "port": ...}`` and then answers commands on stdin, one per line:

* ``stats``: prints ``{"event": "stats", "rss": ..., "connected": ..., "cpu": ..., ...}`` (CPU
  seconds read before a gc; ``fan``: the last room broadcast's times);
* ``fanout N``: emits ``N`` numbered payloads to the room ``fan`` (each emit awaited; with relio
  the last :class:`relio.Delivery` is awaited too), recording its times and CPU in ``fan``;
* ``quit`` (or end of stdin): shuts down and exits.

The same handlers serve every workload (the workload only selects buffer limits):

* ``m`` (event): counts a numbered payload (unique ids, duplicates, time of the last new one);
* ``big`` (event): records the size and arrival time of a bytes payload;
* ``start`` (event): emits ``n`` numbered payloads to the caller (each emit awaited; with relio
  the last :class:`relio.Delivery` is awaited too), or with ``size``: ``reps`` ``bigd`` events of
  ``(t0, bytes)`` one after the other (the download workload);
* ``echo`` (call): returns its argument;
* ``fan`` (call): puts the caller in the room ``fan``;
* ``reset`` (call): clears the counters, returns ``{"cpu": <this process's CPU seconds>}``;
* ``result`` (call): waits (bounded) until a condition holds and returns the counters (and
  ``cpu``).

Options: ``--loop uvloop`` runs the server on uvloop; ``--json orjson`` gives both libraries
:mod:`bench.e2e.orjson_json` as python-socketio's ``json=``.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import threading
import time

import uvicorn

from bench.e2e import workloads as W


class State:
    def __init__(self) -> None:
        self.connected = 0
        self.connects = 0
        self.disconnects = 0
        self.fan: dict = {}       # the last room broadcast (``fanout N``): times and CPU
        self.reset()

    def reset(self) -> None:
        self.seen: set[int] = set()
        self.total = 0
        self.dups = 0
        self.reordered = 0
        self.max_i = -1
        self.t_first = None
        self.t_last = None
        self.big_len = None
        self.big_t = None
        self.big_count = 0
        self.s2c: dict = {}

    def on_msg(self, data) -> None:
        i = data['i']
        self.total += 1
        seen = self.seen
        if i in seen:
            self.dups += 1
            return
        seen.add(i)
        if i < self.max_i:
            self.reordered += 1
        else:
            self.max_i = i
        t = time.monotonic()
        if self.t_first is None:
            self.t_first = t
        self.t_last = t

    def snapshot(self) -> dict:
        return dict(unique=len(self.seen), total=self.total, dups=self.dups,
                    reordered=self.reordered, t_first=self.t_first, t_last=self.t_last,
                    big_len=self.big_len, big_t=self.big_t, big_count=self.big_count,
                    s2c=dict(self.s2c), connected=self.connected, cpu=W.cpu_seconds())


def big_bytes(size: int, seed: int) -> bytes:
    """``size`` bytes of a repeated random 256-byte block (the same for a given seed)."""
    import random
    block = random.Random(seed).randbytes(256)
    return block * (size // 256) + bytes(size % 256)


def build(lib: str, workload: str, p: dict, json_name: str = 'stdlib'):
    mod = W.lib_module(lib)
    sio = mod.AsyncServer(**W.server_kwargs(lib, workload, p, json_name))
    st = State()
    tasks: set[asyncio.Task] = set()

    @sio.event
    async def connect(sid, environ, *args):
        st.connected += 1
        st.connects += 1

    @sio.event
    async def disconnect(sid, *args):
        st.connected -= 1
        st.disconnects += 1

    @sio.on('m')
    async def on_m(sid, data):
        st.on_msg(data)

    @sio.on('big')
    async def on_big(sid, data):
        st.big_len = len(data)
        st.big_t = time.monotonic()
        st.big_count += 1

    @sio.on('echo')
    async def on_echo(sid, data):
        return data

    @sio.on('reset')
    async def on_reset(sid, *args):
        st.reset()
        return {'cpu': W.cpu_seconds()}

    @sio.on('fan')
    async def on_fan(sid, *args):
        await sio.enter_room(sid, 'fan')
        return True

    async def s2c(sid, n: int, confirm_timeout: float) -> None:
        st.s2c = {'t0': time.monotonic(), 'cpu0': W.cpu_seconds()}
        last = None
        try:
            for i in range(n):
                last = await sio.emit('m', W.payload(i), to=sid)
            st.s2c['t_sent'] = time.monotonic()
            if lib == 'relio' and last is not None:
                await asyncio.wait_for(last, confirm_timeout)
                st.s2c['t_confirmed'] = time.monotonic()
        except Exception as exc:  # reported to the client through `result`
            st.s2c['error'] = repr(exc)

    async def download(sid, size: int, reps: int, confirm_timeout: float) -> None:
        """``reps`` times: emit ``(t0, data)`` and (relio) await its Delivery."""
        data = big_bytes(size, 3)
        st.s2c = {'t0': time.monotonic(), 'reps': 0}
        try:
            for _ in range(reps):
                d = await sio.emit('bigd', (time.monotonic(), data), to=sid)
                if lib == 'relio' and d is not None:
                    await asyncio.wait_for(d, confirm_timeout)
                st.s2c['reps'] += 1
            st.s2c['t_sent'] = time.monotonic()
            if lib == 'relio':
                st.s2c['t_confirmed'] = st.s2c['t_sent']
        except Exception as exc:
            st.s2c['error'] = repr(exc)

    @sio.on('start')
    async def on_start(sid, data):
        confirm_timeout = float(data.get('confirm_timeout', 60))
        if 'size' in data:
            work = download(sid, int(data['size']), int(data.get('reps', 1)), confirm_timeout)
        else:
            work = s2c(sid, int(data['n']), confirm_timeout)
        task = asyncio.get_running_loop().create_task(work)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def fanout(n: int, confirm_timeout: float) -> None:
        """Emit ``n`` numbered payloads to the room ``fan``; times and CPU go in ``st.fan``."""
        st.fan = {'n': n, 't0': time.monotonic(), 'cpu0': W.cpu_seconds()}
        last = None
        try:
            for i in range(n):
                last = await sio.emit('m', W.payload(i), room='fan')
            st.fan['t_sent'] = time.monotonic()
            if lib == 'relio' and last is not None:
                await asyncio.wait_for(last, confirm_timeout)
                st.fan['t_confirmed'] = time.monotonic()
            st.fan['cpu_done'] = W.cpu_seconds()
        except Exception as exc:     # reported to the orchestrator through `stats`
            st.fan['error'] = repr(exc)

    def start_fanout(n: int, confirm_timeout: float = 120.0) -> None:
        task = asyncio.get_running_loop().create_task(fanout(n, confirm_timeout))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @sio.on('result')
    async def on_result(sid, data):
        """Wait until ``data['wait']`` holds ('msgs': ``expect`` unique ids, or no new one for
        ``quiet`` seconds; 'big': ``big_count`` uploads; 'none'), at most ``timeout`` s."""
        loop = asyncio.get_running_loop()
        wait = data.get('wait', 'none')
        timeout = float(data.get('timeout', 30))
        quiet = data.get('quiet')
        deadline = loop.time() + timeout
        step = 0.005
        for _ in range(int(timeout / step) + 2):
            if wait == 'msgs':
                if len(st.seen) >= data['expect']:
                    break
                if quiet is not None and st.t_last is not None and \
                        time.monotonic() - st.t_last > quiet:
                    break
            elif wait == 'big':
                if st.big_count >= data.get('count', 1):
                    break
            else:
                break
            if loop.time() >= deadline:
                break
            await asyncio.sleep(step)
        return st.snapshot()

    return mod, sio, st, tasks, start_fanout


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):      # leave SIGTERM/SIGINT at their defaults (die at once)
        yield


def _stdin_reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line.strip())
    loop.call_soon_threadsafe(queue.put_nowait, 'quit')


async def amain(args) -> None:
    p = W.params(args.workload, args.scale)
    mod, sio, st, tasks, start_fanout = build(args.lib, args.workload, p, args.json)
    app = mod.ASGIApp(sio)
    server = _Server(uvicorn.Config(app, **W.uvicorn_kwargs(args.workload, p)))
    serve = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    for _ in range(2000):
        if server.started or serve.done():
            break
        await asyncio.sleep(0.005)
    if not server.started:
        W.emit_line({'event': 'error', 'error': 'uvicorn did not start'})
        return
    port = server.servers[0].sockets[0].getsockname()[1]
    commands: asyncio.Queue = asyncio.Queue()
    threading.Thread(target=_stdin_reader, args=(loop, commands), daemon=True).start()
    gc.collect()
    W.emit_line({'event': 'ready', 'port': port, 'rss': W.rss_bytes()})
    try:
        while True:
            cmd = await commands.get()
            if cmd == 'stats':
                cpu = W.cpu_seconds()
                gc.collect()
                stats = {'event': 'stats', 'rss': W.rss_bytes(), 'connected': st.connected,
                         'connects': st.connects, 'disconnects': st.disconnects, 'cpu': cpu,
                         'fan': dict(st.fan)}
                if args.lib == 'relio':
                    stats['relio_sessions'] = sio.relio_sessions
                W.emit_line(stats)
            elif cmd.startswith('fanout '):
                start_fanout(int(cmd.split()[1]))
            elif cmd == 'quit':
                break
    finally:
        for t in list(tasks):
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.shutdown(), 5)
        server.should_exit = True
        done, _ = await asyncio.wait([serve], timeout=5)
        if not done:
            server.force_exit = True
            await asyncio.wait([serve], timeout=2)
        W.emit_line({'event': 'bye'})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--lib', required=True, choices=('socketio', 'relio'))
    ap.add_argument('--workload', required=True, choices=sorted(W.BY_NAME))
    ap.add_argument('--scale', type=float, default=1.0)
    ap.add_argument('--deadline', type=float, default=900.0)
    ap.add_argument('--loop', choices=W.LOOPS, default=W.LOOPS[0])
    ap.add_argument('--json', choices=W.JSONS, default=W.JSONS[0])
    args = ap.parse_args(argv)
    W.start_deadline(args.deadline, 'server')
    W.run_loop(amain(args), args.loop)


if __name__ == '__main__':
    main()
