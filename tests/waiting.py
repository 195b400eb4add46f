"""Waiting for a condition in tests: bounded polling, never a fixed sleep-and-hope."""
from __future__ import annotations

import asyncio
from typing import Any, Callable


async def until(pred: Callable[[], Any], timeout: float = 5.0, what: str = 'condition') -> None:
    """Poll ``pred`` every 10 ms for at most ``timeout`` seconds; AssertionError naming ``what``
    if it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / 0.01) + 2):
        if pred():
            return
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    if not pred():
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')
