"""Type stubs for relio.engine._ackwindow (compiled): the selective-acknowledgement window."""

from collections.abc import Iterable
from typing import Literal

from typing_extensions import Buffer, Self

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

class AckWindow:
    """Which seqs are done: every seq below ``base``, plus a ring bitmap of ``size`` seqs from
    ``base``.

    ``size`` is a power of two and bounds how far ahead of ``base`` a seq may be marked.
    """

    def __init__(self, size: int = 65536, base: int = 0) -> None:
        """ValueError unless size is a power of two in [1, 2**32] and base in [0, 2**64)."""

    @property
    def base(self) -> int:
        """The lowest unmarked seq: every seq below it is marked."""

    @property
    def size(self) -> int:
        """How many seqs from base up can be tracked."""

    @property
    def highest(self) -> int:
        """One past the highest marked seq; equals base when nothing above base is marked."""

    def mark(self, seq: int) -> Literal[-1, 0, 1]:
        """1 if newly marked, 0 if already marked or below base, -1 if seq >= base + size (no
        change).

        Marking base advances base over every contiguous marked seq.
        """

    def is_marked(self, seq: int) -> bool:
        """True for seqs below base and marked seqs above it."""

    def advance_to(self, new_base: int) -> None:
        """Treat every seq below new_base as marked (no-op if new_base <= base); base may then slide
        further over seqs already marked."""

    def mark_many(self, seqs: Iterable[int] | Buffer) -> int:
        """Mark each seq in order as mark() would; returns how many were newly marked.

        A uint64 buffer (numpy uint64 array, ``array('Q')``) is read without conversion.
        """

    def ranges(self, max_ranges: int = 32) -> list[tuple[int, int]]:
        """Marked runs above base as (start, end_exclusive), ascending; the lowest max_ranges
        kept."""

    def holes(self, max_holes: int = 32) -> list[tuple[int, int]]:
        """Unmarked runs in [base, highest) as (start, end_exclusive), ascending; the lowest
        kept."""

    def count_above(self) -> int:
        """How many seqs above base are marked."""

    @classmethod
    def from_ranges(cls, size: int, base: int, ranges: Iterable[tuple[int, int]]) -> Self:
        """Rebuild a window from base and its marked runs (as ranges() returns them, untruncated).

        ValueError unless the runs are non-empty, ascending, non-overlapping (touching is allowed),
        strictly above base and end at most at base + size.
        """
