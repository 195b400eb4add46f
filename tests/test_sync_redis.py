"""``relio.RedisManager(write_only=True)``: a thread-based emitter (Celery, cron) reaching the
clients of ``relio.AsyncRedisManager`` nodes through the bus stream, on a real redis-server.

Checked: emits to a room and to a sid arrive once each and in order at a relio client (thread-based
here) of an asyncio node; the emitter's room changes apply on the node; its Delivery is settled once
Redis holds each entry (``relayed == 1``); with Redis away an emit fails with ``relio.RelayError``
after ``relay_timeout`` instead of vanishing; ``write_only=False`` is refused with the reason;
Flask-SocketIO's external emitter (``SocketIO(message_queue=...)`` without an app) on relio uses it.
(The serving ``relio.RedisManager``: tests/test_sync_multinode.py.)
"""

from __future__ import annotations

import pytest
import socketio

import relio
import relio.flask
from tests.support.redis_server import RedisServer
from tests.support.servers import start_asgi
from tests.support.wsgi import LoopThread, wait_for

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]


def test_thread_based_emitter_reaches_async_redis_nodes():
    with LoopThread() as lt:
        redis_server = RedisServer()
        lt.run(redis_server.__aenter__())
        try:
            sio = relio.AsyncServer(async_mode='asgi',
                                    client_manager=relio.AsyncRedisManager(redis_server.url))

            @sio.on('join')
            async def join(sid, room):
                await sio.enter_room(sid, room)

            async def start():
                return await start_asgi(socketio.ASGIApp(sio))
            srv = lt.run(start())
            client = relio.Client(handle_sigint=False)
            got: dict = {'room': [], 'direct': [], 'vip': []}
            for name in got:
                client.on(name, lambda n, name=name: got[name].append(n))
            client.connect(f'http://127.0.0.1:{srv.port}', transports=['websocket'])
            sid = client.get_sid()
            client.call('join', 'late', timeout=10)
            emitter = relio.RedisManager(redis_server.url, write_only=True)
            deliveries = []
            for n in range(100):
                deliveries.append(emitter.emit('room', n, namespace='/', room='late'))
                deliveries.append(emitter.emit('direct', n, namespace='/', to=sid))
            for d in deliveries:
                d.wait(10)
                assert d.relayed == 1
            assert wait_for(lambda: got['room'] == list(range(100))
                            and got['direct'] == list(range(100)), 15)
            emitter.enter_room(sid, '/', 'vip')
            assert wait_for(lambda: 'vip' in sio.rooms(sid), 15)
            emitter.emit('vip', 'welcome', namespace='/', room='vip').wait(10)
            assert wait_for(lambda: got['vip'] == ['welcome'], 15)
            assert emitter.stats['published'] == 202 and emitter.stats['failed'] == 0
            # Flask-SocketIO's external emitter on relio: SocketIO(message_queue=...) without an
            # app is a relio.RedisManager(write_only=True)
            external = relio.flask.SocketIO(message_queue=redis_server.url, channel='socketio')
            assert isinstance(external.server.manager, relio.RedisManager)
            external.emit('room', 'from flask', to='late')
            assert wait_for(lambda: got['room'][-1:] == ['from flask'], 15)
            # Redis away: the emit is not lost in silence
            lt.run(redis_server.stop())
            short = relio.RedisManager(redis_server.url, write_only=True,
                                       relio_config=relio.Config(relay_timeout=0.5))
            with pytest.raises(relio.RelayError):
                short.emit('room', 'lost?', namespace='/', room='late').wait(10)
            client.disconnect()
            emitter.close()
            short.close()
            lt.run(sio.shutdown(), 10)
            lt.run(srv.stop(), 10)
        finally:
            lt.run(redis_server.__aexit__(None, None, None))
