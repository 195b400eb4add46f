"""Benchmarks of relio.engine._idset.IdSet against the idiomatic pure-Python equivalent, a set plus a deque.

The pure-Python side is the reference model (tests/models/idset_model.py), so both sides have the
same semantics and get the same ids in the same run. Sets have the default capacity (100,000) and are
full before timing starts, so every fresh id also evicts the oldest one: the steady state of a long
session. Every round does OPS operations (``extra_info["ops"]``): per-op time = mean / ops. The
``*_many`` benchmarks do the same work as one batch call per round.
"""

from __future__ import annotations

import itertools
import os

import pytest

from relio.engine._idset import IdSet
from tests.models.idset_model import IdSetModel

CAPACITY = 100_000
OPS = 10_000
ROUNDS = 30
PREFIX = int.from_bytes(os.urandom(8), "big")

IMPLEMENTATIONS = [pytest.param(IdSet, id="compiled"), pytest.param(IdSetModel, id="set+deque")]


def session_ids(start: int, count: int) -> list[bytes]:
    """Ids as relio makes them: a random 64-bit session prefix, then a message counter."""
    prefix = PREFIX.to_bytes(8, "big")
    return [prefix + n.to_bytes(8, "big") for n in range(start, start + count)]


def full_set(implementation):
    ids = implementation(CAPACITY)
    ids.add_many(b"".join(session_ids(0, CAPACITY)))
    return ids


def fresh_batches():
    """Yields OPS ids never seen before, each time it is asked."""
    for start in itertools.count(CAPACITY, OPS):
        yield session_ids(start, OPS)


def describe(benchmark, implementation, workload):
    benchmark.group = f"idset {workload}"
    benchmark.extra_info["ops"] = OPS
    benchmark.extra_info["implementation"] = implementation.__name__


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_add_fresh_ids(benchmark, implementation):
    describe(benchmark, implementation, "add fresh")
    add = full_set(implementation).add
    batches = fresh_batches()

    def add_all(ids):
        for message_id in ids:
            add(message_id)

    benchmark.pedantic(add_all, setup=lambda: ((next(batches),), {}), rounds=ROUNDS)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_contains_half_hits(benchmark, implementation):
    describe(benchmark, implementation, "contains")
    ids = full_set(implementation)
    probes = session_ids(CAPACITY - OPS // 2, OPS)  # the newest OPS / 2 held, then OPS / 2 never seen

    def look_up_all():
        for message_id in probes:
            message_id in ids  # noqa: B015

    benchmark(look_up_all)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_add_many_fresh_ids(benchmark, implementation):
    describe(benchmark, implementation, "add_many fresh")
    ids = full_set(implementation)
    batches = fresh_batches()
    added = benchmark.pedantic(
        ids.add_many, setup=lambda: ((b"".join(next(batches)),), {}), rounds=ROUNDS
    )
    assert added == OPS


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_contains_many_half_hits(benchmark, implementation):
    describe(benchmark, implementation, "contains_many")
    ids = full_set(implementation)
    probes = b"".join(session_ids(CAPACITY - OPS // 2, OPS))
    held = benchmark(ids.contains_many, probes)
    assert held == b"\x01" * (OPS // 2) + bytes(OPS // 2)
