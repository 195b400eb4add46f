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
