"""relio: reliable, exactly-once, resumable message delivery for python-socketio.

``relio.AsyncServer`` and ``relio.AsyncClient`` take python-socketio's arguments and handlers
unchanged; between two relio peers every message is delivered exactly once and in order, and
sessions survive reconnects. The sans-I/O protocol engine underneath is :class:`Engine`.
"""

from socketio import ASGIApp, AsyncClientNamespace, AsyncNamespace

from relio._engine import Engine
from relio._events import (Event, MessageExpired, MessageReceived, MessagesDelivered,
                           ResponseReceived, SessionClosed)
from relio.channel import Delivery, Question, Reply
from relio.client import AsyncClient
from relio.config import DEFAULT_CONFIG, Config
from relio.errors import (DeliveryError, LocalProtocolError, ProtocolError, QueueFull, RelayError,
                          RelioError, RemoteProtocolError)
from relio.server import AsyncManager, AsyncServer
from relio.sessions import ResumeRefused


def __getattr__(name):
    # relio.AsyncRedisManager imports redis-py (the "redis" extra) only when it is asked for.
    if name == "AsyncRedisManager":
        from relio.redis_manager import AsyncRedisManager
        return AsyncRedisManager
    raise AttributeError(f"module 'relio' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "ASGIApp", "AsyncClient", "AsyncClientNamespace", "AsyncManager", "AsyncNamespace",
    "AsyncRedisManager", "AsyncServer", "Delivery", "Question", "Reply", "ResumeRefused", "Config",
    "DEFAULT_CONFIG", "DeliveryError", "Engine", "Event", "LocalProtocolError",
    "MessageExpired", "MessageReceived", "MessagesDelivered", "ProtocolError", "QueueFull",
    "RelayError", "RelioError", "RemoteProtocolError", "ResponseReceived", "SessionClosed",
]
