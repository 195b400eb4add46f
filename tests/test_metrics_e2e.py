"""relio's Prometheus metrics, scraped from a real server while the fault proxy cuts the client.

A uvicorn server on 127.0.0.1 serves Socket.IO and ``/metrics`` (``relio.observe.prometheus``);
a relio client talks to it through a :class:`~relio.demo.faultproxy.FaultProxy`. The traffic is
known, so the counters are checked exactly: N messages received, a session suspended (gauge 1)
while the proxy refuses the client, M messages waiting in its outbox, one resume that succeeded,
then the gauge back to 0 and every waiting message delivered.
"""

from __future__ import annotations

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy
from relio.observe import RelioMetrics
from relio.observe.prometheus import metrics_app
from tests.support.scrape import scrape
from tests.support.servers import start_asgi
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)

N = 50      # messages client -> server
M = 20      # messages server -> client while the session is suspended


async def test_metrics_follow_a_cut_and_a_resume():
    sio = relio.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1)
    metrics = RelioMetrics(sio, node='test-node')
    got_up: list[int] = []
    got_down: list[int] = []
    sids: list[str] = []

    @sio.event
    def connect(sid, environ, auth):
        sids.append(sid)

    @sio.on('up')
    async def up(sid, n):
        got_up.append(n)

    app = socketio.ASGIApp(sio, other_asgi_app=metrics_app(metrics))
    srv = await start_asgi(app)
    url = f'{srv.url}/metrics'
    client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                               randomization_factor=0.0, handle_sigint=False)

    @client.on('down')
    def down(n):
        got_down.append(n)

    try:
        async with FaultProxy(srv.port) as proxy:
            await client.connect(proxy.url, transports=['websocket'])
            for n in range(N):
                await client.emit('up', n)
            await until(lambda: len(got_up) == N, 10, 'the messages up')
            s = await scrape(url)
            ns = {'namespace': '/', 'node': 'test-node'}
            assert s.value('relio_messages_received_total', **ns) == N
            assert s.value('relio_sessions', state='connected', **ns) == 1
            assert s.value('relio_sessions', state='suspended', **ns) == 0
            assert s.value('relio_handler_duration_seconds_count', **ns) == N
            assert s.value('relio_received_bytes_total', **ns) > 0
            assert s.value('relio_resumes_total', **ns) == 0

            # Cut the client and refuse its reconnects: the session waits, suspended.
            proxy.refuse(30)
            assert await proxy.cut() == 1
            await until(lambda: sio.relio_parked_sessions == 1, 10, 'the session suspended')
            for n in range(M):
                await sio.emit('down', n, to=sids[0])
            s = await scrape(url)
            assert s.value('relio_sessions', state='suspended', **ns) == 1
            assert s.value('relio_sessions', state='connected', **ns) == 0
            assert s.value('relio_outbox_messages', **ns) == M
            assert s.value('relio_messages_sent_total', **ns) == M
            assert s.value('relio_outbox_bytes', **ns) > 0

            proxy.admit()               # let the client back in: it resumes its session
            await until(lambda: len(got_down) == M, 15, 'the messages down after the resume')
            await until(lambda: sio.relio_parked_sessions == 0, 5, 'the session resumed')
            s = await scrape(url)
            assert got_down == list(range(M))
            assert sids and len(sids) == 1                      # one session throughout
            assert s.value('relio_resumes_total', outcome='resumed', **ns) == 1
            assert s.value('relio_resumes_total', outcome='refused', **ns) == 0
            assert s.value('relio_sessions', state='suspended', **ns) == 0
            assert s.value('relio_sessions', state='connected', **ns) == 1
            assert s.value('relio_messages_received_total', **ns) == N
            await until(lambda: sio.session_stats(sids[0])['outbox_messages'] == 0, 5,
                        'the outbox emptied')
            s = await scrape(url)
            assert s.value('relio_outbox_messages', **ns) == 0
            assert s.value('relio_messages_delivered_total', **ns) == M
            # the session's smoothed RTT, measured on those acknowledgements
            assert s.value('relio_rtt_seconds_gcount', **ns) == 1
            assert s.value('relio_rtt_seconds_bucket', le='+Inf', **ns) == 1

            # The client leaves: the session's counters stay in the totals.
            await client.disconnect()
            await until(lambda: sio.relio_sessions == 0, 5, 'the session ended')
            s = await scrape(url)
            assert s.value('relio_sessions_ended_total', reason='client disconnect', **ns) == 1
            assert s.value('relio_messages_received_total', **ns) == N
            assert s.value('relio_messages_sent_total', **ns) == M
            assert s.value('relio_messages_delivered_total', **ns) == M
            assert s.value('relio_sessions', **ns) == 0
    finally:
        if client.connected:
            await client.disconnect()
        await sio.shutdown()
        await srv.stop()


async def test_metrics_count_expiry_failures_refusals_and_full_outboxes():
    """A session suspended past its ttl: it expires (sessions_expired 1, ended by that reason),
    the messages waiting for it fail with that reason (deliveries_failed exact), its outbox was
    full once (queue_full 1); the client, past the ttl too, starts a new session."""
    config = relio.Config(session_ttl=1.0, max_outbox_messages=3)
    sio = relio.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1,
                            relio_config=config)
    metrics = RelioMetrics(sio, node='n')
    sids: list[str] = []
    errors: list = []

    @sio.event
    def connect(sid, environ, auth):
        sids.append(sid)

    @sio.on('relio_delivery_error')
    def delivery_error(sid, error):
        errors.append(error)

    app = socketio.ASGIApp(sio, other_asgi_app=metrics_app(metrics))
    srv = await start_asgi(app)
    client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                               randomization_factor=0.0, handle_sigint=False)
    try:
        async with FaultProxy(srv.port) as proxy:
            await client.connect(proxy.url, transports=['websocket'])
            proxy.refuse(60)
            assert await proxy.cut() == 1
            await until(lambda: sio.relio_parked_sessions == 1, 10, 'the session suspended')
            for n in range(3):
                await sio.emit('down', n, to=sids[0])
            with pytest.raises(relio.QueueFull):
                await sio.emit('down', 3, to=sids[0], block=False)
            await until(lambda: sio.relio_sessions == 0, 10, 'the session expired')
            await until(lambda: len(errors) == 3, 5, 'the three failures reported')
            proxy.admit()
            await until(lambda: len(sids) == 2, 15, 'a new session')
            s = await scrape(f'{srv.url}/metrics')
            ns = {'namespace': '/', 'node': 'n'}
            assert s.value('relio_sessions_expired_total', **ns) == 1
            assert s.value('relio_sessions_ended_total', reason='session expired', **ns) == 1
            assert s.value('relio_deliveries_failed_total', reason='session expired', **ns) == 3
            assert s.value('relio_deliveries_failed_total', **ns) == 3
            assert s.value('relio_queue_full_total', **ns) == 1
            assert s.value('relio_messages_expired_total', **ns) == 3
            assert s.value('relio_resumes_total', **ns) == 0
            assert s.value('relio_sessions', state='connected', **ns) == 1
    finally:
        if client.connected:
            await client.disconnect()
        await sio.shutdown()
        await srv.stop()


async def test_metrics_count_a_refused_resume():
    """The application refuses resumes (``relio_resume`` returns False): after a cut the client's
    resume is refused, counted with its reason, and the old session ends for that reason."""
    sio = relio.AsyncServer(async_mode='asgi', ping_interval=1, ping_timeout=1)
    metrics = RelioMetrics(sio, node='n')
    sids: list[str] = []

    @sio.event
    def connect(sid, environ, auth):
        sids.append(sid)

    @sio.on('relio_resume')
    def relio_resume(sid, environ, auth):
        return False

    app = socketio.ASGIApp(sio, other_asgi_app=metrics_app(metrics))
    srv = await start_asgi(app)
    client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                               randomization_factor=0.0, handle_sigint=False)
    try:
        async with FaultProxy(srv.port) as proxy:
            await client.connect(proxy.url, transports=['websocket'])
            assert await proxy.cut() == 1
            await until(lambda: len(sids) == 2, 15, 'the refused resume and a new session')
            s = await scrape(f'{srv.url}/metrics')
            ns = {'namespace': '/', 'node': 'n'}
            assert s.value('relio_resumes_total', outcome='refused',
                           reason='resume refused by the server', **ns) == 1
            assert s.value('relio_resumes_total', outcome='resumed', **ns) == 0
            assert s.value('relio_sessions_ended_total', reason='resume refused by the server',
                           **ns) == 1
            assert s.value('relio_sessions', state='connected', **ns) == 1
            assert s.value('relio_sessions', state='suspended', **ns) == 0
    finally:
        if client.connected:
            await client.disconnect()
        await sio.shutdown()
        await srv.stop()


async def test_metrics_on_a_port_of_their_own():
    """``start_metrics_server``: the same metrics from a thread on another port (one per worker
    process when several share the application's port)."""
    from relio.observe.prometheus import start_metrics_server
    from tests.support.processes import free_port

    sio = relio.AsyncServer(async_mode='asgi')
    sio.on('up', lambda sid, n: None)
    metrics = RelioMetrics(sio, node='worker-1')
    port = free_port()
    server, thread = start_metrics_server(metrics, port)
    try:
        s = await scrape(f'http://127.0.0.1:{port}/metrics')
        assert s.has('relio_messages_received_total')
        assert s.value('relio_sessions', node='worker-1') == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_event_names_are_labels_only_when_asked():
    """``event_labels=True`` counts received messages by event name; by default no metric has an
    event label."""
    scrapes = {}
    for event_labels in (False, True):
        sio = relio.AsyncServer(async_mode='asgi')
        metrics = RelioMetrics(sio, node='n', event_labels=event_labels)
        got: list[str] = []
        sio.on('a', lambda sid, n, got=got: got.append('a'))
        sio.on('b', lambda sid, n, got=got: got.append('b'))
        srv = await start_asgi(socketio.ASGIApp(sio, other_asgi_app=metrics_app(metrics)))
        client = relio.AsyncClient(handle_sigint=False)
        try:
            await client.connect(srv.url, transports=['websocket'])
            for n in range(3):
                await client.emit('a', n)
            for n in range(2):
                await client.emit('b', n)
            await until(lambda got=got: len(got) == 5, 10, 'the messages')
            s = await scrape(f'{srv.url}/metrics')
            scrapes[event_labels] = s
            assert s.value('relio_messages_received_total', namespace='/') == 5
        finally:
            await client.disconnect()
            await sio.shutdown()
            await srv.stop()
    assert not any('event' in x.labels for x in scrapes[False].samples)
    assert scrapes[True].value('relio_events_received_total', namespace='/', event='a') == 3
    assert scrapes[True].value('relio_events_received_total', namespace='/', event='b') == 2
