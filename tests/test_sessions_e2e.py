"""End-to-end guarantees between relio.AsyncClient and relio.AsyncServer.

Real uvicorn server on 127.0.0.1 (tests.support.servers.serve_socketio), the client connected
through a relio.demo.faultproxy.FaultProxy (websocket transport) so that connections can be cut,
refused or blackholed.  Each test states one guarantee of relio and checks it precisely: handlers
counted, message lists compared in full, errors checked by type and reason.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
from typing import Any, Callable

import pytest
import socketio

import relio
from relio.demo.faultproxy import FaultProxy, Schedule
from tests.support.servers import serve_socketio
from tests.support.waiting import until

CLIENT_KW = dict(reconnection_delay=0.1, reconnection_delay_max=0.3, randomization_factor=0,
                 handle_sigint=False)


# ------------------------------------------------------------------------------------------ helpers

@pytest.fixture(autouse=True)
def _collect_garbage():
    """Collect after each test so that a leaked socket/session fails the test that leaked it
    (ResourceWarning is an error here), not whichever test runs when the collector does."""
    yield
    gc.collect()


class Rec:
    """Records lifecycle events of one side: name -> list of argument tuples."""

    def __init__(self) -> None:
        self.ev: dict[str, list[tuple]] = collections.defaultdict(list)

    def add(self, name: str, *args: Any) -> None:
        self.ev[name].append(args)

    def n(self, name: str) -> int:
        return len(self.ev.get(name, ()))

    def __getitem__(self, name: str) -> list[tuple]:
        return self.ev[name]


def make_server(rec: Rec, **kwargs: Any) -> relio.AsyncServer:
    sio = relio.AsyncServer(async_mode='asgi', **kwargs)

    @sio.event
    async def connect(sid, environ, auth):
        rec.add('connect', sid)

    @sio.event
    async def disconnect(sid, reason):
        rec.add('disconnect', sid, reason)

    @sio.on('relio_suspend')
    async def on_suspend(sid, reason):
        rec.add('suspend', sid, reason)

    @sio.on('relio_resume')
    async def on_resume(sid, environ, auth):
        rec.add('resume', sid)

    @sio.on('relio_delivery_error')
    async def on_delivery_error(sid, error):
        rec.add('delivery_error', sid, error)

    return sio


def make_client(rec: Rec, **kwargs: Any) -> relio.AsyncClient:
    client = relio.AsyncClient(**{**CLIENT_KW, **kwargs})

    @client.event
    async def connect():
        rec.add('connect', client.get_sid())

    @client.event
    async def connect_error(*data):
        rec.add('connect_error', *data)

    @client.event
    async def disconnect(reason):
        rec.add('disconnect', reason)

    @client.on('relio_suspend')
    async def on_suspend(reason):
        rec.add('suspend', reason)

    @client.on('relio_resume')
    async def on_resume():
        rec.add('resume', client.get_sid())

    @client.on('relio_delivery_error')
    async def on_delivery_error(error):
        rec.add('delivery_error', error)

    return client


async def close_client(client: socketio.AsyncClient) -> None:
    """Disconnect, or stop reconnecting; bounded."""
    with contextlib.suppress(Exception):
        if client.connected:
            if isinstance(client, relio.AsyncClient):
                await asyncio.wait_for(client.disconnect(drain_timeout=0), 5)
            else:
                await asyncio.wait_for(client.disconnect(), 5)
    task = client._reconnect_task
    if task is not None and not task.done():
        client._reconnect_abort.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
    with contextlib.suppress(Exception):
        if client.eio.state != 'disconnected':
            await asyncio.wait_for(client.eio.disconnect(), 5)
    # python-engineio keeps the aiohttp session of a failed reconnect attempt open
    http = getattr(client.eio, 'http', None)
    if http is not None and not http.closed:
        await http.close()


class Rig:
    server: relio.AsyncServer
    client: relio.AsyncClient
    proxy: FaultProxy
    port: int
    srec: Rec
    crec: Rec


@contextlib.asynccontextmanager
async def rig(setup_server: Callable | None = None, setup_client: Callable | None = None, *,
              server_kwargs: dict | None = None, client_kwargs: dict | None = None,
              connect: bool = True, transports: tuple = ('websocket',)):
    """Server + proxy + connected client; lifecycle events recorded in ``r.srec`` / ``r.crec``."""
    r = Rig()
    r.srec, r.crec = Rec(), Rec()
    r.server = make_server(r.srec, **(server_kwargs or {}))
    if setup_server is not None:
        setup_server(r.server, r.srec)
    r.client = make_client(r.crec, **(client_kwargs or {}))
    if setup_client is not None:
        setup_client(r.client, r.crec)
    async with serve_socketio(r.server) as port, FaultProxy(port) as proxy:
        r.port, r.proxy = port, proxy
        try:
            if connect:
                await r.client.connect(proxy.url, transports=list(transports), wait_timeout=5,
                                       namespaces=['/'])
                await until(lambda: r.srec.n('connect') == 1, what='server connect')
            yield r
        finally:
            await close_client(r.client)


async def cut_and_wait_resume(r: Rig, n: int = 1) -> None:
    """Cut the link and wait until both sides saw resume number ``n``."""
    assert await r.proxy.cut() == 1
    await until(lambda: r.crec.n('resume') >= n and r.srec.n('resume') >= n, 10,
                f'resume #{n}')


# --------------------------------------------------------------------------------------- 1. session

@pytest.mark.timeout(30)
async def test_session_survives_a_cut():
    got = []

    def setup(sio, rec):
        @sio.on('join')
        async def join(sid, room):
            await sio.enter_room(sid, room)
            await sio.save_session(sid, {'user': 'ada', 'n': 7})
            return 'joined'

        @sio.on('whoami')
        async def whoami(sid):
            return [sid, await sio.get_session(sid)]

    def setup_client(client, rec):
        @client.on('news')
        async def news(item):
            got.append(item)

    async with rig(setup, setup_client) as r:
        c, s = r.client, r.server
        sid = c.get_sid()
        assert sid is not None and r.srec['connect'] == [(sid,)]
        assert await c.call('join', 'r1', timeout=5) == 'joined'
        assert await c.call('whoami', timeout=5) == [sid, {'user': 'ada', 'n': 7}]
        await asyncio.wait_for(await s.emit('news', 'before', to='r1'), 5)
        await until(lambda: got == ['before'], what='room broadcast before the cut')

        await cut_and_wait_resume(r)

        assert c.get_sid() == sid
        assert r.crec['resume'] == [(sid,)]
        assert r.srec['resume'] == [(sid,)]
        assert [e[0] for e in r.srec['suspend']] == [sid]
        assert r.crec.n('suspend') == 1
        assert sorted(s.rooms(sid)) == sorted([sid, 'r1'])
        assert await c.call('whoami', timeout=5) == [sid, {'user': 'ada', 'n': 7}]
        assert await s.get_session(sid) == {'user': 'ada', 'n': 7}
        await asyncio.wait_for(await s.emit('news', 'after', to='r1'), 5)
        await until(lambda: got == ['before', 'after'], what='room broadcast after the resume')
        assert s.session_stats(sid)['resumes'] == 1
        # connect once, disconnect never, on both sides
        assert r.srec['connect'] == [(sid,)] and r.crec['connect'] == [(sid,)]
        assert r.srec.n('disconnect') == 0 and r.crec.n('disconnect') == 0
        assert r.srec.n('delivery_error') == 0 and r.crec.n('delivery_error') == 0
        assert r.proxy.stats.connections_accepted == 2


# ---------------------------------------------------------------------------------------- 2. outage

N_OUTAGE = 100


@pytest.mark.timeout(30)
async def test_client_emits_while_disconnected_arrive_once_in_order():
    got = []

    def setup(sio, rec):
        @sio.on('num')
        async def num(sid, n):
            got.append((sid, n))

    async with rig(setup) as r:
        c = r.client
        sid = c.get_sid()
        await r.proxy.partition(1.0)          # cut + refuse reconnects for 1 s
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        assert not c.connected and '/' not in c.namespaces and c.get_sid() is None
        deliveries = []
        for i in range(N_OUTAGE):
            deliveries.append(await c.emit('num', i))       # must not raise while reconnecting
        assert r.crec.n('resume') == 0, 'the outage ended before all emits were queued'
        assert got == []
        assert c.session_stats()['outbox_messages'] == N_OUTAGE
        await until(lambda: r.crec.n('resume') == 1, 10, 'resume')
        await asyncio.wait_for(asyncio.gather(*deliveries), 5)
        await until(lambda: len(got) >= N_OUTAGE, what='all messages at the server')
        await asyncio.sleep(0.1)   # a duplicate would show up right behind
        assert got == [(sid, i) for i in range(N_OUTAGE)]
        assert r.proxy.stats.connections_refused >= 1
        assert c.get_sid() == sid and r.srec.n('connect') == 1 and r.srec.n('disconnect') == 0
        assert r.crec.n('delivery_error') == 0


@pytest.mark.timeout(30)
async def test_server_emits_while_client_away_arrive_once_in_order():
    got = []

    def setup_client(client, rec):
        @client.on('num')
        async def num(n):
            got.append(n)

    async with rig(setup_client=setup_client) as r:
        s = r.server
        sid = r.client.get_sid()
        await r.proxy.partition(1.0)
        await until(lambda: r.srec.n('suspend') == 1, what='server suspend')
        assert s.transport(sid) is None                      # the session waits, unattached
        assert s.relio_parked_sessions == 1 and s.relio_sessions == 1
        deliveries = []
        for i in range(N_OUTAGE):
            deliveries.append(await s.emit('num', i, to=sid))
        assert r.srec.n('resume') == 0, 'the outage ended before all emits were queued'
        assert s.session_stats(sid)['outbox_messages'] == N_OUTAGE
        await until(lambda: r.srec.n('resume') == 1, 10, 'resume')
        await asyncio.wait_for(asyncio.gather(*deliveries), 5)
        await until(lambda: len(got) >= N_OUTAGE, what='all messages at the client')
        await asyncio.sleep(0.1)
        assert got == list(range(N_OUTAGE))
        assert s.relio_parked_sessions == 0
        assert r.crec.n('connect') == 1 and r.crec.n('disconnect') == 0
        assert r.srec.n('delivery_error') == 0


# ---------------------------------------------------------------------------------------- 3. call()

@pytest.mark.timeout(30)
async def test_client_call_survives_a_cut_handler_runs_once():
    runs = []
    started = asyncio.Event()
    release = asyncio.Event()

    def setup(sio, rec):
        @sio.on('slow_add')
        async def slow_add(sid, a, b):
            runs.append((a, b))
            started.set()
            await release.wait()
            return a + b

    async with rig(setup) as r:
        c = r.client
        sid = c.get_sid()
        call = asyncio.ensure_future(c.call('slow_add', (20, 22), timeout=15))
        await asyncio.wait_for(started.wait(), 5)
        await r.proxy.partition(0.8)                  # the handler is still running
        await until(lambda: r.srec.n('suspend') == 1 and r.crec.n('suspend') == 1,
                    what='both sides suspended')
        release.set()                                 # the reply is produced while disconnected
        await until(lambda: r.server.session_stats(sid)['outbox_messages'] == 1,
                    what='reply queued on the server')
        assert not call.done()
        assert await asyncio.wait_for(call, 10) == 42
        assert runs == [(20, 22)]
        assert r.crec.n('resume') == 1 and r.srec.n('resume') == 1
        await asyncio.sleep(0.2)
        assert runs == [(20, 22)]
        assert c.session_stats()['awaiting_replies'] == 0


@pytest.mark.timeout(30)
async def test_call_across_a_cut_before_the_request_arrives():
    """The request is emitted while the link is down; call() waits through the outage."""
    runs = []

    def setup(sio, rec):
        @sio.on('double')
        async def double(sid, x):
            runs.append(x)
            return 2 * x

    async with rig(setup) as r:
        await r.proxy.partition(0.8)
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        assert await asyncio.wait_for(r.client.call('double', 21, timeout=15), 10) == 42
        assert runs == [21] and r.crec.n('resume') == 1


@pytest.mark.timeout(30)
async def test_server_call_survives_a_cut_handler_runs_once():
    runs = []
    started = asyncio.Event()
    release = asyncio.Event()

    def setup_client(client, rec):
        @client.on('ask')
        async def ask(q):
            runs.append(q)
            started.set()
            await release.wait()
            return {'answer': q * 2}

    async with rig(setup_client=setup_client) as r:
        s = r.server
        sid = r.client.get_sid()
        call = asyncio.ensure_future(s.call('ask', 21, to=sid, timeout=15))
        await asyncio.wait_for(started.wait(), 5)
        await r.proxy.partition(0.8)
        await until(lambda: r.srec.n('suspend') == 1 and r.crec.n('suspend') == 1,
                    what='both sides suspended')
        release.set()
        await until(lambda: r.client.session_stats()['outbox_messages'] == 1,
                    what='reply queued on the client')
        assert not call.done()
        assert await asyncio.wait_for(call, 10) == {'answer': 42}
        assert runs == [21]
        await asyncio.sleep(0.2)
        assert runs == [21]
        assert s.session_stats(sid)['awaiting_replies'] == 0


# -------------------------------------------------------------------------------------- 4. delivery

@pytest.mark.timeout(30)
async def test_delivery_resolves_when_acknowledged():
    got = []

    def setup(sio, rec):
        @sio.on('ping_me')
        async def ping_me(sid, x):
            got.append(x)

    def setup_client(client, rec):
        @client.on('pong_me')
        async def pong_me(x):
            got.append(('client', x))

    async with rig(setup, setup_client) as r:
        d = await r.client.emit('ping_me', 1)
        assert isinstance(d, relio.Delivery) and d.recipients == 1
        assert await asyncio.wait_for(d, 5) is None
        assert d.done and d.delivered and d.failures == []
        await until(lambda: got == [1], what='client message at the server')
        d2 = await r.server.emit('pong_me', 2, to=r.client.get_sid())
        assert isinstance(d2, relio.Delivery) and d2.recipients == 1 and d2.unconfirmed == 0
        assert await asyncio.wait_for(d2, 5) is None
        assert d2.delivered
        await until(lambda: got == [1, ('client', 2)], what='server message at the client')


@pytest.mark.timeout(30)
async def test_expired_session_fails_pending_messages_on_both_sides(caplog):
    caplog.set_level(logging.INFO, logger='relio')
    server_got, client_got = [], []

    def setup(sio, rec):
        @sio.on('c2s')
        async def c2s(sid, n):
            server_got.append((sid, n))

    def setup_client(client, rec):
        @client.on('s2c')
        async def s2c(n):
            client_got.append(n)

    async with rig(setup, setup_client,
                   server_kwargs=dict(relio_config=relio.Config(session_ttl=0.5))) as r:
        s, c = r.server, r.client
        old_sid = c.get_sid()
        await r.proxy.partition(1.5)        # the client stays away 3x the session TTL
        await until(lambda: r.srec.n('suspend') == 1 and r.crec.n('suspend') == 1,
                    what='both sides suspended')
        server_d = [await s.emit('s2c', i, to=old_sid) for i in range(3)]
        server_call = asyncio.ensure_future(s.call('s2c', 99, to=old_sid, timeout=10))
        client_d = [await c.emit('c2s', i) for i in range(3)]
        client_call = asyncio.ensure_future(c.call('c2s', 99, timeout=10))

        # --- the server expires the session after 0.5 s
        await until(lambda: r.srec.n('disconnect') == 1, 10, 'server disconnect on expiry')
        assert r.srec['disconnect'][0][0] == old_sid
        assert 'expire' in str(r.srec['disconnect'][0][1]), r.srec['disconnect']
        for i, d in enumerate(server_d):
            with pytest.raises(relio.DeliveryError) as ei:
                await asyncio.wait_for(d, 10)
            err = ei.value
            assert 'expire' in err.reason and err.sid == old_sid
            assert err.namespace == '/' and err.event == 's2c'
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(server_call, 10)
        await until(lambda: r.srec.n('delivery_error') == 4, 10, 'server relio_delivery_error x4')
        assert all(sid == old_sid and isinstance(e, relio.DeliveryError)
                   for sid, e in r.srec['delivery_error'])
        assert s.relio_sessions == 0 and s.relio_parked_sessions == 0
        assert r.crec.n('resume') == 0 and r.srec.n('resume') == 0

        # --- the client comes back: new session, its old messages fail (not silently lost)
        await until(lambda: r.crec.n('connect') == 2, 10, 'client connect of the new session')
        new_sid = c.get_sid()
        assert new_sid is not None and new_sid != old_sid
        assert r.crec['connect'] == [(old_sid,), (new_sid,)]
        assert [e[0] for e in r.srec['connect']] == [old_sid, new_sid]
        for d in client_d:
            with pytest.raises(relio.DeliveryError) as ei:
                await asyncio.wait_for(d, 10)
            assert ei.value.event == 'c2s' and ei.value.sid == old_sid
            assert str(ei.value).startswith("event 'c2s' to the server not delivered")
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(client_call, 10)
        await until(lambda: r.crec.n('delivery_error') == 4, 10, 'client relio_delivery_error x4')
        # the old session ended exactly once on the client too; never resumed
        assert r.crec.n('disconnect') == 1 and r.crec.n('resume') == 0
        assert r.srec.n('disconnect') == 1
        # nothing of the old session leaked into the new one
        await asyncio.sleep(0.2)
        assert server_got == [] and client_got == []
        # the new session works
        await asyncio.wait_for(await c.emit('c2s', 'fresh'), 5)
        await until(lambda: server_got == [(new_sid, 'fresh')], what='message of the new session')
        # Every failure here reached the application (relio_delivery_error handlers on both
        # sides), so none is logged as a WARNING; each is logged once at INFO.
        failures = [rec for rec in caplog.records
                    if rec.name == 'relio' and 'not delivered' in rec.getMessage()]
        assert len(failures) == 8 and all(rec.levelno == logging.INFO for rec in failures)


@pytest.mark.timeout(30)
async def test_a_delivery_failure_nobody_handles_is_a_warning(caplog):
    """Without a relio_delivery_error handler, a failed delivery nobody awaits is logged at
    WARNING (the only place it shows); one whose Delivery is awaited, at INFO."""
    caplog.set_level(logging.INFO, logger='relio')
    async with rig(server_kwargs=dict(relio_config=relio.Config(session_ttl=0.3))) as r:
        del r.server.handlers['/']['relio_delivery_error']
        sid = r.client.get_sid()
        await r.proxy.partition(1.0)
        await until(lambda: r.srec.n('suspend') == 1, what='suspended')
        ignored = await r.server.emit('ignored', 1, to=sid)
        awaited = await r.server.emit('awaited', 2, to=sid)
        waiting = asyncio.ensure_future(_await(awaited))
        await until(lambda: r.srec.n('disconnect') == 1, 3, 'expiry')
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(waiting, 2)
        assert ignored.done and not ignored.delivered
    levels = {rec.getMessage(): rec.levelno for rec in caplog.records
              if rec.name == 'relio' and 'not delivered' in rec.getMessage()}
    assert levels == {
        f"relio: event 'ignored' to {sid} not delivered: session expired": logging.WARNING,
        f"relio: event 'awaited' to {sid} not delivered: session expired": logging.INFO,
    }


async def _await(awaitable):
    return await awaitable


# ---------------------------------------------------------------------------------- 5. backpressure

@pytest.mark.timeout(30)
async def test_outbox_limit_raises_queuefull_or_blocks_until_the_link_is_back():
    got = []

    def setup(sio, rec):
        @sio.on('n')
        async def n(sid, i):
            got.append(i)

    async with rig(setup, client_kwargs=dict(relio_config=relio.Config(max_outbox_messages=8))
                   ) as r:
        c = r.client
        await asyncio.wait_for(await c.emit('n', 'warmup'), 5)     # an RTT sample
        await until(lambda: c.session_stats()['outbox_messages'] == 0, what='empty outbox')
        r.proxy.blackhole('both', 1.5)
        deliveries = [await c.emit('n', i, block=False) for i in range(8)]
        assert c.session_stats()['outbox_messages'] == 8
        with pytest.raises(relio.QueueFull):
            await c.emit('n', 'overflow', block=False)
        assert c.session_stats()['outbox_messages'] == 8      # nothing was queued
        blocked = asyncio.ensure_future(c.emit('n', 8))       # block=True: waits for room
        await asyncio.sleep(0.3)
        assert not blocked.done(), 'a blocking emit returned while the outbox was full'
        assert got == ['warmup']
        d8 = await asyncio.wait_for(blocked, 10)               # the link is back
        await asyncio.wait_for(asyncio.gather(*deliveries, d8), 10)
        await until(lambda: len(got) >= 10, what='all messages at the server')
        await asyncio.sleep(0.1)
        assert got == ['warmup', *range(9)]
        assert r.proxy.stats.dropped_up > 0               # the blackhole really ate frames
        assert r.crec.n('delivery_error') == 0


# ------------------------------------------------------------------------------- 6. chained replies

def checkout_server(steps: list):
    def setup(sio, rec):
        @sio.on('checkout')
        async def checkout(sid, cart):
            steps.append(('checkout', cart))

            async def on_confirm(confirmed):
                steps.append(('on_confirm', confirmed))
                return 'charged' if confirmed is True else 'cancelled'
            return relio.Reply({'total': 42}, callback=on_confirm)
    return setup


@pytest.mark.timeout(30)
async def test_chained_reply_with_emit_callback_and_a_cut_after_the_first_reply():
    steps = []

    async with rig(checkout_server(steps)) as r:
        async def on_total(data):
            steps.append(('on_total', data))
            await r.proxy.cut()         # the link dies right after the first reply arrived
            return True

        d = await r.client.emit('checkout', ['apple'], callback=on_total)
        await until(lambda: ('on_confirm', True) in steps, 10, 'on_confirm(True)')
        assert r.crec.n('resume') == 1 and r.srec.n('resume') == 1
        await asyncio.wait_for(d, 5)
        await asyncio.sleep(0.3)            # a duplicated step would show here
        assert steps == [('checkout', ['apple']), ('on_total', {'total': 42}),
                         ('on_confirm', True)]
        assert r.crec.n('delivery_error') == 0 and r.srec.n('delivery_error') == 0


@pytest.mark.timeout(30)
async def test_chained_reply_three_steps_back_to_the_client_across_a_cut():
    """client cb returns Reply(True, callback=on_charged): on_confirm's 'charged' comes back."""
    steps = []

    async with rig(checkout_server(steps)) as r:
        async def on_charged(result):
            steps.append(('on_charged', result))

        async def on_total(data):
            steps.append(('on_total', data))
            await r.proxy.cut()
            return relio.Reply(True, callback=on_charged)

        await r.client.emit('checkout', ['pear'], callback=on_total)
        await until(lambda: any(s[0] == 'on_charged' for s in steps), 10, 'on_charged')
        await asyncio.sleep(0.3)
        assert steps == [('checkout', ['pear']), ('on_total', {'total': 42}),
                         ('on_confirm', True), ('on_charged', 'charged')]
        assert r.crec.n('resume') == 1
        assert r.client.session_stats()['awaiting_replies'] == 0
        assert r.server.session_stats(r.client.get_sid())['awaiting_replies'] == 0


@pytest.mark.timeout(30)
async def test_call_returns_question_ask_and_answer_across_a_cut():
    steps = []

    async with rig(checkout_server(steps)) as r:
        c = r.client
        q = await asyncio.wait_for(c.call('checkout', ['fig'], timeout=5), 5)
        assert isinstance(q, relio.Question) and q.data == {'total': 42}
        await cut_and_wait_resume(r)
        assert await asyncio.wait_for(q.ask(True, timeout=10), 10) == 'charged'
        assert steps == [('checkout', ['fig']), ('on_confirm', True)]

        # answer(): the final word; on_confirm runs once, its return value goes nowhere
        q2 = await asyncio.wait_for(c.call('checkout', ['kiwi'], timeout=5), 5)
        assert isinstance(q2, relio.Question) and q2.data == {'total': 42}
        await r.proxy.partition(0.5)
        await until(lambda: r.crec.n('suspend') == 2, what='second suspend')
        d = await q2.answer(False)
        assert isinstance(d, relio.Delivery)
        await asyncio.wait_for(d, 10)
        await until(lambda: len(steps) == 4, what='on_confirm(False)')
        await asyncio.sleep(0.2)
        assert steps == [('checkout', ['fig']), ('on_confirm', True),
                         ('checkout', ['kiwi']), ('on_confirm', False)]
        assert r.crec.n('resume') == 2 and r.srec.n('resume') == 2


# ------------------------------------------------------------------------------------ 7. namespaces

@pytest.mark.timeout(30)
async def test_class_based_namespaces_get_reliable_delivery():
    log: dict[str, list] = collections.defaultdict(list)

    class ChatServer(relio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            log['s_connect'].append(sid)

        async def on_disconnect(self, sid, reason):
            log['s_disconnect'].append(sid)

        async def on_relio_suspend(self, sid, reason):
            log['s_suspend'].append(sid)

        async def on_relio_resume(self, sid, environ, auth):
            log['s_resume'].append(sid)

        async def on_msg(self, sid, n):
            log['s_msg'].append((sid, n))

        async def on_echo(self, sid, n):
            return n * 10

    class ChatClient(relio.AsyncClientNamespace):
        async def on_connect(self):
            log['c_connect'].append(1)

        async def on_disconnect(self, reason):
            log['c_disconnect'].append(reason)

        async def on_relio_suspend(self, reason):
            log['c_suspend'].append(reason)

        async def on_relio_resume(self):
            log['c_resume'].append(1)

        async def on_msg(self, n):
            log['c_msg'].append(n)

    def setup(sio, rec):
        sio.register_namespace(ChatServer('/chat'))

    def setup_client(client, rec):
        client.register_namespace(ChatClient('/chat'))

    async with rig(setup, setup_client, connect=False) as r:
        c, s = r.client, r.server
        await c.connect(r.proxy.url, transports=['websocket'], namespaces=['/chat'],
                        wait_timeout=5)
        sid = c.get_sid('/chat')
        assert sid is not None and log['s_connect'] == [sid] and log['c_connect'] == [1]
        assert c.session_stats('/chat') is not None and s.session_stats(sid) is not None
        await r.proxy.partition(0.8)
        await until(lambda: log['s_suspend'] and log['c_suspend'], what='both suspended')
        for i in range(50):
            await c.emit('msg', i, namespace='/chat')
            await s.emit('msg', i, to=sid, namespace='/chat')
        call = asyncio.ensure_future(c.call('echo', 7, namespace='/chat', timeout=10))
        assert log['s_msg'] == [] and log['c_msg'] == []
        await until(lambda: log['s_resume'] and log['c_resume'], 10, 'resume')
        assert await asyncio.wait_for(call, 10) == 70
        await until(lambda: len(log['s_msg']) >= 50 and len(log['c_msg']) >= 50,
                    what='all messages')
        await asyncio.sleep(0.1)
        assert log['s_msg'] == [(sid, i) for i in range(50)]
        assert log['c_msg'] == list(range(50))
        assert c.get_sid('/chat') == sid
        assert log['s_resume'] == [sid] and log['c_resume'] == [1]
        assert log['s_connect'] == [sid] and log['c_connect'] == [1]
        assert log['s_disconnect'] == [] and log['c_disconnect'] == []
        assert s.session_stats(sid)['resumes'] == 1
        # the default namespace was never joined, nor given a session
        assert r.srec.n('connect') == 0 and c.session_stats('/') is None


# --------------------------------------------------------------------------------------- 8. refusal

@pytest.mark.timeout(30)
async def test_refused_resume_starts_a_new_session_and_fails_pending_messages():
    """server.py _resume_session: relio_resume returning False -> _refuse_resume (the session
    ends: pending messages fail, server ``disconnect`` fires) and _connect_session starts a new
    session whose CONNECT reply carries ``refused``; client.py _handle_connect ends the old
    session (its pending messages fail, client ``disconnect`` fires) and ``connect`` fires for the
    new sid.  No connect_error."""
    server_got, client_got = [], []
    asked = []

    def setup(sio, rec):
        @sio.on('relio_resume')
        async def refuse(sid, environ, auth):
            asked.append(sid)
            return False

        @sio.on('c2s')
        async def c2s(sid, n):
            server_got.append((sid, n))

    def setup_client(client, rec):
        @client.on('s2c')
        async def s2c(n):
            client_got.append(n)

    async with rig(setup, setup_client) as r:
        s, c = r.server, r.client
        old_sid = c.get_sid()
        await r.proxy.partition(0.8)
        await until(lambda: r.srec.n('suspend') == 1 and r.crec.n('suspend') == 1,
                    what='both sides suspended')
        server_d = [await s.emit('s2c', i, to=old_sid) for i in range(3)]
        client_d = [await c.emit('c2s', i) for i in range(3)]
        client_call = asyncio.ensure_future(c.call('c2s', 'q', timeout=10))

        await until(lambda: r.crec.n('connect') == 2, 10, 'connect of the new session')
        new_sid = c.get_sid()
        assert new_sid is not None and new_sid != old_sid
        assert asked == [old_sid]
        assert r.crec['connect'] == [(old_sid,), (new_sid,)]
        assert [e[0] for e in r.srec['connect']] == [old_sid, new_sid]
        # connect_error only from the transport attempts the proxy refused, none from the server
        assert all(e == ('Connection error',) for e in r.crec['connect_error']), r.crec.ev
        assert r.crec.n('resume') == 0
        # the refused session ended once on each side, with the refusal as reason
        await until(lambda: r.srec.n('disconnect') == 1, what='server disconnect of old sid')
        assert r.srec['disconnect'] == [(old_sid, 'resume refused by the server')]
        assert r.crec['disconnect'] == [('resume refused by the server',)]
        for d in server_d:
            with pytest.raises(relio.DeliveryError) as ei:
                await asyncio.wait_for(d, 10)
            assert ei.value.sid == old_sid and ei.value.event == 's2c'
        for d in client_d:
            with pytest.raises(relio.DeliveryError) as ei:
                await asyncio.wait_for(d, 10)
            assert ei.value.event == 'c2s'
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(client_call, 10)
        await until(lambda: r.srec.n('delivery_error') == 3 and r.crec.n('delivery_error') == 4,
                    10, 'relio_delivery_error on both sides')
        assert s.session_stats(old_sid) is None and s.relio_sessions == 1
        await asyncio.sleep(0.2)
        assert server_got == [] and client_got == []
        # the new session works
        await asyncio.wait_for(await c.emit('c2s', 'fresh'), 5)
        await until(lambda: server_got == [(new_sid, 'fresh')], what='message of the new session')


# ----------------------------------------------------------------------------------- 9. credentials

async def raw_resume_attempt(port: int, sid: str, credential: str) -> str:
    """A plain socketio.AsyncClient presents (sid, credential) directly to the server; returns the
    sid it was given."""
    raw = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    try:
        await raw.connect(f'http://127.0.0.1:{port}', transports=['websocket'], wait_timeout=5,
                          auth={'__relio': {'v': 1, 'sid': sid, 'credential': credential,
                                            'state': ''}})
        got = raw.get_sid()
        assert got is not None
        return got
    finally:
        await close_client(raw)


@pytest.mark.timeout(30)
async def test_credential_is_secret_rotates_and_a_stale_one_does_not_resume():
    got = []

    def setup_client(client, rec):
        @client.on('note')
        async def note(x):
            got.append(x)

    async with rig(setup_client=setup_client) as r:
        c, s = r.client, r.server
        sid = c.get_sid()

        def cred() -> str:
            return c.relio_sessions['/'].credential

        def mine(event: str) -> int:
            return sum(1 for e in r.srec[event] if e[0] == sid)

        creds = [cred()]
        assert isinstance(creds[0], str) and len(creds[0]) >= 32 and creds[0] != sid
        assert sid not in creds[0]
        for n in (1, 2):
            await cut_and_wait_resume(r, n)
            assert c.get_sid() == sid
            creds.append(cred())
            assert len(creds[-1]) >= 32 and creds[-1] != sid
        assert len(set(creds)) == 3, 'the credential must change on every resume'
        assert s.session_stats(sid)['resumes'] == 2

        # a stale credential, while the real client is connected: refused, a new session
        other = await raw_resume_attempt(r.port, sid, creds[0])
        assert other != sid
        other2 = await raw_resume_attempt(r.port, sid, creds[1])
        assert other2 not in (sid, other)
        assert r.srec.n('resume') == 2 and r.crec.n('suspend') == 2 and mine('suspend') == 2
        await asyncio.wait_for(await s.emit('note', 'still mine', to=sid), 5)
        await until(lambda: got == ['still mine'], what='the session still reaches its client')

        # a stale credential while the session is parked: refused too
        await r.proxy.partition(1.0)
        await until(lambda: mine('suspend') == 3, what='server suspend')
        assert s.transport(sid) is None                  # parked
        other3 = await raw_resume_attempt(r.port, sid, creds[1])
        assert other3 not in (sid, other, other2)
        assert s.transport(sid) is None and r.srec.n('resume') == 2
        # the real client, with the current credential, gets its session back
        await until(lambda: r.crec.n('resume') == 3, 10, 'resume by the real client')
        assert c.get_sid() == sid and s.session_stats(sid)['resumes'] == 3
        assert cred() not in creds
        await asyncio.wait_for(await s.emit('note', 'back', to=sid), 5)
        await until(lambda: got == ['still mine', 'back'], what='note after resume')
        assert [e[0] for e in r.srec['connect']] == [sid, other, other2, other3]
        assert r.crec['connect'] == [(sid,)] and r.crec.n('disconnect') == 0


# ---------------------------------------------------------------------------- 10. server disconnect

@pytest.mark.timeout(30)
async def test_server_disconnect_ends_the_session_for_good():
    release = asyncio.Event()
    hanging = []

    def setup(sio, rec):
        @sio.on('hang')
        async def hang(sid):
            hanging.append(sid)
            await release.wait()
            return 'too late'

    def setup_client(client, rec):
        @client.on('hang')
        async def hang():
            hanging.append('client')
            await release.wait()
            return 'too late'

    async with rig(setup, setup_client) as r:
        c, s = r.client, r.server
        sid = c.get_sid()
        try:
            client_call = asyncio.ensure_future(c.call('hang', timeout=15))
            server_call = asyncio.ensure_future(s.call('hang', to=sid, timeout=15))
            await until(lambda: len(hanging) == 2, what='both handlers running')
            await s.disconnect(sid)
            await until(lambda: r.crec.n('disconnect') >= 1, what='client disconnect')
            with pytest.raises(relio.DeliveryError):
                await asyncio.wait_for(client_call, 10)
            with pytest.raises(relio.DeliveryError) as ei:
                await asyncio.wait_for(server_call, 10)
            assert ei.value.reason == 'server disconnect'
            await asyncio.sleep(1.0)       # several reconnection delays: no reconnect may happen
            # python-socketio 5.x's value (engineio's reason class): 'server disconnect'; the
            # JavaScript client calls it 'io server disconnect'
            assert socketio.AsyncClient.reason.SERVER_DISCONNECT == 'server disconnect'
            assert r.crec['disconnect'] == [(socketio.AsyncClient.reason.SERVER_DISCONNECT,)]
            assert r.srec['disconnect'] == [(sid, s.reason.SERVER_DISCONNECT)]
            assert r.crec.n('suspend') == 0 and r.crec.n('resume') == 0
            assert r.crec.n('connect') == 1 and r.srec.n('connect') == 1
            assert not c.connected and c._reconnect_task is None and c.eio.state != 'connected'
            assert c.session_stats() is None and s.session_stats(sid) is None
            assert s.relio_sessions == 0 and s.relio_parked_sessions == 0
            assert r.proxy.stats.connections_accepted == 1
        finally:
            release.set()


# ---------------------------------------------------------------------------- 11. disconnect drains

@pytest.mark.timeout(30)
@pytest.mark.parametrize('latency', [0.0, 0.05])
async def test_client_disconnect_right_after_emits_delivers_them_all_first(latency):
    """python-socketio #888: disconnect() right after emits loses the queued ones."""
    got = []
    seen_at_disconnect = []

    def setup(sio, rec):
        @sio.on('n')
        async def n(sid, i):
            got.append(i)

        @sio.event
        async def disconnect(sid, reason):
            seen_at_disconnect.append(list(got))
            rec.add('disconnect', sid, reason)

    async with rig(setup) as r:
        c = r.client
        sid = c.get_sid()
        if latency:
            r.proxy.delay(latency)
        deliveries = [await c.emit('n', i) for i in range(200)]
        await c.disconnect()
        await until(lambda: r.srec.n('disconnect') == 1, what='server disconnect')
        assert seen_at_disconnect == [list(range(200))]
        assert r.srec['disconnect'] == [(sid, r.server.reason.CLIENT_DISCONNECT)]
        for d in deliveries:
            assert d.done and d.delivered
        assert r.crec['disconnect'] == [(c.reason.CLIENT_DISCONNECT,)]
        assert r.crec.n('suspend') == 0 and r.srec.n('suspend') == 0
        await asyncio.sleep(0.2)
        assert got == list(range(200)) and r.srec.n('disconnect') == 1
        assert r.server.relio_sessions == 0 and r.server.relio_parked_sessions == 0


# --------------------------------------------------------------------------------------- more edges
# Sessions that end while the client is away, rooms changed while parked, a resume cut short,
# sequential handlers, several namespaces on one connection, random faults.

@pytest.mark.timeout(30)
async def test_emit_to_the_sid_of_an_expired_session_fails():
    """Item 4, literally: once the server's session is gone, a message emitted to its sid is not
    deliverable, so ``await delivery`` must raise DeliveryError (not report success)."""
    async with rig(server_kwargs=dict(relio_config=relio.Config(session_ttl=0.5))) as r:
        s = r.server
        old_sid = r.client.get_sid()
        await r.proxy.partition(1.5)
        await until(lambda: r.srec.n('disconnect') == 1, 10, 'server disconnect on expiry')
        assert s.session_stats(old_sid) is None
        d = await s.emit('s2c', 'after expiry', to=old_sid)
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(d, 10)


@pytest.mark.timeout(30)
async def test_client_shutdown_while_reconnecting_fails_pending_messages():
    """A session that ends while suspended must tell its senders: shutdown() stops the reconnect
    loop, so what was queued can never be delivered -> DeliveryError, and ``disconnect`` fires
    once (it was withheld when the connection dropped)."""
    async with rig() as r:
        c = r.client
        await r.proxy.partition(3.0)
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        d = await c.emit('c2s', 1)
        call = asyncio.ensure_future(c.call('c2s', 2, timeout=20))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(c.shutdown(), 5)
        assert c._reconnect_task is None or c._reconnect_task.done()
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(d, 10)
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(call, 10)
        assert r.crec.n('disconnect') == 1


@pytest.mark.timeout(30)
async def test_client_disconnect_while_reconnecting_fails_pending_and_fires_disconnect():
    """disconnect() while the session is suspended ends it: queued messages fail, and the
    ``disconnect`` withheld at the drop fires now (once)."""
    async with rig() as r:
        c = r.client
        await r.proxy.partition(3.0)
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        d = await c.emit('c2s', 1)
        await asyncio.wait_for(c.disconnect(drain_timeout=0.2), 5)
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(d, 10)
        assert r.crec.n('disconnect') == 1
        assert r.crec.n('resume') == 0


@pytest.mark.timeout(30)
async def test_reconnection_giving_up_fails_pending_messages():
    """python-socketio gives up after reconnection_attempts: the session ends, nothing hangs."""
    async with rig(client_kwargs=dict(reconnection_attempts=2)) as r:
        c = r.client
        await r.proxy.partition(5.0)
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        d = await c.emit('c2s', 1)
        call = asyncio.ensure_future(c.call('c2s', 2, timeout=20))
        await until(lambda: c._reconnect_task is not None and c._reconnect_task.done(), 5,
                    'the client to give up')
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(d, 10)
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(call, 10)
        assert r.crec.n('disconnect') == 1


@pytest.mark.timeout(30)
async def test_server_disconnect_of_a_parked_session():
    """server.disconnect(sid) while the client is away: the session ends at once (server
    ``disconnect`` once, server-side pending messages fail); the client, when back, is refused the
    resume and starts a new session; its queued messages fail with DeliveryError."""
    async with rig() as r:
        s, c = r.server, r.client
        sid = c.get_sid()
        await r.proxy.partition(0.8)
        await until(lambda: r.srec.n('suspend') == 1 and r.crec.n('suspend') == 1,
                    what='both suspended')
        sd = await s.emit('s2c', 1, to=sid)
        cd = await c.emit('c2s', 1)
        await s.disconnect(sid)
        assert r.srec['disconnect'] == [(sid, s.reason.SERVER_DISCONNECT)]
        with pytest.raises(relio.DeliveryError) as ei:
            await asyncio.wait_for(sd, 10)
        assert ei.value.reason == 'server disconnect'
        assert s.relio_sessions == 0 and s.relio_parked_sessions == 0
        await until(lambda: r.crec.n('connect') == 2, 10, 'new session')
        assert c.get_sid() != sid and r.crec.n('resume') == 0
        with pytest.raises(relio.DeliveryError):
            await asyncio.wait_for(cd, 10)
        assert r.crec.n('disconnect') == 1 and r.srec.n('disconnect') == 1


@pytest.mark.timeout(30)
async def test_rooms_changed_and_broadcasts_while_parked_reach_the_client_after_resume():
    """enter_room/leave_room on a parked session take effect; broadcasts (to all, to a room)
    queue for it and arrive after the resume, in order."""
    got = []

    def setup_client(client, rec):
        @client.on('b')
        async def b(x):
            got.append(x)

    async with rig(setup_client=setup_client) as r:
        s = r.server
        sid = r.client.get_sid()
        await s.enter_room(sid, 'early')
        await r.proxy.partition(0.8)
        await until(lambda: r.srec.n('suspend') == 1, what='server suspend')
        await s.enter_room(sid, 'late')
        await s.leave_room(sid, 'early')
        assert sorted(s.rooms(sid)) == sorted([sid, 'late'])
        ds = [await s.emit('b', 'all-1'), await s.emit('b', 'late-1', to='late'),
              await s.emit('b', 'early-x', to='early'), await s.emit('b', 'all-2')]
        assert [d.recipients for d in ds] == [1, 1, 0, 1]
        await until(lambda: r.srec.n('resume') == 1, 10, 'resume')
        await asyncio.wait_for(asyncio.gather(*ds), 5)
        await until(lambda: len(got) >= 3, what='broadcasts')
        await asyncio.sleep(0.1)
        assert got == ['all-1', 'late-1', 'all-2']
        await asyncio.wait_for(await s.emit('b', 'late-2', to='late'), 5)
        await until(lambda: got[-1:] == ['late-2'], what='room emit after resume')
        assert sorted(s.rooms(sid)) == sorted([sid, 'late'])


STRESS_SEED = 11


@pytest.mark.timeout(40)
async def test_exactly_once_in_order_under_random_cuts_blackholes_and_partitions():
    """The core promise under a seeded mix of faults: numbered emits both ways (and a reply per
    client emit) arrive exactly once, in order, in one session."""
    n_msgs, seconds = 300, 3.0
    s_got, c_got, replies = [], [], []

    def setup(sio, rec):
        @sio.on('c2s')
        async def c2s(sid, i):
            s_got.append((sid, i))
            return i + 1000

    def setup_client(client, rec):
        @client.on('s2c')
        async def s2c(i):
            c_got.append(i)

    async with rig(setup, setup_client) as r:
        c, s = r.client, r.server
        sid = c.get_sid()
        loop = asyncio.get_running_loop()
        # 'hold' blackholes: a 'drop' one can eat a reconnect's websocket handshake, and
        # python-engineio waits for the handshake response without any timeout (not relio's)
        schedule = Schedule.random(STRESS_SEED, seconds, kinds=('cut', 'blackhole', 'partition'),
                                   weights=(2, 2, 1), start=0.3, mean_gap=0.4, min_gap=0.15,
                                   blackhole_seconds=(0.1, 0.6), blackhole_modes=('hold',),
                                   partition_seconds=(0.2, 0.6))
        t0 = loop.time()

        async def pace(i):
            wait = t0 + i * seconds / n_msgs - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)

        async def client_sender():
            ds = []
            for i in range(n_msgs):
                await pace(i)
                ds.append(await c.emit('c2s', i, callback=lambda v: replies.append(v)))
            return ds

        async def server_sender():
            ds = []
            for i in range(n_msgs):
                await pace(i)
                ds.append(await s.emit('s2c', i, to=sid))
            return ds

        _, cds, sds = await asyncio.wait_for(asyncio.gather(
            r.proxy.run_schedule(schedule), client_sender(), server_sender()), seconds + 10)
        r.proxy.clear()
        await asyncio.wait_for(asyncio.gather(*cds, *sds), 20)
        await until(lambda: len(s_got) >= n_msgs and len(c_got) >= n_msgs
                    and len(replies) >= n_msgs, 10, 'everything delivered')
        await asyncio.sleep(0.2)
        assert r.proxy.stats.faults_applied == len(schedule.faults) >= 3
        assert r.proxy.stats.connections_cut >= 1, schedule.summary()
        assert s_got == [(sid, i) for i in range(n_msgs)]
        assert c_got == list(range(n_msgs))
        assert sorted(replies) == [i + 1000 for i in range(n_msgs)]
        assert c.get_sid() == sid
        assert r.srec['connect'] == [(sid,)] and r.crec['connect'] == [(sid,)]
        assert r.srec.n('disconnect') == 0 and r.crec.n('disconnect') == 0
        assert r.srec.n('delivery_error') == 0 and r.crec.n('delivery_error') == 0
        assert r.crec.n('resume') >= 1 and s.session_stats(sid)['resumes'] == r.srec.n('resume')


@pytest.mark.timeout(30)
async def test_two_namespaces_on_one_connection_both_resume():
    got = collections.defaultdict(list)

    def setup(sio, rec):
        for ns in ('/', '/chat'):
            sio.on('connect', namespace=ns, handler=lambda sid, environ, auth, ns=ns:
                   got[('connect', ns)].append(sid))
            sio.on('m', namespace=ns, handler=lambda sid, i, ns=ns: got[('s', ns)].append(i))
            sio.on('relio_resume', namespace=ns,
                   handler=lambda sid, environ, auth, ns=ns: got[('resume', ns)].append(sid))

    def setup_client(client, rec):
        for ns in ('/', '/chat'):
            client.on('m', namespace=ns, handler=lambda i, ns=ns: got[('c', ns)].append(i))
            client.on('relio_resume', namespace=ns,
                      handler=lambda ns=ns: got[('c_resume', ns)].append(1))

    async with rig(setup, setup_client, connect=False) as r:
        c, s = r.client, r.server
        await c.connect(r.proxy.url, transports=['websocket'], namespaces=['/', '/chat'],
                        wait_timeout=5)
        sids = {ns: c.get_sid(ns) for ns in ('/', '/chat')}
        assert None not in sids.values() and sids['/'] != sids['/chat']
        for _round in range(2):
            await r.proxy.partition(0.5)
            await until(lambda: not c.connected, what='client noticed the cut')
            for i in range(20):
                for ns in ('/', '/chat'):
                    await c.emit('m', i, namespace=ns)
                    await s.emit('m', i, to=sids[ns], namespace=ns)
            # wait for the client side too: a cut before the client has the resume reply hits
            # the bug shown by test_resume_interrupted_before_the_reply_still_resumes_later
            await until(lambda: all(len(got[(k, ns)]) == _round + 1
                                    for k in ('resume', 'c_resume') for ns in sids), 10,
                        'both namespaces resumed on both sides')
        await until(lambda: all(len(got[(k, ns)]) >= 40 for k in 'sc' for ns in sids), 10,
                    'all messages')
        await asyncio.sleep(0.1)
        for ns in sids:
            assert got[('s', ns)] == list(range(20)) * 2
            assert got[('c', ns)] == list(range(20)) * 2
            assert got[('connect', ns)] == [sids[ns]]
            assert got[('resume', ns)] == [sids[ns]] * 2 and got[('c_resume', ns)] == [1, 1]
            assert c.get_sid(ns) == sids[ns]
            assert s.session_stats(sids[ns])['resumes'] == 2
        assert s.relio_sessions == 2 and s.relio_parked_sessions == 0
        assert len(s.eio.sockets) == 1         # the dead connections were let go


@pytest.mark.timeout(30)
async def test_server_outbox_limit_raises_queuefull_or_blocks():
    got = []

    def setup_client(client, rec):
        @client.on('n')
        async def n(i):
            got.append(i)

    async with rig(setup_client=setup_client,
                   server_kwargs=dict(relio_config=relio.Config(max_outbox_messages=8))) as r:
        s = r.server
        sid = r.client.get_sid()
        await asyncio.wait_for(await s.emit('n', 'warmup', to=sid), 5)
        await until(lambda: s.session_stats(sid)['outbox_messages'] == 0, what='empty outbox')
        await r.proxy.partition(1.0)
        await until(lambda: r.srec.n('suspend') == 1, what='server suspend')
        ds = [await s.emit('n', i, to=sid, block=False) for i in range(8)]
        with pytest.raises(relio.QueueFull):
            await s.emit('n', 'overflow', to=sid, block=False)
        assert s.session_stats(sid)['outbox_messages'] == 8
        blocked = asyncio.ensure_future(s.emit('n', 8, to=sid))
        await asyncio.sleep(0.2)
        assert not blocked.done()
        d8 = await asyncio.wait_for(blocked, 10)
        await asyncio.wait_for(asyncio.gather(*ds, d8), 10)
        await until(lambda: len(got) >= 10, what='all at the client')
        await asyncio.sleep(0.1)
        assert got == ['warmup', *range(9)]


@pytest.mark.timeout(30)
async def test_client_disconnect_after_emits_sequential_handlers_finish_before_disconnect():
    """With async_handlers=False python-socketio runs each event handler to completion, in order,
    before it processes the next packet - the DISCONNECT included.  relio must keep that: every
    handler of a message sent before disconnect() has finished when ``disconnect`` runs."""
    finished = []
    seen_at_disconnect = []

    def setup(sio, rec):
        @sio.on('n')
        async def n(sid, i):
            await asyncio.sleep(0.002)
            finished.append(i)

        @sio.event
        async def disconnect(sid, reason):
            seen_at_disconnect.append(list(finished))
            rec.add('disconnect', sid, reason)

    async with rig(setup, server_kwargs=dict(async_handlers=False)) as r:
        c = r.client
        deliveries = [await c.emit('n', i) for i in range(100)]
        await c.disconnect()
        assert all(d.delivered for d in deliveries)
        await until(lambda: r.srec.n('disconnect') == 1 and len(finished) == 100, 10,
                    'disconnect and every handler')
        assert finished == list(range(100))
        assert seen_at_disconnect == [list(range(100))]


@pytest.mark.timeout(30)
async def test_resume_interrupted_before_the_reply_still_resumes_later():
    """The link dies while a resume is in progress: the server has accepted the resume (and
    rotated the credential) but its CONNECT reply, which carries the new credential, never
    reaches the client.  The client still holds only the old credential; its next attempt must
    resume the same session, not lose it (and everything pending in it)."""
    got = []
    holder: dict = {}
    resumes = []

    def setup(sio, rec):
        @sio.on('relio_resume')
        async def on_resume(sid, environ, auth):
            resumes.append(sid)
            rec.add('resume', sid)
            if len(resumes) == 1:
                await holder['proxy'].cut()      # the reply to this resume will not arrive

        @sio.on('c2s')
        async def c2s(sid, i):
            got.append((sid, i))

    async with rig(setup) as r:
        holder['proxy'] = r.proxy
        c = r.client
        sid = c.get_sid()
        await r.proxy.cut()
        await until(lambda: r.crec.n('suspend') == 1, what='client suspend')
        d = await c.emit('c2s', 'pending')
        await until(lambda: r.crec.n('resume') == 1 or r.crec.n('connect') == 2, 10,
                    'the client back')
        assert r.crec['connect'] == [(sid,)], 'the session was lost: ' + repr(dict(r.crec.ev))
        assert c.get_sid() == sid and r.crec.n('disconnect') == 0
        await asyncio.wait_for(d, 5)
        await until(lambda: got == [(sid, 'pending')], what='pending message delivered')


@pytest.mark.timeout(30)
async def test_client_disconnect_from_a_relio_resume_handler_ends_the_session():
    """``client.disconnect()`` inside ``relio_resume`` (e.g. the app decides to leave after a
    reconnect) ends the session on both sides, fires the client's ``disconnect`` once with
    python-socketio's client reason, and stops reconnecting."""
    left = asyncio.Event()

    def setup_client(c, rec):
        @c.on('relio_resume')
        async def on_resume():
            rec.add('resume', c.get_sid())
            await c.disconnect()
            left.set()

    async with rig(setup_client=setup_client) as r:
        sid = r.client.get_sid()
        assert await r.proxy.cut() == 1
        await asyncio.wait_for(left.wait(), 10)
        await until(lambda: r.srec.n('disconnect') == 1, 10, 'server disconnect')
        await until(lambda: r.crec.n('disconnect') == 1, 10, 'client disconnect')
        assert r.srec['disconnect'] == [(sid, 'client disconnect')]
        assert r.crec['disconnect'] == [('client disconnect',)]
        assert r.crec.n('resume') == 1 and not r.client.connected
        assert r.server.relio_sessions == 0 and r.client.relio_sessions == {}


@pytest.mark.timeout(30)
async def test_async_simple_client_keeps_its_session_across_a_cut():
    """relio.AsyncSimpleClient is python-socketio's AsyncSimpleClient on a relio client: the sid
    stays, emits made while the link is down arrive once in order, receive() gets every event."""
    got = []

    def setup(sio, rec):
        @sio.on('c2s')
        async def c2s(sid, i):
            got.append(i)
            await sio.emit('s2c', i * 10, to=sid)

        @sio.on('ask')
        async def ask(sid, x):
            return x + 1

    async with rig(setup, connect=False) as r:
        async with relio.AsyncSimpleClient(**CLIENT_KW) as client:
            await client.connect(r.proxy.url, transports=['websocket'], wait_timeout=5)
            sid = client.sid
            await client.emit('c2s', 0)
            assert await client.receive(timeout=5) == ['s2c', 0]
            assert await r.proxy.cut() == 1
            for i in range(1, 4):
                await client.emit('c2s', i)            # queued while the link is down
            assert await client.call('ask', 41, timeout=10) == 42
            assert [await client.receive(timeout=10) for _ in range(3)] == \
                [['s2c', 10], ['s2c', 20], ['s2c', 30]]
            assert got == [0, 1, 2, 3] and client.sid == sid
            assert r.srec.n('connect') == 1 and r.srec.n('resume') >= 1


def test_import_relio_as_socketio_reaches_the_exceptions_module():
    """``import relio as socketio`` then ``socketio.exceptions.X``, as python-socketio apps do (in
    a fresh interpreter: here some other module has imported relio.exceptions already)."""
    import subprocess
    import sys
    code = ("import relio as socketio; "
            "assert socketio.exceptions.ConnectionRefusedError.__module__ == 'socketio.exceptions'; "
            "assert 'AsyncRedisManager' in dir(socketio) and 'AsyncSimpleClient' in dir(socketio)")
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


@pytest.mark.timeout(30)
async def test_a_reply_too_large_fails_the_call_at_once():
    """A handler's reply over max_message_size cannot be sent: the caller's call() raises
    DeliveryError at once (not TimeoutError after its timeout), an emit callback's sender gets
    relio_delivery_error, and the session goes on."""
    def setup(sio, rec):
        @sio.on('big')
        async def big(sid, n):
            return b'x' * n

    async with rig(setup, server_kwargs=dict(
            relio_config=relio.Config(max_message_size=64 * 1024))) as r:
        with pytest.raises(relio.DeliveryError, match='max_message_size'):    # not TimeoutError
            await r.client.call('big', 100_000, timeout=20)
        await r.client.emit('big', 100_000, callback=lambda data: None)
        await until(lambda: r.crec.n('delivery_error') == 2, 10, 'relio_delivery_error')
        assert await r.client.call('big', 10, timeout=10) == b'x' * 10
        assert r.server.session_stats(r.client.get_sid())['peer_requests_pending'] == 0


@pytest.mark.timeout(40)
@pytest.mark.parametrize('before,transport', [
    ('resume_with_queued_emits', 'websocket'), ('refused_resume', 'websocket'),
    ('expiry', 'websocket'), ('expiry', 'polling')])
async def test_client_disconnect_reason_is_client_disconnect(before, transport):
    """Whatever the session went through (a resume with emits queued meanwhile, a refused resume,
    an expired session replaced by a new one), the client's own ``disconnect()`` gives its
    ``disconnect`` handler python-socketio's 'client disconnect', as apps that tell being kicked
    from leaving by the reason expect."""
    refuse = before == 'refused_resume'

    def setup(sio, rec):
        @sio.on('relio_resume')
        async def on_resume(sid, environ, auth):
            rec.add('resume', sid)
            return not refuse

        @sio.on('x')
        async def x(sid, n):
            await asyncio.sleep(0.05)

    kwargs = dict(relio_config=relio.Config(session_ttl=0.3)) if before == 'expiry' else {}
    async with rig(setup, server_kwargs=kwargs, transports=(transport,)) as r:
        if before == 'expiry':
            await r.proxy.partition(1.0)
            await until(lambda: r.crec.n('connect') == 2, 15, 'the new session')
        else:
            assert await r.proxy.cut() == 1
            await until(lambda: r.crec.n('suspend') == 1, 10, 'suspended')
            for i in range(20):
                await r.client.emit('x', i)
            if refuse:
                await until(lambda: r.crec.n('connect') == 2, 10, 'the new session')
            else:
                await until(lambda: r.crec.n('resume') == 1, 10, 'resumed')
        ended_before = r.crec.n('disconnect')
        await r.client.disconnect()
        await until(lambda: r.crec.n('disconnect') == ended_before + 1, 10, 'disconnect')
        assert r.crec['disconnect'][-1] == ('client disconnect',), r.crec['disconnect']
