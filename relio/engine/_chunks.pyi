"""Chunking of big payloads (zero-copy split) and their reassembly under memory caps."""

from collections.abc import Iterable
from typing import Any

from typing_extensions import Buffer

from relio.engine._events import MessageReceived, ResponseReceived

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

DEFAULT_CHUNK_SIZE: int

def split(payload: Buffer, chunk_size: int = 65536) -> list[memoryview]:
    """Cut payload into consecutive slices of at most chunk_size bytes, without copying.

    Every slice is a memoryview of payload itself (``.obj is payload``); an empty payload gives
    ``[]``. Raises ValueError if chunk_size < 1.
    """

def reassemble_into(out: Buffer, chunks: Iterable[tuple[int, Buffer]]) -> int:
    """Copy (offset, data) chunks into the writable buffer out, which holds the whole message.

    Chunks are checked as Reassembler.add checks them (RemoteProtocolError) and may overlap.
    Returns the number of distinct bytes of out written (``len(out)`` when complete). Allocates
    nothing per message, so reusing out reassembles without allocating.
    """

def take_range(event: MessageReceived | ResponseReceived, start: int, stop: int) -> bytes:
    """Bytes ``[start, stop)`` of a received message's payload, taken from its engine event.

    When the event holds the only reference to its payload, the payload object itself becomes
    those bytes (moved to the front of its buffer, which is shrunk: no second buffer) and the
    event's payload is None afterwards; otherwise a copy, and the event keeps its payload. Raises
    ValueError for a range outside the payload or a payload taken already, TypeError for another
    object than these events.
    """

class Reassembler:
    """The messages being rebuilt from chunks on one session, under count and memory caps."""

    @property
    def max_message_size(self) -> int:
        """Largest total accepted; a bigger one is a RemoteProtocolError."""
    @property
    def max_reassemblies(self) -> int:
        """Messages in progress beyond which a new (not head-of-line) message is refused."""
    @property
    def max_bytes(self) -> int:
        """Buffer bytes beyond which a new (not head-of-line) message is refused."""
    @property
    def nbytes(self) -> int:
        """Bytes preallocated for the messages in progress (the sum of their totals)."""
    def __init__(
        self,
        max_message_size: int = 67108864,
        max_reassemblies: int = 64,
        max_bytes: int = 134217728,
    ) -> None: ...
    def add(
        self,
        msg_id: bytes,
        total: int,
        offset: int,
        data: Buffer,
        head_of_line: bool = False,
    ) -> bool:
        """Copy data to offset of message msg_id of total bytes, allocating its buffer at its
        first chunk.

        Returns False (changing nothing) if a new message would exceed max_reassemblies or
        max_bytes, unless head_of_line. Raises RemoteProtocolError if total > max_message_size,
        total < 1, total differs from the message's first chunk, data is empty, offset < 0 or
        offset + len(data) > total.
        """
    def buffer(self, msg_id: bytes) -> bytes | None:
        """A copy of the message's buffer, bytes not received yet zeroed; None if unknown."""
    def finish(self, msg_id: bytes) -> bytes:
        """Hand over the complete message (its buffer itself, no copy) and forget it.

        Raises RemoteProtocolError if fewer than total distinct bytes were received,
        LocalProtocolError if msg_id is not in progress.
        """
    def discard(self, msg_id: bytes) -> None:
        """Forget msg_id's reassembly (no-op if unknown)."""
    def received(self, msg_id: bytes) -> int:
        """Distinct bytes of msg_id received so far, overlaps counted once (0 if unknown)."""
    def message_ids(self) -> list[bytes]:
        """The ids of the messages in progress, in admission order."""
    def __len__(self) -> int:
        """Messages in progress."""
    def __contains__(self, msg_id: Any) -> bool: ...
