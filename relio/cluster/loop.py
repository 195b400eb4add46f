"""The cluster loop: one private asyncio event loop per process, in a daemon thread, for the
thread-based Redis manager.

``relio.RedisManager`` (thread-based, serving) runs the asyncio cluster code unchanged (the bus
:class:`~relio.cluster.bus.RedisBus`, the session store
:class:`~relio.cluster.store.RedisSessionStore`, the python-socketio bridge) on this loop, and the
thread-based server's threads talk to it through :meth:`ClusterLoop.submit` (a
:class:`concurrent.futures.Future`), :meth:`ClusterLoop.call_soon` and :meth:`ClusterLoop.run`.

Rule that keeps it deadlock-free: the cluster loop may take the thread-based server's lock and a
session's lock (briefly, as any other thread does), so no thread may wait for the cluster loop
(:meth:`run`, ``future.result()``) while it holds either of them. A durable session's save is
submitted under its lock and waited for by a callback (:mod:`relio.threading.durable`), never by
a blocked thread.

One thread per process, started on first use (and again in a forked child, which has no thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("relio")


class ClusterLoop:
    """An asyncio loop running in a daemon thread of its own (see the module)."""

    def __init__(self, name: str = "relio-cluster"):
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._posted: list[tuple[Callable[..., object], tuple]] = []
        self._post_scheduled = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (its thread is started on first use)."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._posted, self._post_scheduled = [], False   # (a fork's were the parent's)
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name=self._name, daemon=True)
                self._thread.start()
            return self._loop

    def in_loop(self) -> bool:
        """The caller runs in the loop's thread (it must not wait for the loop)."""
        return self._thread is threading.current_thread()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Run ``coro`` on the loop; its result or exception arrives in the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` in the loop's thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def post(self, fn: Callable[..., object], *args: Any) -> None:
        """Call ``fn(*args)`` in the loop's thread, after everything posted or submitted before,
        without waiting. Calls posted before the loop gets to them run in one batch, for one
        wake-up of the loop (``call_soon_threadsafe`` writes to the loop's self-pipe each time)."""
        loop = self.loop
        with self._lock:
            self._posted.append((fn, args))
            if self._post_scheduled:
                return
            self._post_scheduled = True
        loop.call_soon_threadsafe(self._run_posted)

    @property
    def posted(self) -> int:
        """Calls posted that have not started yet."""
        return len(self._posted)

    def _run_posted(self) -> None:
        with self._lock:
            posted, self._posted = self._posted, []
            self._post_scheduled = False
        for fn, args in posted:
            try:
                fn(*args)
            except Exception:
                logger.exception("relio: cluster loop: %r raised", fn)

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result (never from the loop's own thread,
        nor while holding the server's or a session's lock)."""
        if self.in_loop():
            coro.close()
            raise RuntimeError("the cluster loop cannot wait for itself")
        return self.submit(coro).result(timeout)


#: The process's cluster loop: every thread-based Redis manager of the process uses it.
CLUSTER_LOOP = ClusterLoop()
