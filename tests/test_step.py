"""relio.engine._step: a handler run inline behaves as one run in a task of its own (a copy of the
context, the coroutine's value or exception), and nothing leaks."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import warnings

import pytest

from relio.engine._step import SuspendedError, run_in_context_copy

var = contextvars.ContextVar('var', default='caller')


async def sets_and_returns(value):
    seen = var.get()
    var.set(value)
    return (seen, var.get())


def plain_sets(value):
    var.set(value)
    return var.get()


async def raises(exc):
    raise exc


async def suspends():
    await asyncio.sleep(0)


def test_a_coroutine_runs_to_its_value_in_a_copy_of_the_context():
    var.set('caller')
    assert run_in_context_copy(sets_and_returns, ('handler',), True) == ('caller', 'handler')
    assert var.get() == 'caller'          # the handler's change stayed in its copy


def test_a_plain_function_runs_in_a_copy_of_the_context():
    var.set('caller')
    assert run_in_context_copy(plain_sets, ('handler',), False) == 'handler'
    assert var.get() == 'caller'
    # a coroutine function called as plain returns its coroutine unstarted, as a call would
    coro = run_in_context_copy(sets_and_returns, ('x',), False)
    assert asyncio.iscoroutine(coro)
    coro.close()


def test_exceptions_propagate_and_leave_the_context_as_it_was():
    var.set('caller')
    with pytest.raises(KeyError, match='boom'):
        run_in_context_copy(raises, (KeyError('boom'),), True)
    with pytest.raises(TypeError):
        run_in_context_copy(plain_sets, ('too', 'many'), False)
    assert var.get() == 'caller'
    # the context entered for the failed call was left: a new one can be entered
    assert run_in_context_copy(plain_sets, ('again',), False) == 'again'


def test_a_coroutine_that_suspends_is_closed_and_reported():
    with warnings.catch_warnings():
        warnings.simplefilter('error')          # "never awaited" would be a leak of the coroutine
        with pytest.raises(SuspendedError):
            run_in_context_copy(suspends, (), True)
        gc.collect()
    assert issubclass(SuspendedError, RuntimeError)


def test_return_values_are_not_leaked_or_freed_early():
    value = object()

    async def returns():
        return value

    before = sys.getrefcount(value)
    for _ in range(1000):
        assert run_in_context_copy(returns, (), True) is value
    assert sys.getrefcount(value) == before
