"""Parity: the same application code on python-socketio and on relio, server and client.

Each test here is one app-level scenario written the python-socketio way, run twice: with
``socketio.AsyncServer`` + ``socketio.AsyncClient`` and with ``relio.AsyncServer`` +
``relio.AsyncClient`` (the ``lib`` fixture), with the same assertions. Where relio deliberately does
better, the test's name says so and it asserts relio's documented behaviour. Real uvicorn server
on 127.0.0.1, websocket unless a test says otherwise.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging

import pytest
import socketio

import relio
from tests.support.servers import serve_socketio
from tests.support.waiting import until

LIBS = [pytest.param(socketio, id='socketio'), pytest.param(relio, id='relio')]
CLIENT_KW = dict(reconnection=False, handle_sigint=False)


@pytest.fixture(params=LIBS)
def lib(request):
    return request.param


@contextlib.asynccontextmanager
async def app(lib, server_kwargs=None, client_kwargs=None, setup=None, namespaces=None,
              transports=('websocket',), auth=None):
    """A server and a connected client of ``lib``; ``setup(sio, client)`` registers handlers."""
    sio = lib.AsyncServer(async_mode='asgi', **(server_kwargs or {}))
    client = lib.AsyncClient(**{**CLIENT_KW, **(client_kwargs or {})})
    if setup is not None:
        setup(sio, client)
    async with serve_socketio(sio) as port:
        try:
            await client.connect(f'http://127.0.0.1:{port}', transports=list(transports),
                                 namespaces=namespaces, auth=auth, wait_timeout=5)
            yield sio, client
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 5)


class LenientJson:
    """A custom json module as apps write one: datetimes (and anything else) as strings."""

    @staticmethod
    def dumps(obj, **kwargs):
        return json.dumps(obj, default=str, **kwargs)

    loads = staticmethod(json.loads)


@pytest.mark.timeout(30)
async def test_custom_json_keeps_binary_binary(lib):
    got = []
    when = datetime.datetime(2026, 12, 2, 10, 0)

    def setup(sio, client):
        @sio.on('up')
        async def up(sid, data):
            got.append(data)
            return {'echo': data['blob'], 'at': when}

    async with app(lib, {'json': LenientJson}, {'json': LenientJson}, setup) as (sio, client):
        reply = await client.call('up', {'blob': b'\x00\x01', 'at': when}, timeout=5)
    assert got == [{'blob': b'\x00\x01', 'at': str(when)}]
    assert reply == {'echo': b'\x00\x01', 'at': str(when)}


@pytest.mark.timeout(30)
@pytest.mark.parametrize('transports', [('websocket',), ('polling',)], ids=['ws', 'polling'])
async def test_msgpack_two_namespaces_events_acks_and_a_clean_disconnect(lib, transports, caplog):
    caplog.set_level(logging.WARNING)
    got = []

    def setup(sio, client):
        for ns in ('/', '/chat'):
            @sio.on('say', namespace=ns)
            async def say(sid, data, ns=ns):
                got.append((ns, data))
                return ns, data

    kw = {'serializer': 'msgpack'}
    async with app(lib, kw, kw, setup, namespaces=['/', '/chat'],
                   transports=transports) as (sio, client):
        assert await client.call('say', b'\x01', timeout=5) == ('/', b'\x01')
        assert await client.call('say', 'hi', namespace='/chat', timeout=5) == ('/chat', 'hi')
        await client.emit('say', {'n': 1}, namespace='/chat')
        await until(lambda: len(got) == 3, 5, 'three events')
    assert got == [('/', b'\x01'), ('/chat', 'hi'), ('/chat', {'n': 1})]
    assert not [r for r in caplog.records if r.name.startswith('relio')], caplog.text


@pytest.mark.timeout(30)
async def test_relio_refuses_a_namespace_too_long_at_connect_python_socketio_serves_it(lib):
    """relio deliberately does worse here, and says so at once: a relio client cannot carry a
    namespace over 127 bytes (UTF-8); python-socketio's can."""
    long_ns = '/' + 'n' * 200
    got = []

    def setup(sio, client):
        @sio.on('e', namespace=long_ns)
        async def e(sid, data):
            got.append(data)

    sio = lib.AsyncServer(async_mode='asgi')
    client = lib.AsyncClient(**CLIENT_KW)
    setup(sio, client)
    async with serve_socketio(sio) as port:
        url = f'http://127.0.0.1:{port}'
        if lib is relio:
            with pytest.raises(ValueError, match='127 bytes'):
                await client.connect(url, namespaces=[long_ns], transports=['websocket'])
            client = relio.AsyncClient(relio=False, **CLIENT_KW)     # plain Socket.IO works
        await client.connect(url, namespaces=[long_ns], transports=['websocket'], wait_timeout=5)
        try:
            await client.emit('e', 1, namespace=long_ns)
            await until(lambda: got == [1], 5, 'the event')
        finally:
            await client.disconnect()


@pytest.mark.timeout(30)
async def test_logger_true_logs_each_event_and_ack_as_python_socketio_does(lib, caplog):
    """``logger=True`` on both sides: python-socketio's per-event lines ("received event",
    "Emitting event", "Received event", "received ack", "Received ack") appear the same."""
    caplog.set_level(logging.INFO)
    server_log, client_log = logging.getLogger('parity.server'), logging.getLogger('parity.client')

    def setup(sio, client):
        @sio.on('ping_me')
        async def ping_me(sid, n):
            await sio.emit('pong', n, to=sid, callback=lambda *a: None)
            return n + 1

        @client.on('pong')
        def pong(n):
            return 'got it'

    async with app(lib, {'logger': server_log}, {'logger': client_log}, setup) as (sio, client):
        sid = client.get_sid()
        assert await client.call('ping_me', 1, timeout=5) == 2
        await until(lambda: 'received ack from' in caplog.text, 5, 'the server ack line')
    lines = {(r.name, r.getMessage().split(' [')[0].split(' from ')[0]) for r in caplog.records}
    for expected in [('parity.client', 'Emitting event "ping_me"'),
                     ('parity.server', 'received event "ping_me"'),
                     ('parity.server', 'emitting event "pong" to ' + sid),
                     ('parity.client', 'Received event "pong"'),
                     ('parity.server', 'received ack'),
                     ('parity.client', 'Received ack')]:
        assert expected in lines, (expected, sorted(lines))


@pytest.mark.timeout(60)
@pytest.mark.parametrize('transports,limit,size', [
    (('polling',), 1_000_000, 2_000_000),          # base64 in one POST over the default 1 MB
    (('websocket',), 10_000, 100_000),             # a limit below relio's 64 KiB chunks
    (('polling',), 10_000, 100_000),
], ids=['polling-2MB', 'ws-small-limit', 'polling-small-limit'])
async def test_relio_does_better_payloads_over_max_http_buffer_size(lib, transports, limit, size):
    """relio deliberately does better: a call carrying more than the server's
    max_http_buffer_size works (its batches are sized for the connection's limit: the server
    says it in the handshake), where python-socketio's connection is dropped and the call fails."""
    got = []

    def setup(sio, client):
        @sio.on('up')
        async def up(sid, blob):
            got.append(len(blob))
            return len(blob)

    async with app(lib, {'max_http_buffer_size': limit}, None, setup,
                   transports=transports) as (sio, client):
        if lib is relio:
            assert await client.call('up', b'\x07' * size, timeout=30) == size
            assert got == [size] and sio.relio_sessions == 1
            assert await client.call('up', b'small', timeout=10) == 5
        else:
            with pytest.raises((socketio.exceptions.TimeoutError,
                                socketio.exceptions.BadNamespaceError,
                                socketio.exceptions.DisconnectedError)):
                await client.call('up', b'\x07' * size, timeout=3)
            assert got == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize('auth', [None, {'token': 'abc'}, {}], ids=['none', 'token', 'empty'])
@pytest.mark.parametrize('server_lib', LIBS)
async def test_connect_handler_sees_the_apps_auth_unchanged(lib, server_lib, auth):
    """Whichever client (python-socketio's or relio's) and server, the server's ``connect``
    handler gets the ``auth`` the application gave (python-socketio passes None for no auth):
    relio asks for its session in the connection URL, not in ``auth``."""
    seen = []
    sio = server_lib.AsyncServer(async_mode='asgi')

    @sio.event
    async def connect(sid, environ, auth):
        seen.append(auth)

    client = lib.AsyncClient(**CLIENT_KW)
    async with serve_socketio(sio) as port:
        await client.connect(f'http://127.0.0.1:{port}', auth=auth, transports=['websocket'],
                             wait_timeout=5)
        try:
            await until(lambda: len(seen) == 1, 5, 'connect')
            if lib is relio:         # a relio session only between two relio peers
                assert (client.session_stats() is not None) == (server_lib is relio)
        finally:
            await client.disconnect()
    assert seen == [auth or None]


class ChatNamespace:
    """Built per library: a class-based namespace written the python-socketio way."""

    @staticmethod
    def make(lib, log):
        class Chat(lib.AsyncNamespace):
            async def on_connect(self, sid, environ, auth):
                await self.save_session(sid, {'name': (auth or {}).get('name', 'anon')})
                await self.enter_room(sid, 'lobby')

            async def on_say(self, sid, text):
                session = await self.get_session(sid)
                await self.emit('said', f"{session['name']}: {text}", room='lobby', skip_sid=sid)
                return 'ok', len(text)                      # an ack with several values

            async def on_disconnect(self, sid, reason):
                log.append(('chat left', reason))
        return Chat('/chat')


@pytest.mark.timeout(60)
@pytest.mark.parametrize('transports', [('websocket',), ('polling',)], ids=['ws', 'polling'])
async def test_a_typical_app_behaves_the_same(lib, transports):
    """Events, acks with several values, ``callback=``, a server ``call()`` back to the client,
    rooms with ``skip_sid``, a class-based namespace with sessions, binary, refused connections
    and disconnect reasons: one app, both libraries, the same observations."""
    log = []
    # a polling client's disconnect() waits for its pending long poll: short pings keep it short
    sio = lib.AsyncServer(async_mode='asgi', ping_interval=0.4, ping_timeout=1.5)
    sio.register_namespace(ChatNamespace.make(lib, log))

    @sio.event
    async def connect(sid, environ, auth):
        if auth and auth.get('banned'):
            raise socketio.exceptions.ConnectionRefusedError('banned', {'retry': False})

    @sio.on('echo')
    async def echo(sid, *args):
        return args

    @sio.on('ask_client')
    async def ask_client(sid, question):
        return await sio.call('question', question, to=sid, timeout=5)

    def make_client(name):
        c = lib.AsyncClient(**CLIENT_KW)

        @c.on('question')
        def question(q):
            return f'{name} says {q}!'

        @c.on('said', namespace='/chat')
        def said(text):
            log.append((name, text))
        return c

    alice, bob = make_client('alice'), make_client('bob')
    async with serve_socketio(sio) as port:
        url = f'http://127.0.0.1:{port}'
        try:
            for c, name in ((alice, 'alice'), (bob, 'bob')):
                await c.connect(url, namespaces=['/', '/chat'], auth={'name': name},
                                transports=list(transports), wait_timeout=5)
            assert await alice.call('echo', (1, 'two', b'\x03'), timeout=5) == \
                (1, 'two', b'\x03')
            got = asyncio.get_running_loop().create_future()
            await alice.emit('echo', {'k': [1, 2]}, callback=lambda *a: got.set_result(a))
            assert await asyncio.wait_for(got, 5) == ({'k': [1, 2]},)
            assert await bob.call('ask_client', 'hi', timeout=5) == 'bob says hi!'
            assert await alice.call('say', 'hello', namespace='/chat', timeout=5) == ('ok', 5)
            await until(lambda: ('bob', 'alice: hello') in log, 5, 'the room message')
            assert ('alice', 'alice: hello') not in log            # skip_sid

            banned = lib.AsyncClient(**CLIENT_KW)
            errors = []
            banned.on('connect_error', lambda data: errors.append(data))
            with pytest.raises(socketio.exceptions.ConnectionError):
                await banned.connect(url, auth={'banned': True}, transports=list(transports),
                                     wait_timeout=5)
            assert errors == [{'message': 'banned', 'data': {'retry': False}}]
        finally:
            await alice.disconnect()
            await bob.disconnect()
    await until(lambda: len([e for e in log if e[0] == 'chat left']) == 2, 10, 'both left')
    assert {e[1] for e in log if e[0] == 'chat left'} <= {'client disconnect', 'transport close'}
