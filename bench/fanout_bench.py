"""``python -m bench.fanout_bench [--quick]``: what a room broadcast costs on the nodes that deliver it.

Two server nodes (``python -m bench.redis_app``, each its own process, uvicorn on 127.0.0.1) share a
``redis-server`` started here. K clients connect to node B and join the room ``fan``; one client on
node A asks A to emit N numbered messages to that room (A has no member of it: every message crosses
the bus). Measured per configuration and K, in one run: node B's CPU (``/proc/<pid>/stat`` utime +
stime, and schedstat as a cross-check) from just before the blast until every one of the K clients
got all N messages (relio: and A's last ``Delivery`` confirmed), divided by N; node A's the same way.

The slope of B's CPU per message over K is the cost of one more recipient of a message that arrived
from another node (reading nothing more from Redis: queueing it into one more session, framing,
writing, and, for relio, that client's acknowledgement); the intercept is what a node pays per
message that crossed the bus whatever the room's size (reading the entry, finding the members).

Configurations: ``relio`` (``relio.AsyncRedisManager`` with no mode: durable), ``relio-fast``
and ``socketio-redis`` (python-socketio's ``AsyncRedisManager``, pub/sub), each with its matching
client. Results: printed, and stored in ``bench/results/fanout.json``. One run on a shared machine:
compare configurations within the run, not across runs. ``--profile`` runs node B under cProfile
(``fanout-<configuration>-b.prof`` next to ``--out``, top functions printed; figures inflated).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import statistics
import sys
import tempfile
import time

from bench.redis_bench import (
    SETTLE,
    ServerProc,
    cpu_seconds,
    machine_info,
    print_profile,
    sched_seconds,
)
from tests.support.redis_server import RedisServer

DEFAULT_OUT = os.path.join('bench', 'results', 'fanout.json')
#: bench.redis_app's kind for each configuration measured here
KINDS = {'relio': 'relio-durable', 'relio-fast': 'relio-fast', 'socketio-redis': 'socketio-redis'}
#: room sizes measured (clients on node B)
ROOM_SIZES = (1, 10, 40)
QUICK_ROOM_SIZES = (1, 10)
#: messages per blast; the warm-up blast before each measured one
N, QUICK_N, WARMUP = 2000, 500, 200
#: how long one blast may take to reach every client (s)
BLAST_TIMEOUT = 120.0


def new_client(kind: str):
    if kind.startswith('relio'):
        import relio as mod
    else:
        import socketio as mod
    return mod.AsyncClient(logger=False, engineio_logger=False, reconnection=True,
                           reconnection_delay=0.1, reconnection_delay_max=0.5,
                           randomization_factor=0.0)


class Receivers:
    """K clients counting the numbered messages they get (duplicates and disorder too)."""

    def __init__(self, k: int):
        self.k = k
        self.clients: list = []
        self.reset(0)

    def reset(self, n: int) -> None:
        self.n = n
        self.next = [0] * self.k
        self.bad = 0
        self.complete = 0
        self.done = asyncio.Event()
        if n == 0:
            self.done.set()

    def handler(self, index: int):
        def on_s(i):
            if i != self.next[index]:
                self.bad += 1          # a gap, a duplicate or disorder
                return
            self.next[index] = i + 1
            if i + 1 == self.n:
                self.complete += 1
                if self.complete == self.k:
                    self.done.set()
        return on_s


async def measure(kind: str, redis: RedisServer, sizes, n: int, log_dir: str,
                  profile_path: str | None = None) -> dict:
    app_kind = KINDS[kind]
    for node in ('a', 'b'):
        os.makedirs(os.path.join(log_dir, node), exist_ok=True)
    a = ServerProc(app_kind, redis.url, os.path.join(log_dir, 'a'), None)
    b = ServerProc(app_kind, redis.url, os.path.join(log_dir, 'b'), profile_path)
    out: dict = {'kind': kind, 'app_kind': app_kind, 'sizes': {}}
    receivers_all: list = []
    driver = new_client(kind)
    try:
        await a.wait_ready()
        await b.wait_ready()
        await driver.connect(a.url, transports=['websocket'], wait_timeout=10)
        for k in sizes:
            rec = Receivers(k)
            for index in range(k):
                c = new_client(kind)
                c.on('s', rec.handler(index))
                await c.connect(b.url, transports=['websocket'], wait_timeout=10)
                await c.call('join', 'fan', timeout=10)
                rec.clients.append(c)
            receivers_all.append(rec)
            await asyncio.sleep(0.3)           # the joins reach node A's view of the room

            async def blast(count: int) -> float:
                rec.reset(count)
                t0 = time.perf_counter()
                await driver.call('blast', (count, 'fan'), timeout=10)
                await asyncio.wait_for(rec.done.wait(), BLAST_TIMEOUT)
                for _ in range(int(BLAST_TIMEOUT / 0.02)):
                    status = await driver.call('blast_status', timeout=10)
                    if status and status['done']:
                        break
                    await asyncio.sleep(0.02)
                if status['error'] or (kind.startswith('relio') and not status['confirmed']):
                    raise RuntimeError(f'{kind}: blast failed: {status}')
                return time.perf_counter() - t0

            await blast(WARMUP)
            before = [cpu_seconds(b.pid), sched_seconds(b.pid), cpu_seconds(a.pid),
                      sched_seconds(a.pid)]
            elapsed = await blast(n)
            await asyncio.sleep(SETTLE)
            after = [cpu_seconds(b.pid), sched_seconds(b.pid), cpu_seconds(a.pid),
                     sched_seconds(a.pid)]
            if rec.bad:
                raise RuntimeError(f'{kind}, K={k}: {rec.bad} messages out of sequence')
            per = [(y - x) / n * 1e6 for x, y in zip(before, after, strict=True)]
            out['sizes'][k] = {'n': n, 'elapsed_s': elapsed,
                               'deliveries_per_s': n * k / elapsed,
                               'b_cpu_us_per_msg': per[0], 'b_sched_us_per_msg': per[1],
                               'a_cpu_us_per_msg': per[2], 'a_sched_us_per_msg': per[3]}
            print(f'  {kind:15} K={k:3}  node B {per[1]:8.1f} µs/msg  node A {per[3]:6.1f} µs/msg'
                  f'  {n * k / elapsed:10,.0f} deliveries/s', flush=True)
            for c in rec.clients:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.disconnect(), 10)
            rec.clients.clear()
        ks = sorted(out['sizes'])
        if len(ks) >= 2:
            ys = [out['sizes'][k]['b_sched_us_per_msg'] for k in ks]
            fit = statistics.linear_regression(ks, ys)
            out['b_us_per_recipient'] = fit.slope
            out['b_us_per_message'] = fit.intercept
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(driver.disconnect(), 10)
        for rec in receivers_all:
            for c in rec.clients:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.disconnect(), 10)
        await a.stop()
        await b.stop()
    return out


async def amain(args) -> dict:
    sizes = QUICK_ROOM_SIZES if args.quick else ROOM_SIZES
    n = QUICK_N if args.quick else N
    kinds = args.only.split(',') if args.only else list(KINDS)
    data: dict = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                  'machine': machine_info(), 'loadavg_start': os.getloadavg(), 'configs': {}}
    with tempfile.TemporaryDirectory(prefix='relio-fanout-') as log_dir:
        async with RedisServer() as redis:
            for kind in kinds:
                profile_path = None
                if args.profile:
                    profile_path = os.path.abspath(os.path.join(
                        os.path.dirname(args.out) or '.', f'fanout-{kind}-b.prof'))
                data['configs'][kind] = await measure(kind, redis, sizes, n, log_dir,
                                                      profile_path)
                if profile_path:
                    data['configs'][kind]['profiled'] = True
    data['loadavg_end'] = os.getloadavg()
    print('\nper message that crossed the bus, on the node delivering it '
          '(least-squares fit of node B\'s CPU over K):')
    for kind, r in data['configs'].items():
        if 'b_us_per_recipient' in r:
            print(f'  {kind:15} {r["b_us_per_message"]:7.1f} µs + {r["b_us_per_recipient"]:6.1f} '
                  f'µs per recipient')
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='smaller rooms and blasts')
    parser.add_argument('--only', default='', help=f'configurations: {",".join(KINDS)}')
    parser.add_argument('--out', default=DEFAULT_OUT)
    parser.add_argument('--profile', action='store_true',
                        help='run node B under cProfile (its figures are then inflated)')
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
    data = asyncio.run(amain(args))
    if args.profile:
        for kind in data['configs']:
            print_profile(os.path.abspath(os.path.join(os.path.dirname(args.out) or '.',
                                                       f'fanout-{kind}-b.prof')))
    if args.out:
        os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(data, f, indent=1)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
