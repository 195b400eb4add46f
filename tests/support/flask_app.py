"""A small Flask-SocketIO app, written as for Flask-SocketIO; ``create_app(SocketIO)`` takes the
``SocketIO`` class so that one test suite runs it on ``flask_socketio.SocketIO`` and on
``relio.flask.SocketIO`` (the app's one-line change)."""
from __future__ import annotations

from typing import Any

from flask import Flask, request, session
from flask_socketio import disconnect, emit, join_room, leave_room, rooms, send


def create_app(SocketIO: Any) -> tuple[Flask, Any]:
    app = Flask(__name__)
    app.config['SECRET_KEY'] = 'test only'
    socketio = SocketIO(app, async_mode='threading')

    @app.route('/')
    def index():
        return 'ok'

    @socketio.on('connect')
    def on_connect(auth):
        if auth and auth.get('token') == 'bad':
            return False
        emit('welcome', {'sid': request.sid})

    @socketio.on('join')
    def on_join(room):
        join_room(room)
        emit('joined', room, to=room)

    @socketio.on('leave')
    def on_leave(room):
        leave_room(room)
        return sorted(rooms())

    @socketio.on('say')
    def on_say(data):
        emit('said', data, to=data['room'], include_self=False)

    @socketio.on('add')
    def on_add(a, b):
        return a + b

    @socketio.on('message')
    def on_message(text):
        send(text.upper())

    @socketio.on('remember')
    def on_remember(value):
        session['value'] = value

    @socketio.on('recall')
    def on_recall():
        return session.get('value')

    @socketio.on('bye')
    def on_bye():
        disconnect()

    return app, socketio
