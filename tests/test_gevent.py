"""The thread-based relio under gevent: ``relio.Server(async_mode='gevent')`` in a monkey-patched
process of its own (``tests/support/gevent_server.py``, run and never imported: gevent's patching
must not reach the pytest process), served by ``gevent.pywsgi``, with a ``relio.Client`` through
the seeded FaultProxy.

The workload and the checks are ``test_sync_e2e_faults``'s: numbered emits both ways, concurrent
calls both ways, a big payload each way, cuts, blackholes and a partition; nothing lost,
duplicated or run twice, one session (same sid) resumed after the faults. The server's driver and
handler threads are greenlets there: the process serves 32 concurrent calls on a few OS threads.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy
from tests.support.wsgi import LoopThread, wait_for
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


@contextlib.contextmanager
def gevent_server() -> Iterator[int]:
    """The gevent server process; yields its port. Closing its standard input stops it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (
        str(ROOT), os.environ.get('PYTHONPATH')))))
    proc = subprocess.Popen(
        [sys.executable, '-m', 'tests.support.gevent_server', str(N), str(SEND_SECONDS),
         str(CALLS), str(BIG), str(SEED)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()          # its port, once it listens (or '' if it died)
        assert line.strip().isdigit(), f'the gevent server did not start: {line!r}'
        yield int(line)
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


def run_gevent_workload() -> dict:
    """The fault workload with the server under gevent; the same result as ``run_workload``."""
    r: dict = dict(s2c=[], client_calls_run={}, big_down=[], emit_errors=0, call_results=[],
                   call_errors=0)
    lock = threading.Lock()
    blob_up = os.urandom(BIG)
    client = relio.Client(reconnection_delay=0.1, reconnection_delay_max=0.3,
                          randomization_factor=0.0, handle_sigint=False)

    @client.event
    def s2c(n):
        r['s2c'].append(n)

    @client.event
    def ccalc(k):
        with lock:
            r['client_calls_run'][k] = r['client_calls_run'].get(k, 0) + 1
        return 3 * k

    @client.event
    def big(blob):
        r['big_down'].append(hashlib.sha256(blob).hexdigest())

    with LoopThread() as lt, gevent_server() as port:
        proxy = FaultProxy(port)
        lt.run(proxy.start())
        try:
            client.connect(proxy.url, transports=['websocket'], wait_timeout=5)
            sid = client.get_sid()
            assert client.call('start', timeout=10) is True
            t0 = time.monotonic()
            deliveries = []

            def client_sender():
                for n in range(N):
                    wait = t0 + n * SEND_SECONDS / N - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if n == N // 3:
                        deliveries.append(client.emit('big', blob_up))
                    deliveries.append(client.emit('c2s', n))

            def one_call(k):
                time.sleep(k * SEND_SECONDS / CALLS)
                try:
                    r['call_results'].append((k, client.call('calc', k, timeout=60)))
                except (socketio.exceptions.SocketIOError, relio.DeliveryError):
                    r['call_errors'] += 1

            threads = [threading.Thread(target=fn, daemon=True) for fn in (
                client_sender, *(lambda k=k: one_call(k) for k in range(CALLS)))]
            for t in threads:
                t.start()
            schedule = _schedule(SEED)
            lt.run(proxy.run_schedule(schedule), 90)
            for t in threads:
                t.join(90)
                assert not t.is_alive(), 'a sender or a call did not end'
            lt.loop.call_soon_threadsafe(proxy.clear)
            deadline = time.monotonic() + 60
            for delivery in deliveries:
                delivery.wait(max(0.1, deadline - time.monotonic()))
            assert wait_for(lambda: len(r['big_down']) == 1 and len(r['s2c']) >= N, 20)
            server = client.call('report', timeout=120)
            r['proxy'] = proxy.stats.as_dict()
            r['schedule'] = schedule.summary()
            r['client_stats'] = client.session_stats()
            r['same_sid'] = client.get_sid() == sid
            client.disconnect()
        finally:
            lt.run(proxy.close(), 10)
    r['server'] = {k: server.pop(k) for k in ('senders_done', 'delivery_errors',
                                              'threading_patched', 'os_threads')}
    server['server_calls_run'] = dict(server['server_calls_run'])
    server['server_call_results'] = [tuple(pair) for pair in server['server_call_results']]
    r['call_errors'] += server.pop('call_errors')
    r.update(server)
    r['expected_big_up'] = hashlib.sha256(blob_up).hexdigest()
    return r


def test_relio_server_under_gevent_delivers_exactly_once_under_faults():
    rel = run_gevent_workload()
    print('\nrelio (gevent server, thread-based client):', _summary(rel), rel['server'])
    _assert_exactly_once(rel)
    server = rel['server']
    assert server['senders_done'] and server['delivery_errors'] == []
    # monkey-patched: relio's driver, the handler threads and the 32 waiting calls are greenlets
    assert server['threading_patched']
    assert server['os_threads'] < CALLS // 4, server
