"""Events the engine hands to its caller through ``Engine.next_event()``.

Small immutable records (compiled, so creating one per message costs tens of nanoseconds). They say
what happened, never what to do: the caller decides (wsproto's events are the model).

* :class:`MessageReceived`: a message from the peer, delivered exactly once and in order. If
  ``request`` is true the peer waits for an answer: call ``Engine.reply(msg_id, ...)``.
* :class:`ResponseReceived`: the peer's answer to our request ``reply_to``. If ``request`` is true the
  answer itself asks for an answer (a chained reply): ``Engine.reply(msg_id, ...)``.
* :class:`MessagesDelivered`: the peer acknowledged these messages of ours (one event per ACK that
  completed any, in no particular order).
* :class:`MessageExpired`: this message of ours will never be delivered; ``reason`` says why.
* :class:`SessionClosed`: the session ended (locally, by the peer, or for a protocol error); every
  message still pending was reported as :class:`MessageExpired` just before.
"""

from relio.engine._build cimport RELIO_DEBUG_BUILD

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD


cdef class Event:
    """Base class of the engine's events."""

    def __eq__(self, other):
        return type(self) is type(other) and self._fields() == other._fields()

    def __hash__(self):
        return hash((type(self), self._fields()))

    def _fields(self):
        return ()

    def __repr__(self):
        args = ", ".join(f"{v!r}" if not isinstance(v, bytes) or len(v) <= 32 else
                         f"<{len(v)} bytes>" for v in self._fields())
        return f"{type(self).__name__}({args})"


cdef class MessageReceived(Event):
    def __init__(self, bytes msg_id, bytes payload, bint request=False):
        self.msg_id = msg_id
        self.payload = payload
        self.request = request

    def _fields(self):
        return (self.msg_id, self.payload, self.request)


cdef class ResponseReceived(Event):
    def __init__(self, bytes msg_id, bytes reply_to, bytes payload, bint request=False):
        self.msg_id = msg_id
        self.reply_to = reply_to
        self.payload = payload
        self.request = request

    def _fields(self):
        return (self.msg_id, self.reply_to, self.payload, self.request)


cdef class MessagesDelivered(Event):
    def __init__(self, list msg_ids):
        self.msg_ids = msg_ids

    def _fields(self):
        return (tuple(self.msg_ids),)


cdef class MessageExpired(Event):
    def __init__(self, bytes msg_id, str reason):
        self.msg_id = msg_id
        self.reason = reason

    def _fields(self):
        return (self.msg_id, self.reason)


cdef class SessionClosed(Event):
    def __init__(self, str reason, bint by_peer=False):
        self.reason = reason
        self.by_peer = by_peer

    def _fields(self):
        return (self.reason, self.by_peer)


# The engine's fast constructors: skip __init__'s argument parsing.
cdef MessageReceived new_message_received(bytes msg_id, bytes payload, bint request):
    cdef MessageReceived ev = MessageReceived.__new__(MessageReceived)
    ev.msg_id = msg_id
    ev.payload = payload
    ev.request = request
    return ev


cdef ResponseReceived new_response_received(bytes msg_id, bytes reply_to, bytes payload,
                                            bint request):
    cdef ResponseReceived ev = ResponseReceived.__new__(ResponseReceived)
    ev.msg_id = msg_id
    ev.reply_to = reply_to
    ev.payload = payload
    ev.request = request
    return ev
