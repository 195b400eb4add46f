"""relio.asyncio.deadlines: call timeouts sharing one timer per tick fire on time, once, and leave
nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from relio.asyncio.deadlines import Deadlines, TimedOut


async def test_a_wait_fails_at_its_deadline_within_one_tick():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 0.02)
    future = loop.create_future()
    start = loop.time()
    deadlines.add(future, 0.05)
    with pytest.raises(TimedOut):
        await future
    waited = loop.time() - start
    assert 0.05 <= waited < 0.05 + 0.02 + 0.5     # never early; at most a tick late (+ slack)
    assert len(deadlines) == 0


async def test_waits_that_end_leave_no_deadline_and_are_not_failed():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 0.01)
    futures = [loop.create_future() for _ in range(1000)]
    keys = [deadlines.add(f, 0.03) for f in futures]
    assert len(deadlines) == 1000
    for i, (future, key) in enumerate(zip(futures, keys)):
        if i % 2 == 0:                       # half answered in time
            future.set_result(i)
            deadlines.discard(key, future)
    assert len(deadlines) == 500
    await asyncio.sleep(0.1)
    assert len(deadlines) == 0
    assert [f.result() for f in futures[::2]] == list(range(0, 1000, 2))
    for future in futures[1::2]:
        assert isinstance(future.exception(), TimedOut)


async def test_a_tick_emptied_and_filled_again_still_fires():
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop, 0.05)
    first = loop.create_future()
    key = deadlines.add(first, 0.05)
    first.set_result(None)
    deadlines.discard(key, first)               # the tick's set goes; its timer stays armed
    second = loop.create_future()
    assert deadlines.add(second, 0.05) in (key, key + 1)
    with pytest.raises(TimedOut):
        await asyncio.wait_for(second, 2)
