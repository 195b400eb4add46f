"""Tests of relio.engine._idset.IdSet: edge cases, then the compiled set against its reference model."""

from __future__ import annotations

import importlib.machinery
import sys
import tracemalloc

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import relio.engine._idset
from relio.engine._idset import MAX_CAPACITY, IdSet, _hashes
from tests.models.idset_model import IdSetModel

ZERO_ID = bytes(16)
MAX_ID = b"\xff" * 16


def session_id(prefix: int, counter: int) -> bytes:
    """An id as relio makes them: a random 64-bit session prefix, then a message counter."""
    return prefix.to_bytes(8, "big") + counter.to_bytes(8, "big")


PREFIX = 0x5EED_1D5E_7A11_0C8D


def ids_with_equal_hashes(pairs: int) -> list[tuple[bytes, bytes]]:
    """Pairs of session ids whose 32-bit table hashes are equal (the hash key is random per process,
    so they are searched for: a birthday search finds a pair in about 80,000 ids)."""
    found: list[tuple[bytes, bytes]] = []
    first_with_hash: dict[int, bytes] = {}
    start = 0
    while len(found) < pairs:
        batch = [session_id(PREFIX, n) for n in range(start, start + 50_000)]
        start += len(batch)
        for message_id, hash_ in zip(batch, _hashes(b"".join(batch))):
            other = first_with_hash.setdefault(hash_, message_id)
            if other != message_id:
                found.append((other, message_id))
    return found[:pairs]


COLLIDING = ids_with_equal_hashes(2)


def test_the_compiled_module_is_what_is_tested():
    assert relio.engine._idset.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


# --- construction ---------------------------------------------------------------------------


def test_default_capacity():
    assert IdSet().capacity == 100_000


@pytest.mark.parametrize("capacity", [0, -1, MAX_CAPACITY + 1])
def test_capacity_must_be_in_range(capacity):
    with pytest.raises(ValueError):
        IdSet(capacity)


def test_capacity_is_read_only():
    ids = IdSet(4)
    with pytest.raises(AttributeError):
        ids.capacity = 5


def test_an_idle_set_stays_small_whatever_its_capacity():
    assert sys.getsizeof(IdSet(MAX_CAPACITY)) < 1024


# --- single ids ----------------------------------------------------------------------------


def test_add_reports_whether_the_id_was_new():
    ids = IdSet(4)
    a = session_id(PREFIX, 1)
    assert a not in ids
    assert ids.add(a) is True
    assert a in ids
    assert ids.add(a) is False
    assert len(ids) == 1


@pytest.mark.parametrize("message_id", [ZERO_ID, MAX_ID, session_id(0, 1), session_id(1, 0)])
def test_special_ids_behave_like_any_other(message_id):
    ids = IdSet(2)
    assert ids.add(message_id)
    assert message_id in ids
    assert not ids.add(message_id)
    ids.add(session_id(PREFIX, 1))
    ids.add(session_id(PREFIX, 2))
    assert message_id not in ids
    assert ids.add(message_id)


def test_ids_differing_in_one_byte_are_distinct():
    ids = IdSet(64)
    base = bytearray(session_id(PREFIX, 7))
    variants = [bytes(base)]
    for position in range(16):
        variant = bytearray(base)
        variant[position] ^= 0x01
        variants.append(bytes(variant))
    assert ids.add_many(b"".join(variants)) == 17
    assert ids.to_list() == variants


@pytest.mark.parametrize("bad", [b"", b"x" * 15, b"x" * 17])
def test_an_id_must_be_16_bytes(bad):
    ids = IdSet(4)
    with pytest.raises(ValueError):
        ids.add(bad)
    with pytest.raises(ValueError):
        bad in ids  # noqa: B015
    assert len(ids) == 0


@pytest.mark.parametrize("bad", [None, "x" * 16, bytearray(16), 5])
def test_an_id_must_be_bytes(bad):
    ids = IdSet(4)
    with pytest.raises(TypeError):
        ids.add(bad)
    with pytest.raises(TypeError):
        bad in ids  # noqa: B015


def test_ids_with_equal_hashes_are_told_apart():
    (a, b), (c, d) = COLLIDING
    ids = IdSet(3)
    assert ids.add(a)
    assert b not in ids
    assert ids.add(b)
    assert ids.add(c)
    assert not ids.add(b)
    assert ids.add(d)  # evicts a, whose slot is on b's walk
    assert ids.contains_many(a + b + c + d) == b"\x00\x01\x01\x01"
    assert ids.to_list() == [b, c, d]


# --- eviction ------------------------------------------------------------------------------


def test_the_oldest_id_is_evicted_first():
    ids = IdSet(3)
    a, b, c, d = (session_id(PREFIX, n) for n in range(4))
    for message_id in (a, b, c, d):
        assert ids.add(message_id)
    assert len(ids) == 3
    assert a not in ids
    assert ids.to_list() == [b, c, d]


@pytest.mark.parametrize("added", [0, 2, 3, 5, 11])
def test_to_list_newest_is_the_tail_of_the_eviction_order(added):
    """``to_list(n)``: the n most recent ids, oldest first, before and after the ring wraps
    (what a durable session snapshot keeps of the id set)."""
    ids = IdSet(4)
    made = [session_id(PREFIX, n) for n in range(added)]
    for message_id in made:
        assert ids.add(message_id)
    everything = ids.to_list()
    assert everything == made[-4:]
    for newest in range(0, 6):
        expected = everything[len(everything) - newest:] if newest < len(everything) \
            else everything
        assert ids.to_list(newest) == expected, newest
    assert ids.to_list(-1) == everything


def test_seeing_an_id_again_does_not_make_it_younger():
    ids = IdSet(2)
    a, b, c = (session_id(PREFIX, n) for n in range(3))
    ids.add(a)
    ids.add(b)
    assert not ids.add(a)
    ids.add(c)
    assert ids.to_list() == [b, c]


def test_an_evicted_id_can_be_added_again_and_evicts_the_next_oldest():
    ids = IdSet(2)
    a, b, c = (session_id(PREFIX, n) for n in range(3))
    ids.add_many(a + b + c)
    assert a not in ids
    assert ids.add(a)
    assert ids.to_list() == [c, a]


def test_capacity_one_holds_the_latest_id():
    ids = IdSet(1)
    for n in range(10):
        assert ids.add(session_id(PREFIX, n))
        assert ids.to_list() == [session_id(PREFIX, n)]
    assert session_id(PREFIX, 8) not in ids


def test_sequential_session_ids_through_growth_and_steady_eviction():
    capacity, total = 1000, 20_000
    ids = IdSet(capacity)
    everything = [session_id(PREFIX, n) for n in range(total)]
    assert ids.add_many(b"".join(everything)) == total
    assert ids.to_list() == everything[-capacity:]
    held = ids.contains_many(b"".join(everything))
    assert held == bytes(total - capacity) + b"\x01" * capacity


# --- batches --------------------------------------------------------------------------------


def test_add_many_counts_new_ids_like_single_adds():
    ids = IdSet(8)
    a, b, c = (session_id(PREFIX, n) for n in range(3))
    ids.add(a)
    assert ids.add_many(a + b + b + c) == 2
    assert ids.to_list() == [a, b, c]
    assert ids.add_many(b"") == 0


def test_a_batch_bigger_than_the_capacity_keeps_its_newest_ids():
    ids = IdSet(3)
    batch = [session_id(PREFIX, n) for n in range(10)]
    assert ids.add_many(b"".join(batch)) == 10
    assert ids.to_list() == batch[-3:]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_batches_accept_any_bytes_like(kind):
    ids = IdSet(4)
    a, b = session_id(PREFIX, 1), session_id(PREFIX, 2)
    assert ids.add_many(kind(a + b)) == 2
    assert ids.contains_many(kind(b + session_id(PREFIX, 3) + a)) == b"\x01\x00\x01"


@pytest.mark.parametrize("length", [1, 15, 17, 33])
def test_a_batch_must_be_whole_ids(length):
    ids = IdSet(4)
    with pytest.raises(ValueError):
        ids.add_many(bytes(length))
    with pytest.raises(ValueError):
        ids.contains_many(bytes(length))
    assert len(ids) == 0


def test_contains_many_of_nothing_is_empty():
    assert IdSet(4).contains_many(b"") == b""


# --- clear, snapshots, memory --------------------------------------------------------------


def test_clear_forgets_everything_and_the_set_keeps_working():
    ids = IdSet(3)
    batch = [session_id(PREFIX, n) for n in range(5)] + [ZERO_ID]
    ids.add_many(b"".join(batch))
    ids.clear()
    assert len(ids) == 0
    assert ids.to_list() == []
    assert ids.contains_many(b"".join(batch)) == bytes(len(batch))
    assert ids.capacity == 3
    assert ids.add_many(b"".join(batch)) == len(batch)
    assert ids.to_list() == batch[-3:]


def test_a_snapshot_restores_the_same_set_and_eviction_order():
    original = IdSet(5)
    original.add_many(b"".join(session_id(PREFIX, n) for n in range(12)))
    restored = IdSet(5)
    restored.add_many(b"".join(original.to_list()))
    assert restored.to_list() == original.to_list()
    for n in range(12, 15):
        original.add(session_id(PREFIX, n))
        restored.add(session_id(PREFIX, n))
    assert restored.to_list() == original.to_list()


def test_memory_does_not_grow_past_capacity():
    capacity = 5000
    ids = IdSet(capacity)
    ids.add_many(b"".join(session_id(PREFIX, n) for n in range(capacity)))
    size_when_full = sys.getsizeof(ids)
    more = b"".join(session_id(PREFIX, n) for n in range(capacity, 11 * capacity))
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        ids.add_many(more)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024
    assert sys.getsizeof(ids) == size_when_full
    assert len(ids) == capacity


def test_the_size_at_capacity_is_bounded():
    # Fewer than 4 * capacity table slots of 8 bytes (a power of two at least 2 * capacity), and a
    # ring of capacity 16-byte ids.
    capacity = 3000
    ids = IdSet(capacity)
    ids.add_many(b"".join(session_id(PREFIX, n) for n in range(capacity)))
    assert sys.getsizeof(ids) < 1024 + (4 * 8 + 16) * capacity


# --- the compiled set against the model ----------------------------------------------------

# A small pool makes repeats, evictions and re-adds frequent; it includes the all-zero and all-one ids,
# ids sharing one half and ids with equal hashes, next to sequential session ids.
POOL = [ZERO_ID, MAX_ID, session_id(0, 1), session_id(1, 0), *sum(COLLIDING, ())] + [
    session_id(PREFIX, n) for n in range(92)
]
POOL_BLOB = b"".join(POOL)
some_id = st.one_of(st.sampled_from(POOL), st.binary(min_size=16, max_size=16))


class IdSetMachine(RuleBasedStateMachine):
    @initialize(capacity=st.integers(1, 64))
    def create(self, capacity):
        self.compiled = IdSet(capacity)
        self.model = IdSetModel(capacity)

    @rule(message_id=some_id)
    def add(self, message_id):
        assert self.compiled.add(message_id) == self.model.add(message_id)

    @rule(message_id=some_id)
    def contains(self, message_id):
        assert (message_id in self.compiled) == (message_id in self.model)

    @rule(batch=st.lists(some_id, max_size=80))
    def add_many(self, batch):
        blob = b"".join(batch)
        assert self.compiled.add_many(blob) == self.model.add_many(blob)

    @rule(batch=st.lists(some_id, max_size=20))
    def contains_many(self, batch):
        blob = b"".join(batch)
        assert self.compiled.contains_many(blob) == self.model.contains_many(blob)

    @rule()
    def clear(self):
        self.compiled.clear()
        self.model.clear()

    @invariant()
    def same_ids_in_the_same_order(self):
        assert len(self.compiled) == len(self.model) <= self.compiled.capacity
        assert self.compiled.to_list() == self.model.to_list()

    @invariant()
    def every_held_id_is_found_and_no_other(self):
        # Catches a broken probe chain after a deletion: a held id the table can no longer find.
        held = b"".join(self.model.to_list())
        assert self.compiled.contains_many(held) == b"\x01" * len(self.model)
        assert self.compiled.contains_many(POOL_BLOB) == self.model.contains_many(POOL_BLOB)


IdSetMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
test_idset_agrees_with_model = IdSetMachine.TestCase
