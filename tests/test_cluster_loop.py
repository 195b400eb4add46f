"""The cluster loop (relio.cluster.loop): the thread-based Redis manager's asyncio loop.

Checked: calls posted from many threads run in the loop's thread, each thread's in the order it
posted them, after what was submitted before; ``run`` returns a coroutine's result and refuses to
wait from the loop's own thread (it would wait for itself); one loop thread however many users.
"""
from __future__ import annotations

import asyncio
import threading

import pytest

from relio.cluster.loop import ClusterLoop


def test_posts_keep_each_threads_order_and_run_on_the_loop():
    cluster = ClusterLoop(name='test-cluster')
    seen: list[tuple[int, int, str]] = []

    def poster(tid: int) -> None:
        for i in range(2_000):
            cluster.post(lambda tid=tid, i=i: seen.append(
                (tid, i, threading.current_thread().name)))
    threads = [threading.Thread(target=poster, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    async def last() -> int:
        return len(seen)
    assert cluster.run(last(), 10) == 8_000       # posted before: run before
    assert {name for _, _, name in seen} == {'test-cluster'}
    for tid in range(4):
        assert [i for t, i, _ in seen if t == tid] == list(range(2_000))
    assert cluster.posted == 0


def test_run_returns_results_and_never_waits_for_itself():
    cluster = ClusterLoop(name='test-cluster-2')

    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b
    assert cluster.run(add(2, 3), 10) == 5
    loop = cluster.loop
    assert cluster.loop is loop                   # one loop, one thread

    async def nested() -> None:
        with pytest.raises(RuntimeError, match='cannot wait for itself'):
            cluster.run(add(1, 1))
    cluster.run(nested(), 10)
    with pytest.raises(ZeroDivisionError):
        cluster.run(_raise(), 10)


async def _raise() -> None:
    raise ZeroDivisionError
