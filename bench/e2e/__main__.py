"""``python -m bench.e2e``: relio vs python-socketio, end to end, in one command.

Runs each workload (see :mod:`bench.e2e.workloads`) with both libraries in separate server and
client processes on 127.0.0.1, writes ``<out>/e2e.json``, prints a table with both libraries'
figures and the relio/python-socketio ratio, and draws ``<out>/e2e.png`` (if matplotlib is
installed; ``pip install -e ".[bench]"``).

Optional speedups (``--loop uvloop``, ``--json orjson``) apply to both libraries and every process
of the run; they are recorded in the JSON (``args.options``) and, unless ``--name`` says otherwise,
written to ``e2e-<options>.json`` / ``.png`` so that the default run's files are kept.
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
import sys
import tempfile
import time

from bench.e2e import LIB_LABELS, LIBS, LINE_PREFIX, report
from bench.e2e import workloads as W

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join('bench', 'results')
READY_TIMEOUT = 30.0
STATS_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class Proc:
    """A benchmark subprocess: JSON lines on stdout, stderr to a log file, killed on close()."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: str, what: str):
        self.proc, self.log_path, self.what = proc, log_path, what
        self.events: list[dict] = []

    @classmethod
    async def start(cls, module: str, args: list[str], log_dir: str, what: str) -> Proc:
        log_path = os.path.join(log_dir, what.replace(' ', '_') + '.log')
        env = dict(os.environ)
        env['PYTHONPATH'] = REPO + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
        with open(log_path, 'wb') as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, '-m', module, *args, cwd=REPO, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                limit=1 << 20)
        return cls(proc, log_path, what)

    async def next_event(self, kind: str, timeout: float) -> dict:
        """The next stdout line ``{"event": kind, ...}`` (other events are kept in .events)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self.proc.stdout is not None
        for _ in range(100_000):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except asyncio.TimeoutError:
                break
            if not line:
                raise RuntimeError(f'{self.what} exited (code {await self._rc()}) before '
                                   f'{kind!r}: {self.log_tail()}')
            text = line.decode(errors='replace').strip()
            if not text.startswith(LINE_PREFIX):
                continue
            ev = json.loads(text[len(LINE_PREFIX):])
            self.events.append(ev)
            if ev.get('event') == kind:
                return ev
            if ev.get('event') == 'result' and kind != 'result':
                raise RuntimeError(f'{self.what}: {ev.get("error", ev)}')
        raise TimeoutError(f'{self.what}: no {kind!r} within {timeout:.0f} s: {self.log_tail()}')

    async def _rc(self):
        with contextlib.suppress(asyncio.TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), 2)
        return None

    def send(self, line: str) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                self.proc.stdin.write((line + '\n').encode())

    def log_tail(self, n: int = 1500) -> str:
        try:
            with open(self.log_path, 'rb') as f:
                data = f.read()
        except OSError:
            return ''
        text = data[-n:].decode(errors='replace').strip()
        return f'[stderr tail] {text}' if text else '(no stderr)'

    async def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask to quit (stdin 'quit' + EOF), wait, then kill."""
        if self.proc.returncode is None:
            self.send('quit')
            if self.proc.stdin is not None:
                with contextlib.suppress(Exception):
                    self.proc.stdin.close()
            try:
                await asyncio.wait_for(self._drain_and_wait(), timeout)
            except asyncio.TimeoutError:
                pass
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)

    async def _drain_and_wait(self) -> None:
        assert self.proc.stdout is not None
        for _ in range(100_000):
            line = await self.proc.stdout.readline()
            if not line:
                break
            text = line.decode(errors='replace').strip()
            if text.startswith(LINE_PREFIX):
                self.events.append(json.loads(text[len(LINE_PREFIX):]))
        await self.proc.wait()


DEFAULT_OPTIONS = {'loop': W.LOOPS[0], 'json': W.JSONS[0]}


def option_args(options: dict | None) -> list[str]:
    """Command-line options passed to every server and client process."""
    o = {**DEFAULT_OPTIONS, **(options or {})}
    return ['--loop', o['loop'], '--json', o['json']]


async def run_one(name: str, lib: str, scale: float, log_dir: str,
                  options: dict | None = None) -> dict:
    """One library's run of one workload: a server process, client process(es), the result."""
    timeout = W.timeout_for(name, scale)
    procs: list[Proc] = []
    opts = option_args(options)
    try:
        server = await Proc.start('bench.e2e.server',
                                  ['--lib', lib, '--workload', name, '--scale', str(scale),
                                   '--deadline', str(timeout * 3 + 60), *opts],
                                  log_dir, f'{name} {lib} server')
        procs.append(server)
        ready = await server.next_event('ready', READY_TIMEOUT)
        port = ready['port']
        if name == 'memory':
            return await run_memory(lib, scale, port, server, procs, log_dir, timeout, opts)
        if name == 'fanout_100':
            return await run_fanout(lib, scale, port, server, procs, log_dir, timeout, opts)
        client = await Proc.start('bench.e2e.client',
                                  ['--lib', lib, '--workload', name, '--port', str(port),
                                   '--scale', str(scale), '--timeout', str(timeout), *opts],
                                  log_dir, f'{name} {lib} client')
        procs.append(client)
        res = await client.next_event('result', timeout + 40)
        res.pop('event', None)
        if not res.get('ok'):
            res['client_log'] = client.log_tail(600)
        return res
    except Exception as exc:
        return {'ok': False, 'error': f'{type(exc).__name__}: {exc}'}
    finally:
        for p in reversed(procs):
            await p.close()


async def _server_stats(server: Proc) -> dict:
    server.send('stats')
    return await server.next_event('stats', STATS_TIMEOUT)


async def _settled_rss(server: Proc, want_connected: int, settle: float = 1.0) -> dict:
    """Stats once ``want_connected`` sessions are up and RSS stopped moving (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    stats = await _server_stats(server)
    for _ in range(600):
        if stats['connected'] >= want_connected or loop.time() > deadline:
            break
        await asyncio.sleep(0.1)
        stats = await _server_stats(server)
    if stats['connected'] < want_connected:
        raise RuntimeError(f"{stats['connected']} sessions connected, wanted {want_connected}")
    prev = stats
    for _ in range(10):
        await asyncio.sleep(settle)
        stats = await _server_stats(server)
        if abs(stats['rss'] - prev['rss']) <= max(1, prev['rss']) * 0.002:
            break
        prev = stats
    return stats


def shares(count: int, k: int) -> list[int]:
    """``count`` split into ``k`` near-equal parts."""
    return [count // k + (1 if i < count % k else 0) for i in range(k)]


async def run_fanout(lib: str, scale: float, port: int, server: Proc, procs: list[Proc],
                     log_dir: str, timeout: float, opts: list[str]) -> dict:
    """``fanout_100``: client processes fill the room, then the server broadcasts (a warm-up,
    then ``n`` messages); deliveries per second from the server's first emit to the last client's
    last message, CPU of the server (from its first emit until every client has reported) and of
    the clients (all processes) per delivery."""
    p = W.params('fanout_100', scale)
    sessions, n = p['clients'], p['n']
    members = []
    for i, share in enumerate(shares(sessions, p['procs'])):
        c = await Proc.start('bench.e2e.client',
                             ['--lib', lib, '--workload', 'fanout_100', '--port', str(port),
                              '--scale', str(scale), '--timeout', str(timeout),
                              '--sessions', str(share), *opts],
                             log_dir, f'fanout_100 {lib} client {i}')
        procs.append(c)
        members.append((c, share))

    async def phase(what: str, count: int) -> None:
        for c, share in members:
            ev = await c.next_event('ready', timeout)
            if ev['connected'] != share or ev['phase'] != what:
                raise RuntimeError(f'{c.what}: {ev}')
        server.send(f'fanout {count}')

    await phase('warmup', p['warmup'])
    await phase('measured', n)
    results = [await c.next_event('result', timeout) for c, _ in members]
    failed = [r for r in results if not r.get('ok')]
    if failed:
        raise RuntimeError(f"room member: {failed[0].get('error')}")
    # relio's broadcast ends when its last Delivery is confirmed, maybe just after the clients
    stats = await _server_stats(server)
    for _ in range(200):
        if 'cpu_done' in stats['fan'] or 'error' in stats['fan']:
            break
        await asyncio.sleep(0.05)
        stats = await _server_stats(server)
    fan = stats['fan']
    if 'error' in fan or fan.get('n') != n or 'cpu_done' not in fan:
        raise RuntimeError(f'server broadcast: {fan}')
    deliveries = sum(r['deliveries'] for r in results)
    if deliveries != sessions * n:
        raise RuntimeError(f'{deliveries} deliveries, wanted {sessions} x {n}')
    elapsed = max(r['t_done'] for r in results) - fan['t0']
    server_cpu = stats['cpu'] - fan['cpu0']
    client_cpu = sum(r['client_cpu_s'] for r in results)
    out = dict(ok=True, n=n, clients=sessions, client_procs=len(members), deliveries=deliveries,
               dups=sum(r['dups'] for r in results), elapsed_s=elapsed,
               deliveries_per_s=deliveries / elapsed, msgs_per_s=n / elapsed,
               server_send_s=fan['t_sent'] - fan['t0'],
               server_cpu_s=server_cpu, server_cpu_us=server_cpu / deliveries * 1e6,
               client_cpu_s=client_cpu, client_cpu_us=client_cpu / deliveries * 1e6)
    if lib == 'relio':
        out['deliveries_confirmed'] = 't_confirmed' in fan
    if out['dups']:
        raise RuntimeError(f"{out['dups']} duplicate deliveries")
    return out


async def run_memory(lib: str, scale: float, port: int, server: Proc, procs: list[Proc],
                     log_dir: str, timeout: float, opts: list[str]) -> dict:
    p = W.params('memory', scale)
    sessions, warm, nprocs = p['sessions'], p['warm'], p['procs']

    async def clients(count: int, k: int, tag: str) -> list[Proc]:
        started = []
        shares = [count // k + (1 if i < count % k else 0) for i in range(k)]
        for i, share in enumerate(shares):
            c = await Proc.start('bench.e2e.client',
                                 ['--lib', lib, '--workload', 'memory', '--port', str(port),
                                  '--scale', str(scale), '--timeout', str(timeout),
                                  '--sessions', str(share), *opts],
                                 log_dir, f'memory {lib} client {tag}{i}')
            procs.append(c)
            started.append(c)
        for c in started:
            ev = await c.next_event('ready', timeout)
            if ev['connected'] != shares[started.index(c)]:
                raise RuntimeError(f"{c.what}: {ev['connected']} connected")
        return started

    # warm-up sessions first, so lazily created state (imports, caches) is not billed per session
    await clients(warm, 1, 'warm')
    before = await _settled_rss(server, warm)
    t0 = time.monotonic()
    await clients(sessions, nprocs, 'main')
    after = await _settled_rss(server, warm + sessions)
    delta = after['rss'] - before['rss']
    return dict(ok=True, sessions=sessions, warm_sessions=warm, client_procs=nprocs,
                rss_before=before['rss'], rss_after=after['rss'], rss_delta=delta,
                bytes_per_session=delta / sessions, connect_s=time.monotonic() - t0,
                relio_sessions=after.get('relio_sessions'))


def machine_info() -> dict:
    def ver(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    import relio
    cpu_model = None
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu_model = line.split(':', 1)[1].strip()
                    break
    return {
        'cpu_count': os.cpu_count(),
        'cpu_model': cpu_model,
        'platform': platform.platform(),
        'python': platform.python_version(),
        'python_implementation': platform.python_implementation(),
        'loadavg': os.getloadavg(),
        'versions': {
            'relio': relio.__version__,
            'python-socketio': ver('python-socketio'),
            'python-engineio': ver('python-engineio'),
            'uvicorn': ver('uvicorn'),
            'wsproto': ver('wsproto'),
            'aiohttp': ver('aiohttp'),
            'uvloop': ver('uvloop'),
            'orjson': ver('orjson'),
        },
        'timestamp': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
    }


def parse_only(values: list[str] | None) -> list[str]:
    if not values:
        return [w.name for w in W.WORKLOADS]
    names = [n.strip() for v in values for n in v.split(',') if n.strip()]
    unknown = [n for n in names if n not in W.BY_NAME]
    if unknown:
        raise SystemExit(f'unknown workload(s) {", ".join(unknown)}; '
                         f'choose from {", ".join(W.BY_NAME)}')
    return [w.name for w in W.WORKLOADS if w.name in names]     # keep the canonical order


#: The workloads ``--speedups`` runs again with the optional speedups (not the fault, memory and
#: default-limits cases, which are not about speed).
SPEEDUP_WORKLOADS = ('emit_c2s', 'emit_s2c', 'call_seq', 'call_64', 'fanout_100', 'big_50MiB',
                     'big_50MiB_down')


def results_name(options: dict | None) -> str:
    """File stem of a run's results: ``e2e`` for the defaults, else ``e2e-uvloop-orjson`` etc."""
    o = {**DEFAULT_OPTIONS, **(options or {})}
    extra = [o[k] for k in ('loop', 'json') if o[k] != DEFAULT_OPTIONS[k]]
    return '-'.join(['e2e', *extra])


async def run_workload(name: str, k: int, scale: float, log_dir: str, options: dict,
                       log=print, tag: str = '') -> dict:
    """Both libraries' runs of one workload (the ``k``-th: the order alternates), as an entry of
    the results' ``workloads``."""
    order = LIBS if k % 2 == 0 else tuple(reversed(LIBS))
    w = W.BY_NAME[name]
    entry = {'name': name, 'metric': w.metric, 'unit': w.unit,
             'higher_is_better': w.higher_is_better, 'description': w.description,
             'params': W.params(name, scale), 'order': list(order), 'results': {}}
    for lib in order:
        t = time.monotonic()
        res = await run_one(name, lib, scale, log_dir, options)
        if name == 'big_200MiB' and lib == 'socketio' and not res.get('ok'):
            res['expected_failure'] = True     # default limits: 1 MB / uvicorn 16 MiB
        entry['results'][lib] = res
        shown = report.value_text(name, res)
        err = '' if res.get('ok') else '  ' + str(res.get('error'))[:200]
        log(f'  {name:<14} {LIB_LABELS[lib] + tag:<31} {shown:>12} {w.unit:<12} '
            f'({time.monotonic() - t:.1f} s){err}')
    entry['ratio'] = report.ratio(entry)
    if name == 'memory':
        a = entry['results'].get('socketio', {})
        b = entry['results'].get('relio', {})
        if a.get('ok') and b.get('ok'):
            entry['relio_minus_socketio_bytes'] = (b['bytes_per_session']
                                                   - a['bytes_per_session'])
    return entry


async def run_all(names: list[str], scale: float, out_dir: str, log=print,
                  options: dict | None = None, speedups: dict | None = None) -> dict:
    """Every workload in ``names`` with both libraries and ``options``; with ``speedups`` (other
    options), each of :data:`SPEEDUP_WORKLOADS` among them is run again right after with those,
    into ``data['speedups']``."""
    t_start = time.monotonic()
    options = {**DEFAULT_OPTIONS, **(options or {})}
    data: dict = {'machine': machine_info(),
                  'args': {'scale': scale, 'workloads': names, 'options': options},
                  'payload_bytes': W.PAYLOAD_BYTES,
                  'workloads': {}}
    if speedups is not None:
        speedups = {**DEFAULT_OPTIONS, **speedups}
        data['speedups'] = {'options': speedups, 'workloads': {}}
        tag = ' +' + '+'.join(v for key, v in speedups.items() if v != DEFAULT_OPTIONS[key])
    with tempfile.TemporaryDirectory(prefix='relio-e2e-') as log_dir:
        for k, name in enumerate(names):
            data['workloads'][name] = await run_workload(name, k, scale, log_dir, options, log)
            if speedups is not None and name in SPEEDUP_WORKLOADS:
                data['speedups']['workloads'][name] = await run_workload(
                    name, k + 1, scale, log_dir, speedups, log, tag)
    data['runtime_s'] = round(time.monotonic() - t_start, 1)
    data['machine']['loadavg_end'] = os.getloadavg()
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m bench.e2e', description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help=f'smaller sizes (scale {W.QUICK_SCALE})')
    ap.add_argument('--scale', type=float, default=None,
                    help='size multiplier (1 = full run; overrides --quick)')
    ap.add_argument('--only', action='append', metavar='NAME[,NAME]',
                    help='run only these workloads: ' + ', '.join(W.BY_NAME))
    ap.add_argument('--out', default=DEFAULT_OUT, help='output directory (default bench/results)')
    ap.add_argument('--no-png', action='store_true', help='do not draw e2e.png')
    ap.add_argument('--loop', choices=W.LOOPS, default=W.LOOPS[0],
                    help='event loop of every process (optional speedup: uvloop)')
    ap.add_argument('--json', choices=W.JSONS, default=W.JSONS[0],
                    help="json= module of both libraries (optional speedup: orjson, through "
                         "bench/e2e/orjson_json.py)")
    ap.add_argument('--speedups', action='store_true',
                    help='run with the defaults, and each throughput workload again right after '
                         'with the speedups (--loop/--json, or both uvloop and orjson if neither '
                         'is given): both in one run and one file (e2e-speedups.*)')
    ap.add_argument('--name', default=None,
                    help='file stem of the results (default e2e, e2e-<options> with options, '
                         'e2e-speedups with --speedups)')
    args = ap.parse_args(argv)
    options = {'loop': args.loop, 'json': args.json}
    speedups = None
    if args.speedups:
        speedups = options if options != DEFAULT_OPTIONS else {'loop': 'uvloop', 'json': 'orjson'}
        options = dict(DEFAULT_OPTIONS)
    # a --speedups run is not the default run: its own files keep the default run's (e2e.*)
    stem = args.name or ('e2e-speedups' if speedups else results_name(options))
    scale = args.scale if args.scale is not None else (W.QUICK_SCALE if args.quick else 1.0)
    if not scale > 0:
        raise SystemExit('--scale must be positive')
    names = parse_only(args.only)
    extra = f"; again with loop {speedups['loop']}, json {speedups['json']}" if speedups else ''
    print(f'relio vs python-socketio end to end: {", ".join(names)} (scale {scale}, '
          f"loop {options['loop']}, json {options['json']}{extra})", flush=True)
    data = asyncio.run(run_all(names, scale, args.out, log=lambda s: print(s, flush=True),
                               options=options, speedups=speedups))
    path = report.write_json(data, args.out, stem)
    print()
    print(report.table(data))
    print(f'\nwrote {path} ({data["runtime_s"]} s)')
    if not args.no_png:
        png = report.draw_png(data, args.out, stem)
        if png:
            print(f'wrote {png}')
        else:
            print('matplotlib is not installed: no e2e.png (pip install -e ".[bench]")')
    entries = list(data['workloads'].items())
    entries += list(data.get('speedups', {}).get('workloads', {}).items())
    failed = [f'{n}/{lib}' for n, e in entries for lib, r in e['results'].items()
              if not r.get('ok') and not (n == 'big_200MiB' and lib == 'socketio')]
    if failed:
        print('failed runs: ' + ', '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
