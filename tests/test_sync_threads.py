"""Thread safety of the thread-based relio, on a real server (werkzeug, threading) on 127.0.0.1.

* Emits from many threads at once, to one session and to a room, server to client and client to
  server: each thread's messages arrive once each and in that thread's order.
* Handlers that emit, call back the peer, or disconnect it do not deadlock (the session's lock is
  never held while a handler runs).
* One driver thread per process, whatever the number of sessions; handler threads come and go.
* A plain python-socketio ``Client`` on ``relio.Server`` is served as plain Socket.IO.
"""

from __future__ import annotations

import threading
from collections import defaultdict

import pytest
import socketio

import relio
from tests.support.wsgi import serve_sync_socketio, wait_for

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]

THREADS = 8
PER_THREAD = 250


def _server() -> relio.Server:
    return relio.Server(async_mode='threading')


def _client() -> relio.Client:
    return relio.Client(reconnection_delay=0.1, randomization_factor=0.0, handle_sigint=False)


def _in_thread_order(received: list) -> dict:
    by_thread: dict = defaultdict(list)
    for tid, i in received:
        by_thread[tid].append(i)
    return dict(by_thread)


def _run_threads(target, count: int) -> None:
    threads = [threading.Thread(target=target, args=(t,), daemon=True) for t in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), 'an emitting thread did not finish'


def test_emits_from_many_threads_keep_each_threads_order():
    sio = _server()
    up: list = []
    sio.on('connect', lambda sid, environ, auth: sio.enter_room(sid, 'all'))
    sio.on('up', lambda sid, tid, i: up.append((tid, i)))
    with serve_sync_socketio(sio) as port:
        clients = [_client() for _ in range(3)]
        downs: list[list] = [[] for _ in clients]
        rooms: list[list] = [[] for _ in clients]
        for client, down, room in zip(clients, downs, rooms):
            client.on('down', lambda tid, i, down=down: down.append((tid, i)))
            client.on('room', lambda tid, i, room=room: room.append((tid, i)))
            client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        target = clients[0].get_sid()
        deliveries: list = []

        def server_sender(tid):
            for i in range(PER_THREAD):
                deliveries.append(sio.emit('down', (tid, i), to=target))
                deliveries.append(sio.emit('room', (tid, i), room='all'))

        def client_sender(tid):
            for i in range(PER_THREAD):
                deliveries.append(clients[tid % 3].emit('up', (tid, i)))

        _run_threads(server_sender, THREADS)
        _run_threads(client_sender, THREADS)
        for d in deliveries:
            d.wait(30)
        expected = {t: list(range(PER_THREAD)) for t in range(THREADS)}
        assert wait_for(lambda: len(up) == THREADS * PER_THREAD, 10)
        assert _in_thread_order(up) == expected
        assert len(downs[0]) == THREADS * PER_THREAD and _in_thread_order(downs[0]) == expected
        assert downs[1] == downs[2] == []
        for room in rooms:
            assert wait_for(lambda room=room: len(room) == THREADS * PER_THREAD, 10)
            assert _in_thread_order(room) == expected
        # one driver thread for every session of the process (servers and clients alike)
        drivers = [t for t in threading.enumerate() if t.name == 'relio-driver']
        assert len(drivers) == 1
        for client in clients:
            client.disconnect()


def test_handlers_that_emit_call_back_or_disconnect_do_not_deadlock():
    sio = _server()
    seen: list = []
    disconnected = threading.Event()

    @sio.on('echo')
    def echo(sid, n):
        sio.emit('echoed', n, to=sid)           # emit from inside a handler
        return n

    @sio.on('ask_back')
    def ask_back(sid, n):
        return sio.call('double', n, to=sid, timeout=10)   # call the client from a handler

    @sio.on('leave')
    def leave(sid):
        sio.disconnect(sid)                     # disconnect from inside a handler

    sio.on('disconnect', lambda sid, reason: disconnected.set())
    with serve_sync_socketio(sio) as port:
        client = _client()
        client.on('echoed', lambda n: seen.append(n))

        @client.on('double')
        def double(n):
            return client.emit('from_handler', n) and 2 * n   # a client handler emits too

        client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        assert [client.call('echo', n, timeout=10) for n in range(20)] == list(range(20))
        assert wait_for(lambda: seen == list(range(20)), 10)
        assert client.call('ask_back', 21, timeout=10) == 42
        client.emit('leave')
        assert disconnected.wait(10)
        assert wait_for(lambda: not client.connected, 10)


def test_plain_python_socketio_client_on_relio_server():
    sio = _server()
    events: list = []

    @sio.event
    def connect(sid, environ, auth):
        sio.enter_room(sid, 'plain')
        sio.save_session(sid, {'auth': auth})

    @sio.on('add')
    def add(sid, a, b):
        return a + b, sio.get_session(sid)['auth']

    with serve_sync_socketio(sio) as port:
        client = socketio.Client()
        client.on('news', lambda data: events.append(data))
        client.connect(f'http://127.0.0.1:{port}', auth={'user': 'ann'},
                       transports=['websocket'])
        sid = client.get_sid()
        assert sio.session_stats(sid) is None          # plain Socket.IO, no relio session
        assert client.call('add', (2, 3), timeout=10) == (5, {'user': 'ann'})
        delivery = sio.emit('news', {'n': 1}, room='plain')
        assert delivery.unconfirmed == 1               # a plain client cannot acknowledge
        assert wait_for(lambda: events == [{'n': 1}], 10)
        assert sorted(sio.rooms(sid)) == sorted([sid, 'plain'])
        client.disconnect()


def test_chained_replies_and_big_payloads_both_ways():
    sio = _server()

    @sio.on('checkout')
    def checkout(sid, cart):
        def on_confirm(confirmed):
            return 'charged' if confirmed else 'cancelled'
        return relio.Reply({'total': len(cart)}, callback=on_confirm)

    @sio.on('size')
    def size(sid, blob):
        return len(blob)

    with serve_sync_socketio(sio) as port:
        client = _client()
        client.on('size', lambda blob: len(blob))
        client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        question = client.call('checkout', ['a', 'b'], timeout=10)
        assert isinstance(question, relio.Question) and question.data == {'total': 2}
        assert question.ask(True, timeout=10) == 'charged'
        blob = bytes(range(256)) * 12_000                    # 3 MB: chunked both ways
        assert client.call('size', blob, timeout=30) == len(blob)
        assert sio.call('size', blob, to=client.get_sid(), timeout=30) == len(blob)
        client.disconnect()


def test_idle_sessions_keep_no_threads_of_their_own():
    sio = _server()
    sio.on('hello', lambda sid, n: n)
    with serve_sync_socketio(sio) as port:
        clients = [_client() for _ in range(10)]
        for client in clients:
            client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
            assert client.call('hello', 1, timeout=10) == 1     # each session ran a handler

        def handler_threads():
            return [t for t in threading.enumerate() if t.name.endswith('(_work)')]
        # the sessions' handler threads end once idle (Config.handler_thread_linger)
        assert wait_for(lambda: not handler_threads(), 10), handler_threads()
        assert [t.name for t in threading.enumerate()].count('relio-driver') == 1
        assert sio.relio_sessions == 10
        for client in clients:
            client.disconnect()


def test_class_based_namespaces_and_wsgi_app():
    class Chat(relio.Namespace):
        def on_connect(self, sid, environ, auth):
            self.enter_room(sid, 'chat')

        def on_say(self, sid, text):
            self.emit('said', text, room='chat')
            return 'ok'

    class ChatClient(relio.ClientNamespace):
        def __init__(self, namespace):
            super().__init__(namespace)
            self.said: list = []

        def on_said(self, text):
            self.said.append(text)

    sio = _server()
    sio.register_namespace(Chat('/chat'))
    from tests.support.wsgi import serve_wsgi
    with serve_wsgi(relio.WSGIApp(sio)) as port:
        client = _client()
        ns = ChatClient('/chat')
        client.register_namespace(ns)
        client.connect(f'http://127.0.0.1:{port}', namespaces=['/chat'], transports=['websocket'])
        assert client.session_stats('/chat') is not None          # a relio session in /chat
        assert [client.call('say', f'm{n}', namespace='/chat', timeout=10)
                for n in range(5)] == ['ok'] * 5
        assert wait_for(lambda: ns.said == [f'm{n}' for n in range(5)], 10)
        client.disconnect()
    sio.shutdown()
