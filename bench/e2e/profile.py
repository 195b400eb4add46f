"""``python -m bench.e2e.profile``: where one side's CPU goes during an end-to-end workload.

    python -m bench.e2e.profile --side server --workload emit_c2s --scale 1
    python -m bench.e2e.profile --side client --workload emit_s2c --scale 1 --native

Starts the benchmark server and client processes as ``python -m bench.e2e`` does (same
configuration, 127.0.0.1), attaches ``py-spy record`` (sampling, raw/collapsed format; idle
stacks, helper threads and imports left out) to the chosen side for its whole life, and prints
the top functions by own time (the leaf frame of each sample) and the samples grouped
(:data:`GROUPS`: JSON, engine (compiled), relio's Python layer, python-socketio/engineio,
transport (uvicorn, wsproto, h11, aiohttp), event loop, socket syscalls, garbage collector, the
benchmark's handlers). Percentages are of the side's busy samples; the workload's own result
(rate, CPU per message) is printed too, so a share converts to µs per message. Connection
set-up and the warm-up are in the profile too (a small part at ``--scale 1``). The raw stacks
are kept (``--out``) for a flame graph (``flamegraph.pl`` or speedscope).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import shutil
import sys
import tempfile

from bench.e2e import workloads as W
from bench.e2e.__main__ import Proc, option_args

#: (group, regex on a frame "function (file)"): a sample belongs to the group of the innermost
#: frame of its stack that matches one (first pattern in this order), e.g. a ``malloc`` called by
#: the JSON scanner is JSON, a ``Py_DECREF`` in relio's ``decode`` is relio's Python layer.
GROUPS: tuple[tuple[str, str], ...] = (
    ('garbage collector', r'^gc_collect|^gc_|^_PyGC|^collect_generations'),
    ('socket I/O syscalls', r'^(read|write|send|recv|sendto|recvfrom|sendmsg|recvmsg|writev|'
                            r'epoll_wait|__libc_\w+) \('),
    ('JSON', r'\(json/|\(_json\.c|orjson|\(engineio/json\.py|e2e/orjson_json\.py'),
    ('engine (compiled)', r'\(relio/engine/'),
    ('relio Python layer', r'\(relio/'),
    ('python-socketio/engineio', r'\((socketio|engineio)/'),
    ('transport', r'\((uvicorn|wsproto|h11|aiohttp|websockets)/|\(socket\.py|\(ssl\.py'),
    ('bench handlers', r'\(bench/'),
    ('event loop', r'\(asyncio/|uvloop|\(selectors\.py'),
)
_GROUP_RES = tuple((name, re.compile(pattern)) for name, pattern in GROUPS)


def group_of(frames: list[str]) -> str:
    """The group of a sample's stack (root first): that of its innermost frame with one."""
    for frame in reversed(frames):
        for name, pattern in _GROUP_RES:
            if pattern.search(frame):
                return name
    return 'other'


def parse_raw(path: str) -> tuple[collections.Counter, collections.Counter, int]:
    """From a py-spy raw file (one ``stack count`` line per distinct stack): samples per leaf
    frame (own time), per group, and the total; helper threads are left out."""
    own: collections.Counter = collections.Counter()
    groups: collections.Counter = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip('\n').rpartition(' ')
            if not stack or not count.isdigit():
                continue
            frames = stack.split(';')
            if any('_bootstrap (threading' in fr for fr in frames[:4]):
                continue          # helper threads (stdin reader, deadline timer): not the loop
            if any('(<frozen importlib' in fr for fr in frames):
                continue          # start-up: imports (a client is attached before they end)
            n = int(count)
            own[frames[-1]] += n
            groups[group_of(frames)] += n
            total += n
    return own, groups, total


def summary(own: collections.Counter, groups: collections.Counter, total: int,
            top: int = 30) -> str:
    """Groups and the ``top`` leaf frames, as text."""
    if not total:
        return 'no samples'
    lines = [f'{total} busy samples', '', 'by group:']
    for name, n in groups.most_common():
        lines.append(f'  {100 * n / total:5.1f}%  {name}')
    lines += ['', f'top {top} functions by own time:']
    for frame, n in own.most_common(top):
        lines.append(f'  {100 * n / total:5.1f}%  {frame}')
    return '\n'.join(lines)


async def profile(args) -> tuple[dict, str]:
    """Run the workload with py-spy on one side; returns (the workload's result, raw path)."""
    pyspy = shutil.which('py-spy')
    if pyspy is None:
        raise SystemExit('py-spy is not installed (pip install py-spy)')
    timeout = W.timeout_for(args.workload, args.scale)
    opts = option_args({'loop': args.loop, 'json': args.json})
    raw = os.path.join(args.out, f'{args.workload}-{args.lib}-{args.side}.raw')
    procs: list[Proc] = []
    spy = None
    with tempfile.TemporaryDirectory(prefix='relio-e2e-profile-') as log_dir:
        try:
            server = await Proc.start('bench.e2e.server',
                                      ['--lib', args.lib, '--workload', args.workload,
                                       '--scale', str(args.scale),
                                       '--deadline', str(timeout * 3 + 60), *opts],
                                      log_dir, 'server')
            procs.append(server)
            port = (await server.next_event('ready', 30))['port']

            async def attach(pid: int):
                cmd = [pyspy, 'record', '-p', str(pid), '-f', 'raw', '-o', raw,
                       '-r', str(args.rate), '--nolineno', '--nonblocking']
                if args.native:
                    cmd.append('--native')
                p = await asyncio.create_subprocess_exec(
                    *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE)
                await asyncio.sleep(1.0)          # py-spy attaches before the work starts
                return p

            if args.side == 'server':
                spy = await attach(server.proc.pid)
            client = await Proc.start('bench.e2e.client',
                                      ['--lib', args.lib, '--workload', args.workload,
                                       '--port', str(port), '--scale', str(args.scale),
                                       '--timeout', str(timeout), *opts],
                                      log_dir, 'client')
            procs.append(client)
            if args.side == 'client':
                spy = await attach(client.proc.pid)
            result = await client.next_event('result', timeout + 40)
        finally:
            for p in reversed(procs):
                await p.close()
            if spy is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(spy.wait(), 30)
                if spy.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        spy.kill()
                    await asyncio.wait_for(spy.wait(), 5)
    return result, raw


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m bench.e2e.profile',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--side', choices=('server', 'client'), default='server')
    ap.add_argument('--workload', choices=('emit_c2s', 'emit_s2c', 'call_seq', 'call_64',
                                           'big_50MiB', 'big_50MiB_down', 'big_200MiB'),
                    default='emit_c2s')
    ap.add_argument('--lib', choices=('relio', 'socketio'), default='relio')
    ap.add_argument('--scale', type=float, default=1.0)
    ap.add_argument('--rate', type=int, default=250, help='py-spy samples per second')
    ap.add_argument('--native', action='store_true', help="py-spy --native (C/Cython frames)")
    ap.add_argument('--top', type=int, default=30)
    ap.add_argument('--loop', choices=W.LOOPS, default=W.LOOPS[0])
    ap.add_argument('--json', choices=W.JSONS, default=W.JSONS[0])
    ap.add_argument('--out', default=tempfile.gettempdir(), help='directory for the raw stacks')
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    result, raw = asyncio.run(profile(args))
    keys = ('ok', 'n', 'msgs_per_s', 'calls_per_s', 'mb_per_s', 'server_cpu_us', 'client_cpu_us',
            'error')
    print('result: ' + ', '.join(f'{k}={result[k]:.4g}' if isinstance(result.get(k), float)
                                 else f'{k}={result[k]}' for k in keys if k in result))
    if not os.path.exists(raw):
        print(f'py-spy wrote no {raw}')
        return 1
    own, groups, total = parse_raw(raw)
    print(f'{args.side} of {args.lib} in {args.workload} (scale {args.scale}, py-spy '
          f'{args.rate}/s{", native" if args.native else ""}); raw stacks: {raw}')
    print(summary(own, groups, total, args.top))
    return 0 if result.get('ok') else 1


if __name__ == '__main__':
    sys.exit(main())
