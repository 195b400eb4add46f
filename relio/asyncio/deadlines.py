"""Timeouts of many waits with one loop timer per tick: :class:`Deadlines`.

A ``call()`` waits for its reply at most ``timeout`` seconds. A loop timer per call (what
``asyncio.wait_for`` or ``loop.call_later`` cost: a ``TimerHandle`` pushed on the loop's heap,
cancelled when the reply comes and left in the heap until the loop sweeps it) was ~2 µs of a small
call's ~19 µs of CPU on the calling side. Here the waits whose deadlines fall in the same tick
share one timer, and a wait that ends leaves its tick's set. A timeout fires at most one tick late.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any


class TimedOut(Exception):
    """Set on a waited-for future when its deadline passes."""


class Deadlines:
    """Fails futures with :class:`TimedOut` at their deadlines, rounded up to a ``resolution``
    tick, with one ``loop.call_at`` per tick that has waits."""

    __slots__ = ("_loop", "_resolution", "_ticks")

    def __init__(self, loop: Any, resolution: float):
        self._loop = loop
        self._resolution = resolution
        self._ticks: dict[int, set[asyncio.Future]] = {}

    def add(self, future: asyncio.Future, timeout: float) -> int:
        """Fail ``future`` after ``timeout`` seconds unless it is done; returns the key for
        :meth:`discard`."""
        tick = math.ceil((self._loop.time() + timeout) / self._resolution)
        waits = self._ticks.get(tick)
        if waits is None:
            waits = self._ticks[tick] = set()
            self._loop.call_at(tick * self._resolution, self._expire, tick)
        waits.add(future)
        return tick

    def discard(self, tick: int, future: asyncio.Future) -> None:
        """``future`` no longer needs its deadline."""
        waits = self._ticks.get(tick)
        if waits is not None:
            waits.discard(future)
            if not waits:
                del self._ticks[tick]      # its timer finds nothing (a new set gets a new timer)

    def _expire(self, tick: int) -> None:
        for future in self._ticks.pop(tick, ()):
            if not future.done():
                future.set_exception(TimedOut())

    def __len__(self) -> int:
        """Waits with a deadline."""
        return sum(len(waits) for waits in self._ticks.values())
