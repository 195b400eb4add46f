"""A flaky loopback link for ``python -m relio demo``: a tiny seeded asyncio TCP proxy.

This module owns the demo's network faults and nothing else. :class:`FlakyLink` listens on
127.0.0.1 (ephemeral port) and forwards every accepted connection to a server on 127.0.0.1. A
seeded :class:`FaultPlan` tells it when to *cut* (abort both sockets of every live connection, as
when a network path dies; the client can reconnect at once) and when to *stall* (forward nothing,
in either direction and on any connection, new ones included, for a while: a network outage that
leaves TCP up). Bytes wait in the kernel during a stall, and a reconnect goes through only when
it is over. The demo's stalls are longer than the Socket.IO heartbeat, so both endpoints give up on
their connection during the stall; when it ends, the proxy aborts the connections that were open
when it began, as a path that comes back after a handover would. (Left open, such a connection can
linger: python-engineio's client write loop drops the close sentinel its read loop queues behind
pending packets, and keeps writing to the dead connection until its queue stays empty for
``max(ping_interval, ping_timeout) + 5`` seconds.)

It knows nothing of Socket.IO. It refuses non-loopback upstreams, every loop in it is bounded, and
``aclose()`` (or leaving ``async with``) stops the plan, closes the listener and aborts every
connection it still holds.

    async with FlakyLink(upstream_port) as link:
        url = f"http://127.0.0.1:{link.port}"
        link.start(FaultPlan.seeded(seed=2026, duration=6.0))
        ...
        link.stats            # cuts, stalls, connections accepted
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random

LOOPBACK = "127.0.0.1"
CUT_EVERY = 1.2             # seconds from the end of a fault to the next, on average
CUT_JITTER = 0.3            # +/- seconds around CUT_EVERY
FIRST_FAULT = 0.8           # seconds before the first fault
STALL_POSITIONS = (1, 2)    # the one stall of a plan is its second or third fault
STALL_SECONDS = 2.5         # longer than ping_interval + ping_timeout (1 s + 1 s) in the demo
READ_SIZE = 256 * 1024      # bytes read per chunk
MAX_CHUNKS = 10_000_000     # per direction and connection (bounds the forwarding loop)
MAX_FAULTS = 1000           # bounds a plan
CLOSE_TIMEOUT = 2.0         # seconds to wait for the proxy's tasks when closing


@dataclasses.dataclass(frozen=True)
class Fault:
    """One fault: at ``at`` seconds after the plan starts, ``kind`` 'cut' or 'stall'."""

    at: float
    kind: str
    seconds: float = 0.0    # how long a stall lasts


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    """Faults in time order (same seed and arguments, same plan)."""

    faults: tuple[Fault, ...]

    @classmethod
    def seeded(cls, seed: int, duration: float, *, every: float = CUT_EVERY,
               jitter: float = CUT_JITTER, first: float = FIRST_FAULT,
               stall_seconds: float = STALL_SECONDS) -> "FaultPlan":
        """Faults from ``first`` until ``duration``, each ``every`` +/- ``jitter`` seconds after the
        previous one is over. They are cuts but one: the second or the third (chosen with the seed)
        is a stall of ``stall_seconds``."""
        rng = random.Random(seed)
        stall_index = rng.choice(STALL_POSITIONS)
        faults: list[Fault] = []
        t = first
        for i in range(MAX_FAULTS):
            if t >= duration:
                break
            if i == stall_index:
                faults.append(Fault(round(t, 3), "stall", stall_seconds))
            else:
                faults.append(Fault(round(t, 3), "cut"))
            t += faults[-1].seconds + every + rng.uniform(-jitter, jitter)
        return cls(tuple(faults))

    @property
    def ends_at(self) -> float:
        """Seconds after the start when the last fault is over."""
        return max((f.at + f.seconds for f in self.faults), default=0.0)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.faults if f.kind == kind)


@dataclasses.dataclass
class LinkStats:
    """What the link did."""

    connections: int = 0        # accepted
    cuts: int = 0               # faults applied
    stalls: int = 0
    connections_cut: int = 0    # live connections aborted by cuts
    connections_stalled: int = 0    # live when a stall began (aborted when it ended)


class _Connection:
    """One proxied connection: the client's socket and the upstream one."""

    def __init__(self, client: tuple, upstream: tuple):
        self.client_reader, self.client_writer = client
        self.up_reader, self.up_writer = upstream

    def abort(self) -> None:
        for writer in (self.client_writer, self.up_writer):
            writer.transport.abort()


class FlakyLink:
    """An asyncio TCP proxy from 127.0.0.1:<ephemeral> to 127.0.0.1:``upstream_port`` that cuts and
    stalls its connections following a :class:`FaultPlan`."""

    def __init__(self, upstream_port: int, upstream_host: str = LOOPBACK):
        if upstream_host != LOOPBACK:
            raise ValueError("FlakyLink forwards to 127.0.0.1 only")
        self.upstream = (upstream_host, upstream_port)
        self.stats = LinkStats()
        self.port = 0
        self.faulting = False                       # a plan is running (its last fault not over)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task] = set()   # one per accepted connection
        self._plan_task: asyncio.Task | None = None
        self._flowing = asyncio.Event()             # cleared while the link stalls
        self._flowing.set()
        self._stalls = 0                            # stalls in progress

    async def __aenter__(self) -> "FlakyLink":
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    # --- faults --------------------------------------------------------------------------------
    def start(self, plan: FaultPlan) -> asyncio.Task:
        """Run ``plan`` in the background, from now; returns its task."""
        self.faulting = True
        self._plan_task = asyncio.create_task(self._run(plan))
        return self._plan_task

    async def _run(self, plan: FaultPlan) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            for fault in plan.faults:
                await asyncio.sleep(max(0.0, start + fault.at - loop.time()))
                if fault.kind == "cut":
                    self.cut()
                else:
                    await self.stall(fault.seconds)
        finally:
            self.faulting = False

    def cut(self) -> None:
        """Abort every live connection, both sides."""
        self.stats.cuts += 1
        for conn in list(self._connections):
            self.stats.connections_cut += 1
            conn.abort()

    async def stall(self, seconds: float) -> None:
        """Forward nothing, on any connection, for ``seconds``; then abort the connections that
        were open when the stall began (those opened during it go on)."""
        self.stats.stalls += 1
        frozen = list(self._connections)
        self.stats.connections_stalled += len(frozen)
        self._stalls += 1
        self._flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            for conn in frozen:
                conn.abort()
            self._stalls -= 1
            if not self._stalls:
                self._flowing.set()

    # --- forwarding ----------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        task = asyncio.current_task()
        if task is not None:        # so that aclose() can wait for it
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        conn = _Connection((reader, writer), upstream)
        self._connections.add(conn)
        try:
            await asyncio.gather(self._pipe(conn, conn.client_reader, conn.up_writer),
                                 self._pipe(conn, conn.up_reader, conn.client_writer))
        finally:
            self._connections.discard(conn)
            conn.abort()

    async def _pipe(self, conn: _Connection, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer`` until EOF or an error, holding still while the link
        stalls; then abort the connection (one side gone, so is the connection)."""
        try:
            for _ in range(MAX_CHUNKS):
                await self._flowing.wait()
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            conn.abort()

    # --- shutdown ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop the plan, stop listening, abort every connection and wait for the tasks."""
        if self._plan_task is not None:
            self._plan_task.cancel()
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        for conn in list(self._connections):
            conn.abort()
        tasks = [t for t in (self._plan_task, *self._handlers) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
            self._server = None
        self.faulting = False
