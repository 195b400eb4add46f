"""The soak (``python -m bench.soak``) for ~20 s: continuous traffic both ways through a faulty link.

A relio server on uvicorn (127.0.0.1), two relio clients through a FaultProxy that cuts,
partitions and stalls the link every ~2.5 s; numbered emits both ways (40/s per client and
direction), sequential calls both ways, 1-2 MB payloads both ways every ~5 s. The test asserts:

* exactly-once, in-order delivery of every numbered emit, every big payload (intact), every call
  answered with its own answer and its handler run once, no DeliveryError, one session per client
  (``connect`` once) despite the faults, every Delivery resolved;
* the faults bit (connections cut, sessions resumed, frames retransmitted);
* no table grows: the server's tables (``relio_registry.sizes()``: sessions, bound, connection refs,
  ended reasons, ``environ``, rooms, ...) keep their second half's maximum within the first
  half's maximum plus a fixed slack, the sessions' gauges (outbox, held and reassembly bytes,
  cached responses, ``_pending``/``_awaiting``, asyncio tasks), which burst after a long stall,
  keep their second half's median within it (``bench.soak.TABLES``), every sample stays within
  a fixed absolute bound, and the structural tables never exceed what two clients need;
* memory: RSS at the end (after the drain) is at most ``RSS_GROWTH_BOUND`` above the first
  sample, and the Python heap (tracemalloc) ends within ``TRACED_GROWTH_BOUND`` of where it began
  (the engines' id sets, which grow until ``id_set_capacity`` by design, are made small enough to
  fill in the first seconds).

``test_regress_slow_resume_answer_keeps_the_session`` is the bug the long soak found (a resume
answered after more than 1 s ends the session).
"""

from __future__ import annotations

import asyncio
import json

import pytest

import relio
from bench.soak import Soak, SoakConfig
from relio.demo.faultproxy import FaultProxy
from tests.support.servers import serve_socketio


RSS_GROWTH_BOUND = 96 * 2**20        # bytes; one 2 MB payload in flight costs ~10 MB of RSS
TRACED_GROWTH_BOUND = 4 * 2**20      # bytes of Python heap after the drain, vs the first sample
CLIENTS = 2
# Each engine remembers the ids of the last id_set_capacity messages it delivered (memory grows
# until then, by design): a small capacity fills in the first seconds, so the heap should be flat
# for the rest of the run.
ID_SET_CAPACITY = 300


@pytest.mark.timeout(150)
async def test_short_soak_exactly_once_and_bounded_tables(tmp_path):
    out = tmp_path / "soak.jsonl"
    cfg = SoakConfig(minutes=20 / 60, clients=CLIENTS, rate=40.0, callers=1, call_pause=0.05,
                     big_every=5.0, big_min=1_000_000, big_max=2_000_000, fault_every=2.5,
                     faults=("cut", "partition", "hold"), sample_every=1.0, seed=7,
                     out=str(out), tracemalloc=True, drain_timeout=30.0, quiet=True,
                     id_set_capacity=ID_SET_CAPACITY)
    report = await Soak(cfg).run()
    summary = {k: v for k, v in report.items() if k != "tables"}
    print("\nshort soak:", json.dumps(summary, indent=1))

    # Exactly once, in order, nothing lost, nothing failed.
    assert report["problems"] == [], report["problems"]
    assert report["ok"]
    assert report["duplicates"] == 0 and report["gaps"] == 0
    messages = report["messages"]
    assert messages["c2s"] >= 20 * 40 * CLIENTS * 0.8       # the senders kept pace
    assert messages["s2c"] >= 20 * 40 * CLIENTS * 0.8
    assert messages["calls"] >= 20
    assert messages["big_up"] >= CLIENTS and messages["big_down"] >= CLIENTS

    # The faults happened and were repaired by resuming the sessions.
    assert sum(report["faults"].values()) >= 4
    assert report["proxy"]["connections_cut"] >= 1
    samples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(samples) >= 15 and samples[-1]["phase"] == "end"
    assert samples[-1]["resumes"] >= 1 and samples[-1]["retransmitted"] > 0

    # No table grows across the run (second half vs first half, fixed slack per table).
    assert report["grown_tables"] == [], report["grown_tables"]
    run = [s for s in samples if s["phase"] == "run"]
    for s in run:
        assert s["relio_channels"] == s["relio_sessions_table"] == CLIENTS
        assert s["relio_bound"] <= CLIENTS and s["relio_eio_refs"] <= 2 * CLIENTS
        assert s["environ"] <= 2 * CLIENTS and s["eio_sockets"] <= 2 * CLIENTS
        assert s["relio_ended"] == 0 and s["relio_draining"] == 0
        assert s["room_members"] <= 4 * CLIENTS   # None (connected), sid, "all", "client:<name>"
        assert s["manager_callbacks"] == 0 and s["client_callbacks"] == 0
        assert s["cached_responses"] <= 4 * cfg.callers * CLIENTS
    end = samples[-1]
    # After the drain everything acknowledged has been released.
    for key in ("outbox_messages", "client_outbox_messages", "pending", "client_pending",
                "held_bytes", "client_held_bytes", "reassembly_bytes",
                "client_reassembly_bytes", "awaiting_replies", "client_awaiting_replies",
                "pending_deliveries"):
        assert end[key] == 0, (key, end[key])

    # Memory: bounded growth from the first sample to the end of the drain.
    assert end["id_sets_held"] == end["id_sets_capacity"] == 2 * CLIENTS * ID_SET_CAPACITY
    first = samples[0]
    assert end["rss"] - first["rss"] <= RSS_GROWTH_BOUND, (first["rss"], end["rss"])
    assert end["tracemalloc"] - first["tracemalloc"] <= TRACED_GROWTH_BOUND, (
        first["tracemalloc"], end["tracemalloc"])


@pytest.mark.timeout(60)
async def test_regress_slow_resume_answer_keeps_the_session():
    """Found by the soak (a client's session replaced by a new one, its pending messages failed
    with ``DeliveryError('client disconnect')``, ``connect`` fired twice, the old server-side
    session parked until it expired). Cause: python-socketio's reconnect calls ``connect()`` with
    its default ``wait_timeout=1``; when the namespace's CONNECT answer (relio's resume) takes
    longer, python-socketio gives up and calls ``self.disconnect()``. relio's ``disconnect()``
    then only drops the connection (``_relio_connecting``), but ``_handle_eio_disconnect`` sees
    no reconnection coming (engine.io state ``disconnecting``) and ends every relio session
    with reason ``client disconnect``; the next attempt starts a new session. Any resume slower
    than 1 s ends the session: here an async ``relio_resume`` handler taking 1.5 s (in the soak,
    a stalled link or a busy loop). The session should stay suspended and be resumed by the
    next attempt (which means waiting longer than 1 s for the resume's answer)."""
    sio = relio.AsyncServer(async_mode="asgi")
    connects, got, events = [], [], []

    @sio.event
    async def connect(sid, environ, auth):
        connects.append(sid)

    @sio.on("relio_resume")
    async def relio_resume(sid, environ, auth):
        await asyncio.sleep(1.5)          # e.g. re-checking a token in a database
        return True

    @sio.on("m")
    def m(sid, n):
        got.append(n)

    client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2,
                               randomization_factor=0.0, handle_sigint=False)
    client.on("disconnect", lambda reason: events.append(("disconnect", reason)))
    client.on("relio_resume", lambda: events.append(("resume",)))
    async with serve_socketio(sio) as port, FaultProxy(port) as proxy:
        try:
            await client.connect(proxy.url, transports=["websocket"], wait_timeout=5)
            sid = client.get_sid()
            await (await client.emit("m", 1))
            await proxy.cut()
            delivery = await client.emit("m", 2)           # queued while reconnecting
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while loop.time() < deadline and ("resume",) not in events and len(connects) < 2:
                await asyncio.sleep(0.05)
            assert events == [("resume",)] and len(connects) == 1, (events, connects)
            assert client.get_sid() == sid
            await asyncio.wait_for(delivery, 10)          # raises DeliveryError today
            assert got == [1, 2]
        finally:
            await client.disconnect()
