"""relio sessions moving between server nodes through Redis (relio.AsyncRedisManager).

Two relio servers (uvicorn on 127.0.0.1, in this process) share a real redis-server behind a
round-robin TCP balancer without stickiness: every reconnect of the client lands on the other
node, which takes the session over. Checked: the same sid, rooms and session data on the new node,
``connect`` once, ``relio_resume`` on the client, numbered traffic both ways (client emits and a
write-only emitter's room broadcasts) exactly once and in order across the moves, calls answered
once, and a graceful shutdown handing its sessions over.
"""

from __future__ import annotations

import asyncio

import pytest

import relio
from tests.support.balancer import Balancer
from tests.support.redis_server import RedisServer
from tests.support.servers import serve_socketio
from tests.support.waiting import until, until_awaited

pytestmark = pytest.mark.timeout(90)


class Cluster:
    """What every node records (shared: the nodes run in this process)."""

    def __init__(self, mode="fast", config=None):
        self.mode = mode
        self.config = config
        self.got: list[tuple[str, str, int]] = []       # (node, sid, n)
        self.connects: list[tuple[str, str]] = []
        self.disconnects: list[tuple[str, str]] = []
        self.calls: list[tuple[str, int]] = []

    def node(self, url, name):
        sio = relio.AsyncServer(async_mode="asgi", relio_config=self.config,
                                client_manager=relio.AsyncRedisManager(url, mode=self.mode))

        @sio.event
        async def connect(sid, environ, auth):
            self.connects.append((name, sid))

        @sio.event
        async def disconnect(sid, reason):
            self.disconnects.append((name, sid))

        @sio.on("join")
        async def join(sid, room):
            await sio.enter_room(sid, room)
            await sio.save_session(sid, {"user": "ada", "joined": room})
            return name

        @sio.on("m")
        def m(sid, n):
            self.got.append((name, sid, n))

        @sio.on("work")
        async def work(sid, n):
            self.calls.append((name, n))
            return n * 10

        @sio.on("slow")
        async def slow(sid, n):
            await asyncio.sleep(0.8)                  # still running when the session moves
            self.calls.append((name, n))
            return n * 10

        @sio.on("where")
        async def where(sid):
            return [name, sorted(r for r in sio.rooms(sid) if r != sid),
                    await sio.get_session(sid)]

        return sio


@pytest.fixture
async def redis():
    async with RedisServer() as server:
        yield server


@pytest.mark.parametrize("mode", ["fast", "durable"])
async def test_session_moves_to_the_other_node_with_everything(redis, mode):
    cl = Cluster(mode)
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    got_b, events = [], []
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1, p2]) as lb:
        client = moving_client()
        client.on("b", lambda n: got_b.append(n))
        client.on("relio_resume", lambda: events.append("resume"))
        client.on("disconnect", lambda reason: events.append(("disconnect", reason)))
        emitter = relio.AsyncRedisManager(redis.url, write_only=True)
        try:
            await client.connect(lb.url, transports=["websocket"])
            sid = client.get_sid()
            first = await client.call("join", "room-r")
            n = 0
            nodes_seen = {first}
            for move in range(3):
                for _ in range(100):
                    await client.emit("m", n)
                    await emitter.emit("b", n, namespace="/", room="room-r")
                    n += 1
                    if n % 10 == 0:
                        await asyncio.sleep(0.01)
                assert await client.call("work", move, timeout=20) == move * 10
                resumes = events.count("resume")
                await lb.cut()                         # the next connection: the other node
                await until(lambda: events.count("resume") == resumes + 1, 20,
                            f"resume #{move + 1}")
                where = await client.call("where", timeout=20)
                nodes_seen.add(where[0])
                assert where[1:] == [["room-r"], {"user": "ada", "joined": "room-r"}], where
            for _ in range(50):
                await client.emit("m", n)
                await emitter.emit("b", n, namespace="/", room="room-r")
                n += 1
            await until(lambda: len(cl.got) >= n and len(got_b) >= n, 20, "all messages")
            await asyncio.sleep(0.3)
            assert [x[2] for x in cl.got] == list(range(n)), "client->server lost/dup/reordered"
            assert got_b == list(range(n)), "broadcasts lost/dup/reordered"
            assert {x[1] for x in cl.got} == {sid} and client.get_sid() == sid
            assert nodes_seen == {"n1", "n2"}
            assert cl.connects == [(first, sid)] and cl.disconnects == []
            assert sorted(c[1] for c in cl.calls) == [0, 1, 2]     # each handler ran once
            assert ("disconnect", "io server disconnect") not in events
            assert not [e for e in events if isinstance(e, tuple)], events
            moved = s1.manager.stats["claimed"] + s2.manager.stats["claimed"]
            assert moved == 3
            handed = s1.manager.stats["handed_over"] + s2.manager.stats["handed_over"]
            assert handed == 3
        finally:
            await emitter.close()
            await client.disconnect()
    assert cl.disconnects and cl.disconnects[0][1] == sid


@pytest.mark.parametrize("mode", ["fast", "durable"])
async def test_graceful_shutdown_hands_sessions_to_another_node(redis, mode):
    cl = Cluster(mode)
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    got_b = []
    async with serve_socketio(s2) as p2:
        srv1_ctx = serve_socketio(s1)
        p1 = await srv1_ctx.__aenter__()
        stopped = False
        async with Balancer([p1, p2]) as lb:
            client = moving_client()
            client.on("b", lambda n: got_b.append(n))
            try:
                await client.connect(lb.url, transports=["websocket"])
                sid = client.get_sid()
                assert await client.call("join", "room-r") == "n1"
                for n in range(200):
                    await client.emit("m", n)
                    await s1.emit("b", n, room="room-r")
                await srv1_ctx.__aexit__(None, None, None)      # SIGTERM-like: shutdown
                stopped = True
                for n in range(200, 300):
                    await client.emit("m", n)                  # queued while moving
                await until(lambda: len(cl.got) >= 300, 20, "the client's messages")
                where = await client.call("where", timeout=20)
                assert where == ["n2", ["room-r"], {"user": "ada", "joined": "room-r"}]
                await until(lambda: len(got_b) >= 200, 20, "the broadcasts")
                await asyncio.sleep(0.3)
                assert [x[2] for x in cl.got] == list(range(300))
                assert got_b == list(range(200))
                assert client.get_sid() == sid and len(cl.connects) == 1
                assert cl.disconnects == []
                assert s1.manager.stats["handed_over"] == 1
            finally:
                await client.disconnect()
                if not stopped:
                    await srv1_ctx.__aexit__(None, None, None)


async def test_a_paused_owner_is_fenced_off_after_its_session_moved(redis):
    """The owner does not answer the handover (as if paused with SIGSTOP): the other node takes
    the session's last saved state after the handover timeout, with a new epoch. When the old
    owner wakes and writes into its stale copy, the write is refused: its copy is dropped, what
    waited in it fails with DeliveryError, and its next emit to the sid reaches the session on
    the new node through the bus."""
    import redis.asyncio as aioredis

    cl = Cluster("durable")
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    got, events = [], []
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1, p2]) as lb:
        client = moving_client()
        client.on("direct", lambda x: got.append(x))
        client.on("relio_resume", lambda: events.append("resume"))
        store = aioredis.Redis.from_url(redis.url)
        try:
            await client.connect(lb.url, transports=["websocket"])
            sid = client.get_sid()
            assert await client.call("join", "room-r") == "n1"
            await client.emit("m", 0)

            async def paused(channel):
                return None                      # the owner never hands over
            s1.manager.session_host.hand_over = paused
            await lb.cut()
            await until(lambda: "resume" in events, 20, "the resume on n2 (forced)")
            assert (await client.call("where", timeout=10))[0] == "n2"
            assert s2.manager.stats["forced"] >= 1
            assert int(await store.hget(f"relio:socketio:s:{sid}", "epoch")) == 2
            # The old owner wakes up and emits into its stale copy: refused, reported.
            stale = await s1.emit("direct", "stale", to=sid)
            with pytest.raises(relio.DeliveryError) as excinfo:
                await asyncio.wait_for(stale, 10)
            assert "moved" in excinfo.value.reason
            assert s1.manager.stats["fenced"] == 1 and sid not in s1.relio_registry
            assert int(await store.hget(f"relio:socketio:s:{sid}", "epoch")) == 2
            # Its refused save wrote nothing: not the stale message's record either.
            record = await store.hgetall(f"relio:socketio:s:{sid}")
            assert not [k for k, v in record.items() if k.startswith(b"m:") and b"stale" in v]
            # Its next emit goes through the bus to the session on n2.
            await s1.emit("direct", "fresh", to=sid)
            await client.emit("m", 1)
            await until(lambda: got == ["fresh"] and len(cl.got) == 2, 10, "the fresh emit")
            await asyncio.sleep(0.3)
            assert got == ["fresh"] and [x[2] for x in cl.got] == [0, 1]
            assert cl.connects == [("n1", sid)] and cl.disconnects == []
        finally:
            await store.aclose()
            await client.disconnect()


async def test_takeover_catches_up_the_bus_entries_after_the_saved_state(redis):
    """fast mode, an owner that does not hand over: the new node takes the state saved when the
    session was suspended, and catches up, from the bus, the broadcasts published after that
    save (they went to the old owner's stale copy, which never sends them): the client gets
    every broadcast once, in order."""
    cl = Cluster("fast")
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    got, events = [], []
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1, p2]) as lb:
        client = moving_client()
        client.on("b", lambda n: got.append(n))
        client.on("relio_resume", lambda: events.append("resume"))
        emitter = relio.AsyncRedisManager(redis.url, write_only=True)
        try:
            await client.connect(lb.url, transports=["websocket"])
            assert await client.call("join", "room-r") == "n1"
            for n in range(20):
                await emitter.emit("b", n, namespace="/", room="room-r")
            await until(lambda: len(got) == 20, 15, what="the first broadcasts")

            async def paused(channel):
                return None
            s1.manager.session_host.hand_over = paused
            await lb.cut()
            await until(lambda: s1.manager.stats["saved"] >= 1, 15, what="the save at suspend")
            n = 20
            while "resume" not in events and n < 500:      # published during the takeover
                await emitter.emit("b", n, namespace="/", room="room-r")
                n += 1
                await asyncio.sleep(0.02)
            await until(lambda: "resume" in events, 20, "the forced takeover")
            for m in range(n, n + 20):
                await emitter.emit("b", m, namespace="/", room="room-r")
            await until(lambda: len(got) >= n + 20, 20, "every broadcast")
            await asyncio.sleep(0.3)
            assert got == list(range(n + 20))
            assert s2.manager.stats["forced"] == 1 and s2.manager.stats["replayed"] > 0
        finally:
            await emitter.close()
            await client.disconnect()


@pytest.mark.parametrize("mode", ["fast", "durable"])
async def test_a_handover_waits_for_the_running_call_handler(redis, mode):
    """The client moves to the other node while a call's handler runs on the first: the owner
    hands the session over only once the handler has finished, so its answer goes with the
    session and reaches the client once; the handler runs once."""
    cl = Cluster(mode)
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1, p2]) as lb:
        client = moving_client()
        try:
            await client.connect(lb.url, transports=["websocket"])
            assert await client.call("join", "room-r") == "n1"
            call = asyncio.ensure_future(client.call("slow", 7, timeout=30))
            await asyncio.sleep(0.2)                    # the handler runs on n1
            await lb.cut()                              # the client comes back through n2
            assert await call == 70
            where = await client.call("where", timeout=20)
            assert where[0] == "n2"
            assert cl.calls == [("n1", 7)]               # ran once, on the first node
            assert s1.manager.stats["handed_over"] == 1 and s2.manager.stats["forced"] == 0
        finally:
            await client.disconnect()


async def test_an_idle_session_keeps_its_record_past_the_record_ttl(redis, monkeypatch):
    """A session stays idle longer than its record's lifetime (short session_ttl, short margin
    here): its node keeps the record alive, so when the node stops answering the session is still
    taken over on the other node with everything (same sid, rooms, session data)."""
    from relio.cluster import records, store
    monkeypatch.setattr(records, "RECORD_TTL_MARGIN", 0.2)   # record TTL: 3.2 s
    monkeypatch.setattr(store, "HANDOVER_TIMEOUT", 1.0)      # taken over well within the TTL
    cl = Cluster("durable", relio.Config(session_ttl=3.0))
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    probe = redis_client(redis.url)
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1, p2]) as lb:
        client = moving_client()
        try:
            await client.connect(lb.url, transports=["websocket"])
            sid = client.get_sid()
            assert await client.call("join", "room-r") == "n1"
            await asyncio.sleep(7.0)                    # idle: over twice the record's TTL
            assert await probe.exists(f"relio:socketio:s:{sid}") == 1
            assert s1.manager.stats["refreshed"] >= 2

            async def unresponsive(session):
                return None                             # n1 never hands over (paused)
            s1.manager.session_host.hand_over = unresponsive
            await lb.cut()
            where = await client.call("where", timeout=30)
            assert where == ["n2", ["room-r"], {"user": "ada", "joined": "room-r"}]
            assert client.get_sid() == sid and cl.connects == [("n1", sid)]
            assert s2.manager.stats["forced"] == 1
        finally:
            await client.disconnect()
            await probe.aclose()


def moving_client() -> relio.AsyncClient:
    """A client that reconnects at once (through the balancer: to the other node)."""
    return relio.AsyncClient(reconnection_delay=0.05, reconnection_delay_max=0.2,
                             randomization_factor=0.0, handle_sigint=False)


def redis_client(url):
    import redis.asyncio as aioredis
    return aioredis.Redis.from_url(url)


async def test_durable_saves_keep_each_unacknowledged_message_once(redis):
    """Durable mode: while the client is away, what the server emits to it waits in its outbox,
    and the session record holds each of those messages once, as an ``m:<id>`` field beside the
    state that names them. When the client is back and has acknowledged them, the saves delete
    those fields; when the session ends, the record keeps only the fact that it ended."""
    cl = Cluster("durable")
    s1 = cl.node(redis.url, "n1")
    probe = redis_client(redis.url)
    got, events = [], []
    async with serve_socketio(s1) as p1, Balancer([p1]) as lb:
        client = moving_client()
        client.on("direct", lambda n: got.append(n))
        client.on("relio_resume", lambda: events.append("resume"))
        key = None
        try:
            await client.connect(lb.url, transports=["websocket"])
            sid = client.get_sid()
            key = f"relio:socketio:s:{sid}"
            await client.call("join", "room-r")
            lb.upstreams = []                           # the client cannot come back yet
            assert await lb.cut() == 1
            await until(lambda: s1.relio_registry.get(sid).suspended, 10, "the suspend")
            for n in range(60):
                await s1.emit("direct", n, to=sid)

            async def records() -> dict:
                return {k: v for k, v in (await probe.hgetall(key)).items()
                        if k.startswith(b"m:")}

            async def emitted() -> int:
                return sum(b"direct" in v for v in (await records()).values())

            await until_awaited(lambda: _is(emitted, 60), 10, "60 records")
            # one record per unacknowledged message of the session, no more
            outbox = s1.relio_registry.get(sid).channel.engine.stats["outbox_messages"]
            assert len(await records()) == outbox
            lb.upstreams = [p1]
            await until(lambda: got == list(range(60)), 20, "every message after the resume")
            assert events == ["resume"]
            await until_awaited(lambda: _is(lambda: _count(records), 0), 10,
                                "the acknowledged records gone")
        finally:
            await client.disconnect()
        await until_awaited(lambda: _ended(probe, key), 10, "the ended record")
        assert sorted(await probe.hkeys(key)) == [b"ended", b"epoch", b"owner"]
    await probe.aclose()


async def test_a_session_handed_over_is_saved_whole(redis):
    """A hand-over (shutdown, a client moving between live nodes) writes the snapshot with every
    queued message in it, the format of earlier versions (they cannot read message records), so
    that a rolling deploy moves sessions both ways; the other node carries on from it."""
    from relio.cluster import records
    from relio.engine import Engine
    cl = Cluster("durable")
    s1, s2 = cl.node(redis.url, "n1"), cl.node(redis.url, "n2")
    probe = redis_client(redis.url)
    got = []
    async with serve_socketio(s1) as p1, serve_socketio(s2) as p2, Balancer([p1]) as lb:
        client = moving_client()
        client.on("direct", lambda n: got.append(n))
        try:
            await client.connect(lb.url, transports=["websocket"])
            sid = client.get_sid()
            key = f"relio:socketio:s:{sid}"
            assert await client.call("join", "room-r") == "n1"
            lb.upstreams = []
            assert await lb.cut() == 1
            await until(lambda: s1.relio_registry.get(sid).suspended, 10, "the suspend")
            for n in range(5):
                await s1.emit("direct", n, to=sid)
            await s1.manager.session_host.hand_over(s1.relio_registry.get(sid))
            assert sid not in s1.relio_registry
            assert await probe.hget(key, "owner") == b""
            meta, snapshot = records.unpack_state(await probe.hget(key, "state"))
            assert Engine.restore(snapshot, relio.Config()).outbox_messages >= 5
            lb.upstreams = [p2]
            await until(lambda: got == list(range(5)), 20, "the messages, through n2")
            assert (await client.call("where", timeout=10))[0] == "n2"
        finally:
            await client.disconnect()
            await probe.aclose()

async def _is(count, n: int) -> bool:
    return await count() == n


async def _count(records) -> int:
    return len(await records())


async def _ended(probe, key: str) -> bool:
    return await probe.hexists(key, "ended")
