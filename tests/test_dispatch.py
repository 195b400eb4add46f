"""relio.asyncio.dispatch: which handlers may run inline, and that inline runs behave like task runs."""

from __future__ import annotations

import asyncio
import contextvars
import functools

import relio
from relio.asyncio.dispatch import ASYNC_INLINE, ASYNC_TASK, SYNC, handler_kind
from tests.support.servers import serve_socketio


async def no_await(sid, x):
    return x + 1


async def awaits(sid, x):
    await asyncio.sleep(0)


async def uses_timeout(sid):
    async with asyncio.timeout(1):
        pass


async def async_for(sid, items):
    return [i async for i in items]


class Namespace(relio.AsyncNamespace):
    async def on_plain(self, sid):
        return 1

    async def on_waits(self, sid):
        await asyncio.sleep(0)


def test_classification():
    assert handler_kind(lambda sid: 1) == SYNC
    assert handler_kind(no_await) == ASYNC_INLINE
    for fn in (awaits, uses_timeout, async_for, Namespace('/').trigger_event):
        assert handler_kind(fn) == ASYNC_TASK, fn
    ns = Namespace('/')
    assert handler_kind(ns.on_plain) == ASYNC_INLINE and handler_kind(ns.on_waits) == ASYNC_TASK
    assert handler_kind(functools.partial(no_await, 1)) == ASYNC_TASK   # no code to inspect


async def test_handlers_of_every_kind_run_once_in_order_with_isolated_context():
    var = contextvars.ContextVar('var', default='reader')
    sio = relio.AsyncServer(async_mode='asgi')
    seen: list = []

    @sio.on('sync')
    def on_sync(sid, n):
        seen.append(('sync', n, var.get()))
        var.set('sync handler')
        return n

    @sio.on('inline')
    async def on_inline(sid, n):
        seen.append(('inline', n, var.get()))
        var.set('inline handler')
        return n

    @sio.on('task')
    async def on_task(sid, n):
        seen.append(('task', n, var.get(), asyncio.current_task() is not None))
        async with asyncio.timeout(2):     # needs its own task to be correct
            await asyncio.sleep(0.01)
        return n

    client = relio.AsyncClient(handle_sigint=False)
    async with serve_socketio(sio) as port:
        await client.connect(f'http://127.0.0.1:{port}', transports=['websocket'])
        results = await asyncio.gather(*(client.call(kind, n, timeout=5)
                                         for n, kind in enumerate(['sync', 'inline', 'task'] * 3)))
        await client.disconnect()
    assert results == list(range(9))
    assert [s[:2] for s in seen] == [(k, n) for n, k in enumerate(['sync', 'inline', 'task'] * 3)]
    assert all(s[2] == 'reader' for s in seen)      # no handler saw another's context changes
