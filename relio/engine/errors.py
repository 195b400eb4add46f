"""The engine's errors (no socket.io here: the engine knows nothing of it).

Following h11, errors say whose fault they are:

* :class:`RemoteProtocolError`: the peer sent something invalid; the session it arrived on is closed
  with this reason. Only this type ever leaves the decoder, whatever bytes it is fed.
* :class:`LocalProtocolError`: this side used the engine wrongly (a bug in the caller).
* :class:`QueueFull`: a bounded queue has no room (backpressure made visible); nothing was queued.
* :class:`DeliveryError`: a message will never be delivered (session closed, delivery timeout); its
  sender is always told, never left waiting.

:mod:`relio.exceptions` re-exports these next to python-socketio's exception family.
"""

from __future__ import annotations


class RelioError(Exception):
    """Base class of the errors relio adds to python-socketio's."""


class ProtocolError(RelioError):
    """A relio protocol rule was broken."""


class RemoteProtocolError(ProtocolError):
    """The peer sent an invalid frame, batch or snapshot. ``reason`` says what was wrong."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """The local caller misused the engine (for example, replied twice to one request)."""


class QueueFull(RelioError):
    """A bounded outbox has no room for the message; nothing was queued."""


class DeliveryError(RelioError):
    """A message will never be delivered.

    ``reason`` is ``"session closed"``, ``"session expired"``, ``"delivery timeout"`` or the reason
    the session was closed with; ``msg_id`` is the 16-byte id of the message. The socket.io layer
    adds what the application knows the message by: ``sid``, ``namespace`` and ``event`` (None for a
    reply), and for a broadcast that failed for several recipients, ``failures`` (one error each).
    ``recipient`` names the peer in the message (default: the sid; a client says "the server").
    """

    def __init__(self, reason: str, msg_id: bytes | None = None, *, sid: str | None = None,
                 namespace: str | None = None, event: str | None = None,
                 failures: list | None = None, recipient: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.msg_id = msg_id
        self.sid = sid
        self.namespace = namespace
        self.event = event
        self.failures = failures or [self]
        self.recipient = recipient or sid

    def __str__(self) -> str:
        what = f"event {self.event!r}" if self.event else "message"
        to = f" to {self.recipient}" if self.recipient else ""
        more = f" (and {len(self.failures) - 1} more recipients)" if len(self.failures) > 1 else ""
        return f"{what}{to} not delivered: {self.reason}{more}"


class RelayError(DeliveryError):
    """A message for other server nodes could not be handed to Redis (``relio.AsyncRedisManager``):
    Redis stayed unreachable for ``Config.relay_timeout``, or the manager was closed. The message
    was not relayed (if Redis took it just as its reply was lost, it may still be delivered)."""

