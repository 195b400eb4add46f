"""Running one thread-based session's handlers and callbacks: in order, outside its lock.

A :class:`ThreadRunner` has the interface of :class:`relio.asyncio.dispatch.HandlerRunner` that
the channel and the registry use (``run``, ``spawn``, ``idle``, ``active``,
``sequential_running``). The channel calls :meth:`ThreadRunner.run` while it holds the session's
lock (delivering an event); the runner only queues the handler there, and a handler thread of the
session (one at a time, started with the server's or client's ``start_background_task``, so a
greenlet under gevent) runs the queue in delivery order. Handlers of one session therefore run one
after another, in the order the messages were sent, and never under the session's lock: a handler
may emit, call, answer or disconnect without deadlocking.

A handler that raises is logged, and a request it was answering is declined (left unanswered, as
python-socketio sends no ack then); otherwise ``then(result)`` gets its return value; ``done()``
is told when it has finished.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from relio.asyncio.dispatch import Done, Then

logger = logging.getLogger("relio")


class ThreadRunner:
    """Runs one session's handlers in delivery order, in a handler thread of the session."""

    #: the thread-based runner never has an asyncio consumer task (see
    #: :meth:`relio.asyncio.registry.SessionRegistry.forget`); :meth:`idle` waits instead
    sequential_running = None

    def __init__(self, decline: Callable[[bytes], None],
                 start_task: Callable[..., Any], linger: float = 0.0):
        """``start_task(fn)``: start ``fn`` in a thread (the server's or client's
        ``start_background_task``); ``linger``: seconds the handler thread waits for more work
        before it ends (``Config.handler_thread_linger``)."""
        self._decline = decline
        self._start_task = start_task
        self._linger = linger
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._work_queued = threading.Condition(self._lock)
        self._queue: deque = deque()
        self._worker: Any = None         # the thread running the queue, while it runs
        self._running = False            # it is running a handler now
        #: handlers queued or running and not finished yet
        self.active = 0

    def run(self, fn: Callable, args: tuple, then: Then | None = None, sequential: bool = False,
            request_id: bytes | None = None, done: Done | None = None) -> None:
        """Queue ``fn(*args)`` after the handlers queued before it (``sequential`` is implied)."""
        with self._lock:
            self._queue.append((fn, args, then, request_id, done))
            self.active += 1
            if self._worker is not None:
                self._work_queued.notify()
                return
            self._worker = True          # a worker is being started
        self._start_task(self._work)

    def spawn(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()``, the rest of a handler's work (an answer waiting for room), in a thread of
        its own, counted in :attr:`active` until it returns."""
        with self._lock:
            self.active += 1

        def work() -> None:
            try:
                fn()
            except Exception:
                logger.exception("relio: background work %r raised", fn)
            finally:
                with self._lock:
                    self.active -= 1
        self._start_task(work)

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until the handlers queued so far have run (at once inside one of them)."""
        with self._lock:
            if self._worker is threading.current_thread():
                return False
            return self._idle.wait_for(
                lambda: self._worker is None or not (self._queue or self._running), timeout)

    def _work(self) -> None:
        queue = self._queue
        with self._lock:
            self._worker = threading.current_thread()
        while True:
            with self._lock:
                self._running = False
                if not queue:
                    self._idle.notify_all()        # what was queued has run
                    if self._linger > 0:
                        self._work_queued.wait(self._linger)
                    if not queue:
                        self._worker = None
                        return
                fn, args, then, request_id, done = queue.popleft()
                self._running = True
            try:
                self._call(fn, args, then, request_id)
            finally:
                with self._lock:
                    self.active -= 1
                if done is not None:
                    done()

    def _call(self, fn: Callable, args: tuple, then: Then | None,
              request_id: bytes | None) -> None:
        try:
            result = fn(*args)
        except Exception:
            logger.exception("relio: handler %r raised", getattr(fn, "__name__", fn))
            if request_id is not None:
                self._decline(request_id)
            return
        if then is not None:
            try:
                then(result)
            except Exception:
                logger.exception("relio: answering for %r failed", getattr(fn, "__name__", fn))
