"""relio.AsyncRedisManager: emits and room changes crossing server nodes through a Redis Stream.

Two relio servers (each its own uvicorn on 127.0.0.1, in this process) share a real redis-server;
relio clients connect to each. Checked: broadcasts and emits to a sid on the other node arrive
exactly once and in order; cross-node room changes, disconnects and callbacks; a write-only
emitter; a Redis blip (stopped for ~2 s, restarted from its AOF) loses and duplicates nothing;
while Redis stays away emits wait and then fail with RelayError (never silently); a batch retried
after its reply was lost is not appended twice.
"""

from __future__ import annotations

import asyncio

import pytest

import relio
from tests.support.redis_server import RedisServer
from tests.support.servers import serve_socketio
from tests.support.waiting import until

pytestmark = pytest.mark.timeout(60)


def make_node(url, name, config=None, got=None):
    sio = relio.AsyncServer(async_mode="asgi", client_manager=relio.AsyncRedisManager(url),
                            relio_config=config)

    @sio.on("join")
    async def join(sid, room):
        await sio.enter_room(sid, room)
        return name

    @sio.on("broadcast")
    async def broadcast(sid, room, n):
        await sio.emit("b", n, room=room)

    @sio.on("to_sid")
    async def to_sid(sid, target, n):
        await sio.emit("direct", n, to=target)

    @sio.on("m")
    def m(sid, n):
        if got is not None:
            got.append((name, n))
        return n

    return sio


class Recorder:
    def __init__(self):
        self.b, self.direct, self.other = [], [], []

    def attach(self, client):
        client.on("b", lambda n: self.b.append(n))
        client.on("direct", lambda n: self.direct.append(n))
        client.on("ask", lambda x: x * 2)


async def two_nodes(redis, config=None):
    return make_node(redis.url, "n1", config), make_node(redis.url, "n2", config)


@pytest.fixture
async def redis():
    async with RedisServer() as server:
        yield server


async def connect(port, rec):
    client = relio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2,
                               handle_sigint=False)
    rec.attach(client)
    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    return client


async def test_broadcast_and_direct_emits_cross_nodes_exactly_once_in_order(redis):
    s1, s2 = await two_nodes(redis)
    r1, r2 = Recorder(), Recorder()
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, r1), await connect(p2, r2)
        try:
            assert await c1.call("join", "all") == "n1"
            assert await c2.call("join", "all") == "n2"
            # From node 1's handler: a room with members on both nodes.
            for n in range(300):
                await c1.emit("broadcast", ("all", n))
            # To a sid held by the other node.
            for n in range(100):
                await c1.emit("to_sid", (c2.get_sid(), n))
            await until(lambda: len(r1.b) == 300 and len(r2.b) == 300 and len(r2.direct) == 100,
                        15, "every broadcast on both nodes")
            await asyncio.sleep(0.3)        # nothing more (no duplicates) arrives
            assert r1.b == list(range(300)) and r2.b == list(range(300))
            assert r2.direct == list(range(100)) and r1.direct == []
            m1, m2 = s1.manager, s2.manager
            assert m1.stats["gaps"] == m2.stats["gaps"] == 0
            assert m1.stats["published"] >= 400
        finally:
            await c1.disconnect()
            await c2.disconnect()


async def test_write_only_emitter_room_changes_disconnect_and_callbacks(redis):
    s1, s2 = await two_nodes(redis)
    r1, r2 = Recorder(), Recorder()
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, r1), await connect(p2, r2)
        emitter = relio.AsyncRedisManager(redis.url, write_only=True)
        try:
            sid2 = c2.get_sid()
            # Node 1 puts node 2's client in a room; a write-only process broadcasts to it.
            await s1.enter_room(sid2, "late", namespace="/")
            await until(lambda: "late" in s2.rooms(sid2), 15, what="the remote enter_room")
            for n in range(50):
                delivery = await emitter.emit("b", n, namespace="/", room="late")
            await delivery                  # Redis holds it
            assert delivery.relayed == 1
            await until(lambda: r2.b == list(range(50)), 15, what="the write-only emits")
            assert r1.b == []
            await s1.leave_room(sid2, "late", namespace="/")
            await until(lambda: "late" not in s2.rooms(sid2), 15, what="the remote leave_room")
            # A callback from node 1 to node 2's client comes back to node 1.
            answers = []
            await s1.emit("ask", 21, to=sid2, callback=lambda x: answers.append(x))
            await until(lambda: answers == [42], 15, what="the remote callback")
            # ...and call() to a remote sid.
            assert await s1.call("ask", 5, to=sid2, timeout=10) == 10
            # Disconnecting a client of the other node.
            await s1.disconnect(sid2, namespace="/")
            await until(lambda: not c2.connected, 15, what="the remote disconnect")
        finally:
            await emitter.close()
            await c1.disconnect()
            await c2.disconnect()


async def test_redis_blip_loses_and_duplicates_nothing(redis):
    s1, s2 = await two_nodes(redis)
    r1, r2 = Recorder(), Recorder()
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, r1), await connect(p2, r2)
        emitter = relio.AsyncRedisManager(redis.url, write_only=True)
        try:
            await c1.call("join", "all")
            await c2.call("join", "all")
            deliveries = []

            async def produce():
                for n in range(600):
                    deliveries.append(await emitter.emit("b", n, namespace="/", room="all"))
                    await asyncio.sleep(0.005)

            producer = asyncio.create_task(produce())
            await until(lambda: len(r2.b) > 50, 15, what="traffic")
            await redis.stop()
            await asyncio.sleep(2.0)
            stopped_at = len(deliveries)
            await redis.start()
            await asyncio.wait_for(producer, 30)
            for d in deliveries:
                await asyncio.wait_for(d, 15)      # none failed
            await until(lambda: len(r1.b) == 600 and len(r2.b) == 600, 20,
                        "every message on both nodes")
            await asyncio.sleep(0.3)
            assert r1.b == list(range(600)) and r2.b == list(range(600))
            assert emitter.stats["redis_errors"] > 0, "the blip did not happen"
            assert 0 < stopped_at < 600
            assert s1.manager.stats["gaps"] == s2.manager.stats["gaps"] == 0
        finally:
            await emitter.close()
            await c1.disconnect()
            await c2.disconnect()


async def test_redis_away_emits_wait_then_fail_with_relay_error(redis):
    config = relio.Config(relay_timeout=0.5, relay_queue_messages=5)
    emitter = relio.AsyncRedisManager(redis.url, write_only=True, relio_config=config)
    try:
        first = await emitter.emit("b", 0, namespace="/", room="all")
        await first
        await redis.stop()
        pending = [await emitter.emit("b", n, namespace="/", room="all") for n in range(1, 6)]
        # The queue is full: the next emit waits (backpressure), then raises.
        with pytest.raises(relio.QueueFull):
            await emitter.emit("b", 6, namespace="/", room="all", block=False)
        with pytest.raises(relio.RelayError) as excinfo:
            await emitter.emit("b", 7, namespace="/", room="all")
        assert "redis unavailable" in str(excinfo.value)
        for d in pending:
            with pytest.raises(relio.RelayError):
                await asyncio.wait_for(d, 5)
        assert emitter.stats["failed"] == 5
        # Redis back: emits work again.
        await redis.start()
        await asyncio.wait_for(await emitter.emit("b", 8, namespace="/", room="all"), 10)
    finally:
        await emitter.close()


async def test_a_retried_batch_is_not_appended_twice(redis):
    import redis.asyncio as aioredis

    emitter = relio.AsyncRedisManager(redis.url, write_only=True)
    client = aioredis.Redis.from_url(redis.url)
    try:
        await (await emitter.emit("b", 1, namespace="/", room="r"))
        # Replay the same batch (same publisher numbers), as after a lost reply.
        script = client.register_script(relio.cluster.bus._APPEND_SCRIPT)
        before = await client.xlen(emitter.bus.stream_key)
        entries = await client.xrange(emitter.bus.stream_key)
        h, p = entries[-1][1][b"h"], entries[-1][1][b"p"]
        await script(keys=[emitter.bus.stream_key, emitter.bus._publisher_key],
                     args=[1000, 60, 1, emitter.bus._origin, h, p])
        assert await client.xlen(emitter.bus.stream_key) == before
        # A new number is appended.
        await script(keys=[emitter.bus.stream_key, emitter.bus._publisher_key],
                     args=[1000, 60, 2, emitter.bus._origin, h, p])
        assert await client.xlen(emitter.bus.stream_key) == before + 1
    finally:
        await client.aclose()
        await emitter.close()


async def test_plain_socketio_clients_get_cross_node_broadcasts(redis):
    """A plain python-socketio client on a relio node receives what another node broadcasts,
    exactly as with python-socketio's Redis manager (no relio frames reach it)."""
    import socketio

    s1, s2 = await two_nodes(redis)
    r1 = Recorder()
    got = []
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1 = await connect(p1, r1)
        plain = socketio.AsyncClient(reconnection=False)
        plain.on("b", lambda n: got.append(n))
        await plain.connect(f"http://127.0.0.1:{p2}", transports=["websocket"])
        try:
            assert await plain.call("join", "all", timeout=10) == "n2"
            assert await c1.call("join", "all") == "n1"
            for n in range(100):
                await c1.emit("broadcast", ("all", n))
            await until(lambda: len(got) == 100 and len(r1.b) == 100, 15, what="both clients")
            await asyncio.sleep(0.2)
            assert got == list(range(100)) and r1.b == list(range(100))
        finally:
            await plain.disconnect()
            await c1.disconnect()


async def test_a_starting_node_misses_no_entry_for_its_first_clients(redis):
    """A node's bus reader finds its starting position asynchronously; a client that connected
    to the node before that (its sid then entered a room from another node) must not have the
    entry skipped. Here the new node's first read of the stream is made slow, as on a loaded
    machine."""
    s1, s2 = await two_nodes(redis)
    bus2 = s2.manager.bus
    make_client = bus2.client

    def slow_client():
        client = make_client()
        if not getattr(client, "_slowed", False):
            real = client.xrevrange

            async def xrevrange(*args, **kwargs):
                await asyncio.sleep(0.5)
                return await real(*args, **kwargs)
            client.xrevrange, client._slowed = xrevrange, True
        return client
    bus2.client = slow_client
    r1, r2 = Recorder(), Recorder()
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, r1), await connect(p2, r2)
        try:
            sid2 = c2.get_sid()
            await s1.enter_room(sid2, "late", namespace="/")
            await until(lambda: "late" in s2.rooms(sid2), 5, what="the remote enter_room")
            await s1.emit("b", 1, room="late")
            await until(lambda: r2.b == [1], 5, what="the room broadcast")
        finally:
            await c1.disconnect()
            await c2.disconnect()


async def test_python_socketio_emitters_reach_relio_clients(redis):
    """Workers not moved over yet emit through python-socketio's own Redis managers (a sync one, as
    in Celery or Flask, and an async one), publishing on its pub/sub channel: relio clients of
    every node get those emits (to a room across nodes, to one sid) once each."""
    import redis.asyncio as aioredis
    import socketio

    s1, s2 = await two_nodes(redis)
    r1, r2 = Recorder(), Recorder()
    sync_emitter = socketio.RedisManager(redis.url, write_only=True)
    async_emitter = socketio.AsyncRedisManager(redis.url, write_only=True)
    probe = aioredis.Redis.from_url(redis.url)
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, r1), await connect(p2, r2)
        try:
            assert await c1.call("join", "r") == "n1" and await c2.call("join", "r") == "n2"

            async def subscribed():
                return (await probe.pubsub_numsub("socketio"))[0][1] >= 2
            for _ in range(100):                       # both nodes listen (at most once before)
                if await subscribed():
                    break
                await asyncio.sleep(0.05)
            assert await subscribed()
            await asyncio.to_thread(sync_emitter.emit, "b", 1, namespace="/", room="r")
            await async_emitter.emit("b", 2, namespace="/", room="r")
            await async_emitter.emit("direct", 3, namespace="/", room=c2.get_sid())
            await until(lambda: r1.b == [1, 2] and r2.b == [1, 2] and r2.direct == [3], 10,
                        what="the python-socketio emits")
            await asyncio.sleep(0.3)
            assert r1.b == [1, 2] and r2.b == [1, 2] and r1.direct == [] and r2.direct == [3]
        finally:
            await c1.disconnect()
            await c2.disconnect()
            await probe.aclose()
            await async_emitter.redis.aclose() if getattr(async_emitter, "redis", None) else None


async def test_malformed_bus_entries_are_logged_and_skipped(redis, caplog):
    """Whatever else writes to the stream (a stray XADD, a broken publisher) costs that entry
    only: the reader logs it, goes on, and the next emit arrives."""
    import redis.asyncio as aioredis

    s1, s2 = await two_nodes(redis)
    r2 = Recorder()
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2:
        c1, c2 = await connect(p1, Recorder()), await connect(p2, r2)
        raw = aioredis.Redis.from_url(redis.url)
        try:
            assert await c2.call("join", "all") == "n2"
            stream = s1.manager.bus.stream_key
            await c1.emit("broadcast", ("all", 0))
            await until(lambda: r2.b == [0], 10, "the first broadcast")
            for fields in ({"h": "not json"}, {"x": "1"}, {"o": "someone", "h": "{}"},
                           {"o": "someone"}, {"h": '{"k": "e", "r": 5}'}):
                await raw.xadd(stream, fields)
            await c1.emit("broadcast", ("all", 1))
            await until(lambda: r2.b == [0, 1], 10, "the broadcast after the bad entries")
            assert "cannot apply bus entry" in caplog.text
            assert s2.manager.bus.stats["applied"] >= 7
        finally:
            await raw.aclose()
            await c1.disconnect()
            await c2.disconnect()
