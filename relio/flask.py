"""Flask-SocketIO on relio: ``from relio.flask import SocketIO`` instead of
``from flask_socketio import SocketIO``.

:class:`SocketIO` is Flask-SocketIO's class whose server is a :class:`relio.Server`: everything
else (``emit``, ``send``, ``join_room``, ``leave_room``, ``rooms``, ``disconnect``, ``call``,
``socketio.run(app)``, ``test_client``, class-based namespaces, Flask sessions) is
Flask-SocketIO's own, unchanged, and works on relio sessions as it does on plain ones. Clients that
connect with :class:`relio.Client`, :class:`relio.AsyncClient` or :class:`relio.SimpleClient` get
relio's guarantees; any other Socket.IO client is served as plain Socket.IO.

The module-level helpers (``emit``, ``send``, ``join_room``...) are re-exported from
``flask_socketio``, so ``from relio.flask import SocketIO, emit, join_room`` works too.

``message_queue='redis://...'`` is :class:`relio.RedisManager` on Flask-SocketIO's channel
(``channel=``, default ``'flask-socketio'``): with an app, the app is one node of several (emits,
rooms and disconnects reach every node's clients exactly once, sessions move between nodes, durable
by default; asyncio nodes with ``relio.AsyncRedisManager`` on the same channel join in); without an
app (an external emitter: a Celery worker, a script) it is ``write_only=True``. python-socketio's
own emitters on that channel (``socketio.RedisManager(url, channel='flask-socketio',
write_only=True)``) reach the clients too, through the bridge (at most once on that hop). Other
queues (Kafka, Kombu, ZeroMQ) raise :class:`ValueError`: their python-socketio managers deliver at
most once. See ``docs/SCALING.md``. Needs the ``flask`` extra (and ``redis`` for a queue):
``pip install relio-socketio[flask,redis]``.
"""

from __future__ import annotations

from typing import Any

import flask_socketio
from flask_socketio import (
    ConnectionRefusedError,
    Namespace,
    close_room,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)

from relio.threading.server import Manager, Server


class SocketIO(flask_socketio.SocketIO):
    """Flask-SocketIO's ``SocketIO`` on a :class:`relio.Server` (same arguments, plus
    ``relio_config``, given to the server)."""

    def init_app(self, app: Any, **kwargs: Any) -> None:
        options = {**self.server_options, **kwargs}
        url = options.get('message_queue')
        if url and 'client_manager' not in kwargs:
            if not url.startswith(('redis://', 'rediss://')):
                raise ValueError(
                    "relio.flask.SocketIO supports message_queue='redis://...' (relio's Redis "
                    "manager); python-socketio's other queue managers deliver at most once")
            from relio.cluster.thread_manager import RedisManager
            kwargs['client_manager'] = RedisManager(
                url, channel=options.get('channel', 'flask-socketio'), write_only=app is None)
            self.server_options.pop('channel', None)
            kwargs.pop('channel', None)
            options = {**self.server_options, **kwargs}
        client_manager = options.get('client_manager')
        if client_manager is not None and not isinstance(client_manager, Manager):
            raise ValueError("relio.flask.SocketIO needs a relio client manager "
                             "(relio.Manager or relio.RedisManager); got "
                             + type(client_manager).__name__)
        # Flask-SocketIO builds a socketio.Server in init_app; the relio server takes its place
        # with the same options, handlers and namespaces, behind the same middleware.
        super().init_app(app, **kwargs)
        self.server = Server(**self.server_options)
        self.async_mode = self.server.async_mode
        for message, handler, namespace in self.handlers:
            self.server.on(message, handler, namespace=namespace)
        for namespace_handler in self.namespace_handlers:
            self.server.register_namespace(namespace_handler)
        if app is not None:
            self.sockio_mw.engineio_app = self.server


__all__ = ["SocketIO", "ConnectionRefusedError", "Namespace", "close_room", "disconnect",
           "emit", "join_room", "leave_room", "rooms", "send"]
