"""How a handler is run: inline when that cannot change its behaviour, in a task otherwise.

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
"""

from __future__ import annotations

import dis
import inspect
from typing import Callable

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
