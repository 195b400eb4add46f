"""A ``relio.Server`` under gevent, in a process of its own:
``python -m tests.support.gevent_server MODE N SEND_SECONDS CALLS BIG SEED``.

The standard library is monkey-patched before anything else is imported (gevent's rule), so
relio's driver thread, the sessions' handler threads, their locks, conditions and
``concurrent.futures`` waits are all greenlets and gevent primitives. The server is
python-engineio's ``async_mode='gevent'`` served by ``gevent.pywsgi`` (websockets through
simple-websocket, the fallback python-engineio takes when gevent-websocket is not installed). It
prints its port on stdout and serves until its standard input closes. Never import it into
another process: importing it patches that process.

It runs the server side of ``tests/test_sync_e2e_faults.py``'s workload on its own, for the one
client that connects: once the client calls ``start``, it emits ``N`` numbered ``s2c`` events to
the room ``feed`` paced over ``SEND_SECONDS`` (the ``BIG``-byte payload, made from ``SEED``, at
``N // 2``; the report gives its SHA-256) and makes ``CALLS`` concurrent ``ccalc`` calls to the
client; it records what its handlers receive (``c2s``, ``calc``, ``big``). The client's ``report``
call returns the record once every emit's delivery has resolved: what a ``run_workload`` result
holds for the server side, the session's stats, and how many OS threads the process has
(greenlets are not threads).

MODE ``server``: the test's client connects from outside. MODE ``both``: the client half too runs
here, on greenlets (``tests/support/sync_workload.py``, a ``relio.Client``): the process reads the
URL to connect to (the test's fault proxy) from its standard input, runs the workload (it prints
``sending`` once its senders have started: the test then starts its faults, and ``sent`` once
they have finished: the test then clears its faults), prints the result as one line of JSON, and
ends.
"""
from gevent import monkey

monkey.patch_all()

import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.os  # noqa: E402
import socketio  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

import relio  # noqa: E402


def _read_line(fd: int) -> bytes:
    """A line of ``fd`` (b'' at its end), read cooperatively: no thread for it."""
    data = b''
    while not data.endswith(b'\n'):
        chunk = gevent.os.nb_read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data


def main(mode: str, n: int, send_seconds: float, calls: int, big_size: int, seed: int) -> None:
    sio = relio.Server(async_mode='gevent', ping_interval=1, ping_timeout=1)
    blob_down = random.Random(seed).randbytes(big_size)
    record: dict = dict(c2s=[], server_calls_run={}, big_up=[], connects=0, disconnects=0,
                        server_call_results=[], call_errors=0, delivery_errors=[])
    lock = threading.Lock()
    senders: list = []

    @sio.event
    def connect(sid, environ, auth):
        sio.enter_room(sid, 'feed')
        record['connects'] += 1

    @sio.event
    def disconnect(sid, reason):
        record['disconnects'] += 1

    @sio.event
    def c2s(sid, k):
        record['c2s'].append(k)

    @sio.event
    def calc(sid, k):
        with lock:
            record['server_calls_run'][k] = record['server_calls_run'].get(k, 0) + 1
        return 2 * k

    @sio.event
    def big(sid, blob):
        record['big_up'].append(hashlib.sha256(blob).hexdigest())

    def server_sender(sid: str) -> None:
        t0 = time.monotonic()
        deliveries = []
        for k in range(n):
            wait = t0 + k * send_seconds / n - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if k == n // 2:
                deliveries.append(sio.emit('big', blob_down, room='feed'))
            deliveries.append(sio.emit('s2c', k, room='feed'))
        deadline = time.monotonic() + 60
        for delivery in deliveries:
            try:
                delivery.wait(max(0.1, deadline - time.monotonic()))
            except Exception as exc:          # reported, and the test fails on it
                record['delivery_errors'].append(repr(exc))

    def one_call(sid: str, k: int) -> None:
        time.sleep(k * send_seconds / calls)
        try:
            record['server_call_results'].append((k, sio.call('ccalc', k, to=sid, timeout=60)))
        except Exception:
            record['call_errors'] += 1

    @sio.event
    def start(sid):
        senders.append(gevent.spawn(server_sender, sid))
        senders.extend(gevent.spawn(one_call, sid, k) for k in range(calls))
        return True

    @sio.event
    def report(sid):
        gevent.joinall(senders, timeout=90)
        out = dict(record, senders_done=all(g.ready() for g in senders),
                   server_calls_run=sorted(record['server_calls_run'].items()),
                   server_stats=sio.session_stats(sid),
                   expected_big_down=hashlib.sha256(blob_down).hexdigest(),
                   threading_patched=monkey.is_module_patched('threading'),
                   os_threads=len(os.listdir('/proc/self/task')))
        return out

    server = WSGIServer(('127.0.0.1', 0), socketio.WSGIApp(sio), log=None, error_log=None)
    server.start()
    print(server.server_port, flush=True)
    stdin = sys.stdin.fileno()
    gevent.os.make_nonblocking(stdin)
    if mode == 'both':
        from tests.support.sync_workload import run_client_half
        url = _read_line(stdin).decode().strip()
        client = relio.Client(reconnection_delay=0.1, reconnection_delay_max=0.3,
                              randomization_factor=0.0, handle_sigint=False)
        result = run_client_half(client, url, n=n, send_seconds=send_seconds, calls=calls,
                                 big=big_size, faults=lambda: print('sending', flush=True),
                                 after_faults=lambda: print('sent', flush=True))
        print(json.dumps(result, default=str), flush=True)
    # Serve until the test closes our standard input.
    while _read_line(stdin):
        pass
    server.stop(timeout=1)
    sio.shutdown()


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
         int(sys.argv[6]))
