"""The relio engine: one session's reliability protocol, sans I/O.

Compiled from ext/relio/engine/_engine.pyx."""

from relio.config import Config
from relio.engine._events import Event

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

CLOSE_NORMAL: int
CLOSE_PROTOCOL_ERROR: int
CLOSE_DELIVERY_TIMEOUT: int
CLOSE_EXPIRED: int

class Engine:
    config: Config
    connected: bool
    closed: bool
    close_reason: str | None
    messages_sent: int
    messages_delivered: int
    messages_expired: int
    messages_received: int
    frames_sent: int
    frames_retransmitted: int
    frames_received: int
    duplicates_dropped: int
    frames_refused: int
    responses_resent: int
    acks_sent: int
    def __init__(self, config: Config | None = ..., *, now: float = ...,
                 id_prefix: bytes | None = ...) -> None: ...
    def send(self, payload: bytes | tuple[bytes, ...], now: float, *, request: bool = ...,
             msg_id: bytes | None = ...) -> bytes:
        """Queue a message for reliable delivery; return its 16-byte id (QueueFull if no room).
        With the ``msg_id`` of a message still pending, queue nothing and return that id. A tuple
        is the message made of these consecutive parts (framed from them, never joined first)."""
    def reply(self, request_id: bytes, payload: bytes | tuple[bytes, ...], now: float, *,
              request: bool = ...) -> bytes:
        """Answer the peer's request; ``request=True`` makes it a chained reply."""
    def decline(self, request_id: bytes) -> None:
        """Leave the peer's request unanswered (frees its ``max_pending_requests`` slot)."""
    def next_event(self) -> Event | None: ...
    @property
    def events_pending(self) -> int:
        """How many events :meth:`next_event` has still to give."""
    def events(self) -> list[Event]: ...
    def receive(self, data: bytes, now: float) -> None:
        """Process one batch from the peer (RemoteProtocolError closes the session)."""
    def data_to_send(self, now: float) -> list[bytes]: ...
    def get_timer(self) -> float | None: ...
    def handle_timer(self, now: float) -> None: ...
    def disconnect(self, now: float) -> None: ...
    def resume_state(self) -> bytes: ...
    def resume(self, peer_state: bytes, now: float) -> None: ...
    def close(self, reason: str = ..., now: float = ...) -> None: ...
    def snapshot(self, now: float, max_ids: int = ...) -> bytes: ...
    def snapshot_apart(self, now: float, max_ids: int,
                       stored: set[bytes]) -> tuple[bytes, list[bytes], bytes, list[bytes]]:
        """:meth:`snapshot` naming the outbox's messages by id: ``(data, added, records, gone)``:
        the ids of the messages not in ``stored`` and their records, packed (each: 16-byte id,
        4-byte big-endian length, record), and the ids in ``stored`` no longer pending."""
    @staticmethod
    def restore(data: bytes, config: Config | None = ..., *, now: float = ...,
                records: dict[bytes, bytes] | None = ...) -> Engine: ...
    @property
    def stats(self) -> dict[str, int | float | None]: ...
    @property
    def outbox_messages(self) -> int: ...
    @property
    def outbox_bytes(self) -> int: ...
    @property
    def has_room(self) -> bool: ...
    @property
    def awaiting_reply(self) -> frozenset[bytes]: ...
