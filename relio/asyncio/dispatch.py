"""Running a session's handlers and callbacks: :class:`HandlerRunner`, one per session.

How a handler is run: inline when that cannot change its behaviour, in a task otherwise.

python-socketio starts one asyncio task per event (about 10 µs of the loop's time each), which is
most of what a small message costs. relio delivers messages in order and starts their handlers in
that order, and it avoids the task whenever running the handler inline is indistinguishable from
running it in a task of its own:

* a plain function runs inline (python-socketio would run it inside a task, where it cannot yield
  either);
* a coroutine function whose code has no suspension point (no ``await``, ``async with``,
  ``async for``) runs to completion on its first step, so it is stepped inline;
* any other coroutine function gets its own task, as in python-socketio, so that ``current_task()``,
  ``asyncio.timeout()``, task groups and cancellation see the task they expect.

Inline handlers run in a copy of the current context, as a task would, so context variables they
set do not leak into the connection's reader.

With python-socketio's ``async_handlers=False`` handlers run one after another in a consumer task
of the session (``sequential``), as python-socketio runs each before reading the next packet.

Whatever the way, a handler that raises is logged, and if it was answering a request of the peer
the request is declined (left unanswered, as python-socketio sends no ack then); otherwise
``then(result)`` gets its return value, and ``done()`` is told when it has finished.
"""

from __future__ import annotations

import asyncio
import dis
import inspect
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from relio.engine._step import run_in_context_copy

logger = logging.getLogger("relio")

_background_tasks: set[asyncio.Task] = set()


def spawn(coro) -> asyncio.Task:
    """Run ``coro`` in a task that is referenced until it ends (asyncio keeps only weak refs)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)
    return task

SYNC = 0           # plain function: call inline
ASYNC_INLINE = 1   # coroutine function without suspension points: step inline
ASYNC_TASK = 2     # coroutine function that may suspend: own task

#: Opcodes at which a coroutine can suspend (CPython 3.10-3.13 names).
_SUSPENDING_OPS = frozenset({
    "GET_AWAITABLE", "GET_AITER", "GET_ANEXT", "YIELD_VALUE", "SEND", "BEFORE_ASYNC_WITH",
    "END_ASYNC_FOR", "YIELD_FROM", "ASYNC_GEN_WRAP", "CLEANUP_THROW",
})

_kinds: dict[object, int] = {}
_MAX_CACHED = 4096


def handler_kind(fn: Callable) -> int:
    """:data:`SYNC`, :data:`ASYNC_INLINE` or :data:`ASYNC_TASK` for ``fn`` (cached per function)."""
    key = getattr(fn, "__func__", fn)          # bound methods are new objects on each access
    kind = _kinds.get(key)
    if kind is None:
        kind = _classify(fn)
        if len(_kinds) >= _MAX_CACHED:
            _kinds.clear()
        try:
            _kinds[key] = kind
        except TypeError:                      # unhashable callable: classify every time
            pass
    return kind


def _classify(fn: Callable) -> int:
    if not inspect.iscoroutinefunction(fn):
        return SYNC
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return ASYNC_TASK
    for instruction in dis.get_instructions(code):
        if instruction.opname in _SUSPENDING_OPS:
            return ASYNC_TASK
    return ASYNC_INLINE


Then = Callable[[Any], None]
Done = Callable[[], None]


def _timed(report: Callable[[float], None], done: Done | None, start: float = 0.0) -> Done:
    """``done``, preceded by ``report(seconds since start)`` (default: since now)."""
    start = start or time.perf_counter()

    def timed_done() -> None:
        report(time.perf_counter() - start)
        if done is not None:
            done()
    return timed_done


class HandlerRunner:
    """Runs one session's handlers in delivery order (inline, in tasks, or sequentially).

    :param decline: called with a request's id when its handler raised: the request stays
                    unanswered (the peer's call times out, as with python-socketio).
    """

    __slots__ = ("_decline", "_inbox", "_consumer", "_unstarted", "active", "on_duration")

    def __init__(self, decline: Callable[[bytes], None]):
        self._decline = decline
        self._inbox: deque | None = None        # sequential handlers waiting for the consumer
        self._consumer: asyncio.Task | None = None
        self._unstarted = 0                     # tasks spawned, not yet started
        #: handlers started (or queued) and not finished yet
        self.active = 0
        #: called with each handler's duration in seconds (None: handlers are not timed)
        self.on_duration: Callable[[float], None] | None = None

    def run(self, fn: Callable, args: tuple, then: Then | None = None, sequential: bool = False,
            request_id: bytes | None = None, done: Done | None = None) -> None:
        """Run ``fn(*args)``: a plain function at once, a coroutine function inline or in a task
        (see the module's docstring), or with ``sequential`` after the previous sequential one.
        Handlers start in the order of these calls either way."""
        on_duration = self.on_duration
        if sequential:
            if on_duration is not None:
                done = _timed(on_duration, done)
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append((fn, args, then, request_id, done))
            self.active += 1
            if self._consumer is None:
                self._consumer = spawn(self._consume())
            return
        kind = _kinds.get(fn)
        if kind is None:
            kind = handler_kind(fn)
        if kind == ASYNC_TASK or self._unstarted:
            # A handler that may suspend gets its own task. Until every task spawned so far has
            # started, later handlers go through tasks too, so that handlers start in delivery
            # order (tasks start first-in first-out).
            if on_duration is not None:
                done = _timed(on_duration, done)
            self._unstarted += 1
            self.active += 1
            spawn(self._run_task(fn, args, then, request_id, done))
            return
        # Inline: timed here, without a closure (this is the path of most messages). In a copy of
        # the context, as in a task; a coroutine is stepped once (compiled: relio.engine._step).
        start = time.perf_counter() if on_duration is not None else 0.0
        try:
            result = run_in_context_copy(fn, args, kind == ASYNC_INLINE)
        except Exception:
            self._failed(fn, request_id)
            if on_duration is not None:
                on_duration(time.perf_counter() - start)
            if done is not None:
                done()
            return
        if kind == SYNC and result is not None and inspect.isawaitable(result):
            # e.g. a partial of a coroutine function: finish it in a task
            if on_duration is not None:
                done = _timed(on_duration, done, start)
            self.active += 1
            spawn(self._finish(fn, result, then, request_id, done))
            return
        if then is not None:
            then(result)
        if on_duration is not None:
            on_duration(time.perf_counter() - start)
        if done is not None:
            done()

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro``, the rest of a handler's work (an answer waiting for room), in a task
        counted in :attr:`active` until it ends."""
        self.active += 1
        task = spawn(coro)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, _task: asyncio.Task) -> None:
        self.active -= 1

    async def idle(self) -> None:
        """Wait until the sequential handlers queued so far have run."""
        consumer = self._consumer
        while consumer is not None and not consumer.done() \
                and consumer is not asyncio.current_task():
            await asyncio.shield(consumer)
            consumer = self._consumer

    @property
    def sequential_running(self) -> asyncio.Task | None:
        """The consumer task while sequential handlers are queued or running."""
        consumer = self._consumer
        return consumer if consumer is not None and not consumer.done() else None

    async def _run_task(self, fn, args, then, request_id, done) -> None:
        self._unstarted -= 1
        await self._finish(fn, None, then, request_id, done, args)

    async def _finish(self, fn, awaitable, then, request_id, done, args=()) -> None:
        """The one place a handler's end is handled for tasks and the consumer: its result goes to
        ``then``, an exception is logged and declines the request; ``done`` in every case."""
        try:
            try:
                result = fn(*args) if awaitable is None else awaitable
                if inspect.isawaitable(result):
                    result = await result
            except asyncio.CancelledError:
                if request_id is not None:
                    self._decline(request_id)
                raise
            except Exception:
                self._failed(fn, request_id)
                return
            if then is not None:
                then(result)
        finally:
            self.active -= 1
            if done is not None:
                done()

    def _failed(self, fn, request_id) -> None:
        logger.exception("relio: handler %r raised", getattr(fn, "__name__", fn))
        if request_id is not None:
            self._decline(request_id)

    async def _consume(self) -> None:
        inbox = self._inbox
        try:
            while inbox:
                fn, args, then, request_id, done = inbox.popleft()
                await self._finish(fn, None, then, request_id, done, args)
        finally:
            self._consumer = None
