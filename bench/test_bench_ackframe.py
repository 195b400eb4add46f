"""The range operation the protocol actually performs: turning a receive window with scattered gaps
into an encoded ACK frame (cumulative point + up to 32 gap/length ranges).

Compiled: ``Engine.resume_state()``, which scans the engine's AckWindow word by word and writes the
varints in C. Pure Python: the bytearray-bitmap window's ``ranges(32)`` plus idiomatic varint encoding.
"""

import random

import pytest

from bench.test_bench_ackwindow import GAPS, PurePythonAckWindow
from relio.engine import _frames as F
from relio.engine._engine import Engine

FILLED = 60_000
MAX_RANGES = 32


def _gapped_seqs():
    gaps = set(random.Random(3).sample(range(1, FILLED), GAPS)) | {0}
    return [s for s in range(FILLED) if s not in gaps]


def _varint(v: int) -> bytes:
    if v < 1 << 6:
        return v.to_bytes(1, "big")
    if v < 1 << 14:
        return (v | 0x4000).to_bytes(2, "big")
    if v < 1 << 30:
        return (v | 0x80000000).to_bytes(4, "big")
    return (v | 0xC000000000000000).to_bytes(8, "big")


def python_ack(window: PurePythonAckWindow) -> bytes:
    parts = [b"\x02", _varint(window.base), _varint(0)]
    ranges = window.ranges(MAX_RANGES)
    parts.append(_varint(len(ranges)))
    previous = window.base
    for start, end in ranges:
        parts.append(_varint(start - previous))
        parts.append(_varint(end - start))
        previous = end
    return b"".join(parts)


@pytest.fixture(scope="module")
def windows():
    seqs = _gapped_seqs()
    engine = Engine()
    for i in range(0, len(seqs), 4000):
        engine.receive(F.encode_batch(
            [F.encode_data(s, s.to_bytes(16, "big"), b"x") for s in seqs[i:i + 4000]]), 0.0)
    model = PurePythonAckWindow()
    for s in seqs:
        model.mark(s)
    assert engine.resume_state() == python_ack(model)  # the same frame, byte for byte
    return engine, model


@pytest.mark.parametrize("implementation", ["compiled", "pure_python"])
def test_ack_frame_from_gapped_window(benchmark, windows, implementation):
    engine, model = windows
    benchmark.group = "ack frame (32 ranges from a 65,536 window with 100 gaps)"
    if implementation == "compiled":
        benchmark(engine.resume_state)
    else:
        benchmark(python_ack, model)
