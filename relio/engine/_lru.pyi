"""Type stubs for the compiled :mod:`relio.engine._lru` (see ``ext/relio/engine/_lru.pyx``)."""

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

class ResponseCache:
    """A bounded cache of encoded handler responses keyed by request id, least recently used out
    first, each entry expiring ``ttl`` seconds after it was stored. Times are the caller's
    ``now``."""

    @property
    def max_entries(self) -> int:
        """Most entries held."""

    @property
    def max_bytes(self) -> int:
        """Most bytes of values held; a value bigger than this alone is not stored."""

    @property
    def ttl(self) -> float:
        """Seconds after its ``put`` at which an entry expires (``inf``: never)."""

    @property
    def nbytes(self) -> int:
        """Sum of the lengths of the values held."""

    def __init__(
        self, max_entries: int = 10_000, max_bytes: int = 16 * 1024 * 1024, ttl: float = 120.0
    ) -> None:
        """Raises ValueError unless ``max_entries >= 1``, ``max_bytes >= 0`` and ``ttl >= 0``."""

    def get(self, key: bytes, now: float) -> bytes | None:
        """The value stored under ``key``, now the most recently used; None if absent or expired
        (``now > stored_at + ttl``; an expired entry is dropped). Its ``stored_at`` is unchanged."""

    def put(self, key: bytes, value: bytes, now: float) -> bool:
        """Store ``value`` under ``key`` at time ``now`` as the most recently used entry, replacing
        any old value, then evict least recently used entries until ``len <= max_entries`` and
        ``nbytes <= max_bytes``.

        Returns False, storing nothing and dropping any old value, if ``len(value) > max_bytes``.
        Raises ValueError if ``now`` is not finite.
        """

    def pop(self, key: bytes) -> bool:
        """Remove ``key`` (the requester acknowledged the response); True if it was held."""

    def expire(self, now: float) -> int:
        """Drop every entry with ``now > stored_at + ttl``; returns how many were dropped.

        Costs O(dropped): entries are also kept in ``stored_at`` order.
        """

    def next_expiry(self) -> float | None:
        """The oldest entry's ``stored_at + ttl``: ``expire(t)`` drops it for any ``t`` after this
        (not at it). None if the cache is empty or ``ttl`` is infinite."""

    def items(self) -> list[tuple[bytes, bytes, float]]:
        """``(key, value, stored_at)`` of every entry, least recently used first (for snapshots):
        ``put``-ting them back in this order into an empty cache restores it."""

    def clear(self) -> None:
        """Drop every entry."""

    def __len__(self) -> int:
        """How many entries are held (expired ones included until dropped)."""

    def __contains__(self, key: bytes) -> bool:
        """Whether ``key`` is held (expired or not), without making it more recent."""
