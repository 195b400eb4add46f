"""Benchmarks of relio.engine._chunks against the idiomatic pure-Python equivalent (the reference model:
bytes slicing to split, a bytearray and a list of ranges to reassemble), on the same data.

Project target: split + reassembly of a 64 MiB payload in 64 KiB chunks into reused memory runs at
no less than half the machine's memcpy bandwidth, measured in the same run (``test_memcpy``). Every
large benchmark records ``bytes`` per round and, once run, ``gb_per_s`` and ``fraction_of_memcpy``
in ``extra_info``. The small-chunk benchmarks measure the per-chunk overhead (``ops`` chunks per
round: per-chunk time is mean / ops).
"""

from __future__ import annotations

import timeit

import numpy as np
import pytest

from relio.engine._chunks import Reassembler, reassemble_into, split
from tests.models import chunks_model as model

MiB = 1024 * 1024
SIZE = 64 * MiB
CHUNK_SIZE = 64 * 1024
SMALL_CHUNKS = 10_000
SMALL_CHUNK_SIZE = 100


@pytest.fixture(scope="module")
def payload() -> bytes:
    return np.random.default_rng(0).integers(0, 256, SIZE, dtype=np.uint8).tobytes()


@pytest.fixture(scope="module")
def memcpy_gb_per_s(payload) -> float:
    """The machine's memcpy bandwidth for 64 MiB into preallocated memory (best of 10)."""
    source = np.frombuffer(payload, dtype=np.uint8)
    destination = np.empty_like(source)
    best = min(timeit.repeat(lambda: np.copyto(destination, source), number=1, repeat=10))
    return SIZE / best / 1e9


def offsets_and_chunks(chunks, chunk_size):
    return zip(range(0, len(chunks) * chunk_size, chunk_size), chunks)


def run_large(benchmark, memcpy_gb_per_s, function):
    benchmark.group = "chunks"
    benchmark.extra_info.update(bytes=SIZE, chunk_size=CHUNK_SIZE, ops=SIZE // CHUNK_SIZE)
    result = benchmark(function)
    gb_per_s = SIZE / benchmark.stats.stats.mean / 1e9
    benchmark.extra_info.update(
        gb_per_s=round(gb_per_s, 2),
        memcpy_gb_per_s=round(memcpy_gb_per_s, 2),
        fraction_of_memcpy=round(gb_per_s / memcpy_gb_per_s, 3),
    )
    return result


def test_memcpy(benchmark, payload, memcpy_gb_per_s):
    source = np.frombuffer(payload, dtype=np.uint8)
    destination = np.empty_like(source)
    run_large(benchmark, memcpy_gb_per_s, lambda: np.copyto(destination, source))
    assert destination.tobytes() == payload


def test_compiled_into_reused_memory(benchmark, payload, memcpy_gb_per_s):
    out = bytearray(SIZE)

    def split_and_reassemble():
        return reassemble_into(out, offsets_and_chunks(split(payload, CHUNK_SIZE), CHUNK_SIZE))

    assert run_large(benchmark, memcpy_gb_per_s, split_and_reassemble) == SIZE
    assert out == payload


def test_compiled_into_fresh_buffers(benchmark, payload, memcpy_gb_per_s):
    reassembler = Reassembler()

    def split_and_reassemble():
        for offset, chunk in offsets_and_chunks(split(payload, CHUNK_SIZE), CHUNK_SIZE):
            reassembler.add(b"m", SIZE, offset, chunk)
        return reassembler.finish(b"m")

    assert run_large(benchmark, memcpy_gb_per_s, split_and_reassemble) == payload


def test_python_into_reused_memory(benchmark, payload, memcpy_gb_per_s):
    out = bytearray(SIZE)

    def split_and_reassemble():
        chunks = model.split(payload, CHUNK_SIZE)
        return model.reassemble_into(out, offsets_and_chunks(chunks, CHUNK_SIZE))

    assert run_large(benchmark, memcpy_gb_per_s, split_and_reassemble) == SIZE
    assert out == payload


def test_python_into_fresh_buffers(benchmark, payload, memcpy_gb_per_s):
    reassembler = model.Reassembler()

    def split_and_reassemble():
        for offset, chunk in offsets_and_chunks(model.split(payload, CHUNK_SIZE), CHUNK_SIZE):
            reassembler.add(b"m", SIZE, offset, chunk)
        return reassembler.finish(b"m")

    assert run_large(benchmark, memcpy_gb_per_s, split_and_reassemble) == payload


# --- per-chunk overhead: 10,000 small chunks per round --------------------------------------


@pytest.mark.parametrize(
    ("implementation", "split_function", "reassembler_class"),
    [
        ("compiled", split, Reassembler),
        ("python", model.split, model.Reassembler),
    ],
)
def test_small_chunks(benchmark, implementation, split_function, reassembler_class):
    benchmark.group = "chunks-small"
    small_payload = bytes(range(256)) * (SMALL_CHUNKS * SMALL_CHUNK_SIZE // 256 + 1)
    small_payload = small_payload[: SMALL_CHUNKS * SMALL_CHUNK_SIZE]
    total = len(small_payload)
    reassembler = reassembler_class()

    def split_and_reassemble():
        chunks = split_function(small_payload, SMALL_CHUNK_SIZE)
        for offset, chunk in offsets_and_chunks(chunks, SMALL_CHUNK_SIZE):
            reassembler.add(b"m", total, offset, chunk)
        return reassembler.finish(b"m")

    benchmark.extra_info.update(ops=SMALL_CHUNKS, chunk_size=SMALL_CHUNK_SIZE, bytes=total)
    assert benchmark(split_and_reassemble) == small_payload
