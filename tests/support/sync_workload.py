"""The client half of the thread-based fault workload against ``tests/support/gevent_server.py``,
shared by the test process (a ``relio.Client`` on threads) and that script's ``both`` mode (the
same client code on greenlets, in the monkey-patched process). It imports nothing of gevent.

Once connected, the client calls the server's ``start`` (the server half then runs on its own),
sends its numbered ``c2s`` emits, its big payload and its concurrent ``calc`` calls, handles the
server's ``s2c``, ``big`` and ``ccalc``, and finally calls ``report``: the result has the shape of
``tests/test_sync_e2e_faults.run_workload``'s, for ``_assert_exactly_once``.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import socketio

import relio
from tests.support.wsgi import wait_for


def run_client_half(client: Any, url: str, *, n: int, send_seconds: float, calls: int,
                    big: int, faults: Callable[[], None] = lambda: None,
                    after_faults: Callable[[], None] = lambda: None) -> dict:
    """Run the client half with ``client`` (a ``relio.Client``) on ``url``; ``faults()`` runs
    while the senders send (it blocks until the faults are over), ``after_faults()`` once they
    have ended."""
    r: dict = dict(s2c=[], client_calls_run={}, big_down=[], emit_errors=0, call_results=[],
                   call_errors=0)
    lock = threading.Lock()
    blob_up = os.urandom(big)

    @client.event
    def s2c(k):
        r['s2c'].append(k)

    @client.event
    def ccalc(k):
        with lock:
            r['client_calls_run'][k] = r['client_calls_run'].get(k, 0) + 1
        return 3 * k

    @client.event
    def big(blob):
        r['big_down'].append(hashlib.sha256(blob).hexdigest())

    client.connect(url, transports=['websocket'], wait_timeout=5)
    sid = client.get_sid()
    assert client.call('start', timeout=10) is True
    t0 = time.monotonic()
    deliveries = []

    def sender():
        for k in range(n):
            wait = t0 + k * send_seconds / n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if k == n // 3:
                deliveries.append(client.emit('big', blob_up))
            deliveries.append(client.emit('c2s', k))

    def one_call(k):
        time.sleep(k * send_seconds / calls)
        try:
            r['call_results'].append((k, client.call('calc', k, timeout=60)))
        except (socketio.exceptions.SocketIOError, relio.DeliveryError):
            r['call_errors'] += 1

    threads = [threading.Thread(target=fn, daemon=True) for fn in (
        sender, *(lambda k=k: one_call(k) for k in range(calls)))]
    for t in threads:
        t.start()
    faults()
    for t in threads:
        t.join(90)
        assert not t.is_alive(), 'a sender or a call did not end'
    after_faults()
    deadline = time.monotonic() + 60
    for delivery in deliveries:
        delivery.wait(max(0.1, deadline - time.monotonic()))
    assert wait_for(lambda: len(r['big_down']) == 1 and len(r['s2c']) >= n, 20)
    server = client.call('report', timeout=120)
    r['client_stats'] = client.session_stats()
    r['same_sid'] = client.get_sid() == sid
    client.disconnect()
    # the server half's record, in run_workload's shape
    r['server'] = {k: server.pop(k) for k in ('senders_done', 'delivery_errors',
                                              'threading_patched', 'os_threads')}
    server['server_calls_run'] = dict(server['server_calls_run'])
    server['server_call_results'] = [tuple(pair) for pair in server['server_call_results']]
    r['call_errors'] += server.pop('call_errors')
    r.update(server)
    r['expected_big_up'] = hashlib.sha256(blob_up).hexdigest()
    return r
