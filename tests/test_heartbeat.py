"""A 50 MB upload must not starve the heartbeat.

python-socketio's server resets its heartbeat only when a PONG arrives, and the client queues that
PONG behind whatever it is already sending: one 50 MB message on a link slower than 50 MB per
(ping_interval + ping_timeout) gets the connection killed for "ping timeout" and the message is lost.
relio sends the same payload in chunks with at most ``max_inflight_bytes`` handed to the transport,
so a PONG waits behind about 1 MiB at most. Heartbeat shortened to 1 s + 1 s so starvation shows; the
link is throttled so the upload takes several heartbeat periods.

python-socketio runs the same upload first, as a baseline: whether its connection died is printed
and recorded, not asserted (an upstream fix must not turn this suite red). That the link really was
slow rests on the proxy's counters (every byte of the upload went through its throttle).
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy
from tests.support.servers import serve_socketio

pytestmark = pytest.mark.timeout(90)

SIZE = 50 * 1000 * 1000
LINK_BPS = 8_000_000          # the upload takes ~6 s: three heartbeat periods


def _count_pings(client) -> list[float]:
    """Record when the client's engine.io receives a PING (and so answers with a PONG)."""
    pings: list[float] = []
    original = client.eio._receive_packet

    async def receive_packet(pkt):
        if pkt.packet_type == 2:      # engine.io PING
            pings.append(asyncio.get_running_loop().time())
        return await original(pkt)
    client.eio._receive_packet = receive_packet
    return pings


async def _upload(lib, blob: bytes) -> dict:
    sio = lib.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1,
                          max_http_buffer_size=2 * SIZE)   # python-socketio needs its limit raised
    got: list[str] = []
    events: list[str] = []

    @sio.on('upload')
    async def upload(sid, data):
        got.append(hashlib.sha256(data).hexdigest())

    @sio.event
    async def disconnect(sid, reason):
        events.append(f'disconnect:{reason}')

    client = lib.AsyncClient(reconnection=False, handle_sigint=False)

    @client.on('relio_suspend')
    async def suspended(reason):
        events.append(f'suspend:{reason}')

    loop = asyncio.get_running_loop()
    async with serve_socketio(sio) as port, FaultProxy(port) as proxy:
        await client.connect(proxy.url, transports=['websocket'], wait_timeout=5)
        pings = _count_pings(client)
        proxy.throttle(LINK_BPS, 'up')
        t0 = loop.time()
        await client.emit('upload', blob)
        for _ in range(300):                    # bounded: 30 s
            if got or not client.connected:
                break
            await asyncio.sleep(0.1)
        elapsed = loop.time() - t0
        pings_during = [t for t in pings if t0 <= t <= t0 + elapsed]
        connected = client.connected
        events_during = list(events)
        if connected:
            await client.disconnect()
    return dict(got=got, events=events_during, elapsed=elapsed, pings=len(pings_during),
                connected=connected, throttled_up=proxy.stats.throttled_up)


async def test_big_upload_keeps_the_heartbeat_alive(record_property):
    blob = os.urandom(SIZE)
    digest = hashlib.sha256(blob).hexdigest()

    # the baseline: with python-socketio one 50 MB message starves the PONG and the server drops
    # the client (information, not a condition of this test)
    plain = await _upload(socketio, blob)
    baseline = {k: v for k, v in plain.items() if k != 'got'}
    baseline['delivered'] = plain['got'] == [digest]
    print('\npython-socketio:', baseline)
    record_property('python_socketio_baseline', baseline)
    assert plain['throttled_up'] > 0, plain                  # its upload met the throttle too

    rel = await _upload(relio, blob)
    print('relio:', {k: v for k, v in rel.items() if k != 'got'})
    assert rel['got'] == [digest]
    assert rel['throttled_up'] >= SIZE                       # all of it crossed the slow link
    assert rel['connected'] and rel['events'] == []          # never dropped, never suspended
    # the transfer spanned several heartbeat periods and pings kept being answered during it
    assert rel['pings'] >= 2
