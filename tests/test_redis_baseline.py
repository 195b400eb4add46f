"""Baseline: the multi-node faults relio.AsyncRedisManager must survive are real with plain
python-socketio (socketio.AsyncServer + socketio.AsyncRedisManager, socketio.AsyncClient).

Real processes only: a real redis-server (tests/redis_server.py), three server nodes as separate
OS processes (tests/nodes.py running tests/multinode_app.py in 'socketio' mode) and, for the
node-kill test, a round-robin TCP balancer in front of them (tests/balancer.py).

test_redis_restart_loses_room_broadcasts
    An external write-only socketio.AsyncRedisManager emits numbered messages to room 'all' at
    400/s; one client per node (websocket, joined to 'all') records them.  Redis is stopped
    (SIGTERM) for 2 s and started again on the same port.  Every message emitted before the
    outage arrives at every client, messages emitted well after the nodes resubscribed arrive
    again, but the outage window is lost: python-socketio's _publish logs "Cannot publish to
    redis... giving up" and returns normally (emit() never raises), and its listener only
    resubscribes after a 1 s, 2 s, 4 s... backoff, so even messages published after Redis is
    back are dropped until then (Redis pub/sub keeps nothing for absent subscribers).

test_node_kill_loses_messages_and_session
    A client connected through the balancer; the node it is on is SIGKILLed.  The client
    reconnects through the balancer to another node and gets a NEW sid (no session resume,
    rooms forgotten); messages emitted to its room between the kill and the re-join are lost.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import pytest
import socketio

from tests.balancer import Balancer
from tests.nodes import run_nodes
from tests.redis_server import run_redis

WS = ['websocket']


async def until(predicate: Callable[[], Any], what: str, timeout: float = 10.0,
                step: float = 0.01) -> None:
    """Bounded polling for a condition (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / step) + 100):
        if predicate():
            return
        if loop.time() > deadline:
            break
        await asyncio.sleep(step)
    raise AssertionError(f'timed out after {timeout}s waiting for: {what}')


class _CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _quiet_logger(name: str) -> tuple[logging.Logger, _CountingHandler]:
    """A logger that records (instead of printing) python-socketio's manager errors."""
    logger = logging.getLogger(f'tests.baseline.{name}')
    logger.handlers.clear()
    handler = _CountingHandler()
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, handler


class Emitter:
    """Emits 'b', i (i = 0, 1, 2...) to a room at a fixed rate through an external write-only
    socketio.AsyncRedisManager, recording when each emit() returned and what it returned."""

    def __init__(self, redis_url: str, room: str, rate: float, name: str) -> None:
        self.logger, self.log = _quiet_logger(name)
        self.mgr = socketio.AsyncRedisManager(redis_url, write_only=True, logger=self.logger)
        self.room = room
        self.rate = rate
        self.sent = 0                # emit() calls completed (== next index)
        self.raised: list[BaseException] = []
        self.max_emit_seconds = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self, max_messages: int = 20_000) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(max_messages):
            if self._stop.is_set():
                return
            delay = t0 + i / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = loop.time()
            try:
                await self.mgr.emit('b', i, room=self.room)
            except Exception as exc:  # python-socketio never raises here (asserted below)
                self.raised.append(exc)
            self.max_emit_seconds = max(self.max_emit_seconds, loop.time() - started)
            self.sent = i + 1

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 10)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=5)
        # _redis_connect() replaces self.redis on every publish failure without closing the old
        # client; the old ones hold no connected socket (their connection failed), this one may.
        if self.mgr.redis is not None:
            await self.mgr.redis.aclose()

    def gave_up(self) -> int:
        return sum('giving up' in m for m in self.log.messages)


class Recorder:
    """A plain socketio.AsyncClient recording every 'b' it receives with the sid it had then."""

    def __init__(self, **client_kwargs: Any) -> None:
        self.client = socketio.AsyncClient(handle_sigint=False, **client_kwargs)
        self.got: list[tuple[int, str]] = []
        self.connects = 0
        self.disconnects = 0
        self.client.on('b', self._on_b)
        self.client.on('connect', self._on_connect)
        self.client.on('disconnect', self._on_disconnect)

    async def _on_b(self, n: int) -> None:
        self.got.append((n, self.client.sid))

    async def _on_connect(self) -> None:
        self.connects += 1

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnects += 1

    def numbers(self) -> set[int]:
        return {n for n, _ in self.got}

    def max_number(self) -> int:
        return max((n for n, _ in self.got), default=-1)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except Exception:  # pragma: no cover - best effort
            pass


def _missing(received: set[int], upto: int) -> list[int]:
    return sorted(set(range(upto)) - received)


def _ranges(nums: list[int]) -> str:
    """[1, 2, 3, 7, 8] -> '1-3,7-8'"""
    out, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f'{start}-{prev}')
            start = prev = n
    if start is not None:
        out.append(f'{start}-{prev}')
    return ','.join(out)


@pytest.mark.timeout(30)
async def test_redis_restart_loses_room_broadcasts(tmp_path):
    rate, outage = 400.0, 2.0
    t_begin = time.monotonic()
    async with run_redis() as redis, \
            run_nodes(redis.url, 3, mode='socketio', datadir=tmp_path) as nodes:
        recorders = [Recorder(reconnection=False) for _ in nodes]
        emitter = Emitter(redis.url, 'all', rate, 'restart')
        try:
            for node, rec in zip(nodes, recorders):
                await rec.client.connect(node.url, transports=WS, wait_timeout=10)
                assert await rec.client.call('join', 'all', timeout=10) == node.name
            emitter.start()
            # Phase 1: healthy -- every client gets messages before the fault.
            await until(lambda: emitter.sent >= 200, 'message #200 emitted')
            before = emitter.sent
            await until(lambda: all(r.max_number() >= before - 1 for r in recorders),
                        f'all clients received #{before - 1} before the outage')
            await redis.stop()
            down_at = emitter.sent
            # emit() keeps returning normally while Redis is down: the emitter is the clock
            await until(lambda: emitter.sent >= down_at + int(rate * outage),
                        f'{outage}s of emits while Redis is down', timeout=outage * 4)
            await redis.start()
            up_at = emitter.sent
            # Phase 3: recovery -- the nodes' listeners resubscribe (1 s, 2 s... backoff).
            await until(lambda: all(r.max_number() >= up_at for r in recorders),
                        'every client received a message emitted after Redis came back',
                        timeout=15)
            recovered_at = emitter.sent
            await until(lambda: all(r.max_number() >= recovered_at + 100 for r in recorders),
                        '100 more messages after the recovery')
            await emitter.stop()
            total = emitter.sent
            # Barrier: everything emitted from here is delivered; wait for the tail.
            await until(lambda: all(r.max_number() == total - 1 for r in recorders),
                        'every client received the last message', timeout=10)
        finally:
            await emitter.close()
            for rec in recorders:
                await rec.close()

        report = []
        losses = []
        for node, rec in zip(nodes, recorders):
            nums = [n for n, _ in rec.got]
            missing = _missing(rec.numbers(), total)
            losses.append(len(missing))
            assert len(nums) == len(set(nums)), f'{node.name}: duplicates'
            assert nums == sorted(nums), f'{node.name}: out of order'
            # nothing emitted before the outage was lost
            assert not [n for n in missing if n < before], (node.name, _ranges(missing))
            # pub/sub drops one contiguous window (publishes fail, then no subscriber until
            # the listener's backoff expires); everything after it arrives again
            assert len(_ranges(missing).split(',')) <= 1, (node.name, _ranges(missing))
            report.append(f'{node.name}: received {len(nums)}/{total}, lost {len(missing)} '
                          f'[{_ranges(missing)}]')
        summary = (f'emitted {total} at {rate:.0f}/s; Redis down at #{down_at}, up at #{up_at} '
                   f'({(up_at - down_at) / rate:.2f}s), delivery seen again at #{recovered_at}; '
                   f'publish gave up {emitter.gave_up()}x, '
                   f'emit() raised {len(emitter.raised)}x, slowest emit '
                   f'{emitter.max_emit_seconds * 1000:.1f} ms; ' + '; '.join(report)
                   + f'; test took {time.monotonic() - t_begin:.1f}s')
        print('\nBASELINE redis restart:', summary)
        listener_errors = [n.stderr_text().count('Cannot receive from redis') for n in nodes]
        print('BASELINE node listener reconnect errors logged:', listener_errors)

        # python-socketio's emit() neither raises nor blocks when Redis is down ...
        assert emitter.raised == [], summary
        assert emitter.gave_up() > 0, summary
        # ... and the messages of the outage are silently lost, for every client.
        assert min(losses) > 0, summary
        # every message whose publish "gave up" is lost for every client, and the listeners'
        # resubscribe backoff loses more after Redis is back
        assert min(losses) >= emitter.gave_up(), summary


@pytest.mark.timeout(30)
async def test_node_kill_loses_messages_and_session(tmp_path):
    rate = 200.0
    t_begin = time.monotonic()
    async with run_redis() as redis, \
            run_nodes(redis.url, 3, mode='socketio', datadir=tmp_path) as nodes, \
            Balancer([n.port for n in nodes]) as lb:
        by_name = {n.name: n for n in nodes}
        # python-socketio adds randomization_factor * uniform(-1, 1) SECONDS to the delay (not a
        # fraction of it), so the first attempt could be immediate; a fixed 0.3 s makes the gap
        # (and the loss) deterministic: >= 0.3 s of emits at 200/s between kill and re-join.
        rec = Recorder(reconnection=True, reconnection_delay=0.3, reconnection_delay_max=0.5,
                       randomization_factor=0, reconnection_attempts=20)
        emitter = Emitter(redis.url, 'all', rate, 'kill')
        try:
            await rec.client.connect(lb.url, transports=WS, wait_timeout=10)
            old_sid = rec.client.sid
            first_node = await rec.client.call('join', 'all', timeout=10)
            assert first_node in by_name
            emitter.start()
            await until(lambda: emitter.sent >= 100, 'message #100 emitted')
            before = emitter.sent
            await until(lambda: rec.max_number() >= before - 1,
                        f'received #{before - 1} before the kill')
            killed = by_name[first_node]
            await killed.kill()
            killed_at = emitter.sent
            await until(lambda: rec.client.connected and rec.client.sid not in (None, old_sid),
                        'the client reconnected through the balancer', timeout=15)
            reconnected_at = emitter.sent
            new_sid = rec.client.sid
            # python-socketio has no session resume: the new session is in no room
            new_node = await rec.client.call('whoami', timeout=10)
            assert await rec.client.call('join', 'all', timeout=10) == new_node
            rejoined_at = emitter.sent
            await until(lambda: rec.max_number() >= rejoined_at + 50,
                        'messages flow again after the re-join')
            await emitter.stop()
            total = emitter.sent
            await until(lambda: rec.max_number() == total - 1, 'the last message', timeout=10)
        finally:
            await emitter.close()
            await rec.close()

    missing = _missing(rec.numbers(), total)
    summary = (f'emitted {total} at {rate:.0f}/s; kill of {first_node} at #{killed_at}, client '
               f'reconnected (sid {old_sid} -> {new_sid}) to {new_node} at #{reconnected_at}, '
               f're-joined room at #{rejoined_at}; lost {len(missing)} [{_ranges(missing)}]; '
               f'balancer connections {lb.connections_to}, failed connects '
               f'{lb.failed_attempts}; client connects={rec.connects} '
               f'disconnects={rec.disconnects}; test took {time.monotonic() - t_begin:.1f}s')
    print('\nBASELINE node kill:', summary)

    assert new_sid != old_sid, summary
    assert new_node != first_node, summary
    assert rec.connects == 2 and rec.disconnects >= 1, summary
    assert sum(lb.connections_to.values()) == 2, summary
    # messages emitted to the room between the kill and the re-join were lost
    assert len(missing) > 0, summary
    assert not [n for n in missing if n < before], summary
    assert not [n for n in missing if n >= rejoined_at], summary
    assert len(missing) >= (reconnected_at - killed_at) * 0.5, summary
    assert rejoined_at - killed_at >= 0.3 * rate * 0.5, summary
