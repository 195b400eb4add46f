"""Type stubs for the compiled :mod:`relio.engine._idset` (see ``ext/relio/engine/_idset.pyx``)."""

from typing_extensions import Buffer

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

#: The largest capacity (the table stores 32-bit hashes and ring positions).
MAX_CAPACITY: int

def _hashes(ids: Buffer, /) -> list[int]:
    """The 32-bit table hashes of concatenated 16-byte ids (random per process; for tests)."""

class IdSet:
    """A bounded set of 16-byte message ids that forgets the oldest inserted id first."""

    @property
    def capacity(self) -> int:
        """How many ids are remembered; adding one more evicts the oldest."""

    def __init__(self, capacity: int = 100_000) -> None:
        """Raises ValueError unless ``1 <= capacity <= MAX_CAPACITY``. Memory grows with the ids
        held (32 to 48 bytes per id when full), not with the capacity."""

    def add(self, message_id: bytes, /) -> bool:
        """Add a 16-byte id; True if it was new (evicting the oldest id when full).

        An id already present keeps its age. Raises ValueError if the id is not 16 bytes.
        """

    def __contains__(self, message_id: bytes, /) -> bool:
        """Whether the 16-byte id is held. Raises ValueError if it is not 16 bytes."""

    def __len__(self) -> int:
        """How many ids are held (at most ``capacity``)."""

    def add_many(self, ids: Buffer, /) -> int:
        """Add concatenated 16-byte ids in order, as that many ``add`` calls; returns how many were
        new.

        Raises ValueError if the length is not a multiple of 16.
        """

    def contains_many(self, ids: Buffer, /) -> bytes:
        """For concatenated 16-byte ids, one byte per id: 1 if it is held, else 0."""

    def to_list(self, newest: int = -1) -> list[bytes]:
        """The ids held, oldest first (the order of eviction); ``add_many(b"".join(...))`` restores
        it. With ``newest`` >= 0, only that many of the most recently added."""

    def clear(self) -> None:
        """Forget every id; the memory already allocated is kept."""

    def __sizeof__(self) -> int:
        """Bytes used, including the C hash table and ring."""
