"""relio: reliable, exactly-once, resumable message delivery for python-socketio.

This release ships the sans-I/O protocol engine (:class:`Engine`); the drop-in
``AsyncServer`` / ``AsyncClient`` layer builds on it.
"""

from relio._engine import Engine
from relio._events import (Event, MessageExpired, MessageReceived, MessagesDelivered,
                           ResponseReceived, SessionClosed)
from relio.config import DEFAULT_CONFIG, Config
from relio.errors import (DeliveryError, LocalProtocolError, ProtocolError, QueueFull, RelioError,
                          RemoteProtocolError)

__version__ = "0.1.0"

__all__ = [
    "Config", "DEFAULT_CONFIG", "DeliveryError", "Engine", "Event", "LocalProtocolError",
    "MessageExpired", "MessageReceived", "MessagesDelivered", "ProtocolError", "QueueFull",
    "RelioError", "RemoteProtocolError", "ResponseReceived", "SessionClosed",
]
