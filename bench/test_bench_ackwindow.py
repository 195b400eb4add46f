"""Benchmarks of relio.engine._ackwindow.AckWindow against the idiomatic pure-Python ack window.

The pure-Python equivalent keeps one bytearray flag per ring slot and scans runs with
``bytearray.find`` (C-speed memchr), which is how one would write it without a compiler. Both sides
get the same data in the same run. Mark benchmarks do 10,000 marks per round (``extra_info["ops"]``),
so per-op time = mean / ops; range benchmarks do one call per round over a window with ~100 gaps.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from relio.engine._ackwindow import AckWindow

WINDOW = 65536
OPS = 10_000
GAPS = 100


class PurePythonAckWindow:
    """Same semantics as AckWindow.mark / ranges / holes, with a bytearray ring of flags."""

    __slots__ = ("_flags", "_mask", "base", "size", "highest")

    def __init__(self, size: int = WINDOW, base: int = 0):
        self._flags = bytearray(size)
        self._mask = size - 1
        self.size = size
        self.base = base
        self.highest = base

    def mark(self, seq: int) -> int:
        base = self.base
        if seq < base:
            return 0
        if seq - base >= self.size:
            return -1
        flags, mask = self._flags, self._mask
        if flags[seq & mask]:
            return 0
        if seq == base:
            base += 1
            while flags[base & mask]:
                flags[base & mask] = 0
                base += 1
            self.base = base
            if self.highest < base:
                self.highest = base
        else:
            flags[seq & mask] = 1
            if seq >= self.highest:
                self.highest = seq + 1
        return 1

    def _runs(self, flag: int, limit: int) -> list[tuple[int, int]]:
        base, size = self.base, self.size
        start, count = base & self._mask, self.highest - base
        if start + count <= size:
            flags, lo = self._flags, start
        else:  # the span wraps around the ring: linearise it
            flags, lo = self._flags[start:] + self._flags[: start + count - size], 0
        hi, other, offset = lo + count, 1 - flag, base - lo
        runs: list[tuple[int, int]] = []
        pos = lo
        while len(runs) < limit:
            run_start = flags.find(flag, pos, hi)
            if run_start < 0:
                break
            pos = flags.find(other, run_start, hi)
            if pos < 0:
                pos = hi
            runs.append((run_start + offset, pos + offset))
        return runs

    def ranges(self, max_ranges: int = 32) -> list[tuple[int, int]]:
        return self._runs(1, max_ranges)

    def holes(self, max_holes: int = 32) -> list[tuple[int, int]]:
        return self._runs(0, max_holes)


IMPLEMENTATIONS = {"compiled": AckWindow, "pure_python": PurePythonAckWindow}
IN_ORDER = list(range(OPS))
SHUFFLED = random.Random(7).sample(range(OPS), OPS)


def mark_each(window, seqs):
    mark = window.mark
    for seq in seqs:
        mark(seq)


def mark_many(window, seqs):
    window.mark_many(seqs)


def bench_marks(benchmark, make_window, run, seqs, name):
    checked = make_window()
    run(checked, seqs)
    assert checked.base == checked.highest == OPS  # every seq of 0..OPS-1 landed
    benchmark.group = "ackwindow"
    benchmark.extra_info.update(ops=len(seqs), case=name)
    # A fresh window per round (built outside the timing): marking changes it.
    benchmark.pedantic(run, setup=lambda: ((make_window(), seqs), {}), rounds=100)


@pytest.mark.parametrize("order", ["in_order", "shuffled"])
@pytest.mark.parametrize("impl", ["compiled", "pure_python"])
def test_mark_each(benchmark, impl, order):
    seqs = IN_ORDER if order == "in_order" else SHUFFLED
    bench_marks(benchmark, IMPLEMENTATIONS[impl], mark_each, seqs, f"mark() x{OPS} {order}")


@pytest.mark.parametrize("order", ["in_order", "shuffled"])
def test_mark_many_compiled(benchmark, order):
    seqs = np.array(IN_ORDER if order == "in_order" else SHUFFLED, dtype=np.uint64)
    bench_marks(benchmark, AckWindow, mark_many, seqs, f"mark_many(uint64[{OPS}]) {order}")


def gappy_window(cls):
    """A full window from base 0 with GAPS - 1 lost seqs scattered above the lost seq at base."""
    window = cls(WINDOW, 0)
    gaps = set(random.Random(11).sample(range(1, WINDOW), GAPS - 1))
    for seq in range(1, WINDOW):
        if seq not in gaps:
            window.mark(seq)
    return window


@pytest.mark.parametrize("limit", [4 * GAPS, 32], ids=["all_runs", "ack_frame_32"])
@pytest.mark.parametrize("scan", ["ranges", "holes"])
@pytest.mark.parametrize("impl", ["compiled", "pure_python"])
def test_scan(benchmark, impl, scan, limit):
    """Every run (a snapshot), or the lowest 32 (what one ACK frame carries by default)."""
    scan_window = getattr(gappy_window(IMPLEMENTATIONS[impl]), scan)
    expected = getattr(gappy_window(PurePythonAckWindow), scan)(limit)
    benchmark.group = "ackwindow"
    benchmark.extra_info.update(ops=1, runs=len(expected), case=f"{scan}({limit}) over {GAPS} gaps")
    assert benchmark(scan_window, limit) == expected
