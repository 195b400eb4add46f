"""The relio client's hold on python-engineio's transport: a dying connection is let go promptly.

python-engineio's write loop drops the stop signal its read loop queues when other packets are queued
ahead of it, and then lives until its queue stays empty for max(ping_interval, ping_timeout) + 5 s. A
relio client keeps writing (retransmissions, queued emits), so without care the loop would never end
and the client would never reconnect.
"""

from __future__ import annotations

import asyncio

import pytest

import relio
from relio.demo.faultproxy import FaultProxy
from tests.support.servers import serve_socketio

pytestmark = pytest.mark.timeout(30)


async def test_write_loop_stops_after_read_loop_gives_up_even_with_packets_queued():
    sio = relio.AsyncServer(async_mode='asgi')
    got = []
    sio.on('n', lambda sid, n: got.append(n))
    client = relio.AsyncClient(reconnection=False, handle_sigint=False)
    async with serve_socketio(sio) as port:
        await client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        eio = client.eio
        write_loop = eio.write_loop_task
        assert write_loop is not None and not write_loop.done()
        # What engine.io's read loop does when the server stops answering: queue the stop signal.
        # Queue packets ahead of it the way a busy relio session does.
        for n in range(5):
            await client.emit('n', n)
        client.relio_sessions['/'].channel.flush()
        await eio.queue.put(None)
        # relio stops writing into the dying connection (its emits wait in the session) ...
        await client.emit('n', 99)
        client.relio_sessions['/'].channel.flush()
        # ... and engine.io's write loop ends after what was queued, not 30 s later
        await asyncio.wait_for(asyncio.shield(write_loop), 10)
        assert eio.queue.stopping
        assert client.session_stats()['outbox_messages'] >= 1     # 99 waits for a resume
        await eio.disconnect(abort=True)
    assert got[:5] == [0, 1, 2, 3, 4]


async def _resume_through(wreck) -> tuple[list, list, bool]:
    """Connect through a proxy, cut the connection, let ``wreck(client, connect, proxy)`` stand
    in for python-socketio's first reconnect attempt, then emit both ways: (received by the
    server, received by the client, whether the sid stayed the same)."""
    sio = relio.AsyncServer(async_mode='asgi')
    got_server, got_client = [], []
    sio.on('up', lambda sid, n: got_server.append(n))
    client = relio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.1,
                               randomization_factor=0.0, handle_sigint=False)
    client.on('down', lambda n: got_client.append(n))
    attempts: list = []
    links: list = []                        # the proxy, once it runs
    real_connect = client.connect

    async def connect(*args, **kwargs):
        attempts.append(kwargs.get('retry'))
        if len(attempts) == 2:               # the first reconnect attempt
            return await wreck(client, lambda: real_connect(*args, **kwargs), links[0])
        return await real_connect(*args, **kwargs)

    client.connect = connect
    async with serve_socketio(sio) as port, FaultProxy(port) as proxy:
        links.append(proxy)
        await client.connect(proxy.url, transports=['websocket'])
        sid = client.get_sid()
        await client.emit('up', 0)
        await sio.emit('down', 0, to=sid)
        assert await proxy.cut() == 1
        await client.emit('up', 1)                 # queued in the suspended session
        await sio.emit('down', 1, to=sid)
        for _ in range(400):
            if len(got_server) == 2 and len(got_client) == 2 and client.connected:
                break
            await asyncio.sleep(0.025)
        same = client.get_sid() == sid
        await client.disconnect()
    return got_server, got_client, same


async def test_an_unexpected_error_in_a_reconnect_attempt_does_not_end_the_session():
    """python-socketio's loop only catches ConnectionError/ValueError from an attempt: anything
    else would end it, and with it every relio session, for one bad attempt."""
    async def fail(client, connect, proxy):
        raise RuntimeError('an attempt failed in a way python-socketio does not expect')

    got_server, got_client, same = await _resume_through(fail)
    assert (got_server, got_client, same) == ([0, 1], [0, 1], True)


async def test_a_connection_lost_as_it_was_made_is_reconnected():
    """The attempt succeeds, then its connection dies before connect() returns: that loss comes
    while python-socketio's loop still runs, so it starts no new loop; relio goes on."""
    lost: list = []

    async def made_and_lost(client, connect, proxy):
        result = await connect()
        await proxy.cut()                   # the transport dies as the attempt returns
        for _ in range(400):
            if client.eio.state != 'connected':
                break
            await asyncio.sleep(0.025)
        lost.append(client.eio.state != 'connected')
        return result

    got_server, got_client, same = await _resume_through(made_and_lost)
    assert lost == [True]                   # the attempt's connection did die before it returned
    assert (got_server, got_client, same) == ([0, 1], [0, 1], True)
