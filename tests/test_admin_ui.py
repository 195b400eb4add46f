"""The Socket.IO Admin UI's server-side events on a relio server (``sio.instrument()``).

A plain Socket.IO client plays the Admin UI in ``/admin`` and records every event the
instrumentation sends; a relio client talks to the server through a fault proxy that cuts it and
refuses it for a while. The Admin UI must see: the session connected; the events it sent and was
sent, as python-socketio reports them; the session *suspended* (``socket_updated``, and listed as
suspended in ``all_sockets`` for an Admin UI that connects meanwhile), never disconnected while
it waits; the session back on its new connection after the resume; then its real disconnect.
"""
from __future__ import annotations

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy
from tests.support.servers import start_asgi
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)


def admin_client(seen: list) -> socketio.AsyncClient:
    admin = socketio.AsyncClient(reconnection=False, handle_sigint=False)

    @admin.on('*', namespace='/admin')
    def any_event(event, *args):
        seen.append((event, args))
    return admin


def of(seen: list, event: str) -> list:
    return [args for e, args in seen if e == event]


async def test_admin_ui_sees_a_suspended_session_as_suspended():
    sio = relio.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1)
    sio.instrument(auth=False, server_stats_interval=60)
    sids: list[str] = []

    @sio.event
    def connect(sid, environ, auth):
        sids.append(sid)

    @sio.on('hello')
    def hello(sid, n):
        pass

    srv = await start_asgi(socketio.ASGIApp(sio))
    seen: list = []
    late: list = []
    admin, late_admin = admin_client(seen), admin_client(late)
    client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                               randomization_factor=0.0, handle_sigint=False)
    news: list[int] = []
    client.on('news', news.append)
    try:
        await admin.connect(srv.url, namespaces=['/admin'], transports=['websocket'])
        await until(lambda: of(seen, 'all_sockets'), 5, 'the first all_sockets')
        async with FaultProxy(srv.port) as proxy:
            await client.connect(proxy.url, transports=['websocket'])
            sid = sids[0]
            await until(lambda: any(a[0]['id'] == sid for a in of(seen, 'socket_connected')), 5,
                        'socket_connected')
            first = [a[0] for a in of(seen, 'socket_connected') if a[0]['id'] == sid][0]
            assert first['nsp'] == '/' and first['data'] == {'relio': 'connected'}
            eio_before = first['clientId']

            await client.emit('hello', 1)
            await until(lambda: of(seen, 'event_received'), 5, 'event_received')
            assert of(seen, 'event_received')[0][:3] == ('/', sid, ['hello', 1])
            await sio.emit('news', 1, to=sid)
            await until(lambda: of(seen, 'event_sent'), 5, 'event_sent')
            assert of(seen, 'event_sent')[0][:3] == ('/', sid, ['news', 1])

            proxy.refuse(30)
            assert await proxy.cut() == 1
            await until(lambda: of(seen, 'socket_updated'), 10, 'socket_updated (suspended)')
            assert of(seen, 'socket_updated')[0][0] == {
                'id': sid, 'nsp': '/', 'transport': 'suspended', 'data': {'relio': 'suspended'}}
            assert sio.relio_parked_sessions == 1

            # An Admin UI connecting now lists the session, as suspended.
            await late_admin.connect(srv.url, namespaces=['/admin'], transports=['websocket'])
            await until(lambda: of(late, 'all_sockets'), 5, 'all_sockets while suspended')
            listed = {s['id']: s for s in of(late, 'all_sockets')[0][0]}
            assert listed[sid]['transport'] == 'suspended'
            assert listed[sid]['data'] == {'relio': 'suspended'}
            assert listed[sid]['clientId'] == eio_before

            await sio.emit('news', 2, to=sid)         # waits in the suspended session's outbox
            await until(lambda: len(of(seen, 'event_sent')) == 2, 5, 'event_sent while suspended')
            assert of(seen, 'event_sent')[1][:3] == ('/', sid, ['news', 2])

            proxy.admit()
            await until(lambda: news == [1, 2], 15, 'the resume')
            await until(lambda: len([a for a in of(seen, 'socket_connected')
                                     if a[0]['id'] == sid]) >= 2, 5, 'socket_connected again')
            again = [a[0] for a in of(seen, 'socket_connected') if a[0]['id'] == sid]
            assert again[-1]['data'] == {'relio': 'connected'}
            assert again[-1]['transport'] == 'websocket'
            assert again[-1]['clientId'] != eio_before
            assert not of(seen, 'socket_disconnected')    # never reported gone meanwhile

            await client.disconnect()
            await until(lambda: of(seen, 'socket_disconnected'), 5, 'socket_disconnected')
            assert of(seen, 'socket_disconnected')[0][:3] == ('/', sid, 'client disconnect')
    finally:
        for c in (client, admin, late_admin):
            if c.connected:
                await c.disconnect()
        await sio.shutdown()
        await srv.stop()
