"""Tests of relio.engine._ackwindow.AckWindow: edge cases, then a stateful comparison with the reference model."""

from __future__ import annotations

import array

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from relio.engine._ackwindow import AckWindow
from tests.models.ackwindow_model import AckWindowModel

# --- construction ---------------------------------------------------------------------------------


def test_defaults():
    window = AckWindow()
    assert (window.size, window.base, window.highest, window.count_above()) == (65536, 0, 0, 0)
    assert window.ranges() == [] and window.holes() == []


@pytest.mark.parametrize("size", [1, 2, 8, 64, 128, 1 << 20])
def test_accepts_power_of_two_sizes(size):
    assert AckWindow(size, 7).size == size


@pytest.mark.parametrize("size", [0, -8, 3, 6, 100, 65535, 1 << 33])
def test_rejects_size_not_power_of_two_or_too_big(size):
    with pytest.raises(ValueError):
        AckWindow(size)


@pytest.mark.parametrize("base", [-1, 1 << 64])
def test_rejects_base_outside_uint64(base):
    with pytest.raises(ValueError):
        AckWindow(8, base)


def test_repr():
    window = AckWindow(8, 3)
    window.mark(5)
    assert repr(window) == "<AckWindow size=8 base=3 highest=6 marked_above=1>"


# --- mark ---------------------------------------------------------------------------------------


def test_mark_return_values_and_window_limit():
    window = AckWindow(8, 10)
    assert window.mark(12) == 1
    assert window.mark(12) == 0  # duplicate
    assert window.mark(9) == 0  # below base: already done
    assert window.mark(17) == 1  # base + size - 1: the last seq inside the window
    assert window.mark(18) == -1  # base + size: outside, nothing changes
    assert (window.base, window.highest, window.count_above()) == (10, 18, 2)
    assert not window.is_marked(18)


def test_mark_in_order_moves_base_and_highest_together():
    window = AckWindow(8)
    for seq in range(100):  # wraps the 8-seq ring many times
        assert window.mark(seq) == 1
        assert window.base == window.highest == seq + 1
    assert window.count_above() == 0


def test_filling_the_gap_at_base_slides_over_many_words():
    window = AckWindow(1024)
    for seq in range(1, 700):
        window.mark(seq)
    assert (window.base, window.count_above()) == (0, 699)
    assert window.mark(0) == 1
    assert (window.base, window.highest, window.count_above()) == (700, 700, 0)
    # The ring slots passed by base were cleared, so the next lap sees them unmarked.
    assert window.mark(1024 + 5) == 1
    assert window.ranges() == [(1029, 1030)]


def test_slide_stops_at_first_unmarked_seq():
    window = AckWindow(256, 60)  # base not word-aligned: the runs cross a word boundary
    for seq in [*range(61, 130), *range(131, 140)]:
        window.mark(seq)
    window.mark(60)
    assert (window.base, window.highest, window.count_above()) == (130, 140, 9)


def test_is_marked():
    window = AckWindow(8, 10)
    window.mark(12)
    assert window.is_marked(0) and window.is_marked(9)  # below base
    assert window.is_marked(12)
    assert not window.is_marked(10) and not window.is_marked(13)
    assert not window.is_marked(10 + 8 + 4)  # beyond the window (same ring slot as 12)


def test_size_one_window():
    window = AckWindow(1, 5)
    assert window.mark(6) == -1
    assert window.mark(5) == 1
    assert (window.base, window.highest) == (6, 6)


def test_negative_seq_is_an_overflow_error():
    with pytest.raises(OverflowError):
        AckWindow(8).mark(-1)


# --- advance_to -----------------------------------------------------------------------------------


def test_advance_to_below_or_at_base_is_a_no_op():
    window = AckWindow(8, 10)
    window.mark(12)
    window.advance_to(3)
    window.advance_to(10)
    assert (window.base, window.highest, window.ranges()) == (10, 13, [(12, 13)])


def test_advance_to_drops_marks_below_and_slides_over_marks_at_new_base():
    window = AckWindow(64, 0)
    for seq in [3, 5, 6, 7, 9]:
        window.mark(seq)
    window.advance_to(5)
    assert (window.base, window.highest, window.count_above()) == (8, 10, 1)
    assert window.ranges() == [(9, 10)]


def test_advance_to_beyond_the_window_clears_everything():
    window = AckWindow(8, 0)
    for seq in [2, 4, 7]:
        window.mark(seq)
    window.advance_to(1000)
    assert (window.base, window.highest, window.count_above()) == (1000, 1000, 0)
    assert window.ranges() == [] and not window.is_marked(1002)


def test_advance_to_between_marks_keeps_highest():
    window = AckWindow(16, 0)
    window.mark(10)
    window.advance_to(4)
    assert (window.base, window.highest, window.holes()) == (4, 11, [(4, 10)])


# --- ranges / holes ------------------------------------------------------------------------------


def test_ranges_and_holes_across_the_ring_wrap():
    window = AckWindow(64, 40)  # window [40, 104) occupies ring slots 40..63 then 0..39
    for seq in [*range(50, 70), 80, *range(100, 104)]:
        window.mark(seq)
    assert window.ranges() == [(50, 70), (80, 81), (100, 104)]
    assert window.holes() == [(40, 50), (70, 80), (81, 100)]
    assert window.highest == 104


def test_ranges_keep_the_lowest_when_truncated():
    window = AckWindow(64)
    for seq in range(1, 40, 2):
        window.mark(seq)
    assert window.ranges(3) == [(1, 2), (3, 4), (5, 6)]
    assert window.holes(2) == [(0, 1), (2, 3)]
    assert window.ranges(0) == [] and window.holes(0) == []
    assert len(window.ranges(10**9)) == 20  # a huge maximum is fine: the result is bounded


def test_full_word_runs():
    window = AckWindow(512)
    for seq in range(64, 320):
        window.mark(seq)
    assert window.ranges() == [(64, 320)]
    assert window.holes() == [(0, 64)]


@pytest.mark.parametrize("method", ["ranges", "holes"])
def test_negative_maximum_is_rejected(method):
    with pytest.raises(ValueError):
        getattr(AckWindow(8), method)(-1)


# --- mark_many ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        list,
        tuple,
        lambda seqs: (seq for seq in seqs),
        lambda seqs: np.array(seqs, dtype=np.uint64),
        lambda seqs: np.array(seqs, dtype=np.int64),  # another item type: converted one by one
        lambda seqs: array.array("Q", seqs),
        lambda seqs: np.array([s for seq in seqs for s in (seq, 0)], dtype=np.uint64)[::2],  # strided
    ],
)
def test_mark_many_matches_mark_in_order(make):
    seqs = [5, 3, 3, 0, 1, 2, 40, 4, 9]
    window = AckWindow(16)
    assert window.mark_many(make(seqs)) == 7  # 3 twice, and 40 is beyond the window
    single = AckWindow(16)
    for seq in seqs:
        single.mark(seq)
    assert (window.base, window.highest, window.ranges()) == (6, 10, [(9, 10)])
    assert (single.base, single.highest, single.ranges()) == (6, 10, [(9, 10)])


def test_mark_many_in_order_past_the_initial_window():
    window = AckWindow(8)
    assert window.mark_many(np.arange(1000, dtype=np.uint64)) == 1000
    assert window.base == 1000


def test_mark_many_rejects_negative_items():
    with pytest.raises(OverflowError):
        AckWindow(8).mark_many([1, -1])


# --- from_ranges -----------------------------------------------------------------------------------


def test_from_ranges_round_trip():
    window = AckWindow(256, 1000)
    for seq in [1002, 1003, 1100, *range(1150, 1240)]:
        window.mark(seq)
    rebuilt = AckWindow.from_ranges(256, window.base, window.ranges(1000))
    assert (rebuilt.base, rebuilt.highest, rebuilt.count_above()) == (1000, 1240, 93)
    assert rebuilt.ranges(1000) == window.ranges(1000)
    assert rebuilt.mark(1000) == 1 and rebuilt.base == 1001


def test_from_ranges_accepts_touching_runs_and_empty_list():
    window = AckWindow.from_ranges(8, 0, [(1, 3), (3, 8)])
    assert window.ranges() == [(1, 8)] and window.count_above() == 7
    empty = AckWindow.from_ranges(8, 5, [])
    assert (empty.base, empty.highest) == (5, 5)


@pytest.mark.parametrize(
    "ranges",
    [
        [(12, 12)],  # empty
        [(13, 12)],  # reversed
        [(10, 12)],  # starts at base: base is unmarked by definition
        [(5, 12)],  # below base
        [(12, 19)],  # ends past base + size
        [(18, 19)],  # entirely past the window
        [(12, 14), (13, 15)],  # overlapping
        [(15, 16), (12, 13)],  # descending
    ],
)
def test_from_ranges_rejects_invalid_runs(ranges):
    with pytest.raises(ValueError):
        AckWindow.from_ranges(8, 10, ranges)


@pytest.mark.parametrize(("size", "base"), [(6, 0), (8, -1)])
def test_from_ranges_rejects_invalid_window(size, base):
    with pytest.raises(ValueError):
        AckWindow.from_ranges(size, base, [])


# --- stateful comparison with the reference model -------------------------------------------------


class AckWindowMachine(RuleBasedStateMachine):
    """Random marks, advances and scans on small windows, with bases far from word alignment, so the
    ring wraps many times and runs straddle word and ring boundaries."""

    def __init__(self):
        super().__init__()
        self.window: AckWindow
        self.model: AckWindowModel

    @initialize(
        size=st.sampled_from([1, 2, 8, 16, 64, 128, 256]),
        base=st.one_of(st.sampled_from([0, 1, 63, 64, 65, 127]), st.integers(0, 2**61)),
    )
    def create(self, size, base):
        self.window = AckWindow(size, base)
        self.model = AckWindowModel(size, base)

    def seq_at(self, offset: int) -> int:
        return max(0, self.model.base + offset)

    @rule(data=st.data())
    def mark(self, data):
        seq = self.seq_at(data.draw(st.integers(-3, self.model.size + 3), label="offset"))
        assert self.window.mark(seq) == self.model.mark(seq)

    @rule(data=st.data(), as_array=st.booleans())
    def mark_many(self, data, as_array):
        offsets = st.integers(-2, self.model.size + 2)
        seqs = [self.seq_at(o) for o in data.draw(st.lists(offsets, max_size=20), label="offsets")]
        batch = np.array(seqs, dtype=np.uint64) if as_array else seqs
        assert self.window.mark_many(batch) == self.model.mark_many(seqs)

    @rule(data=st.data())
    def mark_run(self, data):
        """A run in order (the common case), possibly starting at base and lapping the ring."""
        start = self.seq_at(data.draw(st.integers(0, self.model.size), label="start"))
        length = data.draw(st.integers(1, 3 * self.model.size), label="length")
        seqs = range(start, start + length)
        assert self.window.mark_many(seqs) == self.model.mark_many(seqs)

    @rule(data=st.data())
    def advance_to(self, data):
        seq = self.seq_at(data.draw(st.integers(-2, 3 * self.model.size), label="offset"))
        self.window.advance_to(seq)
        self.model.advance_to(seq)

    @rule(data=st.data())
    def is_marked(self, data):
        seq = self.seq_at(data.draw(st.integers(-2, self.model.size + 2), label="offset"))
        assert self.window.is_marked(seq) == self.model.is_marked(seq)

    @rule(limit=st.integers(0, 6))
    def truncated_ranges_and_holes(self, limit):
        assert self.window.ranges(limit) == self.model.ranges(limit)
        assert self.window.holes(limit) == self.model.holes(limit)

    @precondition(lambda self: self.model.marked)
    @rule()
    def restore_from_snapshot(self):
        runs = self.window.ranges(self.model.size)
        self.window = AckWindow.from_ranges(self.model.size, self.window.base, runs)
        self.model = AckWindowModel.from_ranges(self.model.size, self.model.base, runs)

    @invariant()
    def agrees_with_model(self):
        window, model = self.window, self.model
        assert (window.base, window.highest, window.size) == (model.base, model.highest, model.size)
        assert window.count_above() == model.count_above()
        assert window.ranges(model.size) == model.ranges(model.size)
        assert window.holes(model.size) == model.holes(model.size)
        assert window.base <= window.highest <= window.base + window.size


AckWindowMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestAckWindowMachine = AckWindowMachine.TestCase
