"""The thread-based relio under gevent: ``relio.Server(async_mode='gevent')`` in a monkey-patched
process of its own (``tests/support/gevent_server.py``, run and never imported: gevent's patching
must not reach the pytest process), served by ``gevent.pywsgi``, with a ``relio.Client`` through
the seeded FaultProxy.

The workload and the checks are ``test_sync_e2e_faults``'s: numbered emits both ways, concurrent
calls both ways, a big payload each way, cuts, blackholes and a partition; nothing lost,
duplicated or run twice, one session (same sid) resumed after the faults. The server's driver and
handler threads are greenlets there: the process serves 32 concurrent calls on a few OS threads.
In the second test the ``relio.Client`` runs in that process too, on greenlets (through the fault
proxy of the test process).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import relio
from relio.demo.faultproxy import FaultProxy
from tests.support.sync_workload import run_client_half
from tests.support.wsgi import LoopThread
from tests.test_e2e_faults import _summary
from tests.test_sync_e2e_faults import (
    BIG,
    CALLS,
    SEED,
    SEND_SECONDS,
    N,
    _assert_exactly_once,
    _schedule,
)

pytestmark = [
    pytest.mark.timeout(240),
    # python-engineio's thread-based client leaves the websocket of a connection attempt that
    # fails after the TCP connect to the garbage collector (see test_sync_e2e_faults)
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]

ROOT = Path(__file__).resolve().parent.parent


class GeventProcess:
    """The running gevent process: its port, the process, and what it wrote on stderr."""

    def __init__(self, port: int, proc: subprocess.Popen, stderr: Any):
        self.port, self.proc, self._stderr = port, proc, stderr

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-3000:]

    def read_line(self, timeout: float) -> str:
        """The next line it prints on stdout (bounded wait)."""
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()),  # type: ignore
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        assert lines and lines[0].strip(), \
            f'nothing from the gevent process (exit {self.proc.poll()}):\n{self.stderr_tail()}'
        return lines[0]


@contextlib.contextmanager
def gevent_server(mode: str) -> Iterator[GeventProcess]:
    """The gevent process (``tests/support/gevent_server.py`` in ``mode``), listening. Closing
    its standard input stops it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (
        str(ROOT), os.environ.get('PYTHONPATH')))))
    with tempfile.TemporaryFile('w+') as stderr:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.support.gevent_server', mode, str(N),
             str(SEND_SECONDS), str(CALLS), str(BIG), str(SEED)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            text=True)
        try:
            process = GeventProcess(0, proc, stderr)
            line = process.read_line(60)           # its port, once it listens
            assert line.strip().isdigit(), f'the gevent server did not start: {line!r}'
            process.port = int(line)
            yield process
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def _read_result(process: GeventProcess, timeout: float) -> dict:
    """The JSON line the gevent process prints at the end of its workload."""
    r = json.loads(process.read_line(timeout))
    for key in ('call_results', 'server_call_results'):
        r[key] = [tuple(pair) for pair in r[key]]
    r['client_calls_run'] = {int(k): v for k, v in r['client_calls_run'].items()}
    r['server_calls_run'] = {int(k): v for k, v in r['server_calls_run'].items()}
    return r


def _check(rel: dict, label: str) -> None:
    print(f'\nrelio ({label}):', _summary(rel), rel['server'])
    _assert_exactly_once(rel)
    server = rel['server']
    assert server['senders_done'] and server['delivery_errors'] == []
    # monkey-patched: relio's driver, the handler threads and the 32 waiting calls are greenlets
    assert server['threading_patched']
    assert server['os_threads'] < CALLS // 4, server


def test_relio_server_under_gevent_delivers_exactly_once_under_faults():
    schedule = _schedule(SEED)
    with LoopThread() as lt, gevent_server('server') as process:
        proxy = FaultProxy(process.port)
        lt.run(proxy.start())
        try:
            client = relio.Client(reconnection_delay=0.1, reconnection_delay_max=0.3,
                                  randomization_factor=0.0, handle_sigint=False)
            rel = run_client_half(
                client, proxy.url, n=N, send_seconds=SEND_SECONDS, calls=CALLS, big=BIG,
                faults=lambda: lt.run(proxy.run_schedule(schedule), 90),
                after_faults=lambda: lt.loop.call_soon_threadsafe(proxy.clear))
            rel['proxy'] = proxy.stats.as_dict()
            rel['schedule'] = schedule.summary()
        finally:
            lt.run(proxy.close(), 10)
    _check(rel, 'gevent server, thread-based client')


def test_relio_client_and_server_under_gevent_deliver_exactly_once_under_faults():
    schedule = _schedule(SEED)
    with LoopThread() as lt, gevent_server('both') as process:
        proxy = FaultProxy(process.port)
        lt.run(proxy.start())
        try:
            assert process.proc.stdin is not None
            process.proc.stdin.write(proxy.url + '\n')
            process.proc.stdin.flush()
            assert process.read_line(30).strip() == 'sending'
            lt.run(proxy.run_schedule(schedule), 90)
            assert process.read_line(120).strip() == 'sent'
            lt.loop.call_soon_threadsafe(proxy.clear)
            rel = _read_result(process, 180)
            rel['proxy'] = proxy.stats.as_dict()
            rel['schedule'] = schedule.summary()
        finally:
            lt.run(proxy.close(), 10)
    _check(rel, 'gevent server and client')
