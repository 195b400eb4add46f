"""Reference model of :class:`relio.engine._lru.ResponseCache`: an OrderedDict in recency order.

This is the readable specification (and the idiomatic pure-Python equivalent the benchmark measures
against). Keys and values are bytes. The dict runs from the least to the most recently used entry:
``get`` and ``put`` move an entry to the end, and ``put`` evicts from the front until at most
``max_entries`` entries and ``max_bytes`` bytes of values are held. An entry expires once ``now``
is past its ``stored_at + ttl``; ``put`` sets ``stored_at``, ``get`` does not. The cache reads no
clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict

MiB = 1024 * 1024


def _check_bytes(name: str, value: object) -> None:
    if type(value) is not bytes:
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")


class ResponseCacheModel:
    def __init__(self, max_entries: int = 10_000, max_bytes: int = 16 * MiB, ttl: float = 120.0):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        if not ttl >= 0.0:
            raise ValueError(f"ttl must be a non-negative number of seconds, got {ttl}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = float(ttl)
        self.nbytes = 0
        # key -> (value, stored_at), least recently used first
        self._entries: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def _is_expired(self, stored_at: float, now: float) -> bool:
        return stored_at + self.ttl < now

    def _remove(self, key: bytes) -> None:
        value, _ = self._entries.pop(key)
        self.nbytes -= len(value)

    def get(self, key: bytes, now: float) -> bytes | None:
        _check_bytes("key", key)
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stored_at = entry
        if self._is_expired(stored_at, now):
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: bytes, value: bytes, now: float) -> bool:
        _check_bytes("key", key)
        _check_bytes("value", value)
        if not math.isfinite(now):
            raise ValueError(f"now must be a finite time, got {now}")
        if key in self._entries:
            self._remove(key)  # a value too big to store still supersedes the old one
        if len(value) > self.max_bytes:
            return False
        self._entries[key] = (value, float(now))
        self.nbytes += len(value)
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            _, (evicted, _) = self._entries.popitem(last=False)
            self.nbytes -= len(evicted)
        return True

    def pop(self, key: bytes) -> bool:
        _check_bytes("key", key)
        if key not in self._entries:
            return False
        self._remove(key)
        return True

    def expire(self, now: float) -> int:
        expired = [
            key
            for key, (_, stored_at) in self._entries.items()
            if self._is_expired(stored_at, now)
        ]
        for key in expired:
            self._remove(key)
        return len(expired)

    def next_expiry(self) -> float | None:
        if not self._entries or math.isinf(self.ttl):
            return None
        return min(stored_at for _, stored_at in self._entries.values()) + self.ttl

    def items(self) -> list[tuple[bytes, bytes, float]]:
        return [(key, value, stored_at) for key, (value, stored_at) in self._entries.items()]

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        _check_bytes("key", key)
        return key in self._entries
