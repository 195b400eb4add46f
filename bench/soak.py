"""Soak test: hours-long traffic through a faulty link, watching memory and relio's tables.

    python -m bench.soak --minutes 30 [--clients 2] [--rate 100] [--seed 1] [--out FILE]

One process, one asyncio loop: a ``relio.AsyncServer`` on uvicorn (127.0.0.1, ephemeral port), a
``relio.demo.faultproxy.FaultProxy`` in front of it, and ``--clients`` ``relio.AsyncClient`` s
connected through the proxy. Traffic runs both ways the whole time:

* numbered emits, ``--rate`` per second per client in each direction (``c2s`` / ``s2c``), each
  checked on arrival against the next number expected on its stream (so exactly-once and order
  are checked in O(1) memory: a duplicate is a number below the expected one, a loss a jump);
* ``call()`` s, ``--callers`` sequential callers per client in each direction; each handler checks
  that it runs once per call (its call numbers arrive 0, 1, 2, ... per caller) and each caller
  that it gets its own answer;
* every ``--big-every`` seconds a 1-5 MB payload each way, checked by SHA-256 and number.

Every ``--fault-every`` seconds (jittered) the proxy cuts every connection, partitions the link for
0.3-1.5 s, or stalls it (``hold`` blackhole) for 0.5-5 s, which outlives the 3 s + 3 s heartbeat
now and then (``--faults`` picks the kinds; ``drop`` is available too). Every ``--sample-every``
seconds, after a ``gc.collect()``, one JSON line goes to ``--out``: process RSS (from
``/proc/self/statm``; server, clients and proxy share the process), ``tracemalloc`` current, and
the sizes of the server's tables (``relio_registry.sizes()``: sessions, bound, connection refs,
ended reasons, ``environ``, the manager's rooms and callbacks, engine.io sockets), the sums
over the server's and the clients' sessions of the engines' gauges (``held_bytes``,
``reassembly_bytes``, ``cached_responses``, ``outbox_messages``, ``awaiting_replies``) and of
each channel's ``_pending`` / ``_awaiting`` dicts, and the asyncio task count.

At the end the senders stop, the faults are cleared, and the soak waits (bounded) for every stream
to be complete, then asserts exactly-once delivery of everything and reports the memory slope (a
least-squares fit over the samples after warm-up, and after every engine's id set is full: each
remembers the last ``id_set_capacity`` message ids, 100 000 by default, so memory grows by design
until they are, ~10 minutes at the default rate; ``--id-set-capacity`` makes that shorter). The
verdict is ``{"ok": true, ...}`` on stdout, or exit status 1 with the reasons: any loss,
duplicate or failed delivery, a table that grew (``TABLES``), or a Python heap (tracemalloc)
growing faster than ``--max-traced-slope`` over the samples with no big payload in transit. :func:`run_soak` and :func:`analyze` are what ``tests/test_soak_short.py``
runs for ~20 s in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import os
import random
import sys
import tempfile
import time
import tracemalloc
from collections import deque

import relio
from relio.asyncio import dispatch as relio_dispatch
from relio.demo.faultproxy import FaultProxy
from tests.support.servers import serve_socketio

PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_VIOLATIONS = 50           # violations remembered verbatim (all are counted)


@dataclasses.dataclass
class SoakConfig:
    minutes: float = 30.0
    clients: int = 2
    rate: float = 100.0               # numbered emits per second, per client, each direction
    callers: int = 2                  # sequential callers per client, each direction
    call_pause: float = 0.05          # seconds between a caller's calls
    big_every: float = 30.0           # seconds between big payloads (each direction)
    big_min: int = 1_000_000
    big_max: int = 5_000_000
    fault_every: float = 10.0         # mean seconds between faults
    faults: tuple = ("cut", "partition", "hold")
    sample_every: float = 5.0
    seed: int = 1
    out: str | None = None            # JSON lines of samples (None: a temp file)
    tracemalloc: bool = True
    ping_interval: float = 3.0
    ping_timeout: float = 3.0
    drain_timeout: float = 180.0      # bounded wait for every stream to complete at the end
    warmup_fraction: float = 0.2      # samples before this fraction of the run are not fitted
    id_set_capacity: int | None = None    # relio.Config.id_set_capacity (None: the default)
    quiet: bool = False


class Stream:
    """Numbers arriving on one ordered stream: checked against the next expected, O(1) memory."""

    __slots__ = ("name", "expected", "duplicates", "gaps", "violations")

    def __init__(self, name: str):
        self.name = name
        self.expected = 0
        self.duplicates = 0
        self.gaps = 0
        self.violations: list[str] = []

    def got(self, n: int) -> None:
        if n == self.expected:
            self.expected += 1
            return
        if n < self.expected:
            self.duplicates += 1
            what = f"{self.name}: got {n} again (expected {self.expected})"
        else:
            self.gaps += 1
            what = f"{self.name}: got {n}, expected {self.expected} (lost or reordered)"
            self.expected = n + 1
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(what)


class Soak:
    """State of one soak run (all in one process)."""

    def __init__(self, cfg: SoakConfig):
        self.cfg = cfg
        self.relio_config = relio.DEFAULT_CONFIG if cfg.id_set_capacity is None else \
            relio.DEFAULT_CONFIG.replace(id_set_capacity=cfg.id_set_capacity)
        self.rng = random.Random(cfg.seed)
        self.stop = asyncio.Event()
        self.server: relio.AsyncServer | None = None
        self.clients: list[relio.AsyncClient] = []
        self.proxy: FaultProxy | None = None
        self.sids: dict[str, str] = {}              # client name -> sid
        self.names: dict[str, str] = {}             # sid -> client name
        self.connects: dict[str, int] = {}
        self.disconnects = 0
        # what was sent (per client name) and what arrived
        self.sent_c2s: dict[str, int] = {}
        self.sent_s2c: dict[str, int] = {}
        self.rx_c2s: dict[str, Stream] = {}
        self.rx_s2c: dict[str, Stream] = {}
        self.big_sent: dict[str, list[int]] = {}    # name -> [up, down]
        self.big_rx_up: dict[str, Stream] = {}
        self.big_rx_down: dict[str, Stream] = {}
        self.big_bad_hash = 0
        self.handler_runs: dict[tuple, Stream] = {}   # (side, name, caller) -> call numbers
        self.calls_done = 0
        self.emit_errors = 0
        self.call_errors: list[str] = []
        self.wrong_answers = 0
        self.delivery_errors: list[str] = []
        self.pending_deliveries: deque = deque()
        self.failed_deliveries = 0
        self.faults: dict[str, int] = {}
        # Samples go to the JSON lines file only (kept in memory they would grow the heap being
        # measured by ~5 KB each); the analysis reads the file back at the end.
        self.samples_taken = 0
        self.t0 = 0.0

    # --- bookkeeping ---------------------------------------------------------------------------
    def _record_error(self, where: list, what: str) -> None:
        if len(where) < MAX_VIOLATIONS:
            where.append(what)

    def _track(self, delivery) -> None:
        if isinstance(delivery, relio.Delivery):
            self.pending_deliveries.append(delivery)

    def _reap_deliveries(self) -> None:
        q = self.pending_deliveries
        while q and q[0].done:
            d = q.popleft()
            if d.failures:
                self.failed_deliveries += 1
                self._record_error(self.delivery_errors, str(d.failures[0]))

    def _handler_run(self, side: str, name: str, caller: int, k: int) -> None:
        key = (side, name, caller)
        stream = self.handler_runs.get(key)
        if stream is None:
            stream = self.handler_runs[key] = Stream(f"{side} handler {name}/{caller}")
        stream.got(k)

    # --- server --------------------------------------------------------------------------------
    def make_server(self) -> relio.AsyncServer:
        cfg = self.cfg
        sio = relio.AsyncServer(async_mode="asgi", ping_interval=cfg.ping_interval,
                                ping_timeout=cfg.ping_timeout, relio_config=self.relio_config)

        @sio.event
        async def connect(sid, environ, auth):
            name = (auth or {}).get("name")
            if not isinstance(name, str):
                return False
            self.connects[name] = self.connects.get(name, 0) + 1
            self.sids[name] = sid
            self.names[sid] = name
            await sio.enter_room(sid, "all")
            await sio.enter_room(sid, f"client:{name}")

        @sio.event
        async def disconnect(sid, reason):
            self.disconnects += 1

        @sio.on("c2s")
        def c2s(sid, msg):
            self.rx_c2s[self.names[sid]].got(msg["n"])

        @sio.on("calc")
        async def calc(sid, msg):
            self._handler_run("server", self.names[sid], msg["caller"], msg["k"])
            await asyncio.sleep(0.005)         # still running when a fault hits, sometimes
            return {"k": msg["k"], "double": msg["k"] * 2}

        @sio.on("big")
        def big(sid, msg):
            name = self.names[sid]
            if hashlib.sha256(msg["blob"]).hexdigest() != msg["sha"]:
                self.big_bad_hash += 1
            self.big_rx_up[name].got(msg["i"])

        @sio.on("relio_delivery_error")
        def delivery_error(sid, error):
            self._record_error(self.delivery_errors, f"server: {error}")

        return sio

    # --- clients -------------------------------------------------------------------------------
    def make_client(self, name: str) -> relio.AsyncClient:
        client = relio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.5,
                                   randomization_factor=0.0, handle_sigint=False,
                                   relio_config=self.relio_config)

        @client.on("s2c")
        def s2c(msg):
            self.rx_s2c[name].got(msg["n"])

        @client.on("ccalc")
        async def ccalc(msg):
            self._handler_run("client", name, msg["caller"], msg["k"])
            await asyncio.sleep(0.005)
            return {"k": msg["k"], "triple": msg["k"] * 3}

        @client.on("big")
        def big(msg):
            if hashlib.sha256(msg["blob"]).hexdigest() != msg["sha"]:
                self.big_bad_hash += 1
            self.big_rx_down[name].got(msg["i"])

        @client.on("relio_delivery_error")
        def delivery_error(error):
            self._record_error(self.delivery_errors, f"client {name}: {error}")

        return client

    # --- traffic ---------------------------------------------------------------------------------
    async def _paced(self, rate: float, body, what: str) -> None:
        """Call ``body(n)`` ``rate`` times a second until stopped (catching up after stalls). An
        emit that raises is a problem (relio's emit never fails while a session lives): it is
        recorded and the same number is emitted again a moment later."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while not self.stop.is_set():
            wait = start + n / rate - loop.time()
            if wait > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), wait)
                continue
            try:
                await body(n)
            except Exception as exc:
                self.emit_errors += 1
                self._record_error(self.call_errors, f"{what} {n} raised {exc!r} at "
                                                     f"{loop.time() - self.t0:.1f}s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 0.5)
                continue
            n += 1

    async def client_emitter(self, name: str, client: relio.AsyncClient) -> None:
        pad = "x" * self.rng.randint(0, 200)

        async def body(n):
            self._track(await client.emit("c2s", {"n": n, "pad": pad}))
            self.sent_c2s[name] = n + 1
        await self._paced(self.cfg.rate, body, f"client {name} emit")

    async def server_emitter(self, name: str) -> None:
        pad = "y" * self.rng.randint(0, 200)

        async def body(n):
            self._track(await self.server.emit("s2c", {"n": n, "pad": pad},
                                               to=self.sids[name]))
            self.sent_s2c[name] = n + 1
        await self._paced(self.cfg.rate, body, f"server emit to {name}")

    async def client_caller(self, name: str, client: relio.AsyncClient, caller: int) -> None:
        k = 0
        while not self.stop.is_set():
            try:
                answer = await client.call("calc", {"caller": caller, "k": k}, timeout=300)
                if answer != {"k": k, "double": 2 * k}:
                    self.wrong_answers += 1
                self.calls_done += 1
            except Exception as exc:            # counted: the soak must see none
                self._record_error(self.call_errors, f"client {name} call {k}: {exc!r}")
            k += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.cfg.call_pause)

    async def server_caller(self, name: str, caller: int) -> None:
        k = 0
        while not self.stop.is_set():
            try:
                answer = await self.server.call("ccalc", {"caller": caller, "k": k},
                                                to=self.sids[name], timeout=300)
                if answer != {"k": k, "triple": 3 * k}:
                    self.wrong_answers += 1
                self.calls_done += 1
            except Exception as exc:
                self._record_error(self.call_errors, f"server call {name} {k}: {exc!r}")
            k += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.cfg.call_pause)

    async def big_sender(self, name: str, client: relio.AsyncClient) -> None:
        cfg = self.cfg
        i = 0
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), cfg.big_every * self.rng.uniform(0.5, 1.5))
            if self.stop.is_set():
                return
            blob = os.urandom(self.rng.randint(cfg.big_min, cfg.big_max))
            msg = {"i": i, "sha": hashlib.sha256(blob).hexdigest(), "blob": blob}
            try:
                self._track(await client.emit("big", msg))
                self._track(await self.server.emit("big", msg, to=self.sids[name]))
            except Exception as exc:
                self.emit_errors += 1
                self._record_error(self.call_errors, f"big {name} {i} raised {exc!r}")
                continue
            del blob, msg
            i += 1
            self.big_sent[name] = [i, i]

    async def fault_injector(self) -> None:
        cfg = self.cfg
        proxy = self.proxy
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(),
                                       max(0.5, self.rng.expovariate(1.0 / cfg.fault_every)))
            if self.stop.is_set():
                return
            kind = self.rng.choice(cfg.faults)
            self.faults[kind] = self.faults.get(kind, 0) + 1
            if kind == "cut":
                await proxy.cut()
            elif kind == "partition":
                await proxy.partition(round(self.rng.uniform(0.3, 1.5), 3))
            elif kind == "hold":
                proxy.blackhole(self.rng.choice(["both", "up", "down"]),
                                round(self.rng.uniform(0.5, 5.0), 3), mode="hold")
            elif kind == "drop":
                proxy.blackhole(self.rng.choice(["both", "up", "down"]),
                                round(self.rng.uniform(0.3, 1.5), 3), mode="drop")
            else:
                raise ValueError(f"unknown fault {kind!r}")

    # --- sampling --------------------------------------------------------------------------------
    def sample(self, phase: str = "run") -> dict:
        gc.collect()
        self._reap_deliveries()
        server = self.server
        loop = asyncio.get_running_loop()
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
        registry = server.relio_registry
        server_channels = [session.channel for session in registry]
        client_channels = [cs.channel for c in self.clients for cs in c.relio_sessions.values()]

        def engines(channels, key):
            return sum(ch.engine.stats[key] for ch in channels)

        rooms = server.manager.rooms
        s = {
            "t": round(loop.time() - self.t0, 2),
            "phase": phase,
            "rss": rss,
            "tracemalloc": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing()
            else None,
            "tasks": len(asyncio.all_tasks()),
            "background_tasks": len(relio_dispatch._background_tasks),
            # server tables
            "relio_channels": registry.sizes()["sessions"],
            "relio_bound": registry.sizes()["bound"],
            "relio_eio_refs": registry.sizes()["eio_refs"],
            "relio_ended": registry.sizes()["ended"],
            "relio_draining": registry.sizes()["draining"],
            "relio_sessions_table": registry.sizes()["table"],
            "relio_parked": server.relio_parked_sessions,
            "environ": len(server.environ),
            "eio_sockets": len(server.eio.sockets),
            "rooms": sum(len(ns) for ns in rooms.values()),
            "room_members": sum(len(m) for ns in rooms.values() for m in ns.values()),
            "manager_callbacks": sum(len(v) for v in server.manager.callbacks.values()),
            "eio_to_sid": len(server.manager.eio_to_sid),
            # server sessions (sums over channels)
            "held_bytes": engines(server_channels, "held_bytes"),
            "reassembly_bytes": engines(server_channels, "reassembly_bytes"),
            "cached_responses": engines(server_channels, "cached_responses"),
            "outbox_messages": engines(server_channels, "outbox_messages"),
            "outbox_bytes": engines(server_channels, "outbox_bytes"),
            "in_flight_frames": engines(server_channels, "in_flight_frames"),
            "awaiting_replies": sum(ch.stats["awaiting_replies"] for ch in server_channels),
            "pending": sum(ch.stats["tracked_messages"] for ch in server_channels),
            "peer_requests_pending": sum(len(ch.engine.awaiting_reply) for ch in server_channels),
            # client sessions
            "client_held_bytes": engines(client_channels, "held_bytes"),
            "client_reassembly_bytes": engines(client_channels, "reassembly_bytes"),
            "client_cached_responses": engines(client_channels, "cached_responses"),
            "client_outbox_messages": engines(client_channels, "outbox_messages"),
            "client_awaiting_replies": sum(ch.stats["awaiting_replies"] for ch in client_channels),
            "client_pending": sum(ch.stats["tracked_messages"] for ch in client_channels),
            "client_callbacks": sum(len(v) for c in self.clients for v in c.callbacks.values()),
            # harness (must stay bounded too, or it would pollute the memory figures)
            "pending_deliveries": len(self.pending_deliveries),
            # no big payload in transit (memory then shows the floor, not payloads in flight)
            "idle": not any(ch.engine.stats["reassembly_bytes"] or
                             ch.engine.stats["outbox_bytes"] > 2**20
                             for ch in server_channels + client_channels),
            "proxy_connections": self.proxy.live_connections,
            # progress
            "c2s": sum(s.expected for s in self.rx_c2s.values()),
            "s2c": sum(s.expected for s in self.rx_s2c.values()),
            "calls": self.calls_done,
            "bigs": sum(s.expected for s in self.big_rx_up.values())
            + sum(s.expected for s in self.big_rx_down.values()),
            "faults": sum(self.faults.values()),
            "resumes": sum((server.session_stats(sid) or {}).get("resumes", 0)
                           for sid in (session.sid for session in registry)),
            "retransmitted": engines(server_channels, "frames_retransmitted")
            + engines(client_channels, "frames_retransmitted"),
            # Each engine's id set (not visible from Python) remembers the id of every message
            # delivered, up to id_set_capacity: memory grows until they are full (32-48 bytes
            # an id), then stays flat. Estimated from messages_received.
            "id_sets_held": sum(min(self.relio_config.id_set_capacity,
                                    ch.engine.stats["messages_received"])
                                for ch in server_channels + client_channels),
            "id_sets_capacity": self.relio_config.id_set_capacity
            * len(server_channels + client_channels),
        }
        self.samples_taken += 1
        self._out.write(json.dumps(s) + "\n")
        self._out.flush()
        if not self.cfg.quiet:
            print(f"[soak {s['t']:7.1f}s] rss={rss / 2**20:6.1f}MB "
                  f"traced={(s['tracemalloc'] or 0) / 2**20:6.1f}MB tasks={s['tasks']} "
                  f"c2s={s['c2s']} s2c={s['s2c']} calls={s['calls']} bigs={s['bigs']} "
                  f"faults={s['faults']} resumes={s['resumes']} "
                  f"outbox={s['outbox_messages']}+{s['client_outbox_messages']}",
                  file=sys.stderr, flush=True)
        return s

    async def sampler(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.cfg.sample_every)
            if self.stop.is_set():
                return
            self.sample()

    # --- the run ---------------------------------------------------------------------------------
    def _complete(self) -> bool:
        for name in self.sids:
            if self.rx_c2s[name].expected < self.sent_c2s.get(name, 0):
                return False
            if self.rx_s2c[name].expected < self.sent_s2c.get(name, 0):
                return False
            up, down = self.big_sent.get(name, [0, 0])
            if self.big_rx_up[name].expected < up or self.big_rx_down[name].expected < down:
                return False
        self._reap_deliveries()
        if self.pending_deliveries:
            return False
        # replies are acknowledged a moment after their caller has them
        channels = [session.channel for session in self.server.relio_registry] + [
            cs.channel for c in self.clients for cs in c.relio_sessions.values()]
        return not any(ch.engine.outbox_messages for ch in channels)

    async def run(self) -> dict:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        out_path = cfg.out or os.path.join(tempfile.gettempdir(), f"relio-soak-{os.getpid()}.jsonl")
        self.out_path = out_path
        self._out = open(out_path, "w")
        started_tracing = False
        if cfg.tracemalloc and not tracemalloc.is_tracing():
            tracemalloc.start(1)
            started_tracing = True
        self.server = self.make_server()
        tasks: list[asyncio.Task] = []
        try:
            async with serve_socketio(self.server) as port, \
                    FaultProxy(port, max_lifetime=cfg.minutes * 60 + cfg.drain_timeout + 120) \
                    as proxy:
                self.proxy = proxy
                self.t0 = loop.time()
                for i in range(cfg.clients):
                    name = f"c{i}"
                    self.rx_c2s[name] = Stream(f"c2s {name}")
                    self.rx_s2c[name] = Stream(f"s2c {name}")
                    self.big_rx_up[name] = Stream(f"big up {name}")
                    self.big_rx_down[name] = Stream(f"big down {name}")
                    client = self.make_client(name)
                    self.clients.append(client)
                    await client.connect(proxy.url, auth={"name": name}, transports=["websocket"],
                                         wait_timeout=10)
                for _ in range(200):
                    if len(self.sids) == cfg.clients:
                        break
                    await asyncio.sleep(0.05)
                assert len(self.sids) == cfg.clients, "clients did not all connect"
                self.sample("start")
                for i, client in enumerate(self.clients):
                    name = f"c{i}"
                    tasks.append(asyncio.create_task(self.client_emitter(name, client)))
                    tasks.append(asyncio.create_task(self.server_emitter(name)))
                    tasks.append(asyncio.create_task(self.big_sender(name, client)))
                    for j in range(cfg.callers):
                        tasks.append(asyncio.create_task(self.client_caller(name, client, j)))
                        tasks.append(asyncio.create_task(self.server_caller(name, j)))
                tasks.append(asyncio.create_task(self.fault_injector()))
                tasks.append(asyncio.create_task(self.sampler()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), cfg.minutes * 60)
                self.stop.set()
                # Senders finish what they were doing (a call in progress gets its answer).
                proxy.clear()
                done, pending = await asyncio.wait(tasks, timeout=cfg.drain_timeout)
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        raise t.exception()
                self.stuck_tasks = len(pending)
                deadline = loop.time() + cfg.drain_timeout
                while not self._complete() and loop.time() < deadline:
                    await asyncio.sleep(0.1)
                self.drained_in = round(loop.time() - self.t0 - cfg.minutes * 60, 1)
                self.sample("end")
                for client in self.clients:
                    await client.disconnect()
                for _ in range(100):
                    if self.disconnects >= cfg.clients:
                        break
                    await asyncio.sleep(0.05)
        finally:
            self.stop.set()
            for t in tasks:
                if not t.done():
                    t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            for client in self.clients:
                if client.connected:
                    with contextlib.suppress(Exception):
                        await client.disconnect()
            if started_tracing:
                tracemalloc.stop()
            self._out.close()
        return self.report()

    # --- verdict ---------------------------------------------------------------------------------
    def report(self) -> dict:
        problems: list[str] = []
        streams = (list(self.rx_c2s.values()) + list(self.rx_s2c.values())
                   + list(self.big_rx_up.values()) + list(self.big_rx_down.values())
                   + list(self.handler_runs.values()))
        for s in streams:
            problems += s.violations
        for name in self.sids:
            for label, sent, rx in (("c2s", self.sent_c2s.get(name, 0), self.rx_c2s[name]),
                                    ("s2c", self.sent_s2c.get(name, 0), self.rx_s2c[name])):
                if rx.expected != sent:
                    problems.append(f"{label} {name}: sent {sent}, received {rx.expected}")
            up, down = self.big_sent.get(name, [0, 0])
            if self.big_rx_up[name].expected != up or self.big_rx_down[name].expected != down:
                problems.append(f"big {name}: sent {up}/{down}, received "
                                f"{self.big_rx_up[name].expected}/"
                                f"{self.big_rx_down[name].expected}")
            if self.connects.get(name) != 1:
                problems.append(f"{name}: {self.connects.get(name)} connects (sessions lost?)")
        if self.big_bad_hash:
            problems.append(f"{self.big_bad_hash} big payloads corrupted")
        if self.wrong_answers:
            problems.append(f"{self.wrong_answers} calls got a wrong answer")
        problems += self.call_errors + self.delivery_errors
        if self.failed_deliveries:
            problems.append(f"{self.failed_deliveries} deliveries failed")
        if self.pending_deliveries:
            problems.append(f"{len(self.pending_deliveries)} deliveries never resolved")
        if getattr(self, "stuck_tasks", 0):
            problems.append(f"{self.stuck_tasks} traffic tasks did not finish")
        with open(self.out_path) as f:
            samples = [json.loads(line) for line in f]
        analysis = analyze(samples, self.cfg.warmup_fraction, self.cfg.clients)
        return {
            "ok": not problems,
            "problems": problems[:MAX_VIOLATIONS],
            "minutes": self.cfg.minutes,
            "clients": self.cfg.clients,
            "messages": {"c2s": sum(s.expected for s in self.rx_c2s.values()),
                         "s2c": sum(s.expected for s in self.rx_s2c.values()),
                         "calls": self.calls_done,
                         "big_up": sum(s.expected for s in self.big_rx_up.values()),
                         "big_down": sum(s.expected for s in self.big_rx_down.values())},
            "duplicates": sum(s.duplicates for s in streams),
            "gaps": sum(s.gaps for s in streams),
            "faults": dict(self.faults),
            "proxy": self.proxy.stats.as_dict() if self.proxy else None,
            "drained_in_s": getattr(self, "drained_in", None),
            "samples_file": self.out_path,
            **analysis,
        }


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    if sxx == 0:
        return None
    return 60 * sum((t - mx) * (v - my) for t, v in points) / sxx


# Table sizes and gauges whose growth across the run would be a leak: name -> (mode, slack,
# absolute bound), slack and bound as functions of the number of clients ``n``.
# * "max" (structural tables: sessions, bindings, rooms, environ...): the second half's maximum
#   may not exceed the first half's maximum plus the slack (a resume briefly holds two
#   connections per client, a fault parks up to every session);
# * "median" (gauges that follow the traffic and the faults: outbox, tasks, reassembly...): a
#   burst after a long stall may go past the first half's maximum, a leak moves the whole second
#   half, so the second half's median may not exceed the first half's maximum plus the slack.
# Every sample must also stay within the absolute bound (None: no bound of its own).
_C = relio.DEFAULT_CONFIG
TABLES = {
    "relio_channels": ("max", lambda n: 0, lambda n: n),
    "relio_sessions_table": ("max", lambda n: 0, lambda n: n),
    "relio_bound": ("max", lambda n: 0, lambda n: n),
    "relio_eio_refs": ("max", lambda n: n, lambda n: 2 * n),
    "relio_ended": ("max", lambda n: 0, lambda n: 0),
    "relio_draining": ("max", lambda n: 0, lambda n: 0),
    "relio_parked": ("max", lambda n: n, lambda n: n),
    "environ": ("max", lambda n: n, lambda n: 2 * n),
    "eio_sockets": ("max", lambda n: n, lambda n: 2 * n),
    "eio_to_sid": ("max", lambda n: n, lambda n: 2 * n),
    "rooms": ("max", lambda n: 0, lambda n: 2 + 2 * n),         # None, "all", sid, client:<n>
    "room_members": ("max", lambda n: 0, lambda n: 4 * n),
    "manager_callbacks": ("max", lambda n: 0, lambda n: 0),     # relio sessions use none
    "client_callbacks": ("max", lambda n: 0, lambda n: 0),
    "proxy_connections": ("max", lambda n: 2 * n, None),      # the harness: stalled conns linger
    "tasks": ("median", lambda n: 20 * n, lambda n: 5000),
    "background_tasks": ("median", lambda n: 20 * n, lambda n: 5000),
    "held_bytes": ("median", lambda n: 2**20, lambda n: n * _C.max_reorder_bytes),
    "client_held_bytes": ("median", lambda n: 2**20, lambda n: n * _C.max_reorder_bytes),
    "reassembly_bytes": ("median", lambda n: 5 * 2**20,
                         lambda n: n * (_C.max_reassembly_bytes + _C.max_message_size)),
    "client_reassembly_bytes": ("median", lambda n: 5 * 2**20,
                                lambda n: n * (_C.max_reassembly_bytes + _C.max_message_size)),
    "cached_responses": ("median", lambda n: 10 * n, lambda n: n * _C.response_cache_entries),
    "client_cached_responses": ("median", lambda n: 10 * n,
                                lambda n: n * _C.response_cache_entries),
    "outbox_messages": ("median", lambda n: 500 * n, lambda n: n * _C.max_outbox_messages),
    "client_outbox_messages": ("median", lambda n: 500 * n,
                               lambda n: n * _C.max_outbox_messages),
    "outbox_bytes": ("median", lambda n: 5 * 2**20 * n, lambda n: n * _C.max_outbox_bytes),
    "in_flight_frames": ("median", lambda n: 200 * n, lambda n: n * _C.max_inflight_messages),
    "pending": ("median", lambda n: 500 * n, lambda n: n * _C.max_outbox_messages),
    "client_pending": ("median", lambda n: 500 * n, lambda n: n * _C.max_outbox_messages),
    "awaiting_replies": ("median", lambda n: 2 * n, None),
    "client_awaiting_replies": ("median", lambda n: 2 * n, None),
    "peer_requests_pending": ("median", lambda n: 2 * n, lambda n: n * _C.max_pending_requests),
    "pending_deliveries": ("median", lambda n: 1000 * n, lambda n: 2 * n * _C.max_outbox_messages),
}


def analyze(samples: list[dict], warmup_fraction: float = 0.2, clients: int = 1) -> dict:
    """Memory first/last/max and slopes (after warm-up, "run" samples only), and for every table
    its first-half and second-half maxima, with the tables whose second half went past the first
    half's maximum plus its slack."""
    run = [s for s in samples if s.get("phase") == "run"]
    if not run:
        return {"memory": None, "tables": {}, "grown_tables": []}
    t_end = run[-1]["t"]
    # Fit after the warm-up and after the id sets are full (they grow to their capacity by
    # design); if they never fill, after the warm-up only (and say so).
    full = [s["t"] for s in run if s.get("id_sets_held") == s.get("id_sets_capacity")]
    id_sets_full_at = full[0] if full else None
    start = max(warmup_fraction * t_end, id_sets_full_at or 0.0)
    fitted = [s for s in run if s["t"] >= start]
    if len(fitted) < 5:
        fitted = [s for s in run if s["t"] >= warmup_fraction * t_end] or run
    mid = len(run) // 2
    first, second = run[:mid] or run, run[mid:] or run
    idle = [s for s in fitted if s.get("idle")]
    if len(idle) < 5:
        idle = fitted
    memory = {
        "rss_first_mb": round(run[0]["rss"] / 2**20, 1),
        "rss_last_mb": round(run[-1]["rss"] / 2**20, 1),
        "rss_max_mb": round(max(s["rss"] for s in run) / 2**20, 1),
        "rss_slope_kb_per_min": _round(slope_per_minute([(s["t"], s["rss"] / 1024)
                                                         for s in fitted])),
        # the same over the samples with no big payload in transit (the floor)
        "rss_idle_slope_kb_per_min": _round(slope_per_minute([(s["t"], s["rss"] / 1024)
                                                               for s in idle])),
        "samples": len(run),
        "idle_samples": len(idle),
        "fitted_from_s": fitted[0]["t"],
        "id_sets_full_at_s": id_sets_full_at,
    }
    if run[0].get("tracemalloc") is not None:
        memory.update({
            "traced_first_mb": round(run[0]["tracemalloc"] / 2**20, 2),
            "traced_last_mb": round(run[-1]["tracemalloc"] / 2**20, 2),
            "traced_max_mb": round(max(s["tracemalloc"] for s in run) / 2**20, 2),
            "traced_slope_kb_per_min": _round(slope_per_minute(
                [(s["t"], s["tracemalloc"] / 1024) for s in fitted])),
            "traced_idle_slope_kb_per_min": _round(slope_per_minute(
                [(s["t"], s["tracemalloc"] / 1024) for s in idle])),
        })
    tables, grown = {}, []
    for key, (mode, slack_of, bound_of) in TABLES.items():
        slack = slack_of(clients)
        a = max(s[key] for s in first)
        values = sorted(s[key] for s in second)
        b_max, b_median = values[-1], values[len(values) // 2]
        tables[key] = {"first_max": a, "second_max": b_max, "second_median": b_median}
        b = b_max if mode == "max" else b_median
        if b > a + slack:
            grown.append(f"{key}: first half max {a}, second half {mode} {b} (slack {slack})")
        bound = bound_of(clients) if bound_of is not None else None
        worst = max(s[key] for s in run)
        if bound is not None and worst > bound:
            grown.append(f"{key}: reached {worst}, beyond its bound {bound}")
    return {"memory": memory, "tables": tables, "grown_tables": grown}


def _round(x):
    return None if x is None else round(x, 1)


def parse_args(argv=None) -> SoakConfig:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--rate", type=float, default=100.0,
                   help="numbered emits per second per client, each direction")
    p.add_argument("--callers", type=int, default=2)
    p.add_argument("--big-every", type=float, default=30.0)
    p.add_argument("--big-min", type=int, default=1_000_000)
    p.add_argument("--big-max", type=int, default=5_000_000)
    p.add_argument("--fault-every", type=float, default=10.0)
    p.add_argument("--faults", default="cut,partition,hold",
                   help="comma-separated: cut, partition, hold, drop")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON lines of samples (default: a temp file)")
    p.add_argument("--no-tracemalloc", action="store_true")
    p.add_argument("--id-set-capacity", type=int, default=None,
                   help="relio.Config.id_set_capacity (default 100000; the id sets grow until "
                        "full, so a smaller one reaches the plateau sooner)")
    p.add_argument("--max-traced-slope", type=float, default=64.0,
                   help="fail if tracemalloc (samples with no big payload in transit) grows "
                        "faster than this, KB per minute")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    cfg = SoakConfig(minutes=a.minutes, clients=a.clients, rate=a.rate, callers=a.callers,
                     big_every=a.big_every, big_min=a.big_min, big_max=a.big_max,
                     fault_every=a.fault_every, faults=tuple(a.faults.split(",")),
                     sample_every=a.sample_every, seed=a.seed, out=a.out,
                     tracemalloc=not a.no_tracemalloc, quiet=a.quiet,
                     id_set_capacity=a.id_set_capacity)
    cfg.max_traced_slope = a.max_traced_slope
    return cfg


def main(argv=None) -> int:
    cfg = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    started = time.time()
    report = asyncio.run(Soak(cfg).run())
    report["wall_s"] = round(time.time() - started, 1)
    slope = (report.get("memory") or {}).get("traced_idle_slope_kb_per_min")
    if slope is not None and slope > getattr(cfg, "max_traced_slope", 64.0):
        report["ok"] = False
        report["problems"].append(f"tracemalloc grows {slope} KB/min "
                                  f"(> {cfg.max_traced_slope})")
    if report["grown_tables"]:
        report["ok"] = False
        report["problems"] += report["grown_tables"]
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
