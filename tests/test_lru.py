"""Tests of relio.engine._lru.ResponseCache: edge cases (run against the compiled cache and its reference
model alike), then the compiled cache against the model under random operations."""

from __future__ import annotations

import importlib.machinery
import math
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import relio.engine._lru
from relio.engine._lru import ResponseCache
from tests.models.lru_model import ResponseCacheModel


def request_id(n: int) -> bytes:
    return n.to_bytes(16, "big")


A, B, C, D = (request_id(n) for n in range(1, 5))


@pytest.fixture(params=[ResponseCache, ResponseCacheModel], ids=["compiled", "model"])
def cache_type(request):
    return request.param


def keys(cache) -> list[bytes]:
    return [key for key, _, _ in cache.items()]


def test_the_compiled_module_is_what_is_tested():
    assert relio.engine._lru.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


# --- construction ---------------------------------------------------------------------------


def test_defaults(cache_type):
    cache = cache_type()
    assert (cache.max_entries, cache.max_bytes, cache.ttl) == (10_000, 16 * 1024 * 1024, 120.0)
    assert len(cache) == cache.nbytes == 0
    assert cache.items() == []
    assert cache.next_expiry() is None


@pytest.mark.parametrize(
    "bounds",
    [
        dict(max_entries=0),
        dict(max_entries=-1),
        dict(max_bytes=-1),
        dict(ttl=-0.5),
        dict(ttl=math.nan),
    ],
)
def test_bounds_are_checked(cache_type, bounds):
    with pytest.raises(ValueError):
        cache_type(**bounds)


def test_bounds_are_read_only():
    cache = ResponseCache(4, 100, 1.0)
    for name in ("max_entries", "max_bytes", "ttl", "nbytes"):
        with pytest.raises(AttributeError):
            setattr(cache, name, 1)


# --- types ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["request", bytearray(A), memoryview(A), 1, None])
def test_keys_must_be_bytes(cache_type, key):
    cache = cache_type(4, 100, 1.0)
    with pytest.raises(TypeError):
        cache.put(key, b"x", 0.0)
    with pytest.raises(TypeError):
        cache.get(key, 0.0)
    with pytest.raises(TypeError):
        cache.pop(key)
    with pytest.raises(TypeError):
        key in cache  # noqa: B015


@pytest.mark.parametrize("value", ["response", bytearray(b"x"), None])
def test_values_must_be_bytes(cache_type, value):
    cache = cache_type(4, 100, 1.0)
    with pytest.raises(TypeError):
        cache.put(A, value, 0.0)
    assert len(cache) == 0


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_a_store_needs_a_finite_time(cache_type, now):
    cache = cache_type(4, 100, 1.0)
    with pytest.raises(ValueError):
        cache.put(A, b"x", now)
    assert len(cache) == 0


# --- get, put, pop ---------------------------------------------------------------------------


def test_put_then_get(cache_type):
    cache = cache_type(4, 100, 10.0)
    assert cache.put(A, b"response", 1.0) is True
    assert A in cache
    assert cache.get(A, 2.0) == b"response"
    assert cache.get(B, 2.0) is None
    assert len(cache) == 1
    assert cache.nbytes == len(b"response")
    assert cache.items() == [(A, b"response", 1.0)]


def test_put_replaces_the_value_and_its_size(cache_type):
    cache = cache_type(4, 100, 10.0)
    cache.put(A, b"first", 1.0)
    cache.put(B, b"other", 1.0)
    assert cache.put(A, b"second value", 2.0)
    assert cache.get(A, 2.0) == b"second value"
    assert len(cache) == 2
    assert cache.nbytes == len(b"second value") + len(b"other")


def test_put_refreshes_stored_at_and_recency(cache_type):
    cache = cache_type(4, 100, 10.0)
    cache.put(A, b"a", 1.0)
    cache.put(B, b"b", 2.0)
    cache.put(A, b"a2", 3.0)
    assert cache.items() == [(B, b"b", 2.0), (A, b"a2", 3.0)]
    assert cache.next_expiry() == 12.0


def test_a_value_bigger_than_max_bytes_is_not_stored(cache_type):
    cache = cache_type(4, 10, 10.0)
    cache.put(B, b"b", 0.0)
    assert cache.put(A, b"x" * 11, 0.0) is False
    assert A not in cache
    assert cache.items() == [(B, b"b", 0.0)]
    assert cache.put(A, b"x" * 10, 0.0) is True  # exactly max_bytes fits, evicting B
    assert cache.items() == [(A, b"x" * 10, 0.0)]


def test_a_value_too_big_still_supersedes_the_old_one(cache_type):
    # Re-sending the old response to a retry would answer with data the handler has replaced.
    cache = cache_type(4, 10, 10.0)
    cache.put(A, b"old", 0.0)
    assert cache.put(A, b"x" * 11, 1.0) is False
    assert A not in cache
    assert cache.nbytes == 0


def test_empty_values_fit_a_cache_of_zero_bytes(cache_type):
    cache = cache_type(2, 0, 10.0)
    assert cache.put(A, b"", 0.0)
    assert cache.put(B, b"", 0.0)
    assert cache.put(C, b"", 0.0)
    assert keys(cache) == [B, C]
    assert cache.get(C, 0.0) == b""  # an empty response is not a miss
    assert cache.put(D, b"x", 0.0) is False


def test_pop(cache_type):
    cache = cache_type(4, 100, 10.0)
    cache.put(A, b"abc", 0.0)
    cache.put(B, b"de", 0.0)
    assert cache.pop(A) is True
    assert cache.pop(A) is False
    assert cache.pop(C) is False
    assert A not in cache
    assert cache.items() == [(B, b"de", 0.0)]
    assert cache.nbytes == 2


def test_clear(cache_type):
    cache = cache_type(4, 100, 10.0)
    for key in (A, B, C):
        cache.put(key, b"value", 0.0)
    cache.clear()
    assert len(cache) == cache.nbytes == 0
    assert cache.items() == []
    assert cache.next_expiry() is None
    assert cache.get(A, 0.0) is None
    assert cache.put(D, b"after", 1.0)
    assert cache.items() == [(D, b"after", 1.0)]


# --- eviction -------------------------------------------------------------------------------


def test_the_least_recently_used_entry_is_evicted_at_max_entries(cache_type):
    cache = cache_type(3, 100, 10.0)
    for key in (A, B, C):
        cache.put(key, b"v", 0.0)
    cache.get(A, 0.0)  # B is now the least recently used
    cache.put(D, b"v", 0.0)
    assert keys(cache) == [C, A, D]


def test_contains_does_not_change_recency(cache_type):
    cache = cache_type(2, 100, 10.0)
    cache.put(A, b"v", 0.0)
    cache.put(B, b"v", 0.0)
    assert A in cache
    cache.put(C, b"v", 0.0)
    assert keys(cache) == [B, C]


def test_eviction_by_bytes_may_drop_several_entries(cache_type):
    cache = cache_type(10, 10, 10.0)
    cache.put(A, b"aaa", 0.0)
    cache.put(B, b"bbb", 0.0)
    cache.put(C, b"ccc", 0.0)
    cache.put(D, b"dddddddd", 0.0)
    assert keys(cache) == [D]
    assert cache.nbytes == 8


def test_a_growing_value_evicts_others_but_never_itself(cache_type):
    cache = cache_type(10, 10, 10.0)
    cache.put(A, b"aaa", 0.0)
    cache.put(B, b"bbb", 0.0)
    cache.put(A, b"aaaaaaaa", 1.0)  # A is now the most recent; B goes
    assert cache.items() == [(A, b"aaaaaaaa", 1.0)]


# --- time to live ---------------------------------------------------------------------------


def test_an_entry_expires_only_after_its_ttl(cache_type):
    cache = cache_type(4, 100, 2.0)
    cache.put(A, b"v", 1.0)
    assert cache.get(A, 3.0) == b"v"  # exactly ttl old: still held
    assert cache.get(A, 3.5) is None  # older than ttl: dropped
    assert A not in cache
    assert cache.nbytes == 0


def test_get_does_not_refresh_stored_at(cache_type):
    cache = cache_type(4, 100, 2.0)
    cache.put(A, b"v", 0.0)
    assert cache.get(A, 1.5) == b"v"
    assert cache.items() == [(A, b"v", 0.0)]
    assert cache.get(A, 2.5) is None


def test_expire_drops_exactly_the_expired_entries(cache_type):
    cache = cache_type(10, 100, 5.0)
    cache.put(A, b"a", 0.0)
    cache.put(B, b"b", 1.0)
    cache.put(C, b"c", 2.0)
    cache.put(D, b"d", 3.0)
    # Recency now differs from age: A and B were used last, but they are still the oldest.
    cache.get(B, 4.0)
    cache.get(A, 4.0)
    assert cache.expire(5.0) == 0
    assert cache.expire(6.5) == 2
    assert keys(cache) == [C, D]
    assert cache.nbytes == 2
    assert cache.next_expiry() == 7.0
    assert cache.expire(100.0) == 2
    assert len(cache) == 0


def test_next_expiry_is_the_oldest_stored_at_plus_ttl(cache_type):
    cache = cache_type(10, 100, 5.0)
    cache.put(A, b"a", 1.0)
    cache.put(B, b"b", 2.0)
    cache.get(A, 2.0)
    assert cache.next_expiry() == 6.0
    assert cache.expire(cache.next_expiry()) == 0  # at that instant the entry is exactly ttl old
    cache.pop(A)
    assert cache.next_expiry() == 7.0


def test_next_expiry_is_none_when_nothing_ever_expires(cache_type):
    cache = cache_type(10, 100, math.inf)
    cache.put(A, b"a", 0.0)
    assert cache.next_expiry() is None
    assert cache.expire(1e300) == 0
    assert cache.get(A, 1e300) == b"a"


def test_a_zero_ttl_keeps_an_entry_for_the_instant_it_was_stored(cache_type):
    cache = cache_type(10, 100, 0.0)
    cache.put(A, b"a", 1.0)
    assert cache.get(A, 1.0) == b"a"
    assert cache.expire(1.0) == 0
    assert cache.expire(1.000001) == 1


def test_entries_stored_at_an_earlier_time_find_their_place_in_age_order(cache_type):
    # A restored snapshot puts entries back in recency order, which is not their age order.
    cache = cache_type(10, 100, 5.0)
    cache.put(A, b"a", 3.0)
    cache.put(B, b"b", 1.0)
    cache.put(C, b"c", 2.0)
    cache.put(D, b"d", 1.0)
    assert keys(cache) == [A, B, C, D]
    assert cache.next_expiry() == 6.0
    assert cache.expire(6.5) == 2
    assert keys(cache) == [A, C]
    assert cache.expire(7.5) == 1
    assert keys(cache) == [A]


# --- memory -------------------------------------------------------------------------------


def test_every_way_out_releases_the_key_and_the_value():
    # The entries link to each other with borrowed pointers; the dict alone owns them.
    key, value = request_id(99), b"a response of some size" * 4
    baseline = sys.getrefcount(key), sys.getrefcount(value)
    cache = ResponseCache(2, 1000, 1.0)
    ways_out = [
        lambda: cache.pop(key),
        lambda: cache.put(key, b"x" * 2000, 0.0),  # too big: supersedes and drops
        lambda: [cache.put(request_id(n), b"", 0.0) for n in range(2)],  # evicted
        lambda: cache.get(key, 5.0),  # expired when found
        lambda: cache.expire(5.0),
        lambda: cache.clear(),
    ]
    for way_out in ways_out:
        cache.put(key, value, 0.0)
        cache.get(key, 0.5)
        way_out()
        assert key not in cache
        assert (sys.getrefcount(key), sys.getrefcount(value)) == baseline
    cache.put(key, value, 0.0)
    del cache
    assert (sys.getrefcount(key), sys.getrefcount(value)) == baseline


# --- snapshots ------------------------------------------------------------------------------


def test_putting_items_back_restores_the_cache(cache_type):
    cache = cache_type(3, 100, 5.0)
    cache.put(A, b"a", 0.0)
    cache.put(B, b"bb", 1.0)
    cache.put(C, b"ccc", 2.0)
    cache.get(A, 3.0)
    restored = cache_type(cache.max_entries, cache.max_bytes, cache.ttl)
    for key, value, stored_at in cache.items():
        assert restored.put(key, value, stored_at)
    assert restored.items() == cache.items()
    assert restored.nbytes == cache.nbytes
    assert restored.next_expiry() == cache.next_expiry()
    # Both evict the same entry (B, the least recently used) and expire the same one (A, the oldest,
    # though recently used) from here on.
    for each in (cache, restored):
        each.put(D, b"d", 4.0)
        each.expire(6.5)
    assert restored.items() == cache.items() == [(C, b"ccc", 2.0), (D, b"d", 4.0)]


# --- the compiled cache against the model -----------------------------------------------------

KEY_POOL = [request_id(n) for n in range(6)]
some_key = st.sampled_from(KEY_POOL)


class ResponseCacheMachine(RuleBasedStateMachine):
    """Random operations at a clock that never goes back, with small bounds so that eviction and
    expiry happen all the time."""

    @initialize(
        max_entries=st.integers(1, 8),
        max_bytes=st.integers(0, 64),
        ttl=st.sampled_from([0.0, 1.0, 2.5, 10.0, math.inf]),
    )
    def create(self, max_entries, max_bytes, ttl):
        self.compiled = ResponseCache(max_entries, max_bytes, ttl)
        self.model = ResponseCacheModel(max_entries, max_bytes, ttl)
        self.now = 1000.0

    @rule(
        delta=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]) | st.floats(0.0, 3.0),
        fire=st.booleans(),
    )
    def time_passes(self, delta, fire):
        # Then maybe the caller's timer fires and expires; if not, get meets the expired entries.
        self.now += delta
        if fire:
            assert self.compiled.expire(self.now) == self.model.expire(self.now)

    @rule(
        stores=st.lists(
            st.tuples(
                some_key,
                # Mostly small values, so that several fit; sometimes one too big to store.
                st.integers(0, 6) | st.integers(0, 80),
                st.integers(0, 255),
                # A little time passes between stores, so that entries of different ages coexist.
                st.sampled_from([0.0, 0.1, 0.25]),
            ),
            min_size=1,
            max_size=4,
        )
    )
    def put(self, stores):
        for key, size, fill, elapsed in stores:
            self.now += elapsed
            value = bytes([fill]) * size
            assert self.compiled.put(key, value, self.now) == self.model.put(key, value, self.now)

    @rule(data=st.data())
    def get(self, data):
        # Mostly a held key (a hit that changes the recency order), sometimes any key (a miss).
        held = [key for key, _, _ in self.model.items()]
        key = data.draw(st.sampled_from(held) if held and data.draw(st.booleans()) else some_key)
        assert self.compiled.get(key, self.now) == self.model.get(key, self.now)

    @rule(key=some_key)
    def pop(self, key):
        assert self.compiled.pop(key) == self.model.pop(key)

    @precondition(lambda self: len(self.model) == self.model.max_entries)  # rarely: let it fill
    @rule()
    def clear(self):
        self.compiled.clear()
        self.model.clear()

    @invariant()
    def same_entries_in_the_same_order(self):
        assert self.compiled.items() == self.model.items()
        assert len(self.compiled) == len(self.model)
        assert self.compiled.nbytes == self.model.nbytes
        assert self.compiled.next_expiry() == self.model.next_expiry()
        assert [key in self.compiled for key in KEY_POOL] == [key in self.model for key in KEY_POOL]

    @invariant()
    def copies_expire_alike_at_every_later_time(self):
        # Recency order and age order part ways after a hit; a copy of each cache (put back from
        # items(), which also exercises stores out of age order) expires entry by entry the same.
        if math.isinf(self.model.ttl):
            return
        copies = []
        for cache_type, cache in ((ResponseCache, self.compiled), (ResponseCacheModel, self.model)):
            copy = cache_type(cache.max_entries, cache.max_bytes, cache.ttl)
            for key, value, stored_at in cache.items():
                copy.put(key, value, stored_at)
            copies.append(copy)
        compiled_copy, model_copy = copies
        for stored_at in sorted({stored_at for _, _, stored_at in self.model.items()}):
            just_after = math.nextafter(stored_at + self.model.ttl, math.inf)
            assert compiled_copy.expire(just_after) == model_copy.expire(just_after)
            assert compiled_copy.items() == model_copy.items()
        assert len(compiled_copy) == 0

    @invariant()
    def bounds_hold(self):
        items = self.compiled.items()
        assert len(items) <= self.compiled.max_entries
        assert self.compiled.nbytes == sum(len(value) for _, value, _ in items)
        assert self.compiled.nbytes <= self.compiled.max_bytes


ResponseCacheMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=50, deadline=None
)
test_response_cache_agrees_with_model = ResponseCacheMachine.TestCase


@settings(max_examples=200, deadline=None)
@given(
    stored=st.lists(
        st.tuples(some_key, st.integers(0, 4), st.integers(0, 20).map(float)), max_size=12
    ),
    expire_at=st.lists(st.integers(0, 30).map(float), max_size=4),
)
def test_stores_at_times_out_of_order_agree_with_model(stored, expire_at):
    # Restores and any caller whose times are not sorted: the age list must still end up sorted.
    compiled = ResponseCache(8, 12, 5.0)
    model = ResponseCacheModel(8, 12, 5.0)
    for key, size, stored_at in stored:
        value = b"v" * size
        assert compiled.put(key, value, stored_at) == model.put(key, value, stored_at)
    for now in sorted(expire_at):
        assert compiled.next_expiry() == model.next_expiry()
        assert compiled.expire(now) == model.expire(now)
        assert compiled.items() == model.items()
