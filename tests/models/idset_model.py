"""Reference model of :class:`relio.engine._idset.IdSet`: a set for membership and a deque for age.

This is the readable specification (and the idiomatic pure-Python equivalent the benchmark measures
against): ids are 16-byte strings, the oldest *inserted* id is forgotten first once ``capacity`` ids
are held, and seeing an id again does not make it younger.
"""

from __future__ import annotations

from collections import deque

ID_SIZE = 16


def _check_id(message_id: bytes) -> bytes:
    if len(message_id) != ID_SIZE:
        raise ValueError(f"a message id is {ID_SIZE} bytes, got {len(message_id)}")
    return message_id


def _split_ids(ids: bytes | bytearray | memoryview) -> list[bytes]:
    ids = bytes(ids)
    if len(ids) % ID_SIZE:
        raise ValueError(f"ids must be concatenated {ID_SIZE}-byte ids, got {len(ids)} bytes")
    return [ids[i : i + ID_SIZE] for i in range(0, len(ids), ID_SIZE)]


class IdSetModel:
    def __init__(self, capacity: int = 100_000):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._ids: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def add(self, message_id: bytes) -> bool:
        if _check_id(message_id) in self._ids:
            return False
        if len(self._order) == self.capacity:
            self._ids.remove(self._order.popleft())
        self._ids.add(message_id)
        self._order.append(message_id)
        return True

    def __contains__(self, message_id: bytes) -> bool:
        return _check_id(message_id) in self._ids

    def __len__(self) -> int:
        return len(self._order)

    def add_many(self, ids: bytes | bytearray | memoryview) -> int:
        return sum(self.add(message_id) for message_id in _split_ids(ids))

    def contains_many(self, ids: bytes | bytearray | memoryview) -> bytes:
        return bytes(message_id in self._ids for message_id in _split_ids(ids))

    def to_list(self, newest: int = -1) -> list[bytes]:
        ids = list(self._order)
        return ids[len(ids) - newest:] if 0 <= newest < len(ids) else ids

    def clear(self) -> None:
        self._ids.clear()
        self._order.clear()
