"""``python -m bench.redis_bench [--quick] [--out bench/results/redis.json]``: what Redis costs.

Five server configurations, measured side by side in one run, each server its own OS process
(``python -m bench.redis_app --kind K``, uvicorn on 127.0.0.1):

    socketio        python-socketio, default manager (one node)
    socketio-redis  python-socketio + socketio.AsyncRedisManager (pub/sub, at-most-once)
    relio           relio, default manager (one node)
    relio-fast      relio + relio.AsyncRedisManager(mode='fast')
    relio-durable   relio + relio.AsyncRedisManager(mode='durable')

The bench starts its own ``redis-server`` (free 127.0.0.1 port, temp dir, ``--save ''
--appendonly yes --appendfsync everysec``; see tests/support/redis_server.py) and drives each server
with the matching client (``socketio.AsyncClient`` / ``relio.AsyncClient``, websocket transport)
from this process. Workloads (each on a fresh connection, after a warm-up on that connection):

    c2s        N numbered emits client -> server handler ``m`` (each emit awaited, i.e. pipelined,
               not round trips); done when the server counted N (one ``wait_count`` call; relio:
               and the last emit's Delivery is confirmed)
    s2c-sid    the server emits N numbered messages to room=sid; done when the client got all N
               (relio: and the server's last Delivery confirmed). relio's Redis manager delivers an
               emit to a local sid without Redis; python-socketio's (5.x) delivers it locally and
               also PUBLISHes every emit, even to a sid (each emit awaits that PUBLISH)
    s2c-all    the same to a room 'all' the client joined: with a Redis manager every emit also
               goes to Redis (relio: appended to the bus stream in batches, and read back by the
               node itself, which skips its own entries; python-socketio: one PUBLISH per emit)
    latency    L sequential ``call('echo', i)`` on a fresh session: p50 / p99 round trip
    latency-aged  the same (L_aged calls) on a session that first received N messages (c2s, not
               measured): durable mode's saves include the session's whole state, whose size
               grows with the number of messages the session received (relio's duplicate-id set,
               up to Config.id_set_capacity ids); ``state_bytes`` reports that size

Server CPU: utime + stime of the server process from /proc/<pid>/stat (clock ticks,
``os.sysconf('SC_CLK_TCK')``), read just before a workload's measured phase and again after it
completed (plus a 0.1 s settle so that trailing work is included); startup and warm-up excluded.
Divided by N this is "server CPU µs per message" (it includes the acknowledgements and the one or
two control calls of the workload). The redis-server's CPU is read the same way; a cross-check
with nanosecond resolution (the threads' run time in /proc/<pid>/task/*/schedstat) is stored and
printed too (at 100 ticks/s, --quick's 3,000 messages resolve only 3.3 µs/message). Also per
message: the bytes Redis received (INFO stats total_net_input_bytes) and, for relio's Redis
manager, the session saves made (``AsyncRedisManager.stats['saved']``: durable mode's batching).
Latencies are wall-clock round trips: on a loaded machine they move much more than CPU figures
(the load average at start and end is stored and printed).

Goal (durable mode): at most 20 µs of extra server CPU per message vs relio on one node, and at
most 5 ms extra p50 latency. Both differences are printed and stored under ``goals``.

Options: ``--only relio,relio-durable`` (configurations), ``--workloads c2s,latency``, ``--n``.
Profiling: ``--profile relio-durable`` runs that server under cProfile (see bench/redis_app.py),
writes ``redis-<kind>.prof`` next to --out and prints its top functions; its figures are then
inflated by the profiler (marked in the JSON). redis-py parses replies in pure Python unless
``hiredis`` is installed (the JSON records which parser ran).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

from bench.redis_app import KINDS, REDIS_KINDS
from tests.support.processes import free_port
from tests.support.redis_server import RedisServer, redis_server_binary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join('bench', 'results', 'redis.json')
CLK_TCK = os.sysconf('SC_CLK_TCK')

FULL = dict(n=20_000, warmup=1_000, calls=1_000, call_warmup=100, aged_calls=200,
            workload_timeout=75.0, config_budget=180.0)
QUICK = dict(n=3_000, warmup=300, calls=200, call_warmup=30, aged_calls=100,
             workload_timeout=25.0, config_budget=60.0)
WORKLOADS = ('c2s', 's2c-sid', 's2c-all', 'latency', 'latency-aged')
SERVER_READY_TIMEOUT = 20.0
CONNECT_TIMEOUT = 15.0
SETTLE = 0.1
CPU_GOAL_US = 20.0
P50_GOAL_US = 5_000.0


# --------------------------------------------------------------------------------- helpers
def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f'/proc/{pid}/stat', 'rb') as f:
        data = f.read()
    fields = data[data.rindex(b')') + 2:].split()
    # after "pid (comm) ": state is field 3, utime field 14, stime field 15 (1-based)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sched_seconds(pid: int) -> float:
    """Cross-check with nanosecond resolution: the sum over the process's threads of the time they
    ran on a CPU (first field of /proc/<pid>/task/<tid>/schedstat). Threads that exit between two
    readings are missed (the servers measured here run one thread)."""
    total = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f'/proc/{pid}/task'):
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                    total += int(f.read().split()[0])
    return total / 1e9


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float('nan')
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


async def wait_for_event(ev: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(ev.wait(), timeout)
        return True
    except asyncio.TimeoutError:
        return False


def machine_info() -> dict:
    cpu_model = None
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu_model = line.split(':', 1)[1].strip()
                    break
    versions = {}
    for dist in ('python-socketio', 'python-engineio', 'redis', 'uvicorn', 'wsproto', 'aiohttp'):
        with contextlib.suppress(Exception):
            versions[dist] = importlib.metadata.version(dist)
    with contextlib.suppress(Exception):
        import relio
        versions['relio'] = relio.__version__
    with contextlib.suppress(Exception):
        out = subprocess.run([redis_server_binary(), '--version'], capture_output=True, text=True,
                             timeout=10).stdout
        versions['redis-server'] = out.split('v=', 1)[1].split()[0]
    with contextlib.suppress(Exception):
        import redis.utils
        versions['hiredis_parser'] = bool(redis.utils.HIREDIS_AVAILABLE)
    return {'cpu_count': os.cpu_count(), 'cpu_model': cpu_model,
            'platform': platform.platform(), 'python': platform.python_version(),
            'clock_ticks_per_s': CLK_TCK, 'versions': versions}


# --------------------------------------------------------------------------------- server process
class ServerProc:
    """``python -m bench.redis_app`` in its own process; stderr/stdout to a log file."""

    def __init__(self, kind: str, redis_url: str, log_dir: str, profile: str | None):
        self.kind = kind
        self.port = free_port()
        self.log_path = os.path.join(log_dir, f'{kind}.log')
        self.profile = profile
        env = dict(os.environ)
        env.pop('RELIO_BENCH_PROFILE', None)
        if profile:
            env['RELIO_BENCH_PROFILE'] = profile
        env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
        args = [sys.executable, '-m', 'bench.redis_app', '--port', str(self.port),
                '--kind', kind]
        if kind in REDIS_KINDS:
            args += ['--redis', redis_url]
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            with open(self.log_path, 'rb') as f:
                return b''.join(f.readlines()[-n:]).decode('utf-8', 'replace')
        return ''

    async def wait_ready(self, timeout: float = SERVER_READY_TIMEOUT) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            if self.proc.poll() is not None:
                raise RuntimeError(f'server {self.kind} exited with {self.proc.returncode}:\n'
                                   + self.log_tail())
            with contextlib.suppress(OSError):
                with socket.create_connection(('127.0.0.1', self.port), timeout=0.5):
                    return
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f'server {self.kind} not listening within {timeout:.0f} s:\n'
                           + self.log_tail())

    async def stop(self, timeout: float = 8.0) -> None:
        """SIGTERM (graceful: uvicorn closes, sio.shutdown(), profile written), SIGKILL if slow."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while self.proc.poll() is None and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                if self.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    await asyncio.get_running_loop().run_in_executor(None, self.proc.wait, 5)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                self.proc.wait(5)


# --------------------------------------------------------------------------------- one config
class Run:
    def __init__(self, kind: str, server: ServerProc, redis: RedisServer, p: dict):
        self.kind, self.server, self.redis, self.p = kind, server, redis, p
        self.is_relio = kind.startswith('relio')
        if self.is_relio:
            import relio as mod
        else:
            import socketio as mod
        self.mod = mod

    def new_client(self):
        return self.mod.AsyncClient(logger=False, engineio_logger=False, reconnection=True,
                                    reconnection_delay=0.1, reconnection_delay_max=0.5,
                                    randomization_factor=0.0)

    async def connect(self, client) -> None:
        await asyncio.wait_for(client.connect(self.server.url, transports=['websocket'],
                                              wait_timeout=10), CONNECT_TIMEOUT)

    @contextlib.asynccontextmanager
    async def client(self):
        c = self.new_client()
        try:
            await self.connect(c)
            yield c
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.disconnect(), 10)

    async def call(self, c, event, data=None, timeout=30.0):
        return await asyncio.wait_for(c.call(event, data, timeout=timeout), timeout + 5)

    def cpu(self) -> tuple[float, float, float, float]:
        """(server, redis) CPU seconds from /proc/<pid>/stat, then the same from schedstat."""
        spid, rpid = self.server.pid, self.redis.proc.pid
        return cpu_seconds(spid), cpu_seconds(rpid), sched_seconds(spid), sched_seconds(rpid)

    async def redis_in_bytes(self) -> int | None:
        """Bytes Redis received from all its clients so far (INFO stats total_net_input_bytes)."""
        if self.kind not in REDIS_KINDS:
            return None
        client = getattr(self, '_redis_client', None)
        if client is None:
            import redis.asyncio
            client = self._redis_client = redis.asyncio.Redis.from_url(
                self.redis.url, socket_timeout=10, socket_connect_timeout=5)
        info = await asyncio.wait_for(client.info('stats'), 15)
        return int(info['total_net_input_bytes'])

    async def close(self) -> None:
        client = getattr(self, '_redis_client', None)
        if client is not None:
            self._redis_client = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), 5)

    async def begin(self, c) -> tuple:
        """Readings before a measured phase: relio's manager stats (one call), Redis input bytes,
        then (last, so that the two above are not counted) the CPU times."""
        stats = await self.call(c, 'manager_stats', None, 10)
        in_bytes = await self.redis_in_bytes()
        return self.cpu(), in_bytes, stats

    async def end(self, c) -> tuple:
        """The same after the phase (CPU first, after a short settle)."""
        await asyncio.sleep(SETTLE)
        cpu = self.cpu()
        in_bytes = await self.redis_in_bytes()
        stats = await self.call(c, 'manager_stats', None, 10)
        return cpu, in_bytes, stats

    @staticmethod
    def fields(begin: tuple, end: tuple, n: int) -> dict:
        before, after = begin[0], end[0]
        out = {'server_cpu_s': after[0] - before[0],
               'server_cpu_us_per_msg': (after[0] - before[0]) / n * 1e6,
               'redis_cpu_s': after[1] - before[1],
               'redis_cpu_us_per_msg': (after[1] - before[1]) / n * 1e6,
               # cross-check, nanosecond resolution (schedstat run time of all threads)
               'server_sched_us_per_msg': (after[2] - before[2]) / n * 1e6,
               'redis_sched_us_per_msg': (after[3] - before[3]) / n * 1e6}
        if begin[1] is not None and end[1] is not None:
            out['redis_in_bytes_per_msg'] = (end[1] - begin[1]) / n
        if begin[2] and end[2]:
            # relio.AsyncRedisManager.stats: session saves (durable: the batched saves)
            delta = {k: end[2].get(k, 0) - begin[2].get(k, 0) for k in end[2]
                     if isinstance(end[2].get(k), int)}
            out['manager_stats_delta'] = delta
            out['session_saves'] = delta.get('saved', 0)
            if delta.get('saved'):
                out['msgs_per_save'] = n / delta['saved']
        return out

    # -- workloads ------------------------------------------------------------------------
    async def c2s(self, timeout: float) -> dict:
        n, warmup = self.p['n'], self.p['warmup']
        async with self.client() as c:
            last = None
            for i in range(warmup):
                last = await c.emit('m', i)
            r = await self.call(c, 'wait_count', (warmup, 20), 20)
            if not r['ok']:
                raise RuntimeError(f'warm-up: server counted {r["count"]} of {warmup}')
            if self.is_relio:
                await asyncio.wait_for(last, 20)
            await self.call(c, 'reset', None, 10)
            before = await self.begin(c)
            t0 = time.perf_counter()
            for i in range(n):
                last = await c.emit('m', i)
            t_sent = time.perf_counter()
            r = await self.call(c, 'wait_count', (n, timeout), timeout)
            t_done = time.perf_counter()
            if not r['ok']:
                raise RuntimeError(f'server counted {r["count"]} of {n} messages '
                                   f'(disorder {r["disorder"]})')
            out = {}
            if self.is_relio:
                await asyncio.wait_for(last, timeout)
                out['t_confirmed_s'] = time.perf_counter() - t0
            after = await self.end(c)
            if r['count'] != n or r['disorder']:
                raise RuntimeError(f'server counted {r["count"]} (expected {n}), '
                                   f'{r["disorder"]} out of order')
            elapsed = t_done - t0
            out.update(n=n, elapsed_s=elapsed, msgs_per_s=n / elapsed, send_s=t_sent - t0,
                       counted=r['count'], disorder=r['disorder'],
                       **self.fields(before, after, n))
            return out

    async def s2c(self, room: str | None, timeout: float) -> dict:
        n, warmup = self.p['n'], self.p['warmup']
        async with self.client() as c:
            st = {'count': 0, 'target': warmup, 'next': 0, 'disorder': 0,
                  'seen': bytearray(max(n, warmup)), 'dups': 0, 'bad': 0,
                  'done': asyncio.Event()}

            def on_s(i):           # no await: relio runs it inline, socketio in a task
                if not isinstance(i, int) or not 0 <= i < len(st['seen']):
                    st['bad'] += 1
                    return
                if st['seen'][i]:
                    st['dups'] += 1
                    return
                st['seen'][i] = 1
                if i != st['next']:
                    st['disorder'] += 1
                st['next'] = i + 1
                st['count'] += 1
                if st['count'] >= st['target']:
                    st['done'].set()

            c.on('s', on_s)
            if room is not None:
                await self.call(c, 'join', room, 10)

            async def blast(count: int, limit: float) -> tuple[float, dict]:
                loop = asyncio.get_running_loop()
                st.update(count=0, target=count, next=0, disorder=0, dups=0, bad=0,
                          seen=bytearray(count), done=asyncio.Event())
                t0 = time.perf_counter()
                await self.call(c, 'blast', (count, room), 10)
                if not await wait_for_event(st['done'], limit):
                    status = await self.call(c, 'blast_status', None, 10)
                    raise RuntimeError(f'client got {st["count"]} of {count} messages '
                                       f'(dups {st["dups"]}; server: {status})')
                t_done = time.perf_counter()
                # the server's blast task: done, and (relio) its last Delivery confirmed
                deadline = loop.time() + limit
                status = None
                for _ in range(int(limit / 0.02) + 2):
                    status = await self.call(c, 'blast_status', None, 10)
                    if status and status['done']:
                        break
                    if loop.time() > deadline:
                        break
                    await asyncio.sleep(0.02)
                if not status or not status['done']:
                    raise RuntimeError(f'server blast not done: {status}')
                if status['error'] or (self.is_relio and not status['confirmed']):
                    raise RuntimeError(f'server blast failed: {status}')
                return t_done - t0, status

            await blast(warmup, 30)
            before = await self.begin(c)
            elapsed, status = await blast(n, timeout)
            after = await self.end(c)
            if st['dups'] or st['disorder'] or st['bad'] or st['count'] != n:
                raise RuntimeError(f'client got {st["count"]} of {n}: {st["dups"]} duplicates, '
                                   f'{st["disorder"]} out of order, {st["bad"]} bad')
            # a late duplicate would show up here
            await asyncio.sleep(0)
            return dict(n=n, room=room or 'sid', elapsed_s=elapsed, msgs_per_s=n / elapsed,
                        received=st['count'], dups=st['dups'], disorder=st['disorder'],
                        **self.fields(before, after, n))

    async def latency(self, timeout: float, aged: bool = False) -> dict:
        calls = self.p['aged_calls'] if aged else self.p['calls']
        warmup = self.p['call_warmup']
        async with self.client() as c:
            out: dict = {}
            if aged:
                n = self.p['n']
                last = None
                for i in range(n):
                    last = await c.emit('m', i)
                r = await self.call(c, 'wait_count', (n, timeout / 2), timeout / 2)
                if not r['ok']:
                    raise RuntimeError(f'ageing: server counted {r["count"]} of {n} messages')
                if self.is_relio:
                    await asyncio.wait_for(last, timeout / 2)
                out['received_before'] = n
            for i in range(warmup):
                await self.call(c, 'echo', i, 10)
            out['state_bytes_before'] = await self.call(c, 'state_bytes', None, 10)
            lat = []
            pc = time.perf_counter
            before = await self.begin(c)
            t0 = pc()
            for i in range(calls):
                t = pc()
                r = await c.call('echo', i, timeout=10)
                lat.append(pc() - t)
                if r != i:
                    raise RuntimeError(f'wrong reply {r!r} to call {i}')
                if pc() - t0 > timeout:
                    raise RuntimeError(f'{i + 1} of {calls} calls in {timeout:.0f} s')
            elapsed = pc() - t0
            after = await self.end(c)
            out['state_bytes_after'] = await self.call(c, 'state_bytes', None, 10)
            lat.sort()
            fields = self.fields(before, after, calls)
            out.update(calls=calls, elapsed_s=elapsed, calls_per_s=calls / elapsed,
                       p50_us=pct(lat, 0.50) * 1e6, p99_us=pct(lat, 0.99) * 1e6,
                       mean_us=statistics.fmean(lat) * 1e6, max_us=lat[-1] * 1e6,
                       server_cpu_us_per_call=fields['server_cpu_us_per_msg'],
                       redis_cpu_us_per_call=fields['redis_cpu_us_per_msg'],
                       server_sched_us_per_call=fields['server_sched_us_per_msg'],
                       redis_sched_us_per_call=fields['redis_sched_us_per_msg'],
                       redis_in_bytes_per_call=fields.get('redis_in_bytes_per_msg'),
                       session_saves=fields.get('session_saves'),
                       manager_stats_delta=fields.get('manager_stats_delta'))
            return out

    async def workload(self, name: str, timeout: float) -> dict:
        if name == 'c2s':
            coro = self.c2s(timeout)
        elif name == 's2c-sid':
            coro = self.s2c(None, timeout)
        elif name == 's2c-all':
            coro = self.s2c('all', timeout)
        elif name == 'latency':
            coro = self.latency(timeout)
        elif name == 'latency-aged':
            coro = self.latency(timeout, aged=True)
        else:
            raise ValueError(name)
        return await asyncio.wait_for(coro, timeout + 15)


async def run_config(kind: str, redis: RedisServer, p: dict, log_dir: str,
                     profile_path: str | None) -> dict:
    loop = asyncio.get_running_loop()
    budget_end = loop.time() + p['config_budget']
    result: dict = {'kind': kind}
    server = ServerProc(kind, redis.url, log_dir, profile_path)
    try:
        t = time.perf_counter()
        await server.wait_ready()
        result['startup_s'] = time.perf_counter() - t
        run = Run(kind, server, redis, p)
        result['_run'] = run
        for name in p.get('workloads', WORKLOADS):
            remaining = budget_end - loop.time()
            if remaining < 3:
                result[name] = {'error': 'skipped: configuration time budget exhausted'}
                continue
            timeout = min(p['workload_timeout'], remaining)
            t = time.perf_counter()
            try:
                result[name] = await run.workload(name, timeout)
            except Exception as exc:
                err = f'{type(exc).__name__}: {exc}' if str(exc) else repr(exc)
                if isinstance(exc, asyncio.TimeoutError):
                    err = f'timed out after {time.perf_counter() - t:.1f} s'
                result[name] = {'error': err}
                if server.proc.poll() is not None:
                    result[name]['server_exit'] = server.proc.returncode
                    result[name]['server_log'] = server.log_tail()
            result[name]['wall_s'] = time.perf_counter() - t
            if server.proc.poll() is not None:
                for rest in p.get('workloads', WORKLOADS):
                    result.setdefault(rest, {'error': f'not run: the server exited '
                                                      f'({server.proc.returncode})'})
                break
    except Exception as exc:
        result['error'] = f'{type(exc).__name__}: {exc}'
        result['traceback'] = traceback.format_exc(limit=5)
    finally:
        run = result.pop('_run', None)
        if run is not None:
            await run.close()
        await server.stop()
        if server.proc.poll() is None:
            server.kill()
    log = server.log_tail(40).strip()
    if log:
        result['server_log_tail'] = log
    if profile_path:
        result['profiled'] = True
        result['profile'] = profile_path
    return result


# --------------------------------------------------------------------------------- report
METRICS = (  # (key, workload, field, header, format)
    ('c2s_msgs_per_s', 'c2s', 'msgs_per_s', 'c2s msg/s', '{:,.0f}'),
    ('c2s_cpu_us', 'c2s', 'server_cpu_us_per_msg', 'c2s µs/msg', '{:.1f}'),
    ('s2c_sid_msgs_per_s', 's2c-sid', 'msgs_per_s', 's2c(sid) msg/s', '{:,.0f}'),
    ('s2c_sid_cpu_us', 's2c-sid', 'server_cpu_us_per_msg', 's2c(sid) µs/msg', '{:.1f}'),
    ('s2c_all_msgs_per_s', 's2c-all', 'msgs_per_s', 's2c(all) msg/s', '{:,.0f}'),
    ('s2c_all_cpu_us', 's2c-all', 'server_cpu_us_per_msg', 's2c(all) µs/msg', '{:.1f}'),
    ('p50_us', 'latency', 'p50_us', 'p50 µs', '{:,.0f}'),
    ('p99_us', 'latency', 'p99_us', 'p99 µs', '{:,.0f}'),
    ('call_cpu_us', 'latency', 'server_cpu_us_per_call', 'echo µs/call', '{:.0f}'),
)
AGED_METRICS = (  # printed in their own table
    ('aged_p50_us', 'latency-aged', 'p50_us', 'p50 µs', '{:,.0f}'),
    ('aged_p99_us', 'latency-aged', 'p99_us', 'p99 µs', '{:,.0f}'),
    ('aged_call_cpu_us', 'latency-aged', 'server_cpu_us_per_call', 'server µs/call', '{:,.0f}'),
    ('aged_call_redis_us', 'latency-aged', 'redis_cpu_us_per_call', 'redis µs/call', '{:,.0f}'),
    ('aged_state_bytes', 'latency-aged', 'state_bytes_after', 'state bytes', '{:,.0f}'),
    ('fresh_state_bytes', 'latency', 'state_bytes_after', 'fresh state B', '{:,.0f}'),
)
SCHED_METRICS = (
    ('c2s_sched_us', 'c2s', 'server_sched_us_per_msg', 'c2s'),
    ('s2c_sid_sched_us', 's2c-sid', 'server_sched_us_per_msg', 's2c(sid)'),
    ('s2c_all_sched_us', 's2c-all', 'server_sched_us_per_msg', 's2c(all)'),
    ('call_sched_us', 'latency', 'server_sched_us_per_call', 'echo call'),
)
REDIS_METRICS = (  # (key, workload, field, header, format)
    ('c2s_redis_cpu_us', 'c2s', 'redis_cpu_us_per_msg', 'c2s µs', '{:.1f}'),
    ('s2c_sid_redis_cpu_us', 's2c-sid', 'redis_cpu_us_per_msg', 's2c(sid) µs', '{:.1f}'),
    ('s2c_all_redis_cpu_us', 's2c-all', 'redis_cpu_us_per_msg', 's2c(all) µs', '{:.1f}'),
    ('call_redis_cpu_us', 'latency', 'redis_cpu_us_per_call', 'echo µs', '{:.0f}'),
    ('c2s_redis_bytes', 'c2s', 'redis_in_bytes_per_msg', 'c2s B', '{:,.0f}'),
    ('s2c_sid_redis_bytes', 's2c-sid', 'redis_in_bytes_per_msg', 's2c(sid) B', '{:,.0f}'),
    ('s2c_all_redis_bytes', 's2c-all', 'redis_in_bytes_per_msg', 's2c(all) B', '{:,.0f}'),
    ('call_redis_bytes', 'latency', 'redis_in_bytes_per_call', 'echo B', '{:,.0f}'),
    ('c2s_saves', 'c2s', 'session_saves', 'c2s saves', '{:,}'),
    ('s2c_sid_saves', 's2c-sid', 'session_saves', 's2c(sid) saves', '{:,}'),
    ('s2c_all_saves', 's2c-all', 'session_saves', 's2c(all) saves', '{:,}'),
    ('call_saves', 'latency', 'session_saves', 'echo saves', '{:,}'),
)


def metric(configs: dict, kind: str, workload: str, field: str):
    w = configs.get(kind, {}).get(workload)
    if not isinstance(w, dict) or 'error' in w:
        return None
    return w.get(field)


def summarize(configs: dict) -> dict:
    table = {kind: {key: metric(configs, kind, wl, field)
                    for key, wl, field, _, _ in METRICS + AGED_METRICS}
             for kind in configs}
    for kind in configs:
        for key, wl, field, *_ in REDIS_METRICS + SCHED_METRICS:
            table[kind][key] = metric(configs, kind, wl, field)
    ratios: dict = {}
    for base in ('relio', 'socketio-redis'):
        ratios[f'vs {base}'] = {}
        for kind in configs:
            row = {}
            for key, *_ in METRICS:
                a, b = table[kind].get(key), table.get(base, {}).get(key)
                row[key] = (a / b) if a is not None and b else None
            ratios[f'vs {base}'][kind] = row
    goals: dict = {'cpu_goal_us_per_msg': CPU_GOAL_US, 'p50_goal_us': P50_GOAL_US}
    d, r = table.get('relio-durable', {}), table.get('relio', {})
    f = table.get('relio-fast', {})

    def diffs(a: dict, b: dict, suffix: str) -> dict:
        out = {}
        for wl in ('c2s', 's2c_sid', 's2c_all'):
            key = wl + suffix
            if a.get(key) is not None and b.get(key) is not None:
                out[wl] = a[key] - b[key]
        return out

    extra = diffs(d, r, '_cpu_us')
    goals['durable_extra_cpu_us_per_msg'] = extra              # durable - relio, /proc/pid/stat
    goals['durable_extra_cpu_us_per_msg_schedstat'] = diffs(d, r, '_sched_us')
    goals['durable_extra_cpu_us_per_msg_worst'] = max(extra.values()) if extra else None
    # all three workloads (s2c-all includes the Redis bus, which fast mode pays too)
    goals['cpu_goal_met'] = (max(extra.values()) <= CPU_GOAL_US) if len(extra) == 3 else None
    local = [extra[k] for k in ('c2s', 's2c_sid') if k in extra]
    goals['cpu_goal_met_without_bus'] = (max(local) <= CPU_GOAL_US) if len(local) == 2 else None
    # where the s2c-all difference comes from: the bus (fast - relio), durability (durable - fast)
    goals['s2c_all_bus_us_per_msg'] = diffs(f, r, '_cpu_us').get('s2c_all')
    goals['s2c_all_durable_vs_fast_us_per_msg'] = diffs(d, f, '_cpu_us').get('s2c_all')
    if d.get('p50_us') is not None and r.get('p50_us') is not None:
        goals['durable_extra_p50_us'] = d['p50_us'] - r['p50_us']
        goals['p50_goal_met'] = goals['durable_extra_p50_us'] <= P50_GOAL_US
    else:
        goals['durable_extra_p50_us'] = goals['p50_goal_met'] = None
    if d.get('aged_p50_us') is not None and r.get('aged_p50_us') is not None:
        goals['durable_extra_p50_us_aged'] = d['aged_p50_us'] - r['aged_p50_us']
        goals['p50_goal_met_aged'] = goals['durable_extra_p50_us_aged'] <= P50_GOAL_US
    else:
        goals['durable_extra_p50_us_aged'] = goals['p50_goal_met_aged'] = None
    return {'table': table, 'ratios': ratios, 'goals': goals}


_CONFIGS: dict = {}


def cell(kind: str, workload: str, v, f: str) -> str:
    """A table cell: the value, '-' if the workload was not run (or has no such figure, e.g.
    state bytes of python-socketio), FAIL if it failed."""
    w = _CONFIGS.get(kind, {}).get(workload)
    if w is None:
        return '-'
    if 'error' in w:
        return 'FAIL'
    return '-' if v is None else f.format(v)


def print_report(data: dict) -> None:
    configs, summary = data['configs'], data['summary']
    _CONFIGS.clear()
    _CONFIGS.update(configs)
    kinds = list(configs)
    w0 = max(16, max(len(k) for k in kinds) + 2)
    heads = [h for _, _, _, h, _ in METRICS]
    widths = [max(len(h), 9) + 2 for h in heads]
    line = f'{"config":<{w0}}' + ''.join(f'{h:>{w}}' for h, w in zip(heads, widths))
    p = data['params']
    m = data['machine']
    print(f"\nrelio vs python-socketio with Redis  (N={p['n']:,} messages, {p['calls']:,} calls; "
          f"server CPU per message from /proc/<pid>/stat)")
    parser = 'hiredis' if m['versions'].get('hiredis_parser') else 'pure-Python'
    print(f"machine: {m['cpu_count']} CPUs ({m['cpu_model']}), load average "
          f"{m['loadavg_start'][0]:.1f} at start, {m['loadavg_end'][0]:.1f} at end; redis-py "
          f"{m['versions'].get('redis')} ({parser} parser)")
    print(line)
    print('-' * len(line))
    for k in kinds:
        row = summary['table'][k]
        print(f'{k:<{w0}}' + ''.join(f'{cell(k, wl, row[key], f):>{w}}'
                                     for (key, wl, _, _, f), w in zip(METRICS, widths)))
    print('\nRedis per message (per call for echo): redis-server CPU µs, bytes Redis received '
          '(INFO total_net_input_bytes), relio session saves in the phase (manager stats):')
    rh = [h for _, _, _, h, _ in REDIS_METRICS]
    rw = [max(len(h), 6) + 2 for h in rh]
    print(f'{"config":<{w0}}' + ''.join(f'{h:>{w}}' for h, w in zip(rh, rw)))
    for k in kinds:
        if k not in REDIS_KINDS:
            continue
        row = summary['table'][k]
        print(f'{k:<{w0}}' + ''.join(f'{cell(k, wl, row[key], f):>{w}}'
                                     for (key, wl, _, _, f), w in zip(REDIS_METRICS, rw)))
    ah = [h for _, _, _, h, _ in AGED_METRICS]
    aw = [max(len(h), 9) + 2 for h in ah]
    print(f"\nlatency-aged: {p['aged_calls']} echo calls on a session that first received "
          f"{p['n']:,} messages (state bytes: the session's engine snapshot, written at every "
          f"durable save; last column: the fresh session of 'latency'):")
    print(f'{"config":<{w0}}' + ''.join(f'{h:>{w}}' for h, w in zip(ah, aw)))
    for k in kinds:
        row = summary['table'][k]
        print(f'{k:<{w0}}' + ''.join(f'{cell(k, wl, row[key], f):>{w}}'
                                     for (key, wl, _, _, f), w in zip(AGED_METRICS, aw)))
    print('\nserver CPU µs per message, cross-check from /proc/<pid>/task/*/schedstat (ns):')
    print(f'{"config":<{w0}}' + ''.join(f'{h:>12}' for *_, h in SCHED_METRICS))
    for k in kinds:
        row = summary['table'][k]
        print(f'{k:<{w0}}' + ''.join(f'{cell(k, wl, row[key], "{:.1f}"):>12}'
                                     for key, wl, *_ in SCHED_METRICS))
    for base, rows in summary['ratios'].items():
        if base.split(' ', 1)[1] not in configs:
            continue
        print(f'\nratio {base} (config / {base.split(" ", 1)[1]}; CPU & latency: lower is '
              f'better, msg/s: higher is better):')
        print(f'{"config":<{w0}}' + ''.join(f'{h:>{w}}' for h, w in zip(heads, widths)))
        for k in kinds:
            print(f'{k:<{w0}}' + ''.join(f'{cell(k, wl, rows[k][key], "{:.2f}x"):>{w}}'
                                         for (key, wl, *_), w in zip(METRICS, widths)))
    failures = [(k, wl, configs[k][wl]['error']) for k in kinds for wl in WORKLOADS
                if isinstance(configs[k].get(wl), dict) and 'error' in configs[k][wl]]
    failures += [(k, 'config', configs[k]['error']) for k in kinds if 'error' in configs[k]]
    if failures:
        print('\nFAILED:')
        for k, wl, err in failures:
            print(f'  {k} {wl}: {err}')
    g = summary['goals']
    print('\ngoal: durable mode costs <= 20 µs server CPU per message (vs relio, one node) and '
          'adds <= 5 ms p50 latency')
    extra = g['durable_extra_cpu_us_per_msg']
    if extra:
        parts = ', '.join(f'{k} {v:+.1f}' for k, v in extra.items())
        sched = ', '.join(f'{k} {v:+.1f}'
                          for k, v in g['durable_extra_cpu_us_per_msg_schedstat'].items())
        verdict = {True: 'MET', False: 'NOT MET', None: 'n/a'}
        print(f'  durable CPU/msg - relio CPU/msg: {parts} µs  (schedstat: {sched})')
        print(f'    all workloads (worst {g["durable_extra_cpu_us_per_msg_worst"]:+.1f} µs): '
              f'{verdict[g["cpu_goal_met"]]};  without the Redis bus (c2s, s2c-sid): '
              f'{verdict[g["cpu_goal_met_without_bus"]]}')
        if g['s2c_all_bus_us_per_msg'] is not None \
                and g['s2c_all_durable_vs_fast_us_per_msg'] is not None:
            print(f'    s2c(all) split: Redis bus (fast - relio) '
                  f'{g["s2c_all_bus_us_per_msg"]:+.1f} µs, durability (durable - fast) '
                  f'{g["s2c_all_durable_vs_fast_us_per_msg"]:+.1f} µs')
    else:
        print('  durable CPU/msg - relio CPU/msg: n/a (needs results of relio and relio-durable)')
    if g['durable_extra_p50_us'] is not None:
        print(f'  durable p50 - relio p50 (fresh session): '
              f'{g["durable_extra_p50_us"]:+,.0f} µs -> '
              f'{"MET" if g["p50_goal_met"] else "NOT MET"}')
    if g.get('durable_extra_p50_us_aged') is not None:
        print(f'  durable p50 - relio p50 (session that received {p["n"]:,} messages): '
              f'{g["durable_extra_p50_us_aged"]:+,.0f} µs -> '
              f'{"MET" if g["p50_goal_met_aged"] else "NOT MET"}')
    else:
        print('  durable p50 - relio p50: n/a (needs results of relio and relio-durable)')
    if any(c.get('profiled') for c in configs.values()):
        print('  (note: profiled configurations run under cProfile: their figures are inflated)')


def print_profile(path: str, top: int = 30) -> None:
    import pstats
    if not os.path.exists(path):
        print(f'(no profile written at {path})')
        return
    print(f'\ncProfile of {path}: top {top} by own time (tottime)')
    pstats.Stats(path).sort_stats('tottime').print_stats(top)
    print(f'top {top} by cumulative time')
    pstats.Stats(path).sort_stats('cumulative').print_stats(top)


# --------------------------------------------------------------------------------- main
async def amain(args) -> dict:
    p = dict(QUICK if args.quick else FULL)
    if args.n:
        p['n'] = args.n
    if args.workloads:
        p['workloads'] = [w.strip() for w in args.workloads.split(',')]
        for w in p['workloads']:
            if w not in WORKLOADS:
                raise SystemExit(f'unknown workload {w!r} (one of {", ".join(WORKLOADS)})')
    kinds = [k.strip() for k in args.only.split(',')] if args.only else list(KINDS)
    for k in kinds:
        if k not in KINDS:
            raise SystemExit(f'unknown configuration {k!r} (one of {", ".join(KINDS)})')
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    configs: dict = {}
    log_dir = tempfile.mkdtemp(prefix='relio-redis-bench-')
    out_dir = os.path.dirname(os.path.abspath(args.out))
    redis = RedisServer(appendfsync='everysec')
    try:
        await redis.start()
        for kind in kinds:
            profile_path = None
            if args.profile and kind in args.profile.split(','):
                profile_path = os.path.join(out_dir, f'redis-{kind}.prof')
            t = time.perf_counter()
            print(f'[{kind}] ...', end='', flush=True)
            configs[kind] = await run_config(kind, redis, p, log_dir, profile_path)
            configs[kind]['wall_s'] = time.perf_counter() - t
            errs = [wl for wl in WORKLOADS if 'error' in configs[kind].get(wl, {})]
            print(f' {configs[kind]["wall_s"]:.1f} s'
                  + (f'  FAILED: {", ".join(errs)}' if errs else '')
                  + (f'  ERROR: {configs[kind]["error"]}' if 'error' in configs[kind] else ''),
                  flush=True)
            if not redis.running:
                raise RuntimeError('redis-server died:\n' + redis.log_tail())
    finally:
        await redis.close()
        import shutil
        shutil.rmtree(log_dir, ignore_errors=True)
    machine = machine_info()
    machine['loadavg_start'], machine['loadavg_end'] = load_start, os.getloadavg()
    data = {'date': started.isoformat(timespec='seconds'),
            'duration_s': time.perf_counter() - t_start,
            'machine': machine,
            'args': {'quick': args.quick, 'only': kinds, 'profile': args.profile},
            'params': p,
            'redis': {'appendonly': 'yes', 'appendfsync': 'everysec', 'save': ''},
            'configs': configs}
    data['summary'] = summarize(configs)
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m bench.redis_bench', description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='small sizes (< 2 minutes)')
    ap.add_argument('--out', default=DEFAULT_OUT, help=f'JSON output (default {DEFAULT_OUT})')
    ap.add_argument('--only', default='', help='comma-separated configurations to run')
    ap.add_argument('--workloads', default='',
                    help='comma-separated workloads to run (default: all)')
    ap.add_argument('--n', type=int, default=0, help='messages per workload (override)')
    ap.add_argument('--profile', default='',
                    help='comma-separated configurations to run under cProfile '
                         '(writes redis-<kind>.prof next to --out)')
    args = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    data = asyncio.run(amain(args))
    with open(args.out, 'w') as f:
        json.dump(data, f, indent=2, default=str)
    print_report(data)
    print(f'\nwrote {args.out} ({data["duration_s"]:.0f} s)')
    for kind, c in data['configs'].items():
        if c.get('profile'):
            print_profile(c['profile'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
