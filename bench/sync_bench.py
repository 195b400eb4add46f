"""The thread-based relio against python-socketio's thread-based classes, one run, ratios.

    python -m bench.sync_bench            # N=5000 small emits each way, 64 concurrent calls x 20
    python -m bench.sync_bench --n 2000 --calls 32

For each library the server (``Server(async_mode='threading')`` behind werkzeug, threaded, with
simple-websocket) runs in a subprocess on 127.0.0.1; the client (``Client``, websocket transport)
runs here. Workloads, each timed from the first send until the receiver has everything:

* ``c2s``: the client emits N small messages, then calls ``count`` until the server has them all;
* ``s2c``: the client asks the server to emit N small messages to it;
* ``calls``: ``--calls`` threads each make 20 ``call()`` round trips at once.

Prints each library's messages or calls per second and relio / python-socketio.
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
sio = lib.Server(async_mode='threading', async_handlers={async_handlers})
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
def blast(sid, n):
    for i in range(n):
        sio.emit('s', i, to=sid)
@sio.on('echo')
def echo(sid, x):
    return x
server = make_server('127.0.0.1', 0, socketio.WSGIApp(sio), threaded=True)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
'''


def run(lib_name: str, n: int, calls: int) -> dict:
    env = {**os.environ, 'PYTHONPATH': os.getcwd()}
    code = SERVER.format(lib=lib_name, async_handlers=True)
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
        t0 = time.perf_counter()
        for i in range(n):
            client.emit('m', i)
        deadline = time.monotonic() + 120
        while client.call('count', timeout=60) < n and time.monotonic() < deadline:
            time.sleep(0.001)
        out['c2s_per_s'] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        client.emit('blast', n)
        done.wait(120)
        out['s2c_per_s'] = len(got) / (time.perf_counter() - t0)
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
        client.disconnect()
        return out
    finally:
        proc.kill()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--n', type=int, default=5000)
    parser.add_argument('--calls', type=int, default=64)
    args = parser.parse_args()
    results = {lib: run(lib, args.n, args.calls) for lib in ('socketio', 'relio')}
    for key in ('c2s_per_s', 's2c_per_s', 'calls_per_s'):
        a, b = results['socketio'][key], results['relio'][key]
        print(f'{key:12s} python-socketio {a:9.0f}   relio {b:9.0f}   ratio {b / a:5.2f}')
    print(json.dumps(results))


if __name__ == '__main__':
    main()
