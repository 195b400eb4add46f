"""Waiting for a condition in tests: bounded polling, never a fixed sleep-and-hope."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def poll(pred: Callable[[], Any], timeout: float, *, step: float = 0.01) -> bool:
    """Poll ``pred`` every ``step`` seconds for at most ``timeout`` seconds; whether it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / step) + 2):
        if pred():
            return True
        if loop.time() > deadline:
            break
        await asyncio.sleep(step)
    return bool(pred())


async def until(pred: Callable[[], Any], timeout: float = 5.0, what: str = 'condition', *,
                step: float = 0.01) -> None:
    """:func:`poll`, then AssertionError naming ``what`` if ``pred`` never held."""
    if not await poll(pred, timeout, step=step):
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')


async def until_awaited(check: Callable[[], Awaitable[Any]], timeout: float = 5.0,
                        what: str = 'condition', *, step: float = 0.1) -> None:
    """:func:`until` for a condition that must be awaited (a read from Redis, say)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / step) + 2):
        if await check():
            return
        if loop.time() > deadline:
            break
        await asyncio.sleep(step)
    if not await check():
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')
