"""Type stubs for the compiled :mod:`relio.engine._step` (see ``ext/relio/engine/_step.pyx``)."""

from collections.abc import Callable
from typing import Any

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

class SuspendedError(RuntimeError):
    """A coroutine stepped inline suspended (the caller thought its code could not): it was
    closed."""

def run_in_context_copy(fn: Callable[..., Any], args: tuple, coroutine: bool) -> Any:
    """``fn(*args)`` in a copy of the current context; with ``coroutine``, the coroutine it returns
    is stepped once in the same context and the value it returns is returned."""
