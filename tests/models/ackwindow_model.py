"""Reference model of relio.engine._ackwindow.AckWindow: the readable specification.

A set of the marked seqs above ``base`` plus ``base`` itself. Everything is done the obvious way
(linear scans over the set), so the compiled ring bitmap can be checked against it step by step.
"""

from __future__ import annotations

from collections.abc import Iterable


class AckWindowModel:
    def __init__(self, size: int = 65536, base: int = 0):
        if size < 1 or size & (size - 1):
            raise ValueError(f"size must be a power of two, got {size}")
        self.size = size
        self.base = base
        self.marked: set[int] = set()  # marked seqs > base; every seq < base is marked implicitly

    @property
    def highest(self) -> int:
        return max(self.marked) + 1 if self.marked else self.base

    def _slide_base(self) -> None:
        while self.base in self.marked:
            self.marked.remove(self.base)
            self.base += 1

    def mark(self, seq: int) -> int:
        if seq < self.base or seq in self.marked:
            return 0
        if seq >= self.base + self.size:
            return -1
        self.marked.add(seq)
        self._slide_base()
        return 1

    def is_marked(self, seq: int) -> bool:
        return seq < self.base or seq in self.marked

    def advance_to(self, new_base: int) -> None:
        if new_base <= self.base:
            return
        self.marked = {seq for seq in self.marked if seq >= new_base}
        self.base = new_base
        self._slide_base()

    def mark_many(self, seqs: Iterable[int]) -> int:
        return sum(self.mark(int(seq)) == 1 for seq in seqs)

    def _runs(self, marked: bool, limit: int) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for seq in range(self.base, self.highest):
            if self.is_marked(seq) != marked:
                continue
            if runs and runs[-1][1] == seq:
                runs[-1] = (runs[-1][0], seq + 1)
            else:
                runs.append((seq, seq + 1))
        return runs[:limit]

    def ranges(self, max_ranges: int = 32) -> list[tuple[int, int]]:
        if max_ranges < 0:
            raise ValueError("max_ranges must be >= 0")
        return self._runs(True, max_ranges)

    def holes(self, max_holes: int = 32) -> list[tuple[int, int]]:
        if max_holes < 0:
            raise ValueError("max_holes must be >= 0")
        return self._runs(False, max_holes)

    def count_above(self) -> int:
        return len(self.marked)

    @classmethod
    def from_ranges(cls, size: int, base: int, ranges: Iterable[tuple[int, int]]) -> AckWindowModel:
        window = cls(size, base)
        lowest_start = base + 1
        for start, end in ranges:
            if not lowest_start <= start < end <= base + size:
                raise ValueError(f"bad run {(start, end)!r}")
            window.marked.update(range(start, end))
            lowest_start = end
        return window
