"""relio: reliable, exactly-once, resumable message delivery for python-socketio.

``relio.AsyncServer`` and ``relio.AsyncClient`` take python-socketio's arguments and handlers
unchanged; between two relio peers every message is delivered exactly once and in order, and
sessions survive reconnects.

Layers, each in its own subpackage (aioquic's ``quic/`` / ``asyncio/`` split is the model):

* :mod:`relio.engine`: the sans-I/O protocol engine (compiled), one side of one session;
* :mod:`relio.binding`: its binding to Socket.IO without I/O (handshake, carriers, payloads,
  the session table);
* :mod:`relio.asyncio`: the asyncio shell (``AsyncServer``, ``AsyncClient``);
* :mod:`relio.threading`: the thread-based shell (``Server``, ``Client``, ``SimpleClient``), on the
  same engine, channel and session code;
* :mod:`relio.cluster`: several server nodes through Redis (``AsyncRedisManager``,
  ``RedisManager``);
* :mod:`relio.observe`: metrics (Prometheus, OpenTelemetry), health, graceful shutdown, Admin UI;
* :mod:`relio.demo`: ``python -m relio demo``.
"""

from socketio import (
    ASGIApp,
    AsyncClientNamespace,
    AsyncNamespace,
    ClientNamespace,
    Middleware,
    Namespace,
    WSGIApp,
)

from relio import exceptions
from relio.asyncio.client import AsyncClient
from relio.asyncio.results import Delivery, Question, Reply
from relio.asyncio.server import AsyncManager, AsyncServer
from relio.asyncio.simple_client import AsyncSimpleClient
from relio.binding.sessions import ResumeRefused
from relio.config import DEFAULT_CONFIG, Config
from relio.engine import (
    DeliveryError,
    Engine,
    Event,
    LocalProtocolError,
    MessageExpired,
    MessageReceived,
    MessagesDelivered,
    ProtocolError,
    QueueFull,
    RelayError,
    RelioError,
    RemoteProtocolError,
    ResponseReceived,
    SessionClosed,
)
from relio.threading.client import Client
from relio.threading.server import Manager, Server
from relio.threading.simple_client import SimpleClient

__version__ = "0.1.0"

__all__ = [
    "ASGIApp", "AsyncClient", "AsyncClientNamespace", "AsyncManager", "AsyncNamespace",
    "AsyncSimpleClient",
    "AsyncRedisManager", "AsyncServer", "Delivery", "Question", "Reply", "ResumeRefused", "Config",
    "DEFAULT_CONFIG", "DeliveryError", "Engine", "Event", "LocalProtocolError",
    "MessageExpired", "MessageReceived", "MessagesDelivered", "ProtocolError", "QueueFull",
    "RelayError", "RelioError", "RemoteProtocolError", "ResponseReceived", "SessionClosed",
    "exceptions", "Client", "ClientNamespace", "Manager", "Middleware", "Namespace", "Server",
    "SimpleClient", "WSGIApp", "RedisManager",
]


def __getattr__(name):
    # relio.AsyncRedisManager and relio.RedisManager import redis-py (the "redis" extra) only when
    # they are asked for.
    if name == "AsyncRedisManager":
        from relio.cluster.redis_manager import AsyncRedisManager
        return AsyncRedisManager
    if name == "RedisManager":
        from relio.cluster.thread_manager import RedisManager
        return RedisManager
    raise AttributeError(f"module 'relio' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
