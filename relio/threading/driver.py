"""The thread-based shell's clock and scheduler: one driver thread per process.

:class:`Driver` gives a :class:`~relio.asyncio.channel.Channel` what an asyncio loop gives it
(``time()``, ``call_soon(fn)``, ``call_at(when, fn)``, ``create_future()``), so the thread-based
shell drives the same channel code as the asyncio one. Every session of every server and client in
the process shares the one thread (no thread or timer per session): it runs the coalesced flushes
and the engines' timers. What it runs takes the lock of its session; it never runs handlers
(they run in the sessions' own handler threads, :mod:`relio.threading.runner`).

The thread is a daemon started on first use; under gevent's monkey-patching it is a greenlet.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("relio")


class Handle:
    """A scheduled call; :meth:`cancel` before it runs and it does not run."""

    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when: float, fn: Callable[[], object]):
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Driver:
    """Runs scheduled calls in one daemon thread, earliest first (ties in scheduling order)."""

    def __init__(self, name: str = "relio-driver"):
        self._name = name
        self._heap: list[tuple[float, int, Handle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._pid = 0

    # --- what a Channel asks of its loop ------------------------------------------------------
    @staticmethod
    def time() -> float:
        return time.monotonic()

    def call_soon(self, fn: Callable[[], object]) -> Handle:
        return self.call_at(0.0, fn)

    def call_later(self, delay: float, fn: Callable[[], object]) -> Handle:
        return self.call_at(time.monotonic() + delay, fn)

    def call_at(self, when: float, fn: Callable[[], object]) -> Handle:
        handle = Handle(when, fn)
        with self._cond:
            self._ensure_thread()
            heapq.heappush(self._heap, (when, next(self._seq), handle))
            if self._heap[0][2] is handle:
                self._cond.notify()
        return handle

    @staticmethod
    def create_future() -> concurrent.futures.Future:
        return concurrent.futures.Future()

    # --- the thread ---------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        import os
        if self._thread is None or self._pid != os.getpid():   # (a fork has no driver thread)
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        heap, cond = self._heap, self._cond
        while True:
            with cond:
                while True:
                    if heap:
                        wait = heap[0][0] - time.monotonic()
                        if wait <= 0:
                            handle = heapq.heappop(heap)[2]
                            break
                        cond.wait(wait)
                    else:
                        cond.wait()
            if handle.cancelled:
                continue
            try:
                handle.fn()
            except Exception:
                logger.exception("relio: scheduled call %r raised", handle.fn)

    @property
    def pending(self) -> int:
        """Calls scheduled and not yet run (cancelled ones included until their time)."""
        return len(self._heap)


#: The process's driver: every thread-based session uses it.
DRIVER = Driver()
