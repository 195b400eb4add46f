"""Benchmarks of relio.engine._lru.ResponseCache against the idiomatic pure-Python equivalent (the
reference model, an OrderedDict), on the same data in the same run.

Project target: at least 2x the OrderedDict model per call. Every benchmark runs ``ops`` calls per
round (recorded in ``extra_info``), so the per-call time is mean / ops; ``ns_per_op`` is filled in
once the benchmark has run. The loop around the calls is the same for both implementations.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from relio.engine._lru import ResponseCache

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models.lru_model import ResponseCacheModel  # noqa: E402

OPS = 10_000
CAPACITY = 10_000
VALUE = bytes(range(200))  # a response id, its flags and a small payload
NOW = 1000.0

_key_source = random.Random(0)
KEYS = [_key_source.randbytes(16) for _ in range(2 * CAPACITY)]
FIRST, SECOND = KEYS[:CAPACITY], KEYS[CAPACITY:]

IMPLEMENTATIONS = pytest.mark.parametrize(
    "cache_type", [ResponseCache, ResponseCacheModel], ids=["compiled", "python"]
)


def full_cache(cache_type):
    cache = cache_type(CAPACITY, 16 * 1024 * 1024, 120.0)
    for key in FIRST:
        cache.put(key, VALUE, NOW)
    return cache


def run(benchmark, operation, ops, function, setup=None):
    benchmark.group = f"lru-{operation}"
    benchmark.extra_info["ops"] = ops
    if setup is None:
        result = benchmark(function)
    else:
        result = benchmark.pedantic(function, setup=setup, rounds=40, iterations=1)
    benchmark.extra_info["ns_per_op"] = round(benchmark.stats.stats.mean / ops * 1e9, 1)
    return result


@IMPLEMENTATIONS
def test_put_with_eviction(benchmark, cache_type):
    # A full cache takes 10,000 new responses: each put evicts the least recently used entry.
    def put_all(cache):
        put = cache.put
        for key in SECOND:
            put(key, VALUE, NOW)
        return cache

    cache = run(benchmark, "put", OPS, put_all, setup=lambda: ((full_cache(cache_type),), {}))
    assert cache.items()[0][0] == SECOND[0] and len(cache) == CAPACITY


@IMPLEMENTATIONS
def test_get_hits(benchmark, cache_type):
    # Every get hits and moves its entry to the most recent end (the order stays the same cycle).
    cache = full_cache(cache_type)

    def get_all():
        get = cache.get
        for key in FIRST:
            get(key, NOW)

    run(benchmark, "get", OPS, get_all)
    assert cache.get(FIRST[-1], NOW) == VALUE


def mixed_plan() -> list[tuple[bytes, bytes, bytes]]:
    # Per step, the engine's life of a response: a handler replies (put), a retried request finds
    # an earlier response (get; a miss once it was acknowledged or evicted), a requester
    # acknowledges one (pop; absent if already acknowledged or evicted). The cache holds 1,000.
    rng = random.Random(1)

    def earlier(i: int) -> bytes:
        return KEYS[max(0, i - rng.randrange(1, 1500))]

    return [(KEYS[i], earlier(i), earlier(i)) for i in range(OPS // 3 + 1)]


MIXED = mixed_plan()


@IMPLEMENTATIONS
def test_mixed_put_get_pop(benchmark, cache_type):
    def mixed(cache):
        put, get, pop = cache.put, cache.get, cache.pop
        for put_key, get_key, pop_key in MIXED:
            put(put_key, VALUE, NOW)
            get(get_key, NOW)
            pop(pop_key)
        return cache

    cache = run(
        benchmark,
        "mixed",
        3 * len(MIXED),
        mixed,
        setup=lambda: ((cache_type(1000, 16 * 1024 * 1024, 120.0),), {}),
    )
    assert 0 < len(cache) <= 1000


@IMPLEMENTATIONS
def test_expire_all(benchmark, cache_type):
    # 10,000 responses stored one millisecond apart all expire at once (one call, 10,000 drops).
    def fill():
        cache = cache_type(CAPACITY, 16 * 1024 * 1024, 120.0)
        for i, key in enumerate(FIRST):
            cache.put(key, VALUE, NOW + i * 0.001)
        return (cache,), {}

    def expire_all(cache):
        return cache.expire(NOW + 1000.0)

    assert run(benchmark, "expire", OPS, expire_all, setup=fill) == CAPACITY
