"""Running a handler inline: one call in a copy of the current context, stepping a coroutine once.

The asyncio shell runs a handler inline when that cannot change its behaviour (a plain function, or
a coroutine function whose code has no suspension point: see ``relio/asyncio/dispatch.py``). It must
still look to the handler as if it ran in a task of its own: a task runs in a copy of the context
it was created in, so context variables the handler sets do not leak into the connection's reader.
In Python that is ``context.run(fn, *args)``, then ``context.run(coroutine.send, None)`` and a
``StopIteration`` caught to learn the coroutine's value: two calls through ``Context.run`` and an
exception raised and caught for every message, ~0.5 µs of a small message's ~6 µs of CPU on the
receiving side. Here the copied context is entered once around both steps and the coroutine is
stepped with ``PyIter_Send``, which returns its value without raising (~0.13 µs in all).

This module knows nothing of asyncio or Socket.IO: it calls one callable and steps the coroutine it
returns once. Deciding what may run inline stays with the caller.
"""

from cpython.contextvars cimport PyContext_CopyCurrent, PyContext_Enter, PyContext_Exit
from cpython.object cimport PyObject_Call
from cpython.ref cimport PyObject, Py_DECREF

from relio.engine._build cimport RELIO_DEBUG_BUILD

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

cdef extern from "Python.h":
    # CPython >= 3.10 (relio requires 3.10): step a generator or coroutine without StopIteration.
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    # PYGEN_ERROR (-1) with an exception set: Cython raises it here.
    PySendResult PyIter_Send(object iterator, object arg, PyObject** presult) except? PYGEN_ERROR


class SuspendedError(RuntimeError):
    """A coroutine stepped inline suspended (the caller thought its code could not): it was
    closed."""


def run_in_context_copy(fn, tuple args, bint coroutine):
    """``fn(*args)`` in a copy of the current context; with ``coroutine``, the coroutine it returns
    is stepped once in the same context and the value it returns is returned.

    An exception of ``fn`` or of the coroutine propagates. :raises SuspendedError: the coroutine
    suspended instead of returning (it is closed first).
    """
    cdef object context = PyContext_CopyCurrent()
    cdef PyObject* sent = NULL
    cdef PySendResult status
    cdef object result
    PyContext_Enter(context)
    try:
        result = PyObject_Call(fn, args, None)
        if not coroutine:
            return result
        status = PyIter_Send(result, None, &sent)
        value = <object>sent        # PyIter_Send gave a new reference: hand it over, once
        Py_DECREF(value)
        if status == PYGEN_RETURN:
            return value
        result.close()
        raise SuspendedError("handler without await points suspended")
    finally:
        PyContext_Exit(context)
