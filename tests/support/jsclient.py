"""The TypeScript client in js/ for the tests: installed (``npm ci`` when ``node_modules`` is
missing or stale) and built from source (``node build.mjs``) once per test session, and the
server side of the end-to-end workload (js/test/e2e/workload.js) that tests/test_js_client.py and
tests/test_js_browser.py run against ``relio.AsyncServer`` through the fault proxy.

Node.js and npm missing is a failure, not a skip: these tests are the proof that relio-client works.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import relio

JS_DIR = Path(__file__).resolve().parents[2] / 'js'
NPM_TIMEOUT = 300          # seconds for `npm ci` on a fresh machine
BUILD_TIMEOUT = 120        # seconds for tsc + esbuild


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f'{what} in {JS_DIR} did not finish in {timeout} s')
    if proc.returncode != 0:
        pytest.fail(f'{what} in {JS_DIR} failed ({proc.returncode}):\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}')


def _installed_matches_lock() -> bool:
    lock = JS_DIR / 'package-lock.json'
    installed = JS_DIR / 'node_modules' / '.package-lock.json'
    if not installed.is_file():
        return False
    wanted = json.loads(lock.read_text())['packages']
    have = json.loads(installed.read_text())['packages']
    return all(have.get(name, {}).get('version') == meta.get('version')
               for name, meta in wanted.items() if name)


@functools.cache
def build_js_client() -> str:
    """node's path, after ``npm ci`` (if needed) and a build of js/ from source (once per test
    session)."""
    node, npm = shutil.which('node'), shutil.which('npm')
    if node is None or npm is None:
        pytest.fail('node and npm are needed: these tests run relio-client (js/) with Node.js '
                    '(install Node.js >= 18 and npm, e.g. `apt-get install nodejs npm`)')
    if not _installed_matches_lock():
        _run([npm, 'ci', '--no-audit', '--no-fund'], '`npm ci`', NPM_TIMEOUT)
    _run([node, 'build.mjs'], '`node build.mjs` (tsc + esbuild)', BUILD_TIMEOUT)
    return node


@pytest.fixture(scope='session')
def browser_node() -> str:
    chromium = os.environ.get('RELIO_CHROMIUM') or shutil.which('chromium') or '/usr/bin/chromium'
    if not os.access(chromium, os.X_OK):
        pytest.fail('Chromium is needed for the browser tests and was not found: install it with '
                    '`apt-get install -y chromium` (Debian) or set RELIO_CHROMIUM to its path')
    os.environ['RELIO_CHROMIUM'] = chromium     # for the browser.mjs subprocesses
    return build_js_client()


def pattern(size: int) -> bytes:
    """The bytes workload.js's ``pattern(size)`` makes: byte i = (i * 31 + 7) & 0xff."""
    period = bytes((i * 31 + 7) & 0xFF for i in range(256))
    return (period * (size // 256 + 1))[:size]


@dataclass
class ServerSide:
    """What the server's handlers saw; the assertions are made on it and on the client's report."""
    early: list[int] = field(default_factory=list)
    nums: list[int] = field(default_factory=list)
    ask_runs: dict[int, int] = field(default_factory=dict)
    big_up: list[str] = field(default_factory=list)
    big_down_acks: list[Any] = field(default_factory=list)
    chain_runs: list[Any] = field(default_factory=list)
    blob_sizes: list[int] = field(default_factory=list)
    streams_done: int = 0
    tasks: set = field(default_factory=set)


def workload_server(server_class: Any = relio.AsyncServer,
                    **kwargs: Any) -> tuple[relio.AsyncServer, ServerSide]:
    """A relio.AsyncServer (or ``server_class``) with the handlers workload.js talks to."""
    sio = server_class(async_mode='asgi', **kwargs)
    seen = ServerSide()

    @sio.on('start')
    async def start(sid, count, big_size, pause=0.005):
        async def stream():
            for i in range(count):
                await sio.emit('srv', i, to=sid)
                if i % 20 == 19:
                    await asyncio.sleep(pause)
            if big_size:
                await sio.emit('big', pattern(big_size), to=sid,
                               callback=lambda size: seen.big_down_acks.append(size))
            seen.streams_done += 1
        task = asyncio.create_task(stream())
        seen.tasks.add(task)
        task.add_done_callback(seen.tasks.discard)

    @sio.on('early')
    async def early(sid, n):
        seen.early.append(n)

    @sio.on('num')
    async def num(sid, n):
        seen.nums.append(n)

    @sio.on('ask')
    async def ask(sid, i):
        seen.ask_runs[i] = seen.ask_runs.get(i, 0) + 1
        return i * 2

    @sio.on('big')
    async def big(sid, blob):
        digest = hashlib.sha256(blob).hexdigest()
        seen.big_up.append(digest)
        return digest

    @sio.on('blobsize')
    async def blobsize(sid, blob):
        seen.blob_sizes.append(len(blob))
        return len(blob)

    @sio.on('chain')
    async def chain(sid, price):
        async def on_offer(paid):
            seen.chain_runs.append(paid)
            return f'paid {paid}'
        return relio.Reply({'price': price}, callback=on_offer)

    return sio, seen


def check_relio_report(report: dict, seen: ServerSide, *, count: int, asks: int,
                       big_size: int) -> None:
    """The workload's guarantees: nothing lost, duplicated or reordered, each handler once, one
    session (one id, one connect), both ways."""
    assert report['relio'] is True
    assert report['ids'] == [report['firstId']], 'socket.id changed within the session'
    assert report['connect'] == 1
    assert report['disconnect'] == 0
    assert report['resume'] == report['suspend']
    assert report['received'] == list(range(count)), \
        'server -> client emits lost/duplicated/reordered'
    assert report['answers'] == [2 * i for i in range(asks)]
    assert seen.nums == list(range(count + 1)), 'client -> server emits lost/duplicated/reordered'
    assert seen.early == list(range(5)), 'emits made before the connection was up'

    assert seen.ask_runs == {i: 1 for i in range(asks)}, 'an ack handler ran twice or never'
    assert report['chainFinal'] == 'paid 11' and seen.chain_runs == [11]
    assert report['delivered'] is True
    if 'blobSize' in report and report['blobSize'] is not None:
        assert report['blobSize'] == 1004 and seen.blob_sizes == [1004]
    if big_size:
        expected = hashlib.sha256(pattern(big_size)).hexdigest()
        assert report['bigUpSha'] == expected
        assert seen.big_up == [expected] and report['bigUp'] == expected
        assert report['bigDown'] == {'size': big_size, 'sha': expected}
        assert seen.big_down_acks == [big_size]


async def run_script(node: str, script: Path, url: str, params: dict, times: int, every: float,
                     proxy: Any, faults: Any = None) -> tuple[dict | None, list[dict], str, int]:
    """Run ``node <script> <url> <params>`` (it prints JSON lines); once it reports ``connect``,
    cut the link through ``proxy`` ``times`` times, ``every`` seconds apart (or run
    ``faults(proxy, done)`` instead). Returns the report, every event, stderr, and how many
    faults hit a live connection."""
    proc = await asyncio.create_subprocess_exec(
        node, str(script), url, json.dumps(params), cwd=JS_DIR,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, 'NODE_NO_WARNINGS': '1'})
    events: list[dict] = []
    report = None
    done = asyncio.Event()
    cutter: asyncio.Task | None = None
    try:
        assert proc.stdout is not None
        while line := await asyncio.wait_for(proc.stdout.readline(),
                                             params['deadlineMs'] / 1000 + 40):
            event = json.loads(line)
            events.append(event)
            if event['ev'] == 'connect' and cutter is None:
                cutter = asyncio.create_task(
                    faults(proxy, done) if faults is not None
                    else cut_repeatedly(proxy, times, every, done))
            if event['ev'] == 'report':
                report = event
                done.set()
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        done.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    hits = await cutter if cutter is not None else 0
    stderr = (await proc.stderr.read()).decode('utf-8', 'replace') if proc.stderr else ''
    return report, events, stderr, hits


async def cut_repeatedly(proxy: Any, times: int, every: float, done: asyncio.Event) -> int:
    """Cut every connection through ``proxy`` ``times`` times, ``every`` seconds apart (stops early
    when ``done`` is set); returns how many cuts hit a live connection."""
    hits = 0
    for i in range(times):
        try:
            await asyncio.wait_for(done.wait(), every)
            return hits
        except asyncio.TimeoutError:
            pass
        if await proxy.cut('reset' if i % 2 else 'abort'):
            hits += 1
    return hits


async def mixed_faults(proxy: Any, done: asyncio.Event) -> int:
    """A blackhole that drops bytes both ways, a partition (cut, reconnects refused), a throttle
    and a stall longer than the heartbeat (the server under test runs with a 1 s ping interval and
    timeout); returns how many hit a live connection."""
    hits = 0

    async def pause(seconds: float) -> bool:
        try:
            await asyncio.wait_for(done.wait(), seconds)
            return True
        except asyncio.TimeoutError:
            return False

    if await pause(0.3):
        return hits
    hits += proxy.live_connections > 0
    proxy.blackhole('both', 0.6, mode='drop')
    if await pause(1.2):
        return hits
    hits += await proxy.partition(0.5) > 0
    if await pause(1.0):
        return hits
    proxy.throttle(2_000_000, seconds=1.0)
    if await pause(0.5):
        return hits
    hits += await proxy.stall(2.5) > 0
    return hits
