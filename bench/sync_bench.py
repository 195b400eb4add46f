"""The thread-based relio against python-socketio's thread-based classes, one run, ratios.

    python -m bench.sync_bench            # N=5000 small emits each way, 64 concurrent calls x 20
    python -m bench.sync_bench --n 2000 --calls 32
    python -m bench.sync_bench --redis    # the same with Redis managers (see below)

For each library the server (``Server(async_mode='threading')`` behind werkzeug, threaded, with
simple-websocket) runs in a subprocess on 127.0.0.1; the client (``Client``, websocket transport)
runs here. Workloads, each timed from the first send until the receiver has everything:

* ``c2s``: the client emits N small messages, then calls ``count`` until the server has them all;
* ``s2c``: the client asks the server to emit N small messages to it;
* ``calls``: ``--calls`` threads each make 20 ``call()`` round trips at once.

Prints each library's messages or calls per second and relio / python-socketio.

``--redis`` starts a redis-server (tests/support/redis_server.py) and measures five servers in one
run: ``socketio`` and ``relio`` (one node), ``socketio-redis`` (``socketio.RedisManager``, pub/sub),
``relio-fast`` and ``relio-durable`` (``relio.RedisManager``), adds the workload ``s2c_room`` (the
server emits N messages to a room the client joined: with a Redis manager each crosses Redis) and
prints each server process's CPU per message or call (utime + stime from /proc/<pid>/stat).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

SERVER = r'''
import sys, logging, threading
import {lib} as lib
from werkzeug.serving import make_server
import socketio
logging.getLogger('werkzeug').setLevel(logging.CRITICAL)
sio = lib.Server(async_mode='threading', async_handlers={async_handlers}, client_manager={manager})
count = [0]
lock = threading.Lock()
@sio.on('m')
def m(sid, n):
    with lock:
        count[0] += 1
@sio.on('count')
def c(sid):
    return count[0]
@sio.on('blast')
def blast(sid, n, room=None):
    for i in range(n):
        sio.emit('s', i, to=room or sid)
@sio.on('join')
def join(sid, room):
    sio.enter_room(sid, room)
@sio.on('echo')
def echo(sid, x):
    return x
server = make_server('127.0.0.1', 0, socketio.WSGIApp(sio), threaded=True)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
'''


#: --redis: server kinds -> (library, its client_manager expression in the server's code)
KINDS = {
    'socketio': ('socketio', 'None'),
    'relio': ('relio', 'None'),
    'socketio-redis': ('socketio', "socketio.RedisManager({url!r}, channel='sb-socketio')"),
    'relio-fast': ('relio', "lib.RedisManager({url!r}, channel='sb-fast', mode='fast')"),
    'relio-durable': ('relio', "lib.RedisManager({url!r}, channel='sb-durable')"),
}


def _cpu_seconds(pid: int) -> float:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run(lib_name: str, n: int, calls: int, manager: str = 'None') -> dict:
    env = {**os.environ, 'PYTHONPATH': os.getcwd()}
    code = SERVER.format(lib=lib_name, async_handlers=True, manager=manager)
    proc = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, env=env,
                            text=True)
    try:
        port = int(proc.stdout.readline())
        lib = __import__(lib_name)
        client = lib.Client(handle_sigint=False)
        got = []
        done = threading.Event()

        def s(i):
            got.append(i)
            if len(got) == n:
                done.set()
        client.on('s', s)
        client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        out = {}
        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        for i in range(n):
            client.emit('m', i)
        deadline = time.monotonic() + 120
        while client.call('count', timeout=60) < n and time.monotonic() < deadline:
            time.sleep(0.001)
        out['c2s_per_s'] = n / (time.perf_counter() - t0)
        out['c2s_cpu_us'] = (_cpu_seconds(proc.pid) - cpu0) / n * 1e6
        for key, args in (('s2c', (n,)), ('s2c_room', (n, 'all'))):
            if key == 's2c_room':
                client.call('join', 'all', timeout=60)
            got.clear()
            done.clear()
            cpu0 = _cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            client.emit('blast', args)
            done.wait(120)
            out[f'{key}_per_s'] = len(got) / (time.perf_counter() - t0)
            out[f'{key}_cpu_us'] = (_cpu_seconds(proc.pid) - cpu0) / n * 1e6
        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.perf_counter()

        def caller():
            for k in range(20):
                client.call('echo', k, timeout=60)
        threads = [threading.Thread(target=caller) for _ in range(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        out['calls_per_s'] = calls * 20 / (time.perf_counter() - t0)
        out['calls_cpu_us'] = (_cpu_seconds(proc.pid) - cpu0) / (calls * 20) * 1e6
        client.disconnect()
        return out
    finally:
        proc.kill()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--n', type=int, default=5000)
    parser.add_argument('--calls', type=int, default=64)
    parser.add_argument('--redis', action='store_true', help='also with Redis managers')
    args = parser.parse_args()
    if args.redis:
        run_with_redis(args.n, args.calls)
        return
    results = {lib: run(lib, args.n, args.calls) for lib in ('socketio', 'relio')}
    for key in ('c2s_per_s', 's2c_per_s', 'calls_per_s'):
        a, b = results['socketio'][key], results['relio'][key]
        print(f'{key:12s} python-socketio {a:9.0f}   relio {b:9.0f}   ratio {b / a:5.2f}')
    print(json.dumps(results))


def run_with_redis(n: int, calls: int) -> None:
    from tests.support.redis_server import RedisServer
    from tests.support.wsgi import LoopThread
    with LoopThread() as lt:
        redis = RedisServer()
        lt.run(redis.__aenter__())
        try:
            results = {kind: run(lib, n, calls, manager.format(url=redis.url))
                       for kind, (lib, manager) in KINDS.items()}
        finally:
            lt.run(redis.__aexit__(None, None, None))
    print(f'load {os.getloadavg()}; N={n}, {calls} x 20 calls; per second (server CPU µs per '
          'message or call)')
    for key in ('c2s', 's2c', 's2c_room', 'calls'):
        print(f'{key:9s}' + ''.join(f'  {kind} {r[f"{key}_per_s"]:8.0f} ({r[f"{key}_cpu_us"]:6.1f})'
                                    for kind, r in results.items()))
    print(json.dumps(results))


if __name__ == '__main__':
    main()
