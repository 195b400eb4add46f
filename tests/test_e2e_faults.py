"""End to end under injected faults: relio delivers everything exactly once; python-socketio does not.

A real uvicorn server on 127.0.0.1, the real client, and a TCP FaultProxy between them running a seeded
schedule of cuts, blackholes (stalls long enough for the heartbeat to kill the connection, and silent
drops of whole chunks of bytes), throttling and partitions. The workload runs both ways at once:
thousands of numbered emits, concurrent calls, and a 20 MB payload each way. relio must lose,
duplicate and reorder nothing and resolve every call and emit.

The same workload and schedule run through plain python-socketio in the same test, as a baseline:
what it lost is printed and recorded (``record_property``), not asserted, so that an upstream fix
cannot turn this suite red. That the faults were real rests on the proxy's own counters, in both
runs: connections cut, bytes dropped or held by the blackholes.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import warnings

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy, Schedule
from tests.support.servers import serve_socketio
from tests.support.waiting import poll

pytestmark = [
    pytest.mark.timeout(150),
    # python-engineio's asyncio client can leave the socket of a connection attempt that a fault
    # cut mid-handshake to the garbage collector (seen once in a full local run, raised in the
    # run during which the collector ran): upstream's warning, as in the sync fault test.
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]

N = 3000                    # numbered emits per direction
SEND_SECONDS = 6.0          # both senders are paced over this window
CALLS = 64                  # concurrent calls per direction
BIG = 20 * 1000 * 1000      # bytes of the big payload, each way
SEED = 2026


def _schedule(seed: int) -> Schedule:
    return Schedule.random(
        seed, duration=SEND_SECONDS, kinds=('cut', 'blackhole', 'throttle', 'partition'),
        weights=(2, 3, 1, 1), start=0.4, mean_gap=0.5, min_gap=0.2,
        blackhole_seconds=(0.3, 2.5), blackhole_modes=('hold', 'drop'),
        throttle_bps=(500_000, 3_000_000), throttle_seconds=(0.5, 1.5),
        partition_seconds=(0.2, 0.8))


async def run_workload(lib, seed: int = SEED) -> dict:
    """Run the workload with ``lib`` (``relio`` or ``socketio``) and report what happened."""
    is_relio = lib is relio
    sio = lib.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1)
    client = lib.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.3,
                             randomization_factor=0.0, handle_sigint=False,
                             websocket_extra_options={'max_msg_size': 0})
    blob_up, blob_down = os.urandom(BIG), os.urandom(BIG)
    r = dict(c2s=[], s2c=[], server_calls_run={}, client_calls_run={}, big_up=[], big_down=[],
             connects=0, disconnects=0, emit_errors=0, call_results=[], call_errors=0,
             server_call_results=[], deliveries=[])

    @sio.event
    async def connect(sid, environ, auth):
        r['connects'] += 1
        await sio.enter_room(sid, 'feed')

    @sio.event
    async def disconnect(sid, reason):
        r['disconnects'] += 1

    @sio.on('c2s')
    async def c2s(sid, n):
        r['c2s'].append(n)

    @sio.on('calc')
    async def calc(sid, k):
        r['server_calls_run'][k] = r['server_calls_run'].get(k, 0) + 1
        await asyncio.sleep(0.05)           # still running when a fault hits
        return k * 2

    @sio.on('big')
    async def big(sid, blob):
        r['big_up'].append(hashlib.sha256(blob).hexdigest())

    @client.on('s2c')
    async def s2c(n):
        r['s2c'].append(n)

    @client.on('ccalc')
    async def ccalc(k):
        r['client_calls_run'][k] = r['client_calls_run'].get(k, 0) + 1
        await asyncio.sleep(0.05)
        return k * 3

    @client.on('big')
    async def big_down(blob):
        r['big_down'].append(hashlib.sha256(blob).hexdigest())

    # python-socketio's calls may never be answered (its pending callbacks die with the connection):
    # a shorter timeout keeps the control run short; relio's must all resolve well within theirs.
    call_timeout = 40 if is_relio else 5
    loop = asyncio.get_running_loop()
    async with serve_socketio(sio) as port, FaultProxy(port) as proxy:
        await client.connect(proxy.url, transports=['websocket'], wait_timeout=5)
        sid = client.get_sid()
        schedule = _schedule(seed)
        t0 = loop.time()

        async def pace(n):
            wait = t0 + n * SEND_SECONDS / N - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)

        async def client_sender():
            for n in range(N):
                await pace(n)
                if n == N // 3:
                    r['deliveries'].append(asyncio.ensure_future(emit_big_up()))
                try:
                    d = await client.emit('c2s', n)
                    if is_relio:
                        r['deliveries'].append(d)
                except socketio.exceptions.SocketIOError:
                    r['emit_errors'] += 1        # python-socketio while reconnecting

        async def emit_big_up():
            try:
                d = await client.emit('big', blob_up)
                if is_relio:
                    await d
            except socketio.exceptions.SocketIOError:
                r['emit_errors'] += 1

        async def server_sender():
            for n in range(N):
                await pace(n)
                if n == N // 2:
                    d = await sio.emit('big', blob_down, room='feed')
                    if is_relio:
                        r['deliveries'].append(d)
                d = await sio.emit('s2c', n, room='feed')
                if is_relio:
                    r['deliveries'].append(d)

        async def one_call(k):
            await asyncio.sleep(k * SEND_SECONDS / CALLS)
            try:
                r['call_results'].append((k, await client.call('calc', k, timeout=call_timeout)))
            except (socketio.exceptions.SocketIOError, relio.DeliveryError):
                r['call_errors'] += 1

        async def one_server_call(k):
            await asyncio.sleep(k * SEND_SECONDS / CALLS)
            target = sid if is_relio else client.get_sid()
            try:
                r['server_call_results'].append(
                    (k, await sio.call('ccalc', k, to=target, timeout=call_timeout)))
            except (socketio.exceptions.SocketIOError, relio.DeliveryError, ValueError):
                r['call_errors'] += 1

        await asyncio.wait_for(asyncio.gather(
            proxy.run_schedule(schedule), client_sender(), server_sender(),
            *(one_call(k) for k in range(CALLS)),
            *(one_server_call(k) for k in range(CALLS))), 90)
        proxy.clear()
        r['elapsed_sending'] = round(loop.time() - t0, 2)
        if is_relio:
            # every emit's delivery resolves (raises if any was not delivered)
            await asyncio.wait_for(asyncio.gather(*r['deliveries']), 40)
            r['server_stats'] = sio.session_stats(sid)
            r['client_stats'] = client.session_stats()
            r['same_sid'] = client.get_sid() == sid
        else:
            await poll(lambda: len(r['c2s']) >= N and len(r['s2c']) >= N, 3.0)
        r['proxy'] = proxy.stats.as_dict()
        r['schedule'] = schedule.summary()
        await client.disconnect()
        await poll(lambda: r['disconnects'] >= r['connects'], 5.0)
    r['expected_big_up'] = hashlib.sha256(blob_up).hexdigest()
    r['expected_big_down'] = hashlib.sha256(blob_down).hexdigest()
    del r['deliveries']
    return r


def _summary(r: dict) -> dict:
    return {k: (len(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()
            if k not in ('server_stats', 'client_stats', 'expected_big_up', 'expected_big_down')}


def _faults_bit(r: dict) -> None:
    """The proxy's counters: connections were cut and the blackholes caught real bytes."""
    p = r['proxy']
    assert r['schedule'].get('cut', 0) >= 1 and r['schedule'].get('blackhole', 0) >= 1, r
    assert p['connections_cut'] >= 1, p
    assert p['dropped_up'] + p['dropped_down'] + p['held_up'] + p['held_down'] > 0, p


async def test_relio_delivers_exactly_once_under_faults(record_property):
    plain = await run_workload(socketio)
    plain_lost = {'c2s': N - len(set(plain['c2s'])), 's2c': N - len(set(plain['s2c'])),
                  'big_up': plain['big_up'] != [plain['expected_big_up']],
                  'big_down': plain['big_down'] != [plain['expected_big_down']],
                  'call_errors': plain['call_errors'], 'emit_errors': plain['emit_errors']}
    print('\npython-socketio:', _summary(plain), 'lost:', plain_lost)
    record_property('python_socketio_lost', plain_lost)
    with warnings.catch_warnings():
        # what the baseline's dead connections left behind goes now, not during relio's run
        warnings.simplefilter('ignore', ResourceWarning)
        gc.collect()
    rel = await run_workload(relio)
    print('relio:', _summary(rel))
    print('relio server session:', rel['server_stats'])

    # The faults really happened, in both runs (python-socketio's baseline is not asserted).
    _faults_bit(plain)
    _faults_bit(rel)

    # relio: nothing lost, nothing duplicated, order kept - both ways.
    assert rel['c2s'] == list(range(N))
    assert rel['s2c'] == list(range(N))
    # the 20 MB payloads arrived once, intact
    assert rel['big_up'] == [rel['expected_big_up']]
    assert rel['big_down'] == [rel['expected_big_down']]
    # every call resolved with its own answer and each handler ran exactly once
    assert rel['call_errors'] == 0
    assert sorted(rel['call_results']) == [(k, 2 * k) for k in range(CALLS)]
    assert sorted(rel['server_call_results']) == [(k, 3 * k) for k in range(CALLS)]
    assert rel['server_calls_run'] == {k: 1 for k in range(CALLS)}
    assert rel['client_calls_run'] == {k: 1 for k in range(CALLS)}
    # one session throughout: one connect, the same sid, resumed after the faults
    assert rel['connects'] == 1 and rel['same_sid']
    assert rel['emit_errors'] == 0
    assert rel['server_stats']['resumes'] >= 1
    assert rel['server_stats']['frames_retransmitted'] > 0
