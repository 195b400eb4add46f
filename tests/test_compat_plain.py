"""Plain python-socketio clients and applications behave the same on relio.AsyncServer.

Every test here runs twice, once against ``socketio.AsyncServer`` and once against
``relio.AsyncServer``, with identical code and identical assertions. The server is a real uvicorn
server on 127.0.0.1 (``tests.support.servers``) and the client is the real
``socketio.AsyncClient`` (never ``relio.AsyncClient``), so relio's handshake is never requested and
relio must take python-socketio's own code paths for these connections.

Covered: ``on``/``event`` decorators, new and legacy ``connect``/``disconnect`` handler
signatures, refusing connections (``return False``, ``ConnectionRefusedError`` with data, the
builtin exception, ``always_connect=True``), ``emit``/``send``/callbacks/``call()`` both ways
(including the timeout cases), rooms and ``skip_sid``, user sessions, ``get_environ``,
``transport``, namespaces (``/``, ``/chat``, ``namespaces='*'``), class-based namespaces on both
sides, catch-all ``'*'`` handlers, binary payloads, tuples as several arguments, server and client
disconnects with their reasons, ``async_handlers=False``, ``shutdown()``, the transports
(websocket, polling, polling+upgrade), and one application module that is run unchanged on
``socketio`` and on ``relio`` with equal observed event logs.

Ordering and negative checks ("X was not delivered") use a barrier: an event emitted after X to
the same connection; once the barrier arrived, X would have arrived before it (Socket.IO delivers in
order per connection).
"""
from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import socketio
from socketio import exceptions as sio_exc

import relio
from tests.support.servers import serve_socketio, start_asgi
from tests.support.waiting import until

SERVER_CLASSES = [
    pytest.param(socketio.AsyncServer, id='socketio'),
    pytest.param(relio.AsyncServer, id='relio'),
]

WS = ('websocket',)

# What a server's ``disconnect`` handler gets when a python-socketio client calls
# ``disconnect()``. Over websocket, python-socketio 5.x's client queues its DISCONNECT and
# engine.io CLOSE packets and then closes the websocket before its write task ever sends them, so
# the server (python-socketio's as well as relio's) sees the transport close; only over long
# polling does the server get the packets and report 'client disconnect'.
WS_CLIENT_DISCONNECT = 'transport close'
POLLING_CLIENT_DISCONNECT = 'client disconnect'
# A polling-only client's disconnect() waits for its pending long poll, which the server holds for
# up to ping_interval + ping_timeout: short values keep those tests fast.
FAST_PING = {'ping_interval': 0.4, 'ping_timeout': 1.5}


@pytest.fixture(params=SERVER_CLASSES)
def server_cls(request):
    return request.param


def make_server(server_cls, **kwargs):
    return server_cls(async_mode='asgi', **kwargs)


def new_client(**kwargs) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False, handle_sigint=False, **kwargs)
    assert type(client) is socketio.AsyncClient     # never relio's client in this file
    return client


async def close_client(client: socketio.AsyncClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.disconnect(), 5)


@contextlib.asynccontextmanager
async def connected(port, client=None, *, transports=WS, namespaces=None, auth=None,
                    headers=None):
    client = client or new_client()
    try:
        await client.connect(f'http://127.0.0.1:{port}', headers=headers or {}, auth=auth,
                             transports=list(transports) if transports else None,
                             namespaces=namespaces, wait_timeout=5)
        yield client
    finally:
        await close_client(client)


class Barrier:
    """Emit a marker to clients and wait until each has it (everything emitted to a client
    before the marker has then been received by it)."""

    def __init__(self, sio):
        self.sio = sio
        self.count = 0

    def install(self, client, log: list, namespace='/'):
        @client.on('barrier', namespace=namespace)
        def _barrier(n):
            log.append(('barrier', n))

    async def __call__(self, *logs: list, to=None, namespace='/'):
        self.count += 1
        n = self.count
        if to is None:
            await self.sio.emit('barrier', n, namespace=namespace)
        else:
            for sid in to:
                await self.sio.emit('barrier', n, to=sid, namespace=namespace)
        await until(lambda: all(('barrier', n) in log for log in logs), what=f'barrier {n}')
        return ('barrier', n)


# ------------------------------------------------------------------------------------------------
# decorators, connect(sid, environ, auth), emit/send both ways, environ, transports, wire format
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(30)
@pytest.mark.parametrize('transports', [WS, None, ('polling',)],
                         ids=['websocket', 'polling+upgrade', 'polling'])
async def test_decorators_emit_send_environ_transport(server_cls, transports):
    polling_only = transports == ('polling',)
    sio = make_server(server_cls, **(FAST_PING if polling_only else {}))
    slog: list = []
    environs: dict = {}

    @sio.event
    async def connect(sid, environ, auth):
        environs[sid] = environ
        slog.append(('connect', auth, environ.get('HTTP_X_APP'), environ['REQUEST_METHOD']))

    @sio.on('chat')
    async def chat(sid, data):
        slog.append(('chat', data))
        await sio.emit('chat_reply', {'echo': data}, to=sid)

    @sio.event
    def message(sid, data):           # a plain (non-async) handler
        slog.append(('message', data))

    @sio.event
    async def disconnect(sid, reason):
        slog.append(('disconnect', reason))

    client = new_client()
    clog: list = []
    raw: list = []
    original = client._handle_eio_message

    async def spy(data):              # every Socket.IO message the client receives, raw
        raw.append(data)
        return await original(data)
    client.eio.on('message', spy)

    @client.event
    async def connect():
        clog.append('connect')

    @client.on('chat_reply')
    async def on_chat_reply(data):
        clog.append(('chat_reply', data))

    @client.event
    def message(data):
        clog.append(('message', data))

    async with serve_socketio(sio) as port:
        async with connected(port, client, transports=transports, auth={'token': 't1'},
                             headers={'X-App': 'demo'}):
            sid = client.get_sid()
            assert clog == ['connect']
            assert slog == [('connect', {'token': 't1'}, 'demo', 'GET')]
            assert sio.get_environ(sid) is environs[sid]
            # The CONNECT reply is exactly python-socketio's: {"sid": ...}, nothing added.
            assert raw[0][0] == '0'
            assert json.loads(raw[0][1:]) == {'sid': sid}

            await client.emit('chat', {'n': 1, 'text': 'hé'})
            await until(lambda: ('chat_reply', {'echo': {'n': 1, 'text': 'hé'}}) in clog,
                        what='chat_reply')
            await client.send('hello')
            await until(lambda: ('message', 'hello') in slog, what='server message')
            await sio.send('srv-hello', to=sid)
            await until(lambda: ('message', 'srv-hello') in clog, what='client message')

            if polling_only:
                assert client.transport() == 'polling'
                assert sio.transport(sid) == 'polling'
            else:
                await until(lambda: client.transport() == 'websocket', what='client upgrade')
                await until(lambda: sio.transport(sid) == 'websocket', what='server upgrade')
                # traffic still flows after the upgrade
                await client.emit('chat', 'after-upgrade')
                await until(lambda: ('chat_reply', {'echo': 'after-upgrade'}) in clog,
                            what='post-upgrade reply')
            assert clog[:3] == ['connect', ('chat_reply', {'echo': {'n': 1, 'text': 'hé'}}),
                                ('message', 'srv-hello')]
            # No relio frame (raw binary) ever reaches a plain client; all packets are text.
            assert all(isinstance(m, str) for m in raw), raw
        reason = POLLING_CLIENT_DISCONNECT if polling_only else WS_CLIENT_DISCONNECT
        await until(lambda: ('disconnect', reason) in slog, what='server disconnect')
    assert slog.count(('disconnect', reason)) == 1
    assert [e for e in slog if e[0] == 'disconnect'] == [('disconnect', reason)]


# ------------------------------------------------------------------------------------------------
# legacy handler signatures
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_legacy_connect_and_disconnect_signatures(server_cls):
    sio = make_server(server_cls)
    slog: list = []

    @sio.event
    def connect(sid, environ):                  # legacy: no auth argument
        slog.append(('connect', sid, 'REQUEST_METHOD' in environ))

    @sio.event
    def disconnect(sid):                        # legacy: no reason argument
        slog.append(('disconnect', sid))

    client = new_client()
    clog: list = []

    @client.event
    def disconnect():                           # legacy client handler: no reason
        clog.append('disconnect')

    async with serve_socketio(sio) as port:
        async with connected(port, client):
            sid = client.get_sid()
            assert slog == [('connect', sid, True)]
        await until(lambda: len(slog) == 2, what='legacy disconnect')
        assert slog == [('connect', sid, True), ('disconnect', sid)]
        assert clog == ['disconnect']


# ------------------------------------------------------------------------------------------------
# refusing connections
# ------------------------------------------------------------------------------------------------
REFUSALS = {
    'return-false': (lambda: False, {'message': 'Connection rejected by server'}),
    'refused-no-args': (sio_exc.ConnectionRefusedError(),
                        {'message': 'Connection rejected by server'}),
    'refused-with-data': (sio_exc.ConnectionRefusedError('bad token', {'code': 401}),
                          {'message': 'bad token', 'data': {'code': 401}}),
    'refused-many-args': (sio_exc.ConnectionRefusedError('nope', 'a', 2),
                          {'message': 'nope', 'data': ['a', 2]}),
    'builtin-refused': (ConnectionRefusedError('x'),
                        {'message': 'Connection refused by server'}),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize('how', list(REFUSALS))
async def test_refuse_connection(server_cls, how):
    refusal, expected = REFUSALS[how]
    sio = make_server(server_cls)
    slog: list = []

    @sio.event
    async def connect(sid, environ, auth):
        slog.append(('connect', auth))
        if auth.get('ok'):
            return True
        if callable(refusal):
            return refusal()
        raise refusal

    @sio.event
    def disconnect(sid, reason):
        slog.append(('disconnect', reason))

    client = new_client()
    clog: list = []

    @client.event
    def connect_error(data):
        clog.append(('connect_error', data))

    @client.event
    def connect():
        clog.append('connect')

    async with serve_socketio(sio) as port:
        try:
            with pytest.raises(sio_exc.ConnectionError, match='/'):
                await client.connect(f'http://127.0.0.1:{port}', transports=['websocket'],
                                     auth={'ok': False}, wait_timeout=5)
            assert clog == [('connect_error', expected)]
            assert client.connected is False
            assert slog == [('connect', {'ok': False})]
            assert not sio.manager.rooms.get('/', {}).get(None)    # nobody connected
        finally:
            await close_client(client)
        # the same server accepts an acceptable client
        ok = new_client()
        async with connected(port, ok, auth={'ok': True}):
            assert sio.manager.is_connected(ok.get_sid(), '/')
        await until(lambda: ('disconnect', WS_CLIENT_DISCONNECT) in slog, what='disconnect')
    # the refused connection never produced a disconnect event
    assert slog == [('connect', {'ok': False}), ('connect', {'ok': True}),
                    ('disconnect', WS_CLIENT_DISCONNECT)]


@pytest.mark.timeout(20)
async def test_refuse_one_namespace_of_two(server_cls):
    sio = make_server(server_cls)

    @sio.event
    def connect(sid, environ, auth):
        return True

    @sio.on('connect', namespace='/admin')
    def admin_connect(sid, environ, auth):
        raise sio_exc.ConnectionRefusedError('admins only', {'need': 'admin'})

    client = new_client()
    errors: list = []

    @client.on('connect_error', namespace='/admin')
    def admin_error(data):
        errors.append(data)

    async with serve_socketio(sio) as port:
        try:
            with pytest.raises(sio_exc.ConnectionError,
                               match='One or more namespaces failed to connect: /admin'):
                await client.connect(f'http://127.0.0.1:{port}', transports=['websocket'],
                                     namespaces=['/', '/admin'], wait_timeout=5)
            assert errors == [{'message': 'admins only', 'data': {'need': 'admin'}}]
            # an unknown namespace is refused by python-socketio itself
            unknown = new_client()
            unknown_errors: list = []
            unknown.on('connect_error', lambda data: unknown_errors.append(data),
                       namespace='/nope')
            try:
                with pytest.raises(sio_exc.ConnectionError, match='/nope'):
                    await unknown.connect(f'http://127.0.0.1:{port}', transports=['websocket'],
                                          namespaces=['/nope'], wait_timeout=5)
                assert unknown_errors == ['Unable to connect']
            finally:
                await close_client(unknown)
        finally:
            await close_client(client)


@pytest.mark.timeout(20)
async def test_always_connect(server_cls):
    sio = make_server(server_cls, always_connect=True)
    slog: list = []
    gates = {'bad': asyncio.Event()}

    @sio.event
    async def connect(sid, environ, auth):
        # With always_connect the client is already connected here: it can be emitted to.
        await sio.emit('welcome', auth['name'], to=sid)
        slog.append(('connect', auth['name']))
        if not auth['ok']:
            await asyncio.wait_for(gates[auth['name']].wait(), 5)
            return False

    @sio.event
    def disconnect(sid, reason):
        slog.append(('disconnect', reason))

    def make(name):
        client = new_client()
        log: list = []
        client.on('welcome', lambda who: log.append(('welcome', who)))
        client.on('connect', lambda: log.append('connect'))
        client.on('connect_error', lambda data: log.append(('connect_error', data)))
        client.on('disconnect', lambda reason: log.append(('disconnect', reason)))
        return client, log

    good, glog = make('good')
    bad, blog = make('bad')
    async with serve_socketio(sio) as port:
        try:
            async with connected(port, good, auth={'name': 'good', 'ok': True}):
                await until(lambda: ('welcome', 'good') in glog, what='welcome good')
                assert glog == ['connect', ('welcome', 'good')]
                # The refused client is connected first (always_connect), gets the welcome,
                # then is disconnected with the refusal.
                await bad.connect(f'http://127.0.0.1:{port}', transports=['websocket'],
                                  auth={'name': 'bad', 'ok': False}, wait_timeout=5)
                await until(lambda: ('welcome', 'bad') in blog, what='welcome bad')
                bad_sid = bad.get_sid()
                assert sio.manager.is_connected(bad_sid, '/')
                gates['bad'].set()
                await until(lambda: ('disconnect', 'server disconnect') in blog, what='bad dropped')
                await until(lambda: not sio.manager.is_connected(bad_sid, '/'), what='bad gone')
                assert blog == ['connect', ('welcome', 'bad'), ('disconnect', 'server disconnect')]
                await until(lambda: not bad.connected, what='bad client state')
                # the accepted client is unaffected
                assert sio.manager.is_connected(good.get_sid(), '/')
            await until(lambda: ('disconnect', WS_CLIENT_DISCONNECT) in slog,
                        what='good disconnect')
        finally:
            await close_client(bad)
    # python-socketio fires no disconnect for a connection refused under always_connect
    assert slog == [('connect', 'good'), ('connect', 'bad'), ('disconnect', WS_CLIENT_DISCONNECT)]


# ------------------------------------------------------------------------------------------------
# callbacks, call(), tuples, binary
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_emit_with_callback_both_ways(server_cls):
    sio = make_server(server_cls)

    @sio.on('sum')
    async def sum_(sid, a, b):
        return a + b

    @sio.on('pair')
    def pair(sid):
        return ('x', 1)

    @sio.on('nothing')
    def nothing(sid):
        return None

    @sio.event
    def message(sid, data):
        return 'server got ' + data

    client = new_client()

    @client.on('double')
    def double(x):
        return x * 2

    @client.on('multi')
    async def multi():
        return ('a', [1], {'k': 'v'})

    @client.on('silent')
    def silent():
        pass

    @client.event
    async def message(data):
        return 'client got ' + data

    got: list = []
    async with serve_socketio(sio) as port:
        async with connected(port, client):
            sid = client.get_sid()
            # client -> server, callbacks receive the handler's return value as arguments
            await client.emit('sum', (2, 3), callback=lambda *a: got.append(('sum', a)))
            await client.emit('pair', callback=lambda *a: got.append(('pair', a)))
            await client.emit('nothing', callback=lambda *a: got.append(('nothing', a)))
            await client.send('hi', callback=lambda *a: got.append(('send', a)))
            await until(lambda: len(got) == 4, what='client callbacks')
            assert sorted(got) == [('nothing', ()), ('pair', ('x', 1)),
                                   ('send', ('server got hi',)), ('sum', (5,))]

            # server -> client, sync and async callbacks
            sgot: list = []

            async def async_cb(*args):
                sgot.append(('multi', args))
            await sio.emit('double', 21, to=sid, callback=lambda *a: sgot.append(('double', a)))
            await sio.emit('multi', to=sid, callback=async_cb)
            await sio.emit('silent', to=sid, callback=lambda *a: sgot.append(('silent', a)))
            await sio.send('yo', to=sid, callback=lambda *a: sgot.append(('send', a)))
            await until(lambda: len(sgot) == 4, what='server callbacks')
            assert sorted(sgot, key=repr) == sorted([
                ('double', (42,)), ('multi', ('a', [1], {'k': 'v'})), ('silent', ()),
                ('send', ('client got yo',))], key=repr)


@pytest.mark.timeout(20)
async def test_call_both_ways_and_timeouts(server_cls):
    sio = make_server(server_cls)
    server_gate = asyncio.Event()

    @sio.on('sum')
    async def sum_(sid, a, b):
        return a + b

    @sio.on('pair')
    def pair(sid):
        return ('x', 1)

    @sio.on('nothing')
    def nothing(sid):
        return None

    @sio.on('slow')
    async def slow(sid):
        await asyncio.wait_for(server_gate.wait(), 5)
        return 'late'

    client = new_client()
    client_gate = asyncio.Event()

    @client.on('double')
    def double(x):
        return x * 2

    @client.on('multi')
    async def multi():
        return ('a', [1], {'k': 'v'})

    @client.on('silent')
    def silent():
        pass

    @client.on('slow')
    async def client_slow():
        await asyncio.wait_for(client_gate.wait(), 5)
        return 'late'

    async with serve_socketio(sio) as port:
        async with connected(port, client):
            sid = client.get_sid()
            loop = asyncio.get_running_loop()
            assert await client.call('sum', (2, 3), timeout=5) == 5
            assert await client.call('pair', timeout=5) == ('x', 1)
            assert await client.call('nothing', timeout=5) is None
            # the server never acknowledges an event no handler took: the call times out
            t0 = loop.time()
            with pytest.raises(sio_exc.TimeoutError):
                await client.call('nobody-handles-this', timeout=0.3)
            assert loop.time() - t0 >= 0.29
            # a handler that does not return in time
            with pytest.raises(sio_exc.TimeoutError):
                await client.call('slow', timeout=0.3)
            server_gate.set()

            assert await sio.call('double', 21, to=sid, timeout=5) == 42
            assert await sio.call('double', 'ab', sid=sid, timeout=5) == 'abab'
            assert await sio.call('multi', to=sid, timeout=5) == ('a', [1], {'k': 'v'})
            assert await sio.call('silent', to=sid, timeout=5) is None
            # python-socketio's client acknowledges even events it has no handler for
            assert await sio.call('client-has-no-handler', to=sid, timeout=5) is None
            t0 = loop.time()
            with pytest.raises(sio_exc.TimeoutError):
                await sio.call('slow', to=sid, timeout=0.3)
            assert loop.time() - t0 >= 0.29
            client_gate.set()
            with pytest.raises(ValueError):
                await sio.call('double', 1)             # call() cannot broadcast
            # the connection is healthy after the timeouts
            assert await client.call('sum', (1, 1), timeout=5) == 2
            assert await sio.call('double', 4, to=sid, timeout=5) == 8


@pytest.mark.timeout(20)
async def test_argument_conventions(server_cls):
    """A tuple is several arguments, a list one argument, None no argument; both ways."""
    sio = make_server(server_cls)
    slog: list = []
    sio.on('args', lambda sid, *args: slog.append(args))
    client = new_client()
    clog: list = []
    client.on('args', lambda *args: clog.append(args))
    barrier = Barrier(sio)
    barrier.install(client, clog)

    async with serve_socketio(sio) as port:
        async with connected(port, client):
            sid = client.get_sid()
            for data in [('a', 1, [2], {'d': 3}), ['a', 1], None, 'one', ((1, 2),), {'k': None}]:
                await sio.emit('args', data, to=sid)
                await client.emit('args', data)
            await until(lambda: len(slog) == 6, what='server args')
            mark = await barrier(clog)
            expected = [('a', 1, [2], {'d': 3}), (['a', 1],), (), ('one',), ([1, 2],),
                        ({'k': None},)]
            assert clog == [*expected, mark]
            assert slog == expected


@pytest.mark.timeout(20)
async def test_binary_payloads(server_cls):
    sio = make_server(server_cls)
    blob = bytes(range(256)) * 400          # 100 KiB
    slog: list = []

    @sio.on('upload')
    async def upload(sid, meta, parts):
        slog.append((meta, parts))
        return {'size': len(parts[1]), 'head': parts[1][:4]}, [b'\x00', b'']

    @sio.on('echo')
    async def echo(sid, data):
        return data

    client = new_client()
    clog: list = []

    @client.on('download')
    def download(doc):
        clog.append(doc)
        return doc['files'][0]

    async with serve_socketio(sio) as port:
        async with connected(port, client):
            sid = client.get_sid()
            meta = {'name': 'x', 'thumb': b'\xff\xd8', 'nested': {'deep': [b'a', 1]}}
            parts = ['text', blob, {'b': b''}]
            got = await client.call('upload', (meta, parts), timeout=5)
            assert got == ({'size': len(blob), 'head': blob[:4]}, [b'\x00', b''])
            assert slog == [(meta, parts)]
            # several binary emits back to back, both directions at once
            payloads = [{'i': i, 'data': bytes([i]) * (i * 1000 + 1)} for i in range(8)]
            # (one call per direction at a time: python-socketio's emit is not meant to be
            # used concurrently on one connection)
            answers = []
            for up, down in zip(payloads[:4], payloads[4:]):
                answers += await asyncio.gather(
                    client.call('echo', up, timeout=5),
                    sio.call('download', {'files': [down['data'], b'x'], 'i': down['i']},
                             to=sid, timeout=5))
            assert answers == [x for up, down in zip(payloads[:4], payloads[4:])
                               for x in (up, down['data'])]
            assert sorted(d['i'] for d in clog) == [4, 5, 6, 7]
            # broadcast of a binary payload
            await sio.emit('download', {'files': [b'\x01\x02'], 'i': 99})
            await until(lambda: any(d['i'] == 99 for d in clog), what='binary broadcast')
            assert clog[-1] == {'files': [b'\x01\x02'], 'i': 99}


# ------------------------------------------------------------------------------------------------
# rooms, broadcast, skip_sid
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(25)
async def test_rooms_broadcast_skip_sid(server_cls):
    sio = make_server(server_cls)

    @sio.on('shout')
    async def shout(sid, text):
        await sio.emit('news', ('shout', text), skip_sid=sid)

    @sio.on('join')
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return sorted(sio.rooms(sid))

    barrier = Barrier(sio)
    clients, logs = {}, {}
    for name in 'abc':
        c = new_client()
        log: list = []
        c.on('news', lambda *args, log=log: log.append(args))
        barrier.install(c, log)
        clients[name], logs[name] = c, log
    la, lb, lc = logs['a'], logs['b'], logs['c']

    async with serve_socketio(sio) as port:
        async with contextlib.AsyncExitStack() as stack:
            for name in 'abc':
                await stack.enter_async_context(connected(port, clients[name]))
            a, b, c = (clients[n].get_sid() for n in 'abc')
            assert sorted(sio.rooms(a)) == [a]
            assert await clients['a'].call('join', 'red', timeout=5) == sorted([a, 'red'])
            await sio.enter_room(b, 'red')
            await sio.enter_room(a, 'blue')
            await sio.enter_room(c, 'blue')
            assert sorted(sio.rooms(a)) == sorted([a, 'red', 'blue'])
            assert sorted(sio.rooms(b)) == sorted([b, 'red'])

            await sio.emit('news', 'r1', to='red')
            await sio.emit('news', 'r2', room='red', skip_sid=a)
            await sio.emit('news', 'all-but-ab', skip_sid=[a, b])
            await sio.emit('news', 'red-or-blue', to=['red', 'blue'])
            await sio.send('sent-to-blue', to='blue')       # event 'message', not 'news'
            await sio.emit('news', 'to-sid', to=c)
            m1 = await barrier(la, lb, lc)
            assert la == [('r1',), ('red-or-blue',), m1]
            assert lb == [('r1',), ('r2',), ('red-or-blue',), m1]
            assert lc == [('all-but-ab',), ('red-or-blue',), ('to-sid',), m1]

            await clients['b'].emit('shout', 'hey')
            await until(lambda: ('shout', 'hey') in la and ('shout', 'hey') in lc, what='shout')
            m2 = await barrier(la, lb, lc)
            assert la[-2:] == [('shout', 'hey'), m2]
            assert lb[-2:] == [m1, m2]                       # the sender was skipped
            assert lc[-2:] == [('shout', 'hey'), m2]

            await sio.leave_room(b, 'red')
            assert sorted(sio.rooms(b)) == [b]
            await sio.emit('news', 'red-after-leave', to='red')
            m3 = await barrier(la, lb, lc)
            assert la[-2:] == [('red-after-leave',), m3]
            assert lb[-2:] == [m2, m3]
            await sio.close_room('blue')
            assert sorted(sio.rooms(a)) == sorted([a, 'red'])
            assert sorted(sio.rooms(c)) == [c]
            await sio.emit('news', 'blue-after-close', to='blue')
            await sio.emit('news', 'nobody', to='no-such-room')
            await sio.emit('news', 'nobody', namespace='/no-such-namespace')
            m4 = await barrier(la, lb, lc)
            assert la[-2:] == [m3, m4] and lb[-2:] == [m3, m4] and lc[-2:] == [m3, m4]
            # a disconnected client leaves every room
            await clients['c'].disconnect()
            await until(lambda: not sio.manager.is_connected(c, '/'), what='c gone')
            assert sio.rooms(c) == []


# ------------------------------------------------------------------------------------------------
# sessions
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_user_sessions(server_cls):
    sio = make_server(server_cls)

    @sio.event
    async def connect(sid, environ, auth):
        await sio.save_session(sid, {'user': auth['user']})

    @sio.on('connect', namespace='/chat')
    async def chat_connect(sid, environ, auth):
        assert await sio.get_session(sid, namespace='/chat') == {}
        await sio.save_session(sid, {'room': 'lobby'}, namespace='/chat')

    @sio.on('whoami')
    async def whoami(sid):
        return (await sio.get_session(sid))['user']

    @sio.on('incr')
    async def incr(sid):
        async with sio.session(sid) as session:
            session['n'] = session.get('n', 0) + 1
            return session['n']

    @sio.on('where', namespace='/chat')
    async def where(sid):
        async with sio.session(sid, namespace='/chat') as session:
            return session['room']

    alice, bob = new_client(), new_client()
    async with serve_socketio(sio) as port:
        async with connected(port, alice, auth={'user': 'alice'}, namespaces=['/', '/chat']), \
                connected(port, bob, auth={'user': 'bob'}):
            assert await alice.call('whoami', timeout=5) == 'alice'
            assert await bob.call('whoami', timeout=5) == 'bob'
            assert [await alice.call('incr', timeout=5) for _ in range(3)] == [1, 2, 3]
            assert await bob.call('incr', timeout=5) == 1
            assert await alice.call('where', namespace='/chat', timeout=5) == 'lobby'
            a = alice.get_sid()
            assert await sio.get_session(a) == {'user': 'alice', 'n': 3}
            assert await sio.get_session(alice.get_sid('/chat'), namespace='/chat') == \
                {'room': 'lobby'}
            async with sio.session(a) as session:
                session['user'] = 'alice2'
            assert await alice.call('whoami', timeout=5) == 'alice2'


# ------------------------------------------------------------------------------------------------
# namespaces
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_namespaces_and_namespace_disconnect(server_cls):
    sio = make_server(server_cls)
    slog: list = []

    @sio.on('hello')
    def hello_root(sid, x):
        return ('root', sid, x)

    @sio.on('hello', namespace='/chat')
    def hello_chat(sid, x):
        return ('chat', sid, x)

    @sio.on('disconnect', namespace='/chat')
    def chat_disconnect(sid, reason):
        slog.append(('chat-disconnect', sid, reason))

    @sio.on('disconnect')
    def root_disconnect(sid, reason):
        slog.append(('root-disconnect', sid, reason))

    client = new_client()
    clog: list = []
    client.on('ping', lambda x: clog.append(('root', x)))
    client.on('ping', lambda x: clog.append(('chat', x)), namespace='/chat')
    client.on('disconnect', lambda reason: clog.append(('root-dc', reason)))
    client.on('disconnect', lambda reason: clog.append(('chat-dc', reason)), namespace='/chat')
    barrier = Barrier(sio)
    barrier.install(client, clog)

    async with serve_socketio(sio) as port:
        async with connected(port, client, namespaces=['/', '/chat']):
            root_sid, chat_sid = client.get_sid('/'), client.get_sid('/chat')
            assert root_sid != chat_sid
            assert sio.manager.is_connected(chat_sid, '/chat')
            assert not sio.manager.is_connected(chat_sid, '/')
            assert await client.call('hello', 1, timeout=5) == ('root', root_sid, 1)
            assert await client.call('hello', 2, namespace='/chat', timeout=5) == \
                ('chat', chat_sid, 2)
            await sio.emit('ping', 'p-chat', namespace='/chat')
            await sio.emit('ping', 'p-root')
            await sio.emit('ping', 'p-chat-sid', to=chat_sid, namespace='/chat')
            await sio.emit('ping', 'wrong-ns', to=chat_sid)     # chat sid is not in '/'
            mark = await barrier(clog)
            assert clog == [('chat', 'p-chat'), ('root', 'p-root'), ('chat', 'p-chat-sid'), mark]

            await sio.disconnect(chat_sid, namespace='/chat')
            await until(lambda: ('chat-dc', 'server disconnect') in clog, what='chat dc')
            assert slog == [('chat-disconnect', chat_sid, 'server disconnect')]
            assert client.connected and list(client.namespaces) == ['/']
            assert await client.call('hello', 3, timeout=5) == ('root', root_sid, 3)
            assert ('root-dc', 'server disconnect') not in clog
        await until(lambda: len(slog) == 2, what='root disconnect')
        assert slog[1] == ('root-disconnect', root_sid, WS_CLIENT_DISCONNECT)


@pytest.mark.timeout(20)
async def test_namespaces_star_and_catch_all(server_cls):
    sio = make_server(server_cls, namespaces='*')
    slog: list = []

    @sio.on('connect', namespace='*')
    def any_connect(namespace, sid, environ, auth):
        slog.append(('connect', namespace, auth))
        if namespace == '/forbidden':
            return False

    @sio.on('*', namespace='*')
    def any_event_any_ns(event, namespace, sid, *args):
        slog.append(('any', event, namespace, args))
        return event, namespace, len(args)

    @sio.on('*')                     # default namespace catch-all takes priority over '*' ns
    def any_event_root(event, sid, *args):
        slog.append(('root-any', event, args))
        return 'root:' + event

    @sio.on('known', namespace='/a')  # a specific handler takes priority over catch-alls
    def known_a(sid, x):
        return 'known:' + str(x)

    client = new_client()
    clog: list = []
    client.on('*', lambda event, *args: clog.append(('root-any', event, args)))
    client.on('*', lambda event, ns, *args: clog.append(('any', event, ns, args)), namespace='*')
    client.on('special', lambda *args: clog.append(('special', args)), namespace='/b')
    barrier = Barrier(sio)
    barrier.install(client, clog)    # a specific handler wins over the client's catch-alls

    async with serve_socketio(sio) as port:
        async with connected(port, client, namespaces=['/', '/a', '/b'], auth={'k': 1}):
            assert sorted(x[1] for x in slog if x[0] == 'connect') == ['/', '/a', '/b']
            assert await client.call('foo', (1, 2), namespace='/a', timeout=5) == \
                ('foo', '/a', 2)
            assert await client.call('known', 5, namespace='/a', timeout=5) == 'known:5'
            assert await client.call('bar', namespace='/', timeout=5) == 'root:bar'
            await sio.emit('evt', ('x', b'\x00'), namespace='/a')
            await sio.emit('evt', 'r')
            await sio.emit('special', 's', namespace='/b')
            await sio.emit('other', namespace='/a')
            mark = await barrier(clog)           # barrier goes to the root catch-all
            assert clog == [('any', 'evt', '/a', ('x', b'\x00')), ('root-any', 'evt', ('r',)),
                            ('special', ('s',)), ('any', 'other', '/a', ()), mark]
            # catch-alls never see connect/disconnect
            assert [x for x in slog if x[0] != 'connect'] == [
                ('any', 'foo', '/a', (1, 2)), ('root-any', 'bar', ())]
            forbidden = new_client()
            try:
                with pytest.raises(sio_exc.ConnectionError):
                    await forbidden.connect(f'http://127.0.0.1:{port}', transports=['websocket'],
                                            namespaces=['/forbidden'], wait_timeout=5)
            finally:
                await close_client(forbidden)
    assert ('connect', '/forbidden', None) in slog
    assert not any(x[0] in ('any', 'root-any') and x[1] in ('connect', 'disconnect')
                   for x in slog)


# ------------------------------------------------------------------------------------------------
# class-based namespaces
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_class_based_namespaces(server_cls):
    sio = make_server(server_cls)
    slog: list = []

    class ChatNamespace(socketio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            slog.append(('connect', auth['nick']))
            await self.save_session(sid, {'nick': auth['nick']})
            await self.enter_room(sid, 'all')

        def on_disconnect(self, sid, reason):
            slog.append(('disconnect', reason))

        async def on_say(self, sid, text):
            nick = (await self.get_session(sid))['nick']
            await self.emit('said', {'nick': nick, 'text': text}, room='all', skip_sid=sid)
            return 'ok'

        async def on_ask(self, sid, question):
            return await self.call('question', question, to=sid, timeout=5)

        def on_rooms(self, sid):
            return sorted(self.rooms(sid))

        async def on_leave(self, sid):
            await self.leave_room(sid, 'all')

        async def on_kick(self, sid, victim):
            await self.disconnect(victim)

    sio.register_namespace(ChatNamespace('/chat'))

    class ClientChat(socketio.AsyncClientNamespace):
        def __init__(self, namespace, log):
            super().__init__(namespace)
            self.log = log

        def on_connect(self):
            self.log.append('connect')

        def on_disconnect(self, reason):
            self.log.append(('disconnect', reason))

        def on_said(self, data):
            self.log.append(('said', data))

        async def on_question(self, q):
            return q + '?!'

    alog, blog = [], []
    alice, bob = new_client(), new_client()
    alice.register_namespace(ClientChat('/chat', alog))
    bob.register_namespace(ClientChat('/chat', blog))

    async with serve_socketio(sio) as port:
        async with connected(port, alice, auth={'nick': 'alice'}), \
                connected(port, bob, auth={'nick': 'bob'}):
            assert alice.namespaces.keys() == {'/chat'}      # handlers' namespaces connected
            ans, bns = alice.namespace_handlers['/chat'], bob.namespace_handlers['/chat']
            a, b = alice.get_sid('/chat'), bob.get_sid('/chat')
            assert await ans.call('say', 'hi all', timeout=5) == 'ok'
            await until(lambda: ('said', {'nick': 'alice', 'text': 'hi all'}) in blog, what='said')
            assert await ans.call('ask', 'why', timeout=5) == 'why?!'
            assert await bns.call('rooms', timeout=5) == sorted([b, 'all'])
            await bns.emit('leave')
            await until(lambda: sorted(sio.rooms(b, namespace='/chat')) == [b], what='leave')
            await ans.send('unhandled message')   # no on_message handler: ignored on both
            assert await bns.call('say', 'anyone?', timeout=5) == 'ok'
            await until(lambda: ('said', {'nick': 'bob', 'text': 'anyone?'}) in alog, what='said 2')
            await ans.emit('kick', b)
            await until(lambda: ('disconnect', 'server disconnect') in blog, what='kicked')
            await until(lambda: not bob.connected, what='bob disconnected')
            assert alog == ['connect', ('said', {'nick': 'bob', 'text': 'anyone?'})]
            assert blog == ['connect', ('said', {'nick': 'alice', 'text': 'hi all'}),
                            ('disconnect', 'server disconnect')]
            assert a != b
        await until(lambda: len(slog) == 4, what='disconnects')
    assert slog == [('connect', 'alice'), ('connect', 'bob'), ('disconnect', 'server disconnect'),
                    ('disconnect', WS_CLIENT_DISCONNECT)]


# ------------------------------------------------------------------------------------------------
# disconnects
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize('initiator,transports,server_reason,client_reason', [
    ('server', WS, 'server disconnect', 'server disconnect'),
    ('client', WS, WS_CLIENT_DISCONNECT, 'client disconnect'),
    ('client', ('polling',), POLLING_CLIENT_DISCONNECT, 'client disconnect'),
], ids=['server', 'client-websocket', 'client-polling'])
async def test_disconnect_reasons(server_cls, initiator, transports, server_reason,
                                  client_reason):
    sio = make_server(server_cls, **(FAST_PING if 'polling' in transports else {}))
    slog: list = []

    @sio.event
    async def connect(sid, environ, auth):
        await sio.enter_room(sid, 'r')

    @sio.event
    async def disconnect(sid, reason):
        slog.append((sid, reason, sio.manager.is_connected(sid, '/'),
                     sorted(sio.rooms(sid))))

    client = new_client()
    clog: list = []

    @client.event
    def disconnect(reason):
        clog.append(reason)

    async with serve_socketio(sio) as port:
        async with connected(port, client, transports=transports):
            sid = client.get_sid()
            if initiator == 'server':
                await sio.disconnect(sid)
            else:
                await client.disconnect()
            await until(lambda: clog and slog, what='both disconnect handlers')
            await until(lambda: not client.connected, what='client state')
            await until(lambda: not sio.manager.is_connected(sid, '/'), what='server state')
            assert clog == [client_reason]
            # the handler still sees the rooms; the sid is no longer "connected"
            assert slog == [(sid, server_reason, False, sorted([sid, 'r']))]
            assert sio.rooms(sid) == []
            # a second disconnect is a no-op on both sides
            await sio.disconnect(sid)
            await sio.emit('anything', to=sid)
            assert slog == [(sid, server_reason, False, sorted([sid, 'r']))]
        assert clog == [client_reason]


# ------------------------------------------------------------------------------------------------
# async_handlers
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize('async_handlers', [True, False])
async def test_async_handlers(server_cls, async_handlers):
    sio = make_server(server_cls, async_handlers=async_handlers)
    slog: list = []
    gate = asyncio.Event()

    # Concurrent handlers: fast releases slow (a long guard, never reached). One after another:
    # fast cannot run before slow ends, so slow always times out (the shorter the faster).
    slow_timeout = 10 if async_handlers else 0.3

    @sio.on('slow')
    async def slow(sid):
        slog.append('slow-start')
        try:
            await asyncio.wait_for(gate.wait(), slow_timeout)
            slog.append(('slow-end', 'released'))
        except asyncio.TimeoutError:
            slog.append(('slow-end', 'timed out'))

    @sio.on('fast')
    def fast(sid):
        slog.append('fast')
        gate.set()

    async with serve_socketio(sio) as port:
        async with connected(port) as client:
            await client.emit('slow')
            await client.emit('fast')
            await until(lambda: len(slog) == 3, what='three handler steps')
            if async_handlers:      # handlers run concurrently: fast releases slow
                assert slog == ['slow-start', 'fast', ('slow-end', 'released')]
                assert await sio.call('x', to=client.get_sid(), timeout=5) is None
            else:                   # one after another: fast waits for slow
                assert slog == ['slow-start', ('slow-end', 'timed out'), 'fast']
                with pytest.raises(RuntimeError, match='async_handlers'):
                    await sio.call('x', to=client.get_sid(), timeout=5)


# ------------------------------------------------------------------------------------------------
# shutdown
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(25)
async def test_shutdown(server_cls):
    sio = make_server(server_cls)
    slog: list = []
    sio.on('echo', lambda sid, x: x)
    sio.on('disconnect', lambda sid, reason: slog.append(reason))
    client = new_client()
    clog: list = []
    client.on('disconnect', lambda reason: clog.append(reason))
    srv = await start_asgi(socketio.ASGIApp(sio))
    try:
        try:
            await client.connect(srv.url, transports=['websocket'], wait_timeout=5)
            assert await client.call('echo', 1, timeout=5) == 1
            assert sio.eio.service_task_handle is not None
            task = sio.eio.service_task_handle
            await asyncio.wait_for(sio.shutdown(), 5)
            assert task.done() and sio.eio.service_task_handle is None
            # shutdown() stops the background tasks only; the connection keeps working until
            # the web server goes away
            assert await client.call('echo', 2, timeout=5) == 2
            await srv.stop()
            await until(lambda: clog and slog, what='disconnect on both sides')
            await until(lambda: not client.connected, what='client state')
            # uvicorn closes the websocket (1012): the server side sees the transport close,
            # python-socketio's client reports a transport error
            assert clog == ['transport error']
            assert slog == ['transport close']
        finally:
            await close_client(client)
    finally:
        await srv.stop()


# ------------------------------------------------------------------------------------------------
# a python-socketio application module runs unchanged
# ------------------------------------------------------------------------------------------------
def make_app(sio_module):
    """An application written for python-socketio. It uses only ``AsyncServer``, ``ASGIApp``
    and ``AsyncNamespace`` of the module it is given. Returns (asgi_app, sio, log)."""
    sio = sio_module.AsyncServer(async_mode='asgi', cors_allowed_origins='*')
    app = sio_module.ASGIApp(sio)
    log: list = []

    async def name_of(sid, namespace='/'):
        return (await sio.get_session(sid, namespace=namespace)).get('name')

    @sio.event
    async def connect(sid, environ, auth):
        if not auth or auth.get('password') != 'secret':
            log.append(('refused', (auth or {}).get('name')))
            raise ConnectionRefusedError('authentication failed')
        await sio.save_session(sid, {'name': auth['name']})
        await sio.enter_room(sid, 'lobby')
        log.append(('connect', auth['name'], sio.transport(sid)))
        await sio.emit('joined', auth['name'], room='lobby', skip_sid=sid)

    @sio.event
    async def disconnect(sid, reason):
        log.append(('disconnect', await name_of(sid), reason))

    @sio.on('say')
    async def say(sid, text, attachment=None):
        name = await name_of(sid)
        log.append(('say', name, text, attachment))
        await sio.emit('said', {'from': name, 'text': text, 'attachment': attachment},
                       room='lobby', skip_sid=sid)
        return {'ok': True, 'len': len(text)}

    @sio.on('whisper')
    async def whisper(sid, to_name, text):
        for other, _ in list(sio.manager.get_participants('/', 'lobby')):
            if await name_of(other) == to_name:
                answer = await sio.call('whispered', (await name_of(sid), text), to=other,
                                        timeout=5)
                log.append(('whisper-answer', to_name, answer))
                return answer
        return None

    @sio.on('kick')
    async def kick(sid, victim):
        for other, _ in list(sio.manager.get_participants('/', 'lobby')):
            if await name_of(other) == victim:
                await sio.disconnect(other)
                return True
        return False

    class Stats(sio_module.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            async with self.session(sid) as session:
                session['hits'] = 0

        async def on_hit(self, sid, blob):
            async with self.session(sid) as session:
                session['hits'] += 1
                log.append(('hit', session['hits'], len(blob)))
                return session['hits'], blob[::-1]

        def on_disconnect(self, sid, reason):
            log.append(('stats-disconnect', reason))

    sio.register_namespace(Stats('/stats'))
    return app, sio, log


async def run_app_scenario(sio_module) -> dict:
    """Drive ``make_app(sio_module)`` with plain clients; returns every observed event."""
    app, sio, server_log = make_app(sio_module)
    clients: dict[str, socketio.AsyncClient] = {}
    logs: dict[str, list] = {}

    def make_client(name):
        client = new_client()
        log = logs[name] = []
        client.on('connect', lambda: log.append('connect'))
        client.on('connect_error', lambda data: log.append(('connect_error', data)))
        client.on('disconnect', lambda reason: log.append(('disconnect', reason)))
        client.on('joined', lambda who: log.append(('joined', who)))
        client.on('said', lambda msg: log.append(('said', msg)))
        client.on('whispered', lambda frm, text: (log.append(('whispered', frm, text)),
                                                  f'{name} heard {text}')[1])
        clients[name] = client
        return client

    srv = await start_asgi(app)
    try:
        url = srv.url
        # a refused login
        eve = make_client('eve')
        with pytest.raises(sio_exc.ConnectionError):
            await eve.connect(url, auth={'name': 'eve', 'password': 'guess'},
                              transports=['websocket'], wait_timeout=5)
        alice, bob = make_client('alice'), make_client('bob')
        await alice.connect(url, auth={'name': 'alice', 'password': 'secret'},
                            transports=['websocket'], namespaces=['/', '/stats'],
                            wait_timeout=5)
        # bob uses the default transports (polling, then upgrade)
        await bob.connect(url, auth={'name': 'bob', 'password': 'secret'}, wait_timeout=5)
        await until(lambda: ('joined', 'bob') in logs['alice'], what='alice sees bob join')
        ack = await alice.call('say', ('hello bob', b'\x00\x01'), timeout=5)
        await until(lambda: any(e[0] == 'said' for e in logs['bob'] if isinstance(e, tuple)),
                    what='bob hears alice')
        ack2 = await bob.call('say', 'hi alice', timeout=5)
        await until(lambda: any(e[0] == 'said' for e in logs['alice'] if isinstance(e, tuple)),
                    what='alice hears bob')
        answer = await alice.call('whisper', ('bob', 'psst'), timeout=5)
        missing = await alice.call('whisper', ('carol', 'psst'), timeout=5)
        hits = [await alice.call('hit', b'abc' * n, namespace='/stats', timeout=5)
                for n in (1, 2)]
        kicked = await alice.call('kick', 'bob', timeout=5)
        await until(lambda: ('disconnect', 'server disconnect') in logs['bob'], what='bob kicked')
        await until(lambda: any(e[0] == 'disconnect' for e in server_log), what='server saw kick')
        await alice.disconnect()
        await until(lambda: sum(e[0] in ('disconnect', 'stats-disconnect')
                                for e in server_log) == 3, what='alice disconnect on server')
        await until(lambda: ('disconnect', 'client disconnect') in logs['alice'], what='alice dc')
        results = {'ack': ack, 'ack2': ack2, 'answer': answer, 'missing': missing,
                   'hits': hits, 'kicked': kicked}
    finally:
        for client in clients.values():
            await close_client(client)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sio.shutdown(), 5)
        await srv.stop()
    # the two server disconnects of alice ('/' and '/stats') may run in either order
    server_events = server_log[:-2] + sorted(server_log[-2:], key=repr)
    return {'server': server_events, 'clients': logs, 'results': results}


@pytest.mark.timeout(30)
async def test_python_socketio_app_runs_unchanged():
    observed = {}
    for module in (socketio, relio):
        observed[module.__name__] = await run_app_scenario(module)
    plain, with_relio = observed['socketio'], observed['relio']
    # the scenario really happened (not two empty logs)
    assert plain['results'] == {
        'ack': {'ok': True, 'len': 9}, 'ack2': {'ok': True, 'len': 8},
        'answer': 'bob heard psst', 'missing': None,
        'hits': [(1, b'cba'), (2, b'cbacba')], 'kicked': True}
    assert plain['server'][0] == ('refused', 'eve')
    assert plain['clients']['eve'] == [('connect_error', {'message':
                                                          'Connection refused by server'})]
    assert ('whispered', 'alice', 'psst') in plain['clients']['bob']
    assert ('said', {'from': 'alice', 'text': 'hello bob', 'attachment': b'\x00\x01'}) in \
        plain['clients']['bob']
    # and relio served it identically
    assert with_relio == plain


# ------------------------------------------------------------------------------------------------
# event names relio reserves
# ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(20)
@pytest.mark.parametrize('server_cls', SERVER_CLASSES)
async def test_catch_all_gets_every_event_name_but_relio_lifecycle_events(server_cls):
    """python-socketio reserves only 'connect' and 'disconnect' on the server; any other event
    name a client emits reaches the app (here its catch-all handler), 'connect_error' included.
    relio.AsyncServer does the same, except for its own lifecycle event names (documented as
    reserved in docs/GUIDE.md): a client cannot impersonate relio_resume/relio_suspend/
    relio_delivery_error."""
    sio = make_server(server_cls)
    got: list = []
    sio.on('*', lambda event, sid, *args: got.append((event, args)))
    lifecycle = ['relio_resume', 'relio_suspend', 'relio_delivery_error']
    names = ['connect_error', *lifecycle, 'normal']
    expected = names if server_cls is socketio.AsyncServer else \
        [n for n in names if n not in lifecycle]
    async with serve_socketio(sio) as port:
        async with connected(port) as client:
            for name in names:
                await client.emit(name, 1)
            await until(lambda: ('normal', (1,)) in got, what='normal event')
            assert await client.call('sync', timeout=5) is None   # every emit above was handled
            assert got == [(name, (1,)) for name in expected] + [('sync', ())]
