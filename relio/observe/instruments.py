"""Dependency-free instruments relio updates itself: :class:`Counter` and :class:`Histogram`.

They hold plain numbers keyed by label values; exporters (:mod:`relio.observe.prometheus`,
:mod:`relio.observe.otel`) read them at scrape time. Nothing here takes a lock: relio's updates
happen on the event loop's thread, and a scrape from another thread reads values that are at worst
one update old.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

#: Seconds: from a fast in-process handler or LAN round trip to a slow mobile link.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


class Counter:
    """A monotonic count per tuple of label values."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[tuple, float] = {}

    def inc(self, labels: tuple, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount


class HistogramValue:
    """One label set's histogram: per-bucket counts (not cumulative), sum and count."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)        # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` for every bucket, +Inf last."""
        out, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class Histogram:
    """A distribution of observed values per tuple of label values."""

    __slots__ = ("bounds", "values")

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS):
        self.bounds = tuple(sorted(bounds))
        self.values: dict[tuple, HistogramValue] = {}

    def labels(self, labels: tuple) -> HistogramValue:
        """The histogram of one label set (kept: bind it once where it is observed often)."""
        value = self.values.get(labels)
        if value is None:
            value = self.values[labels] = HistogramValue(self.bounds)
        return value

    def observe(self, labels: tuple, value: float) -> None:
        self.labels(labels).observe(value)
