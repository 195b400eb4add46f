"""relio-client (js/) against socket.io-client, both in Node.js, on the same relio.AsyncServer on
127.0.0.1 (websocket): small emits client -> server and server -> client, and rounds of 64
concurrent ``emitWithAck``; plus the browser bundle's size (min+gzip) beside socket.io-client's.

    python -m bench.js_client [--emits 20000] [--rounds 50] [--repeat 3] [--out bench/results]

Prints a table with the ratios (best of ``--repeat`` runs each) and writes js_client.json. Run
``npm ci`` in js/ first (the test suite does it); the client is built from source here.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

import relio
from tests.support.jsclient import JS_DIR, build_js_client
from tests.support.servers import serve_socketio


def make_server() -> relio.AsyncServer:
    sio = relio.AsyncServer(async_mode='asgi')
    counts: dict[str, int] = {}

    @sio.on('b_reset')
    async def reset(sid):
        counts[sid] = 0

    @sio.on('b_num')
    async def num(sid, n):
        counts[sid] = counts.get(sid, 0) + 1

    @sio.on('b_count')
    async def count(sid):
        return counts.get(sid, 0)

    @sio.on('b_echo')
    async def echo(sid, i):
        return i

    @sio.on('b_stream')
    async def stream(sid, n):
        for i in range(n):
            await sio.emit('b_srv', i, to=sid)
            if i % 1000 == 999:
                await asyncio.sleep(0)
    return sio


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


async def main(args: argparse.Namespace) -> dict:
    node = build_js_client()
    results: list[dict] = []
    async with serve_socketio(make_server()) as port:
        proc = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / 'bench' / 'bench.mjs'), f'http://127.0.0.1:{port}',
            json.dumps({'emits': args.emits, 'rounds': args.rounds, 'repeat': args.repeat}),
            cwd=JS_DIR, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None
        while line := await asyncio.wait_for(proc.stdout.readline(), 300):
            results.append(json.loads(line))
        await proc.wait()
    best: dict[tuple[str, str], dict] = {}
    for r in results:
        key = (r['workload'], r['client'])
        if key not in best or r['seconds'] < best[key]['seconds']:
            best[key] = r
    table = {}
    for workload in ('emit_c2s', 'emit_s2c', 'acks_64'):
        plain, ours = best[(workload, 'socket.io-client')], best[(workload, 'relio-client')]
        table[workload] = {
            'n': ours['n'],
            'socket.io-client_per_s': plain['n'] / plain['seconds'],
            'relio-client_per_s': ours['n'] / ours['seconds'],
            'ratio': plain['seconds'] / ours['seconds'],
        }
    sio_bundle = JS_DIR / 'node_modules' / 'socket.io-client' / 'dist' / 'socket.io.min.js'
    sizes = {'relio-client.min.js': gz(JS_DIR / 'dist' / 'relio-client.min.js'),
             'socket.io.min.js': gz(sio_bundle)}
    return {'machine': {'python': sys.version.split()[0], 'platform': platform.platform(),
                        'cpus': os.cpu_count(),
                        'python-socketio': importlib.metadata.version('python-socketio')},
            'params': vars(args) | {'out': str(args.out)}, 'workloads': table,
            'bundle_gzip_bytes': sizes, 'runs': results}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--emits', type=int, default=20000)
    parser.add_argument('--rounds', type=int, default=50)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--out', type=Path, default=Path('bench/results'))
    args = parser.parse_args()
    data = asyncio.run(main(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'js_client.json').write_text(json.dumps(data, indent=1) + '\n')
    print(f"{'workload':<10} {'n':>7} {'socket.io-client/s':>19} {'relio-client/s':>15} "
          f"{'ratio':>6}")
    for name, row in data['workloads'].items():
        print(f"{name:<10} {row['n']:>7} {row['socket.io-client_per_s']:>19.0f} "
              f"{row['relio-client_per_s']:>15.0f} {row['ratio']:>6.2f}")
    sizes = data['bundle_gzip_bytes']
    print('bundle min+gzip: ' + ', '.join(f'{k} {v / 1024:.1f} KiB' for k, v in sizes.items()))


if __name__ == '__main__':
    cli()
