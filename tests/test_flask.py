"""Flask-SocketIO on relio: the app's one-line change (``from relio.flask import SocketIO``).

* The app's own ``test_client`` tests, written for Flask-SocketIO, pass unchanged on both
  ``flask_socketio.SocketIO`` and ``relio.flask.SocketIO``.
* Served by a real threaded WSGI server (werkzeug) on 127.0.0.1, the relio app gives a
  ``relio.Client`` a relio session: rooms, ``emit(to=room)``, ``send``, calls, Flask's session.
* The fault workload of ``test_sync_e2e_faults`` holds on a Flask-SocketIO app on relio.
* ``message_queue=`` on a serving app raises a clear error (no thread-based multi-node server
  yet); the external emitter's case is in ``test_sync_redis.py``.
"""

from __future__ import annotations

import flask_socketio
import pytest
from flask import request
from flask_socketio import join_room

import relio
import relio.flask
from tests.support.flask_app import create_app
from tests.support.wsgi import serve_wsgi, wait_for
from tests.test_sync_e2e_faults import _assert_exactly_once, _summary, run_workload

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings('ignore:unclosed <socket.socket:ResourceWarning'),
]


@pytest.fixture(params=[flask_socketio.SocketIO, relio.flask.SocketIO],
                ids=['flask_socketio', 'relio'])
def app_and_socketio(request):
    return create_app(request.param)


# --- the app's own tests (as written for Flask-SocketIO) ---------------------------------------
def test_connect_welcome(app_and_socketio):
    app, socketio = app_and_socketio
    client = socketio.test_client(app)
    assert client.is_connected()
    received = client.get_received()
    assert received[0]['name'] == 'welcome' and 'sid' in received[0]['args'][0]


def test_connect_refused(app_and_socketio):
    app, socketio = app_and_socketio
    client = socketio.test_client(app, auth={'token': 'bad'})
    assert not client.is_connected()


def test_rooms_and_broadcast(app_and_socketio):
    app, socketio = app_and_socketio
    ann = socketio.test_client(app)
    bob = socketio.test_client(app)
    ann.emit('join', 'lobby')
    bob.emit('join', 'lobby')
    ann.get_received()
    bob.get_received()
    ann.emit('say', {'room': 'lobby', 'text': 'hi'})
    assert bob.get_received() == [{'name': 'said', 'args': [{'room': 'lobby', 'text': 'hi'}],
                                   'namespace': '/'}]
    assert ann.get_received() == []
    left = ann.emit('leave', 'lobby', callback=True)     # the rooms it is still in: its own
    assert len(left) == 1 and 'lobby' not in left


def test_callback_send_session_disconnect(app_and_socketio):
    app, socketio = app_and_socketio
    client = socketio.test_client(app)
    client.get_received()
    assert client.emit('add', 2, 3, callback=True) == 5
    client.send('hello')
    assert client.get_received()[0]['args'] == 'HELLO'
    client.emit('remember', 42)
    assert client.emit('recall', callback=True) == 42
    client.emit('bye')
    assert not client.is_connected()


def test_relio_app_server_is_relio():
    app, socketio = create_app(relio.flask.SocketIO)
    assert isinstance(socketio.server, relio.Server)


def test_message_queue_is_relio_redis_manager():
    """A serving app's message_queue= is a relio node on Flask-SocketIO's channel; a queue relio
    cannot make reliable is refused with the reason."""
    from flask import Flask
    socketio = relio.flask.SocketIO(Flask(__name__), message_queue='redis://127.0.0.1:1')
    manager = socketio.server.manager
    assert isinstance(manager, relio.RedisManager) and not manager.write_only
    assert manager.channel == 'flask-socketio' and manager.mode == 'durable'
    assert manager.session_store.server is socketio.server
    with pytest.raises(ValueError, match='message_queue'):
        relio.flask.SocketIO(Flask(__name__), message_queue='kafka://127.0.0.1:1')


# --- served for real ---------------------------------------------------------------------------
def test_relio_client_on_served_flask_app():
    app, socketio = create_app(relio.flask.SocketIO)
    with serve_wsgi(app) as port:
        ann, bob = (relio.Client(handle_sigint=False) for _ in range(2))
        said: list = []
        welcome: list = []
        bob.on('said', lambda data: said.append(data))
        ann.on('welcome', lambda data: welcome.append(data))
        messages: list = []
        ann.on('message', lambda text: messages.append(text))
        for client in (ann, bob):
            client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        assert wait_for(lambda: welcome == [{'sid': ann.get_sid()}], 10)
        sid = ann.get_sid()
        assert socketio.server.session_stats(sid) is not None      # a relio session
        ann.call('join', 'lobby', timeout=10)
        bob.call('join', 'lobby', timeout=10)
        for n in range(50):
            ann.emit('say', {'room': 'lobby', 'n': n})
        assert wait_for(lambda: len(said) == 50, 10)
        assert [d['n'] for d in said] == list(range(50))
        assert ann.call('add', (2, 3), timeout=10) == 5
        ann.send('hello')
        assert wait_for(lambda: messages == ['HELLO'], 10)
        ann.call('remember', 7, timeout=10)
        assert ann.call('recall', timeout=10) == 7
        ann.disconnect()
        bob.disconnect()


class FlaskServer:
    """The fault workload's server side as a Flask-SocketIO app on relio (werkzeug)."""

    def __init__(self, lib, lt):
        from flask import Flask
        self.app = Flask(__name__)
        self.socketio = relio.flask.SocketIO(self.app, async_mode='threading', ping_interval=1,
                                             ping_timeout=1)
        self.sio = self.socketio.server

    def on(self, event, fn, join=None):
        if event == 'connect':
            def connect(auth):
                if join is not None:
                    join_room(join)
                return fn(request.sid, request.environ, auth)
            self.socketio.on_event('connect', connect)
        elif event == 'disconnect':
            self.socketio.on_event('disconnect', lambda reason: fn(request.sid, reason))
        else:
            self.socketio.on_event(event, lambda *args: fn(request.sid, *args))

    def serve(self):
        return serve_wsgi(self.app)

    def emit(self, *args, **kwargs):
        return self.sio.emit(*args, **kwargs)

    def call(self, *args, **kwargs):
        return self.sio.call(*args, **kwargs)

    def wait(self, delivery, timeout):
        delivery.wait(timeout)

    def stats(self, sid):
        return self.sio.session_stats(sid)


def test_flask_app_on_relio_under_faults():
    from tests.test_sync_e2e_faults import SyncClient
    rel = run_workload(relio, FlaskServer, SyncClient)
    print('\nrelio (Flask-SocketIO app):', _summary(rel))
    _assert_exactly_once(rel)
