"""Benchmark client process: ``python -m bench.e2e.client --lib relio --workload W --port P``.

Connects ``<lib>.AsyncClient`` (websocket transport) to the server process on 127.0.0.1, runs one
workload and prints ``{"event": "result", "ok": true, ...}`` on stdout. Timings that end in the
server use the server's ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process on
the machine). The ``memory`` workload instead opens ``--sessions`` idle sessions, prints
``{"event": "ready"}`` and holds them until ``quit`` (or end of stdin); ``fanout_100`` opens
``--sessions`` clients that join the room ``fan``, prints ``{"event": "ready"}``, and reports once
every one of them has all ``n`` messages (the server's broadcast is started by the orchestrator).

CPU per message: both processes read their own CPU time (:func:`bench.e2e.workloads.cpu_seconds`,
user + system) at the start and end of the measured phase; results carry ``server_cpu_s`` /
``client_cpu_s`` and the same per message in µs (``server_cpu_us``, ``client_cpu_us``).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import threading
import time

from bench.e2e import workloads as W

CONNECT_TIMEOUT = 20.0
DISCONNECT_TIMEOUT = 10.0


class Ctx:
    def __init__(self, lib: str, workload: str, p: dict, url: str, timeout: float,
                 json_name: str = 'stdlib'):
        self.lib, self.workload, self.p, self.url, self.timeout = lib, workload, p, url, timeout
        self.json_name = json_name
        self.mod = W.lib_module(lib)
        self.is_relio = lib == 'relio'

    def new_client(self):
        return self.mod.AsyncClient(**W.client_kwargs(self.lib, self.workload, self.p,
                                                      self.json_name))

    async def connect(self, client, url: str | None = None) -> None:
        await asyncio.wait_for(
            client.connect(url or self.url, transports=['websocket'], wait_timeout=10),
            CONNECT_TIMEOUT)

    async def close(self, client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), DISCONNECT_TIMEOUT)


async def call(client, event, data=None, timeout=30.0):
    return await asyncio.wait_for(client.call(event, data, timeout=timeout), timeout + 5)


async def reset(client) -> float:
    """Clear the server's counters; returns the server's CPU seconds at that moment."""
    r = await call(client, 'reset', {}, 10)
    return r['cpu']


def cpu_figures(n: int, server_cpu_s: float | None, client_cpu_s: float) -> dict:
    """CPU seconds of the measured phase on each side, and per message (µs)."""
    out = {'client_cpu_s': client_cpu_s, 'client_cpu_us': client_cpu_s / n * 1e6}
    if server_cpu_s is not None:
        out.update(server_cpu_s=server_cpu_s, server_cpu_us=server_cpu_s / n * 1e6)
    return out


async def wait_until(pred, timeout: float, step: float = 0.002) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / step) + 2):
        if pred():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(step)
    return pred()


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float('nan')
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


# --------------------------------------------------------------------------------- workloads
async def emit_c2s(ctx: Ctx, c) -> dict:
    n, warmup = ctx.p['n'], ctx.p['warmup']
    payload = W.payload
    for i in range(warmup):
        await c.emit('m', payload(i))
    await call(c, 'result', {'wait': 'msgs', 'expect': warmup, 'timeout': 30}, 30)
    server_cpu0 = await reset(c)

    last = None
    cpu0 = W.cpu_seconds()
    t0 = time.monotonic()
    for i in range(n):
        last = await c.emit('m', payload(i))
    t_sent = time.monotonic()
    out: dict = {}
    if ctx.is_relio:
        await asyncio.wait_for(last, ctx.timeout / 2)
        out['t_confirmed_s'] = time.monotonic() - t0
        out['deliveries_confirmed'] = True
    r = await call(c, 'result', {'wait': 'msgs', 'expect': n, 'timeout': ctx.timeout / 2},
                   ctx.timeout / 2)
    client_cpu = W.cpu_seconds() - cpu0
    if r['unique'] != n or r['t_last'] is None:
        raise RuntimeError(f'server got {r["unique"]} of {n} messages')
    elapsed = r['t_last'] - t0
    out.update(n=n, elapsed_s=elapsed, msgs_per_s=n / elapsed, send_s=t_sent - t0,
               dups=r['dups'], reordered=r['reordered'], payload_bytes=W.PAYLOAD_BYTES)
    out.update(cpu_figures(n, r['cpu'] - server_cpu0, client_cpu))
    if ctx.is_relio:
        out['confirmed_msgs_per_s'] = n / out['t_confirmed_s']
    return out


async def emit_s2c(ctx: Ctx, c) -> dict:
    n, warmup = ctx.p['n'], ctx.p['warmup']
    state = {'count': 0, 'target': warmup, 't_done': None, 'seen': set(), 'dups': 0}

    async def on_m(data):
        state['count'] += 1
        i = data['i']
        if i in state['seen']:
            state['dups'] += 1
        state['seen'].add(i)
        if state['count'] == state['target']:
            state['t_done'] = time.monotonic()

    c.on('m', on_m)
    await c.emit('start', {'n': warmup})
    if not await wait_until(lambda: state['t_done'] is not None, 30):
        raise RuntimeError(f'warm-up: got {state["count"]} of {warmup}')
    await call(c, 'result', {'wait': 'none'}, 10)
    state.update(count=0, target=n, t_done=None, seen=set(), dups=0)

    cpu0 = W.cpu_seconds()
    await c.emit('start', {'n': n, 'confirm_timeout': ctx.timeout / 2})
    if not await wait_until(lambda: state['t_done'] is not None, ctx.timeout / 2, 0.001):
        raise RuntimeError(f'client got {state["count"]} of {n} messages')
    client_cpu = W.cpu_seconds() - cpu0
    # the server's last emit may still await its Delivery: give it a moment to report
    r = None
    for _ in range(200):
        r = await call(c, 'result', {'wait': 'none'}, 10)
        s2c = r['s2c']
        if 'error' in s2c or ('t_sent' in s2c and (not ctx.is_relio or 't_confirmed' in s2c)):
            break
        await asyncio.sleep(0.05)
    s2c = r['s2c']
    if 'error' in s2c:
        raise RuntimeError(f'server emit failed: {s2c["error"]}')
    elapsed = state['t_done'] - s2c['t0']
    out = dict(n=n, elapsed_s=elapsed, msgs_per_s=n / elapsed,
               server_send_s=s2c['t_sent'] - s2c['t0'],
               unique=len(state['seen']), dups=state['dups'], payload_bytes=W.PAYLOAD_BYTES)
    if len(state['seen']) != n:
        raise RuntimeError(f'client got {len(state["seen"])} unique of {n}')
    if ctx.is_relio:
        out['deliveries_confirmed'] = 't_confirmed' in s2c
    out.update(cpu_figures(n, r['cpu'] - s2c['cpu0'], client_cpu))
    return out


async def call_seq(ctx: Ctx, c) -> dict:
    n, warmup = ctx.p['n'], ctx.p['warmup']
    payload = W.payload
    for i in range(warmup):
        await c.call('echo', payload(i), timeout=10)
    lat = []
    pc = time.perf_counter
    server_cpu0 = await reset(c)
    cpu0 = W.cpu_seconds()
    t0 = pc()
    for i in range(n):
        t = pc()
        r = await c.call('echo', payload(i), timeout=10)
        lat.append(pc() - t)
        if r['i'] != i:
            raise RuntimeError(f'wrong reply {r!r} for call {i}')
    elapsed = pc() - t0
    client_cpu = W.cpu_seconds() - cpu0
    server_cpu = (await call(c, 'result', {'wait': 'none'}, 10))['cpu'] - server_cpu0
    lat.sort()
    return dict(n=n, elapsed_s=elapsed, calls_per_s=n / elapsed,
                p50_us=pct(lat, 0.50) * 1e6, p99_us=pct(lat, 0.99) * 1e6,
                mean_us=statistics.fmean(lat) * 1e6, payload_bytes=W.PAYLOAD_BYTES,
                **cpu_figures(n, server_cpu, client_cpu))


async def call_64(ctx: Ctx, c) -> dict:
    n, warmup, conc = ctx.p['n'], ctx.p['warmup'], ctx.p['concurrency']
    payload = W.payload

    async def worker(start: int, count: int) -> int:
        ok = 0
        for i in range(start, start + count):
            r = await c.call('echo', payload(i), timeout=30)
            if r['i'] == i:
                ok += 1
        return ok

    def split(total: int) -> list[tuple[int, int]]:
        per, extra = divmod(total, conc)
        spans, start = [], 0
        for k in range(conc):
            cnt = per + (1 if k < extra else 0)
            spans.append((start, cnt))
            start += cnt
        return spans

    await asyncio.wait_for(asyncio.gather(*(worker(s, k) for s, k in split(warmup))), 60)
    server_cpu0 = await reset(c)
    cpu0 = W.cpu_seconds()
    t0 = time.perf_counter()
    oks = await asyncio.wait_for(asyncio.gather(*(worker(s, k) for s, k in split(n))),
                                 ctx.timeout / 2)
    elapsed = time.perf_counter() - t0
    client_cpu = W.cpu_seconds() - cpu0
    server_cpu = (await call(c, 'result', {'wait': 'none'}, 10))['cpu'] - server_cpu0
    if sum(oks) != n:
        raise RuntimeError(f'{sum(oks)} of {n} replies correct')
    return dict(n=n, concurrency=conc, elapsed_s=elapsed, calls_per_s=n / elapsed,
                payload_bytes=W.PAYLOAD_BYTES, **cpu_figures(n, server_cpu, client_cpu))


async def _upload(ctx: Ctx, c, data: bytes, count: int, timeout: float) -> tuple[float, dict]:
    t0 = time.monotonic()
    d = await c.emit('big', data)
    r = await call(c, 'result', {'wait': 'big', 'count': count, 'timeout': timeout}, timeout)
    if r['big_count'] < count or r['big_len'] != len(data):
        raise RuntimeError(f'server has {r["big_count"]} uploads (last {r["big_len"]} bytes), '
                           f'wanted {count} of {len(data)} bytes')
    if ctx.is_relio:
        await asyncio.wait_for(d, timeout)
    return r['big_t'] - t0, r


async def big_50MiB(ctx: Ctx, c) -> dict:
    size, reps = ctx.p['size'], ctx.p['reps']
    await _upload(ctx, c, bytes(ctx.p['warmup_size']), 1, 60)
    data = bytes(random.Random(1).getrandbits(8) for _ in range(256)) * (size // 256) \
        + bytes(size % 256)
    times = []
    for k in range(reps):
        dt, _ = await _upload(ctx, c, data, k + 2, ctx.timeout / (reps + 1))
        times.append(dt)
    med = statistics.median(times)
    return dict(size=size, reps=reps, seconds=times, median_s=med, mb_per_s=size / med / 1e6)


async def _download(ctx: Ctx, c, got: dict, size: int, timeout: float) -> float:
    """Ask the server for ``size`` bytes; seconds from its emit to this client's handler."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    before = got['count']
    await c.emit('start', {'size': size, 'reps': 1, 'confirm_timeout': timeout})
    if not await wait_until(lambda: got['count'] > before, timeout, 0.001):
        raise RuntimeError(f'no {size}-byte download within {timeout:.0f} s')
    if got['len'] != size:
        raise RuntimeError(f'downloaded {got["len"]} bytes, wanted {size}')
    dt = got['t'] - got['t0']
    # the server records when its emit returned (relio: when its Delivery was confirmed)
    for _ in range(1000):
        s2c = (await call(c, 'result', {'wait': 'none'}, 10))['s2c']
        if 'error' in s2c:
            raise RuntimeError(f'server emit failed: {s2c["error"]}')
        if 't_sent' in s2c or loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    if 't_sent' not in s2c:
        raise RuntimeError('the server did not finish its download emit')
    return dt


async def big_50MiB_down(ctx: Ctx, c) -> dict:
    size, reps = ctx.p['size'], ctx.p['reps']
    got = {'count': 0, 'len': None, 't': None, 't0': None}

    async def on_bigd(t0, data):
        got.update(t=time.monotonic(), t0=t0, len=len(data), count=got['count'] + 1)

    c.on('bigd', on_bigd)
    await _download(ctx, c, got, ctx.p['warmup_size'], 60)
    times = [await _download(ctx, c, got, size, ctx.timeout / (reps + 1)) for _ in range(reps)]
    med = statistics.median(times)
    return dict(size=size, reps=reps, seconds=times, median_s=med, mb_per_s=size / med / 1e6)


async def big_200MiB(ctx: Ctx, c) -> dict:
    size = ctx.p['size']
    data = bytes(random.Random(2).getrandbits(8) for _ in range(256)) * (size // 256) \
        + bytes(size % 256)
    disconnects = {'n': 0}

    @c.event
    async def disconnect(*args):
        disconnects['n'] += 1

    limit = ctx.timeout / 2
    t0 = time.monotonic()
    try:
        d = await c.emit('big', data)
        call_task = asyncio.ensure_future(
            call(c, 'result', {'wait': 'big', 'count': 1, 'timeout': limit}, limit))
        # python-socketio forgets a pending call when the connection drops: stop waiting then
        ok = await wait_until(lambda: call_task.done() or disconnects['n'] > 0, limit + 5, 0.01)
        if not call_task.done():
            call_task.cancel()
            with contextlib.suppress(BaseException):
                await call_task
            reason = 'connection closed by the server' if disconnects['n'] else \
                f'no result within {limit:.0f} s' if not ok else 'unknown'
            return dict(size=size, ok=False, error=f'upload failed: {reason}',
                        failed_after_s=time.monotonic() - t0, disconnects=disconnects['n'])
        r = call_task.result()
        if r['big_count'] < 1 or r['big_len'] != size:
            return dict(size=size, ok=False, error=f'server got {r["big_len"]} bytes',
                        failed_after_s=time.monotonic() - t0, disconnects=disconnects['n'])
        if ctx.is_relio:
            await asyncio.wait_for(d, limit)
    except Exception as exc:
        return dict(size=size, ok=False, error=f'upload failed: {exc!r}',
                    failed_after_s=time.monotonic() - t0, disconnects=disconnects['n'])
    dt = r['big_t'] - t0
    return dict(size=size, seconds=dt, mb_per_s=size / dt / 1e6, disconnects=disconnects['n'])


async def _paced_phase(ctx: Ctx, c, proxy, cuts: bool, base: int) -> dict:
    """Emit at ``rate``/s for ``duration`` s (ids from ``base``), cutting the proxy's connections
    every ``cut_gap`` s if ``cuts``; then wait for what is still on its way and count."""
    p = ctx.p
    rate, duration = p['rate'], p['duration']
    n = int(rate * duration)
    rng = random.Random(p['seed'] + (1 if cuts else 0))
    refused = 0
    deliveries = []
    loop = asyncio.get_running_loop()
    cut_count = 0

    async def cutter() -> None:
        nonlocal cut_count
        t = loop.time()
        end = t + duration
        for _ in range(1000):
            t += rng.uniform(*p['cut_gap'])
            if t >= end - 0.2:
                return
            await asyncio.sleep(max(0.0, t - loop.time()))
            await proxy.cut()
            cut_count += 1

    await reset(c)
    t0 = time.monotonic()
    start = loop.time()
    cut_task = loop.create_task(cutter()) if cuts else None
    tick = 0.01
    i = 0
    try:
        for _ in range(int(duration / tick) * 4 + 100):
            if i >= n:
                break
            due = min(n, int((loop.time() - start) * rate) + 1)
            while i < due:
                try:
                    d = await c.emit('m', W.payload(base + i))
                    if ctx.is_relio:
                        deliveries.append(d)
                except Exception:
                    refused += 1          # python-socketio: not connected
                i += 1
            await asyncio.sleep(tick)
    finally:
        if cut_task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(cut_task, duration + 5)
    t_sent = time.monotonic()
    undelivered = None
    if ctx.is_relio:
        results = await asyncio.wait_for(
            asyncio.gather(*deliveries, return_exceptions=True), 60)
        undelivered = sum(1 for x in results if isinstance(x, BaseException))
    # python-socketio: wait to be connected again before asking
    if not await wait_until(lambda: c.connected, 15, 0.01):
        raise RuntimeError('not reconnected after the fault phase')
    r = None
    for _ in range(5):
        try:
            r = await call(c, 'result', {'wait': 'msgs', 'expect': n, 'quiet': 1.0,
                                         'timeout': 30}, 30)
            break
        except Exception:
            await wait_until(lambda: c.connected, 5, 0.01)
    if r is None:
        raise RuntimeError('result call failed 5 times')
    unique = r['unique']
    t_end = r['t_last'] if r['t_last'] is not None else t_sent
    elapsed = t_end - t0
    out = dict(sent=n, delivered=unique, lost=n - unique, refused=refused, dups=r['dups'],
               reordered=r['reordered'], cuts=cut_count, elapsed_s=elapsed,
               goodput=unique / elapsed)
    if undelivered is not None:
        out['undelivered_errors'] = undelivered
    return out


async def faults(ctx: Ctx, c_unused) -> dict:
    from relio.demo.faultproxy import FaultProxy

    port = int(ctx.url.rsplit(':', 1)[1])
    async with FaultProxy(port, max_lifetime=ctx.timeout) as proxy:
        c = ctx.new_client()
        try:
            await ctx.connect(c, proxy.url)
            # warm up through the proxy
            for i in range(200):
                await c.emit('m', W.payload(10_000_000 + i))
            await call(c, 'result', {'wait': 'msgs', 'expect': 200, 'timeout': 20}, 20)
            clean = await _paced_phase(ctx, c, proxy, False, 0)
            faulty = await _paced_phase(ctx, c, proxy, True, 1_000_000)
            stats = None
            if ctx.is_relio:
                s = c.session_stats()
                stats = {k: s[k] for k in ('frames_retransmitted', 'duplicates_dropped')
                         if s and k in s}
        finally:
            await ctx.close(c)
    ratio = faulty['goodput'] / clean['goodput'] if clean['goodput'] else float('nan')
    return dict(clean=clean, faults=faulty, goodput_ratio=ratio, lost=faulty['lost'],
                refused=faulty['refused'], dups=faulty['dups'], cuts=faulty['cuts'],
                rate=ctx.p['rate'], duration=ctx.p['duration'], relio_stats=stats,
                proxy=proxy.stats.as_dict())


RUNNERS = dict(emit_c2s=emit_c2s, emit_s2c=emit_s2c, call_seq=call_seq, call_64=call_64,
               big_50MiB=big_50MiB, big_50MiB_down=big_50MiB_down, big_200MiB=big_200MiB,
               faults=faults)


# --------------------------------------------------------------------------------- memory
async def hold_sessions(ctx: Ctx, sessions: int, concurrency: int, hold: float) -> None:
    clients = [ctx.new_client() for _ in range(sessions)]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def reader() -> None:
        for line in sys.stdin:
            if line.strip() == 'quit':
                break
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=reader, daemon=True).start()
    try:
        sem = asyncio.Semaphore(concurrency)

        async def one(c) -> None:
            async with sem:
                await ctx.connect(c)

        t0 = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), ctx.timeout / 2)
        connected = sum(1 for c in clients if c.connected)
        W.emit_line({'event': 'ready', 'connected': connected,
                     'connect_s': time.monotonic() - t0})
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), hold)
    finally:
        sem = asyncio.Semaphore(concurrency * 2)

        async def close(c) -> None:
            async with sem:
                await ctx.close(c)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(close(c) for c in clients)), 60)


# --------------------------------------------------------------------------------- fan-out
class RoomMember:
    """One client of the room ``fan``: counts numbered messages (unique ids and duplicates)."""

    def __init__(self, client) -> None:
        self.client = client
        self.seen: set[int] = set()
        self.dups = 0
        self.target = 0
        self.t_done: float | None = None
        client.on('m', self.on_m)

    async def on_m(self, data) -> None:
        i = data['i']
        if i in self.seen:
            self.dups += 1
            return
        self.seen.add(i)
        if len(self.seen) == self.target:
            self.t_done = time.monotonic()

    def expect(self, n: int) -> None:
        self.seen, self.dups, self.target, self.t_done = set(), 0, n, None


async def room_members(ctx: Ctx, sessions: int, concurrency: int = 20) -> None:
    """``fanout_100``: ``sessions`` clients join ``fan``; the warm-up broadcast (``warmup``
    messages) and the measured one (``n``) are counted; one ``result`` line reports both."""
    members = [RoomMember(ctx.new_client()) for _ in range(sessions)]
    sem = asyncio.Semaphore(concurrency)
    n, warmup = ctx.p['n'], ctx.p['warmup']
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.timeout

    async def join(m: RoomMember) -> None:
        async with sem:
            await ctx.connect(m.client)
            await call(m.client, 'fan', {}, 20)

    async def all_done(count: int, what: str) -> None:
        for m in members:
            m.expect(count)
        W.emit_line({'event': 'ready', 'connected': sum(1 for m in members
                                                       if m.client.connected), 'phase': what})
        ok = await wait_until(lambda: all(m.t_done is not None for m in members),
                              max(1.0, deadline - loop.time()), 0.002)
        if not ok:
            got = sorted(len(m.seen) for m in members)
            raise RuntimeError(f'{what}: clients got {got[0]}..{got[-1]} of {count} messages')

    try:
        await asyncio.wait_for(asyncio.gather(*(join(m) for m in members)), ctx.timeout / 2)
        await all_done(warmup, 'warmup')
        dups_warm = sum(m.dups for m in members)
        cpu0 = W.cpu_seconds()
        await all_done(n, 'measured')
        client_cpu = W.cpu_seconds() - cpu0
        out = dict(ok=True, sessions=sessions, n=n, deliveries=sum(len(m.seen) for m in members),
                   dups=sum(m.dups for m in members) + dups_warm,
                   t_done=max(m.t_done for m in members), client_cpu_s=client_cpu)
    except Exception as exc:
        out = {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
    finally:
        sem = asyncio.Semaphore(concurrency * 2)

        async def close(m: RoomMember) -> None:
            async with sem:
                await ctx.close(m.client)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(close(m) for m in members)), 60)
    W.emit_line({'event': 'result', **out})


# --------------------------------------------------------------------------------- main
async def amain(args) -> None:
    p = W.params(args.workload, args.scale)
    ctx = Ctx(args.lib, args.workload, p, f'http://127.0.0.1:{args.port}', args.timeout,
              args.json)
    if args.workload == 'memory':
        await hold_sessions(ctx, args.sessions, p['concurrency'], args.timeout)
        return
    if args.workload == 'fanout_100':
        await room_members(ctx, args.sessions)
        return
    runner = RUNNERS[args.workload]
    t_start = time.monotonic()
    if args.workload == 'faults':
        try:
            out = await runner(ctx, None)
            out.setdefault('ok', True)
        except Exception as exc:
            out = {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
    else:
        c = ctx.new_client()
        try:
            await ctx.connect(c)
            out = await runner(ctx, c)
            out.setdefault('ok', True)
        except Exception as exc:
            out = {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
        finally:
            await ctx.close(c)
    out['wall_s'] = time.monotonic() - t_start
    W.emit_line({'event': 'result', **out})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--lib', required=True, choices=('socketio', 'relio'))
    ap.add_argument('--workload', required=True, choices=sorted(W.BY_NAME))
    ap.add_argument('--port', required=True, type=int)
    ap.add_argument('--scale', type=float, default=1.0)
    ap.add_argument('--timeout', type=float, default=120.0,
                    help='seconds for the whole run (waits inside are bounded by fractions)')
    ap.add_argument('--sessions', type=int, default=0,
                    help='memory: sessions to hold; fanout_100: room members')
    ap.add_argument('--loop', choices=W.LOOPS, default=W.LOOPS[0])
    ap.add_argument('--json', choices=W.JSONS, default=W.JSONS[0])
    args = ap.parse_args(argv)
    W.start_deadline(args.timeout + 30, 'client')
    W.run_loop(amain(args), args.loop)


if __name__ == '__main__':
    main()
