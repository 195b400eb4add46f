"""The sans-I/O protocol engine: one side of one relio session, compiled with Cython.

It owns no socket, reads no clock and knows nothing of asyncio or Socket.IO: the caller hands it
messages and received batches with ``now`` and takes back batches to send, events and a timer (the
shape of aioquic's ``QuicConnection``). Sources: ``ext/relio/engine/*.pyx`` with their ``.pxd``
contracts; the type stubs (``*.pyi``) sit here beside the compiled modules; the wire format is
``docs/PROTOCOL.md``. Errors say whose fault they are (:mod:`relio.engine.errors`).

Two more compiled modules hold the per-message steps the shells take around the application's code,
without I/O either: :mod:`relio.engine._payload` encodes an emit's payload and decodes a received
one in one call each (the common case: no binary, the standard library's JSON), and
:mod:`relio.engine._step` runs an inline handler in a copy of the context, stepping its coroutine
without a ``StopIteration``.
"""

from relio.engine._engine import (
    CLOSE_DELIVERY_TIMEOUT,
    CLOSE_EXPIRED,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL_ERROR,
    Engine,
)
from relio.engine._events import (
    Event,
    MessageExpired,
    MessageReceived,
    MessagesDelivered,
    ResponseReceived,
    SessionClosed,
)
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
    "CLOSE_DELIVERY_TIMEOUT", "CLOSE_EXPIRED", "CLOSE_NORMAL", "CLOSE_PROTOCOL_ERROR",
    "DeliveryError", "Engine", "Event", "LocalProtocolError", "MessageExpired", "MessageReceived",
    "MessagesDelivered", "ProtocolError", "QueueFull", "RelayError", "RelioError",
    "RemoteProtocolError", "ResponseReceived", "SessionClosed",
]
