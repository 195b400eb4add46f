"""Exceptions, as in ``socketio.exceptions``: python-socketio's family re-exported unchanged (so
``except socketio.exceptions.TimeoutError`` keeps working for applications that move over), next to
the errors relio adds (:mod:`relio.engine.errors`)."""

from socketio.exceptions import (
    BadNamespaceError,
    ConnectionError,
    ConnectionRefusedError,
    DisconnectedError,
    SocketIOError,
    TimeoutError,
)

from relio.binding.sessions import ResumeRefused
from relio.engine.errors import (
    DeliveryError,
    LocalProtocolError,
    ProtocolError,
    QueueFull,
    RelayError,
    RelioError,
    RemoteProtocolError,
)

__all__ = [
    "BadNamespaceError", "ConnectionError", "ConnectionRefusedError", "DeliveryError",
    "DisconnectedError", "LocalProtocolError", "ProtocolError", "QueueFull", "RelayError",
    "RelioError", "RemoteProtocolError", "ResumeRefused", "SocketIOError", "TimeoutError",
]
