"""``python -m relio demo``: what relio fixes, shown on a real loopback Socket.IO connection.

One small Socket.IO app (an aiohttp server on 127.0.0.1 and an asyncio client, websocket transport)
runs twice through the same flaky link (:mod:`relio.demo.faultproxy`, a seeded TCP proxy that cuts
the connection about every 1.2 s and once stalls it for longer than the heartbeat): first with
``socketio.AsyncServer`` / ``socketio.AsyncClient``, then with ``relio.AsyncServer`` /
``relio.AsyncClient``. The handler code is the same; only the module differs. The client emits
numbered ``tick`` events, the server emits numbered ``news`` events to the client's room, the
client makes a few ``call()``s to a slow handler and uploads one 5 MB payload (over
python-socketio's 1 MB ``max_http_buffer_size`` default). A table then shows what arrived, what
was lost, duplicated or reordered, which calls failed, whether the upload arrived, and whether the
session survived. It doubles as a smoke test: the exit code is 1 if relio lost, duplicated or
reordered anything.

``python -m relio demo --engine`` runs the earlier sans-I/O simulation instead: two protocol
engines (no sockets, a fake clock) over a simulated link that drops, duplicates and reorders
batches, compared with at-most-once delivery on the same fault schedule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import logging
import random
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TextIO

import socketio
from aiohttp import web

import relio
from relio.config import Config
from relio.demo.faultproxy import FaultProxy, Schedule
from relio.engine._engine import Engine
from relio.engine._events import MessageReceived

DEFAULT_SEED = 2026
HOST = "127.0.0.1"

# --- the real demo: workload ---------------------------------------------------------------------
MESSAGES = 3000                 # numbered events each way
DURATION = 6.0                  # seconds over which they are paced (faults happen in this window)
CALLS = 5                       # client call()s, evenly spread over DURATION
CALL_HANDLER_SECONDS = 0.3      # how long the server's call handler takes
PLAIN_CALL_TIMEOUT = 3.0        # python-socketio forgets a pending call when the connection drops
RELIO_CALL_TIMEOUT = 10.0       # relio's call survives reconnects, so it may wait them out
UPLOAD_BYTES = 5_000_000        # one payload over python-socketio's 1 MB max_http_buffer_size
UPLOAD_AT = 0.05                # when the upload starts, as a fraction of DURATION (before faults)
ROOM = "user:demo"              # the client's room: the server's connect handler puts it there

# --- the real demo: Socket.IO settings -----------------------------------------------------------
PING_INTERVAL = 1               # seconds (server)
PING_TIMEOUT = 1
RECONNECTION_DELAY = 0.1        # seconds (client)
RECONNECTION_DELAY_MAX = 0.3
CONNECT_TIMEOUT = 5.0

# --- the real demo: waiting and display ----------------------------------------------------------
DRAIN_TIMEOUT = 10.0            # seconds after the workload to wait for what is still on its way
QUIET = 0.5                     # ...or until nothing arrived for this long on a healthy link
POLL = 0.05                     # seconds between two checks while waiting
PROGRESS_EVERY = 0.2            # seconds between two progress updates (tty only)
WIDTH = 96                      # columns of the header and the summary
PROGRESS_WIDTH = 79             # columns of the progress line
INDENT, SECTION_COLUMN, METRIC_COLUMN, VALUE_COLUMN = 2, 20, 26, 16     # the table's columns
SERVER_CLOSE_TIMEOUT = 5.0
LIBRARIES = (("python-socketio", socketio), ("relio", relio))
# Loggers silenced while the demo runs (they report the faults the demo injects on purpose).
QUIET_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "engineio.client",
                 "engineio.server", "socketio.client", "socketio.server")


# =================================================================================================
# What one run observed and how it is scored
# =================================================================================================
@dataclasses.dataclass
class Tally:
    """What the app's handlers saw during one run."""

    ticks: list[int] = dataclasses.field(default_factory=list)    # server: received ticks
    news: list[int] = dataclasses.field(default_factory=list)     # client: received news
    refused: int = 0            # client emits that raised (python-socketio while reconnecting)
    calls_ok: int = 0
    calls_failed: int = 0
    upload_bytes: int | None = None
    server_sids: list[str] = dataclasses.field(default_factory=list)   # one per connect event


@dataclasses.dataclass(frozen=True)
class Flow:
    """Numbered messages one way: ``sent`` = delivered + refused + lost (lost: vanished
    silently)."""

    sent: int
    delivered: int
    refused: int
    lost: int
    duplicated: int
    out_of_order: int

    @property
    def clean(self) -> bool:
        return self.delivered == self.sent and not (self.duplicated or self.out_of_order)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One library's row of the table."""

    library: str
    up: Flow                    # client -> server
    down: Flow                  # server -> client
    calls_ok: int
    calls_failed: int
    upload_delivered: bool
    reconnects: int
    same_session: bool
    retransmitted: int | None   # relio only
    seconds: float

    @property
    def clean(self) -> bool:
        """Everything arrived exactly once and in order, every call was answered, the upload
        arrived, and the session kept its id."""
        return (self.up.clean and self.down.clean and not self.calls_failed
                and self.upload_delivered and self.same_session)


def measure(received: list[int], sent: int, refused: int = 0) -> Flow:
    """Score the numbers a receiver got, in arrival order, against ``0..sent-1``."""
    distinct = set(received)
    delivered = len(distinct)
    return Flow(sent=sent, delivered=delivered, refused=refused,
                lost=max(0, sent - delivered - refused),
                duplicated=len(received) - delivered,
                out_of_order=sum(1 for x, y in zip(received, received[1:], strict=False) if y < x))


# =================================================================================================
# The application: the same code for both libraries
# =================================================================================================
class DemoApp:
    """A server and a client built from ``lib`` (``socketio`` or ``relio``), same handlers."""

    def __init__(self, lib: ModuleType, messages: int, call_timeout: float):
        self.messages = messages
        self.call_timeout = call_timeout
        self.tally = Tally()
        self.server = lib.AsyncServer(async_mode="aiohttp", ping_interval=PING_INTERVAL,
                                      ping_timeout=PING_TIMEOUT)
        self.client = lib.AsyncClient(reconnection_delay=RECONNECTION_DELAY,
                                      reconnection_delay_max=RECONNECTION_DELAY_MAX,
                                      randomization_factor=0)
        self._server_handlers()
        self._client_handlers()

    def _server_handlers(self) -> None:
        sio, tally = self.server, self.tally

        @sio.event
        async def connect(sid, environ, auth=None):
            tally.server_sids.append(sid)
            await sio.enter_room(sid, ROOM)

        @sio.on("tick")
        async def tick(sid, n):
            tally.ticks.append(n)

        @sio.on("double")
        async def double(sid, n):
            await asyncio.sleep(CALL_HANDLER_SECONDS)
            return 2 * n

        @sio.on("upload")
        async def upload(sid, blob):
            tally.upload_bytes = len(blob)

    def _client_handlers(self) -> None:
        tally = self.tally

        @self.client.on("news")
        async def news(n):
            tally.news.append(n)

    # --- workload ----------------------------------------------------------------------------
    async def send_tick(self, n: int) -> None:
        try:
            await self.client.emit("tick", n)
        except socketio.exceptions.BadNamespaceError:   # python-socketio, while reconnecting
            self.tally.refused += 1

    async def send_news(self, n: int) -> None:
        await self.server.emit("news", n, to=ROOM)

    async def call_once(self, n: int) -> None:
        try:
            result = await self.client.call("double", n, timeout=self.call_timeout)
        except (socketio.exceptions.SocketIOError, relio.DeliveryError):
            self.tally.calls_failed += 1
            return
        if result == 2 * n:
            self.tally.calls_ok += 1
        else:
            self.tally.calls_failed += 1

    async def upload(self) -> None:
        try:
            await self.client.emit("upload", bytes(UPLOAD_BYTES))
        except socketio.exceptions.BadNamespaceError:
            pass                                        # not delivered: the table says so

    def complete(self) -> bool:
        """Everything the workload sent has arrived."""
        t = self.tally
        return (len(set(t.ticks)) + t.refused >= self.messages
                and len(set(t.news)) >= self.messages and t.upload_bytes is not None)

    def progress(self) -> tuple:
        t = self.tally
        return len(t.ticks), len(t.news), t.upload_bytes

    def retransmitted(self) -> int | None:
        """Frames relio sent again (both sides), or None for python-socketio."""
        if not hasattr(self.server, "session_stats"):
            return None
        server_stats = self.server.session_stats(self.client.get_sid()) or {}
        client_stats = self.client.session_stats() or {}
        return (server_stats.get("frames_retransmitted", 0)
                + client_stats.get("frames_retransmitted", 0))


# =================================================================================================
# Running one library
# =================================================================================================
async def _paced(count: int, duration: float, send: Callable[[int], Awaitable[None]]) -> None:
    """Call ``send(0..count-1)`` evenly spread over ``duration`` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(count):
        delay = start + n * duration / count - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(n)


async def _at(delay: float, coro_fn: Callable[[], Awaitable[None]]) -> None:
    await asyncio.sleep(delay)
    await coro_fn()


def _workload(app: DemoApp, duration: float) -> list[asyncio.Task]:
    """Start the ticks, the news, the calls and the upload; returns their tasks."""
    coros = [_paced(app.messages, duration, app.send_tick),
             _paced(app.messages, duration, app.send_news),
             _at(duration * UPLOAD_AT, app.upload)]
    coros += [_at(duration * (k + 0.5) / CALLS, functools.partial(app.call_once, k))
              for k in range(CALLS)]
    return [asyncio.create_task(c) for c in coros]


async def _start_server(sio) -> tuple[web.AppRunner, int]:
    """Serve ``sio`` with aiohttp on 127.0.0.1:<ephemeral>; returns the runner and the port."""
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SERVER_CLOSE_TIMEOUT)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    return runner, runner.addresses[0][1]


class _Progress:
    """A live status line, only when stdout is a terminal."""

    def __init__(self, name: str, app: DemoApp, link: FaultProxy, out: TextIO):
        self.name, self.app, self.link, self.out = name, app, link, out
        self.enabled = out.isatty()
        self.start = time.monotonic()

    def show(self, phase: str) -> None:
        if not self.enabled:
            return
        ticks, news, _ = self.app.progress()
        s = self.link.stats
        self.out.write(f"\r  {self.name:<16} {phase:<8} {time.monotonic() - self.start:4.1f} s  "
                       f"ticks {ticks:>5}  news {news:>5}  cuts {s.cuts}  stalls {s.stalls} ")
        self.out.flush()

    def clear(self) -> None:
        if self.enabled:
            self.out.write("\r" + " " * PROGRESS_WIDTH + "\r")
            self.out.flush()


async def _wait_workload(tasks: list[asyncio.Task], progress: _Progress) -> None:
    """Wait for the workload tasks, updating the progress line; re-raise their errors."""
    pending = set(tasks)
    for _ in range(100_000):
        if not pending:
            break
        _, pending = await asyncio.wait(pending, timeout=PROGRESS_EVERY)
        progress.show("running")
    for task in tasks:
        task.result()


async def _settle(app: DemoApp, link: FaultProxy, progress: _Progress) -> None:
    """Wait until everything arrived, or (the link healthy and the client connected) nothing more
    arrives for QUIET seconds, or DRAIN_TIMEOUT."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DRAIN_TIMEOUT
    last, quiet_since = None, loop.time()
    for _ in range(int(DRAIN_TIMEOUT / POLL) + 1):
        now = loop.time()
        if app.complete() or now >= deadline:
            return
        snapshot = app.progress()
        if snapshot != last:
            last, quiet_since = snapshot, now
        elif not link.faulting and app.client.connected and now - quiet_since >= QUIET:
            return
        progress.show("draining")
        await asyncio.sleep(POLL)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=SERVER_CLOSE_TIMEOUT)


def _result(name: str, app: DemoApp, link: FaultProxy, retransmitted: int | None,
            seconds: float) -> RunResult:
    t = app.tally
    sids = set(t.server_sids)
    final_sid = app.client.get_sid()
    return RunResult(
        library=name,
        up=measure(t.ticks, app.messages, t.refused),
        down=measure(t.news, app.messages),
        calls_ok=t.calls_ok, calls_failed=t.calls_failed,
        upload_delivered=t.upload_bytes == UPLOAD_BYTES,
        reconnects=max(0, link.stats.connections_accepted - 1),
        same_session=len(sids) == 1 and final_sid in sids,
        retransmitted=retransmitted, seconds=seconds)


async def run_library(name: str, lib: ModuleType, plan: Schedule, *, messages: int = MESSAGES,
                      duration: float = DURATION, out: TextIO = sys.stdout) -> RunResult:
    """Run the app with ``lib`` over a link that follows ``plan``; returns its row."""
    started = time.monotonic()
    timeout = RELIO_CALL_TIMEOUT if lib is relio else PLAIN_CALL_TIMEOUT
    app = DemoApp(lib, messages, timeout)
    runner, port = await _start_server(app.server)
    tasks: list[asyncio.Task] = []
    try:
        async with FaultProxy(port) as link:
            progress = _Progress(name, app, link, out)
            await app.client.connect(f"http://{HOST}:{link.port}", transports=["websocket"],
                                     wait_timeout=CONNECT_TIMEOUT)
            try:
                link.start_schedule(plan)
                tasks = _workload(app, duration)
                await _wait_workload(tasks, progress)
                await _settle(app, link, progress)
                retransmitted = app.retransmitted()
                progress.clear()
                return _result(name, app, link, retransmitted, time.monotonic() - started)
            finally:
                await _cancel(tasks)
                await app.client.shutdown()
    finally:
        await app.server.shutdown()
        await runner.cleanup()


async def run_all(plan: Schedule, messages: int = MESSAGES, duration: float = DURATION,
                  out: TextIO = sys.stdout) -> list[RunResult]:
    """python-socketio, then relio: the same app, the same link faults."""
    results = []
    for name, lib in LIBRARIES:
        results.append(await run_library(name, lib, plan, messages=messages, duration=duration,
                                         out=out))
    return results


# =================================================================================================
# Report
# =================================================================================================
def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _table_rows(results: list[RunResult]) -> list[tuple[str, str, list[str]]]:
    """(section, metric, one cell per library)."""
    def col(fn):
        return [str(fn(r)) for r in results]
    return [
        ("client -> server", "delivered", col(lambda r: r.up.delivered)),
        ("", "refused (emit raised)", col(lambda r: r.up.refused)),
        ("", "lost (vanished silently)", col(lambda r: r.up.lost)),
        ("", "duplicated", col(lambda r: r.up.duplicated)),
        ("", "out of order", col(lambda r: r.up.out_of_order)),
        ("server -> client", "delivered", col(lambda r: r.down.delivered)),
        ("", "lost (vanished silently)", col(lambda r: r.down.lost)),
        ("", "duplicated", col(lambda r: r.down.duplicated)),
        ("", "out of order", col(lambda r: r.down.out_of_order)),
        (f"call() ({CALLS} x {CALL_HANDLER_SECONDS} s)", "ok / failed",
         col(lambda r: f"{r.calls_ok} / {r.calls_failed}")),
        (f"{UPLOAD_BYTES / 1e6:g} MB upload", "delivered", col(lambda r: _yes(r.upload_delivered))),
        ("connection", "reconnects", col(lambda r: r.reconnects)),
        ("session id", "unchanged", col(lambda r: _yes(r.same_session))),
        ("relio", "frames retransmitted",
         col(lambda r: "-" if r.retransmitted is None else r.retransmitted)),
    ]


def format_table(results: list[RunResult]) -> str:
    """Metrics down, libraries across."""
    lines = [" " * (INDENT + SECTION_COLUMN + METRIC_COLUMN)
             + "".join(f"{r.library:>{VALUE_COLUMN}}" for r in results)]
    for section, metric, cells in _table_rows(results):
        lines.append(" " * INDENT + f"{section:<{SECTION_COLUMN}}{metric:<{METRIC_COLUMN}}"
                     + "".join(f"{c:>{VALUE_COLUMN}}" for c in cells))
    return "\n".join(lines)


def describe_plan(plan: Schedule) -> str:
    """``cut at 0.8 s, stall 1.9-4.4 s, cut at 5.9 s``."""
    return ", ".join(f"cut at {f.at:.1f} s" if f.kind == "cut"
                     else f"stall {f.at:.1f}-{f.at + f.seconds:.1f} s" for f in plan.faults)


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def summary(results: list[RunResult], plan: Schedule) -> str:
    """One sentence: what python-socketio lost and what relio did with the same faults."""
    plain, reliable = results[0], results[-1]
    if not reliable.clean:
        return "relio did NOT deliver everything exactly once and in order (see above)."
    missing = (plain.up.sent - plain.up.delivered) + (plain.down.sent - plain.down.delivered)
    total = plain.up.sent + plain.down.sent
    upload = "dropped the upload" if not plain.upload_delivered else "delivered the upload"
    return textwrap.fill(
        f"With the link cut {_times(plan.count('cut'))} and stalled "
        f"{_times(plan.count('stall'))}, python-socketio missed {missing:,} of {total:,} messages, "
        f"failed {plain.calls_failed} of {CALLS} calls and {upload}; relio delivered everything "
        f"exactly once and in order, in one session.", WIDTH)


def header(plan: Schedule, messages: int, duration: float, seed: int) -> str:
    """What the demo does, before it runs."""
    return textwrap.fill(
        f"relio demo: one Socket.IO app run twice, with python-socketio then with relio, over a "
        f"flaky loopback link (aiohttp server on {HOST}, websocket transport, heartbeat "
        f"{PING_INTERVAL} s + {PING_TIMEOUT} s). Link faults (seed {seed}): "
        f"{describe_plan(plan)}. In {duration:g} s the client emits {messages:,} numbered "
        f"'tick's, the server emits {messages:,} numbered 'news' to the client's room, and the "
        f"client makes {CALLS} call()s to a {CALL_HANDLER_SECONDS} s handler and uploads "
        f"{UPLOAD_BYTES / 1e6:g} MB (python-socketio accepts 1 MB by default). Takes about "
        f"{2 * duration + 3:.0f} s.", WIDTH) + "\n"


def report(results: list[RunResult], plan: Schedule, out: TextIO = sys.stdout) -> int:
    """Print the table and the summary; 0 if relio was clean, 1 (with a message) if not."""
    print(format_table(results), file=out)
    print(file=out)
    print(summary(results, plan), file=out)
    reliable = results[-1]
    if reliable.clean:
        return 0
    print(f"relio misbehaved: client->server {reliable.up}, server->client {reliable.down}, "
          f"calls failed {reliable.calls_failed}, upload delivered {reliable.upload_delivered}, "
          f"session kept {reliable.same_session}", file=out)
    return 1


async def amain(seed: int = DEFAULT_SEED, messages: int = MESSAGES, duration: float = DURATION,
                out: TextIO = sys.stdout) -> int:
    """The real demo: header, both runs, table, summary; returns the exit code."""
    plan = Schedule.cuts_and_stall(seed, duration)
    print(header(plan, messages, duration, seed), file=out, flush=True)
    results = await run_all(plan, messages, duration, out)
    return report(results, plan, out)


def main(seed: int = DEFAULT_SEED) -> int:
    """``python -m relio demo``."""
    quieted = [(logging.getLogger(n), logging.getLogger(n).level) for n in QUIET_LOGGERS]
    for logger, _ in quieted:          # aborted connections are the point of the demo
        logger.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(amain(seed))
    finally:
        for logger, level in quieted:
            logger.setLevel(level)


# =================================================================================================
# ``--engine``: the sans-I/O simulation (two engines, a fake clock, no sockets)
# =================================================================================================
SIM_MESSAGES = 5000
SIM_DROP, SIM_DUPLICATE, SIM_JITTER, SIM_DELAY = 0.05, 0.05, 0.02, 0.005
SIM_CUT_EVERY = 1000          # messages between link cuts
SIM_CUT_LENGTH = 0.5          # seconds the link stays down
SIM_SEND_INTERVAL = 0.0005    # seconds between two sends


class _SimLink:
    """A one-way lossy link with a fake clock (shared fault schedule for both runs)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.wire: list = []
        self.order = 0
        self.up = True

    def put(self, now: float, item) -> None:
        if not self.up or self.rng.random() < SIM_DROP:
            return
        for _ in range(2 if self.rng.random() < SIM_DUPLICATE else 1):
            self.order += 1
            heapq.heappush(self.wire,
                           (now + SIM_DELAY + self.rng.random() * SIM_JITTER, self.order, item))

    def due(self, now: float):
        while self.wire and self.wire[0][0] <= now:
            yield heapq.heappop(self.wire)[2]


def _sim_report(name: str, received: list[int]) -> tuple[int, int, int]:
    flow = measure(received, SIM_MESSAGES)
    print(f"  {name:<16} received {len(received):>5}   lost {flow.lost:>4}   duplicated "
          f"{flow.duplicated:>4}   out of order {flow.out_of_order:>4}")
    return flow.lost, flow.duplicated, flow.out_of_order


def _sim_progress(name: str, i: int) -> None:
    if sys.stdout.isatty():
        done = 30 * i // SIM_MESSAGES
        print(f"\r  {name:<16} [{'#' * done}{'.' * (30 - done)}] {i}/{SIM_MESSAGES}", end="",
              flush=True)


def simulate_at_most_once(seed: int) -> list[int]:
    """Numbers received when the link's losses and duplicates reach the application as they are."""
    link, now, received = _SimLink(seed), 0.0, []
    for i in range(SIM_MESSAGES):
        if i and i % SIM_CUT_EVERY == 0:
            link.up, link.wire = False, []
            now += SIM_CUT_LENGTH
            link.up = True
        link.put(now, i)
        now += SIM_SEND_INTERVAL
        received.extend(link.due(now))
        _sim_progress("at most once", i + 1)
    received.extend(link.due(now + 10))
    if sys.stdout.isatty():
        print("\r", end="")
    return received


def simulate_relio_engines(seed: int) -> list[int]:
    """Numbers received through two relio engines on the same link and fault schedule."""
    config = Config()
    a, b = Engine(config), Engine(config)
    up, down = _SimLink(seed), _SimLink(seed + 1)
    now, received = 0.0, []

    def pump(t: float) -> None:
        for engine in (a, b):
            timer = engine.get_timer()
            if timer is not None and timer <= t:
                engine.handle_timer(t)
        for batch in a.data_to_send(t):
            up.put(t, batch)
        for batch in b.data_to_send(t):
            down.put(t, batch)
        for batch in up.due(t):
            b.receive(batch, t)
        for batch in down.due(t):
            a.receive(batch, t)
        for event in b.events():
            if isinstance(event, MessageReceived):
                received.append(int(event.payload))
        a.events()

    for i in range(SIM_MESSAGES):
        if i and i % SIM_CUT_EVERY == 0:
            for link in (up, down):
                link.up, link.wire = False, []
            a.disconnect(now)
            b.disconnect(now)
            now += SIM_CUT_LENGTH
            a.send(b"%d" % i, now)  # sent while the link is down: queued, not lost
            for link in (up, down):
                link.up = True
            state_a, state_b = a.resume_state(), b.resume_state()
            a.resume(state_b, now)
            b.resume(state_a, now)
        else:
            a.send(b"%d" % i, now)
        now += SIM_SEND_INTERVAL
        pump(now)
        _sim_progress("relio", i + 1)
    for _ in range(20000):
        if not a.outbox_messages:
            break
        now += 0.01
        pump(now)
    if sys.stdout.isatty():
        print("\r", end="")
    return received


def engine_main(seed: int = DEFAULT_SEED) -> int:
    """``python -m relio demo --engine``: the simulation; 0 if relio's engines were clean."""
    print(f"relio engine simulation (sans I/O, fake clock): {SIM_MESSAGES} numbered messages over "
          f"a link that drops {SIM_DROP:.0%} and\nduplicates {SIM_DUPLICATE:.0%} of batches, "
          f"reorders them, and is cut for {SIM_CUT_LENGTH} s every {SIM_CUT_EVERY} messages "
          f"(same fault schedule for both).\n")
    plain = _sim_report("at most once", simulate_at_most_once(seed))
    reliable = _sim_report("relio", simulate_relio_engines(seed))
    print()
    if reliable == (0, 0, 0) and any(plain):
        print("relio delivered every message exactly once and in order; at-most-once delivery "
              "lost or duplicated some.")
        return 0
    print("unexpected result")
    return 1
