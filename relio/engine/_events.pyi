"""Events the engine hands to its caller (compiled from ext/relio/engine/_events.pyx)."""

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

class Event: ...

class MessageReceived(Event):
    """A message from the peer, delivered exactly once and in order; answer it with
    ``Engine.reply(msg_id, ...)`` if ``request`` is true."""
    msg_id: bytes
    payload: bytes
    request: bool
    def __init__(self, msg_id: bytes, payload: bytes, request: bool = ...) -> None: ...

class ResponseReceived(Event):
    """The peer's answer to our request ``reply_to``; ``request`` true asks for a further answer."""
    msg_id: bytes
    reply_to: bytes
    payload: bytes
    request: bool
    def __init__(self, msg_id: bytes, reply_to: bytes, payload: bytes,
                 request: bool = ...) -> None: ...

class MessagesDelivered(Event):
    """The peer acknowledged these messages of ours."""
    msg_ids: list[bytes]
    def __init__(self, msg_ids: list[bytes]) -> None: ...

class MessageExpired(Event):
    """This message of ours will never be delivered."""
    msg_id: bytes
    reason: str
    def __init__(self, msg_id: bytes, reason: str) -> None: ...

class SessionClosed(Event):
    """The session ended; pending messages were reported expired just before."""
    reason: str
    by_peer: bool
    def __init__(self, reason: str, by_peer: bool = ...) -> None: ...
