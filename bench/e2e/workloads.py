"""What each end-to-end workload does, how big it is, and how both processes are configured.

Sizes are given for the full run (``scale=1``, each case a few seconds on a 2-core machine) and
scaled down by ``--quick`` / ``--scale``. Server and client settings live here so that the two
libraries get exactly the same configuration; the only per-library difference is the module
(``socketio`` or ``relio``) and, for the 200 MiB upload, relio's own ``max_message_size``.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import time
from types import ModuleType
from typing import Any

from bench.e2e import LINE_PREFIX

KiB = 1024
MiB = 1024 * KiB


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    metric: str              # key of the headline figure in each library's result
    unit: str
    higher_is_better: bool
    description: str
    timeout: float           # seconds for one library's run at scale 1 (client process deadline)


WORKLOADS: tuple[Workload, ...] = (
    Workload('emit_c2s', 'msgs_per_s', 'msg/s', True,
             'client emits N ~100 B events (each awaited), until the server handled all', 120),
    Workload('emit_s2c', 'msgs_per_s', 'msg/s', True,
             'server emits N ~100 B events to the client, until the client handled all', 120),
    Workload('call_seq', 'calls_per_s', 'call/s', True,
             'sequential call() round trips (p50/p99 latency in µs)', 120),
    Workload('call_64', 'calls_per_s', 'call/s', True,
             'call() with 64 outstanding at a time', 120),
    Workload('fanout_100', 'deliveries_per_s', 'deliv/s', True,
             'server emits N ~100 B events to a room of 100 clients (4 client processes)', 180),
    Workload('big_50MiB', 'mb_per_s', 'MB/s', True,
             'one 50 MiB bytes upload until the server handler has it (median of reps)', 180),
    Workload('big_50MiB_down', 'mb_per_s', 'MB/s', True,
             'one 50 MiB bytes download (server emit) until the client handler has it', 180),
    Workload('big_200MiB', 'mb_per_s', 'MB/s', True,
             '200 MiB upload, python-socketio with its default limits', 180),
    Workload('faults', 'goodput_ratio', 'faults/clean', True,
             'paced emits through a TCP proxy cut every ~2-3 s vs no cuts: goodput ratio', 180),
    Workload('memory', 'bytes_per_session', 'B/session', False,
             'server RSS per idle session (1,000 sessions)', 240),
)
BY_NAME = {w.name: w for w in WORKLOADS}

# Full-run sizes (scale=1).
FULL: dict[str, dict[str, Any]] = {
    'emit_c2s': dict(n=40_000, warmup=2_000),
    'emit_s2c': dict(n=40_000, warmup=2_000),
    'call_seq': dict(n=5_000, warmup=300),
    'call_64': dict(n=15_000, warmup=1_000, concurrency=64),
    'fanout_100': dict(n=500, warmup=50, clients=100, procs=4),
    'big_50MiB': dict(size=50 * MiB, reps=3, warmup_size=1 * MiB),
    'big_50MiB_down': dict(size=50 * MiB, reps=3, warmup_size=1 * MiB),
    'big_200MiB': dict(size=200 * MiB),
    'faults': dict(duration=10.0, rate=2_000, cut_gap=(2.0, 3.0), seed=2026),
    'memory': dict(sessions=1_000, warm=20, procs=4, concurrency=20),
}
QUICK_SCALE = 0.25


def params(name: str, scale: float) -> dict[str, Any]:
    """Sizes of workload ``name`` at ``scale`` (1 = full run)."""
    p = dict(FULL[name])
    if 'n' in p:
        p['n'] = max(64, int(p['n'] * scale))
        p['warmup'] = max(10, int(p['warmup'] * min(1.0, scale * 2)))
    if name in ('big_50MiB', 'big_50MiB_down'):
        p['size'] = max(256 * KiB, int(p['size'] * scale))
        p['warmup_size'] = min(p['warmup_size'], p['size'])
        p['reps'] = 3 if scale >= 0.5 else 1
    if name == 'big_200MiB':
        # stays above python-socketio's default max_http_buffer_size (1 MB) at any scale
        p['size'] = max(2 * MiB, int(p['size'] * scale))
    if name == 'faults':
        p['duration'] = max(2.0, p['duration'] * scale)
        shrink = min(1.0, p['duration'] / 10.0)
        p['cut_gap'] = tuple(max(0.5, g * shrink) for g in p['cut_gap'])
    if name == 'fanout_100':
        p['n'] = max(20, int(FULL[name]['n'] * scale))
    if name == 'memory':
        p['sessions'] = max(20, int(p['sessions'] * scale))
        p['procs'] = 4 if p['sessions'] >= 200 else 1
    return p


def timeout_for(name: str, scale: float) -> float:
    """Deadline of one library's client run (generous: a slow machine must not cause a kill)."""
    return max(60.0, BY_NAME[name].timeout * max(scale, 0.25))


# --------------------------------------------------------------------------------- payloads
_BODY = 'x' * 30


def payload(i: int) -> dict:
    """A ~100-byte JSON event payload (compact separators, as python-socketio encodes)."""
    return {'i': i, 'user': 'bench-user-0001', 'kind': 'tick', 'tags': ['a', 'b', 'c'],
            'body': _BODY}


PAYLOAD_BYTES = len(json.dumps(payload(10_000), separators=(',', ':')))


# --------------------------------------------------------------------------------- options
#: Optional speedups (``--loop``, ``--json``): the first of each is the default.
LOOPS = ('asyncio', 'uvloop')
JSONS = ('stdlib', 'orjson')


def json_module(name: str) -> Any:
    """The module given as python-socketio's ``json=`` for ``--json name`` (None: its default)."""
    if name == 'stdlib':
        return None
    if name == 'orjson':
        from bench.e2e import orjson_json
        return orjson_json
    raise ValueError(f'unknown json option {name!r}')


def run_loop(main: Any, loop: str = 'asyncio') -> Any:
    """``asyncio.run(main)``, on uvloop's event loop if ``loop == 'uvloop'``."""
    import asyncio
    if loop == 'uvloop':
        import uvloop
        return uvloop.run(main)
    if loop != 'asyncio':
        raise ValueError(f'unknown loop option {loop!r}')
    return asyncio.run(main)


def cpu_seconds() -> float:
    """This process's CPU time (user + system, all threads), for CPU per message."""
    return time.process_time()


# --------------------------------------------------------------------------------- configuration
def lib_module(lib: str) -> ModuleType:
    if lib not in ('socketio', 'relio'):
        raise ValueError(f'unknown library {lib!r}')
    return importlib.import_module(lib)


def relio_config(workload: str, p: dict) -> Any:
    """relio's Config for a workload: the defaults, except that the 200 MiB upload needs
    ``max_message_size`` above its 64 MiB default (relio's own cap; no transport limit changes)."""
    if workload != 'big_200MiB':
        return None
    from relio import Config
    return Config(max_message_size=max(Config().max_message_size, p['size'] + MiB))


def server_kwargs(lib: str, workload: str, p: dict, json_name: str = 'stdlib') -> dict:
    kw: dict[str, Any] = dict(async_mode='asgi', logger=False, engineio_logger=False)
    if json_name != 'stdlib':
        kw['json'] = json_module(json_name)
    if workload in ('big_50MiB', 'big_50MiB_down'):
        # python-socketio refuses websocket messages over max_http_buffer_size (default 1 MB)
        kw['max_http_buffer_size'] = 2 * p['size'] + MiB
    if lib == 'relio':
        cfg = relio_config(workload, p)
        if cfg is not None:
            kw['relio_config'] = cfg
    return kw


def uvicorn_kwargs(workload: str, p: dict) -> dict:
    kw: dict[str, Any] = dict(
        host='127.0.0.1', port=0, ws='wsproto', ws_per_message_deflate=False,
        ws_ping_interval=None, ws_ping_timeout=None, lifespan='off', log_level='warning',
        access_log=False, timeout_graceful_shutdown=2, backlog=2048)
    if workload in ('big_50MiB', 'big_50MiB_down'):
        # uvicorn's own websocket message limit is 16 MiB
        kw['ws_max_size'] = 2 * p['size'] + MiB
    return kw


def client_kwargs(lib: str, workload: str, p: dict, json_name: str = 'stdlib') -> dict:
    kw: dict[str, Any] = dict(logger=False, engineio_logger=False, reconnection=True,
                              reconnection_delay=0.1, reconnection_delay_max=0.5,
                              randomization_factor=0.0)
    if json_name != 'stdlib':
        kw['json'] = json_module(json_name)
    if workload.startswith('big_'):
        # aiohttp's client refuses incoming websocket messages over 4 MiB by default
        kw['websocket_extra_options'] = {'max_msg_size': 0}
    if workload == 'memory':
        kw['reconnection'] = False
    if lib == 'relio':
        cfg = relio_config(workload, p)
        if cfg is not None:
            kw['relio_config'] = cfg
    return kw


# --------------------------------------------------------------------------------- process helpers
def emit_line(obj: dict) -> None:
    """Print one machine-readable line on stdout."""
    sys.stdout.write(LINE_PREFIX + json.dumps(obj) + '\n')
    sys.stdout.flush()


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (no psutil)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def start_deadline(seconds: float, what: str) -> None:
    """Hard stop for a benchmark subprocess: report and exit if still running after ``seconds``."""
    import threading

    def expire() -> None:
        try:
            emit_line({'event': 'result', 'ok': False,
                       'error': f'{what}: deadline of {seconds:.0f} s exceeded'})
        finally:
            os._exit(3)

    t = threading.Timer(seconds, expire)
    t.daemon = True
    t.start()
