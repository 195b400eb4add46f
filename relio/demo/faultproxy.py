"""A seeded asyncio TCP fault proxy on loopback: the flaky link of ``python -m relio demo``, and the
one relio's fault tests put between real clients and servers (real sockets, no mocks).

    async with FaultProxy(upstream_port) as proxy:       # listens on 127.0.0.1:<ephemeral>
        url = proxy.url                                   # 'http://127.0.0.1:<port>'
        await proxy.cut()                                 # abort every live connection
        proxy.blackhole('both', 1.5)                      # drop bytes for 1.5 s, sockets stay open
        proxy.blackhole('down', 1.0, mode='hold')         # hold bytes, deliver them afterwards
        await proxy.stall(2.5)                            # hold all, then abort what was open
        proxy.throttle(50_000, 'up', seconds=2)           # cap bytes/s per connection and direction
        proxy.delay(0.05)                                 # add one-way latency
        await proxy.partition(2.0)                        # cut + refuse new connections for 2 s
        await proxy.run_schedule(Schedule.random(seed=7, duration=8))
        proxy.start_schedule(Schedule.cuts_and_stall(seed=2026, duration=6))   # in the background
        proxy.faulting                                    # a schedule runs or a fault is in effect
        proxy.stats.as_dict()                             # what the proxy actually did

Directions: 'up' = client -> upstream server, 'down' = upstream server -> client, 'both'.

:class:`ProxyStats` counts what the faults did to real traffic (connections cut or stalled, bytes
dropped, held, delayed or throttled), so that a test can tell that its faults were real from the
proxy itself rather than from what some library lost.

'drop' blackholes discard whole websocket frames: those that begin while the blackhole is on
(:mod:`relio.demo.wsframes`; other streams, HTTP long-polling, lose whole chunks as read from the
socket). The connection survives with messages missing, or a PONG vanishes and the heartbeat kills
the session: faults a reliable layer must survive. A frame is never cut: the bytes after a gap
would complete it with later frames' bytes, a corruption no TCP link produces and that the peer
delivers before it fails on the next header (a wrong payload that no layer above could detect).

It knows nothing of Socket.IO. Every loop is bounded in iterations; the proxy refuses non-loopback
upstreams and closes itself after ``max_lifetime`` seconds; ``close()`` (or leaving ``async with``)
stops a background schedule, closes the listener and aborts every connection it still holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import struct
from collections.abc import Iterable

from relio.demo.wsframes import DropUnits

__all__ = ['FaultProxy', 'Schedule', 'Fault', 'ProxyStats']

DIRECTIONS = ('up', 'down')
_MAX_CHUNKS = 50_000_000          # per direction per connection
_MAX_SLEEP_STEPS = 1_000_000      # for hold/throttle/delay waits
_LOOPBACK = ('127.0.0.1',)


def _dirs(direction: str) -> tuple[str, ...]:
    if direction == 'both':
        return DIRECTIONS
    if direction in DIRECTIONS:
        return (direction,)
    raise ValueError(f'direction must be up, down or both, not {direction!r}')


@dataclasses.dataclass
class ProxyStats:
    """What the proxy did. Byte counters are per direction (``_up``: client -> server)."""

    connections_accepted: int = 0
    connections_refused: int = 0      # refused during a partition
    upstream_failures: int = 0
    connections_closed: int = 0
    cuts: int = 0                     # cut() calls (a partition cuts too)
    connections_cut: int = 0          # connections aborted by cut()
    blackholes: int = 0
    stalls: int = 0
    connections_stalled: int = 0      # open when a stall began (aborted when it ended)
    partitions: int = 0
    throttles: int = 0
    delays: int = 0
    faults_applied: int = 0           # by run_schedule
    bytes_up: int = 0                 # forwarded
    bytes_down: int = 0
    dropped_up: int = 0               # discarded by 'drop' blackholes
    dropped_down: int = 0
    dropped_chunks_up: int = 0        # units dropped: websocket frames (read chunks elsewhere)
    dropped_chunks_down: int = 0
    held_up: int = 0                  # bytes that had to wait out a 'hold' blackhole or a stall
    held_down: int = 0
    delayed_up: int = 0               # bytes delivered late by delay()
    delayed_down: int = 0
    throttled_up: int = 0             # bytes forwarded under a throttle
    throttled_down: int = 0

    def add(self, counter: str, direction: str, n: int) -> None:
        name = f'{counter}_{direction}'
        setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Fault:
    """One fault of a :class:`Schedule`: ``kind`` is cut, blackhole, stall, throttle, delay,
    partition or clear (see the :class:`FaultProxy` methods of the same names)."""

    at: float                         # seconds after run_schedule() starts
    kind: str
    direction: str = 'both'
    seconds: float = 0.0              # blackhole/stall/partition length; throttle/delay revert
    bps: int | None = None            # throttle
    latency: float = 0.0              # delay
    mode: str = 'drop'                # blackhole: drop | hold; cut: abort | reset


@dataclasses.dataclass
class Schedule:
    """Faults to apply at their times (:meth:`FaultProxy.run_schedule`); made by hand or seeded
    (:meth:`random`, :meth:`cuts_and_stall`)."""

    faults: list[Fault]
    seed: int | None = None
    duration: float = 0.0

    @classmethod
    def random(cls, seed: int, duration: float, *,
               kinds: Iterable[str] = ('cut', 'blackhole'),
               weights: Iterable[float] | None = None,
               start: float = 0.5,
               mean_gap: float = 1.0,
               min_gap: float = 0.2,
               directions: Iterable[str] = ('both', 'up', 'down'),
               blackhole_seconds: tuple[float, float] = (0.2, 1.5),
               blackhole_modes: Iterable[str] = ('drop',),
               cut_modes: Iterable[str] = ('abort',),
               throttle_bps: tuple[int, int] = (20_000, 200_000),
               throttle_seconds: tuple[float, float] = (0.5, 2.0),
               delay_latency: tuple[float, float] = (0.01, 0.2),
               delay_seconds: tuple[float, float] = (0.5, 2.0),
               partition_seconds: tuple[float, float] = (0.3, 1.5),
               stall_seconds: tuple[float, float] = (0.5, 2.5),
               max_faults: int = 1000) -> Schedule:
        """Seeded random fault plan: exponential gaps (mean ``mean_gap``, at least ``min_gap``)
        between ``start`` and ``duration``.  Same seed + arguments -> same plan."""
        rng = random.Random(seed)
        kinds = tuple(kinds)
        weights = tuple(weights) if weights is not None else None
        directions, bh_modes = tuple(directions), tuple(blackhole_modes)
        cut_modes = tuple(cut_modes)
        faults: list[Fault] = []
        t = start
        for _ in range(max_faults):
            if t >= duration:
                break
            kind = rng.choices(kinds, weights=weights)[0]
            if kind == 'cut':
                f = Fault(t, 'cut', mode=rng.choice(cut_modes))
            elif kind == 'blackhole':
                f = Fault(t, 'blackhole', direction=rng.choice(directions),
                          seconds=round(rng.uniform(*blackhole_seconds), 3),
                          mode=rng.choice(bh_modes))
            elif kind == 'throttle':
                f = Fault(t, 'throttle', direction=rng.choice(directions),
                          bps=rng.randint(*throttle_bps),
                          seconds=round(rng.uniform(*throttle_seconds), 3))
            elif kind == 'delay':
                f = Fault(t, 'delay', direction=rng.choice(directions),
                          latency=round(rng.uniform(*delay_latency), 4),
                          seconds=round(rng.uniform(*delay_seconds), 3))
            elif kind == 'partition':
                f = Fault(t, 'partition', seconds=round(rng.uniform(*partition_seconds), 3))
            elif kind == 'stall':
                f = Fault(t, 'stall', seconds=round(rng.uniform(*stall_seconds), 3))
            else:
                raise ValueError(f'unknown fault kind {kind!r}')
            faults.append(f)
            lasts = f.seconds if kind in ('blackhole', 'partition', 'stall') else 0.0
            t = round(t + max(min_gap, lasts) + rng.expovariate(1.0 / mean_gap), 3)
        return cls(faults=faults, seed=seed, duration=duration)

    @classmethod
    def cuts_and_stall(cls, seed: int, duration: float, *, every: float = 1.2,
                       jitter: float = 0.3, first: float = 0.8, stall_seconds: float = 2.5,
                       stall_positions: tuple[int, ...] = (1, 2),
                       max_faults: int = 1000) -> Schedule:
        """The demo's plan: faults from ``first`` until ``duration``, each ``every`` +/- ``jitter``
        seconds after the previous one is over. They are cuts but one: the one at a position of
        ``stall_positions`` (chosen with the seed) is a stall of ``stall_seconds`` (the demo's is
        longer than its heartbeat, 1 s + 1 s). Same seed + arguments -> same plan."""
        rng = random.Random(seed)
        stall_index = rng.choice(stall_positions)
        faults: list[Fault] = []
        t = first
        for i in range(max_faults):
            if t >= duration:
                break
            if i == stall_index:
                faults.append(Fault(round(t, 3), 'stall', seconds=stall_seconds))
            else:
                faults.append(Fault(round(t, 3), 'cut'))
            t += faults[-1].seconds + every + rng.uniform(-jitter, jitter)
        return cls(faults=faults, seed=seed, duration=duration)

    def summary(self) -> dict:
        """{kind: how many faults of that kind}."""
        out: dict[str, int] = {}
        for f in self.faults:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out

    def count(self, kind: str) -> int:
        return sum(1 for f in self.faults if f.kind == kind)


class _DirState:
    """Fault configuration of one direction (shared by all connections)."""
    __slots__ = ('blackhole_until', 'blackhole_mode', 'bps', 'latency')

    def __init__(self) -> None:
        self.blackhole_until = 0.0
        self.blackhole_mode = 'drop'
        self.bps: int | None = None
        self.latency = 0.0


class _Conn:
    __slots__ = ('id', 'writers', 'tasks', 'done')

    def __init__(self, cid: int, cwriter: asyncio.StreamWriter, uwriter: asyncio.StreamWriter):
        self.id = cid
        self.writers = (cwriter, uwriter)
        self.tasks: list[asyncio.Task] = []
        self.done = asyncio.Event()

    @property
    def live(self) -> bool:
        """Not aborted or closed yet (on either side)."""
        return not any(w.transport.is_closing() for w in self.writers)

    def abort(self, reset: bool = False) -> None:
        for w in self.writers:
            tr = w.transport
            if tr.is_closing():
                continue
            if reset:
                sock = tr.get_extra_info('socket')
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack('ii', 1, 0))
            tr.abort()


class FaultProxy:
    """A TCP proxy from 127.0.0.1:<ephemeral> (or ``listen_port``) to 127.0.0.1:``upstream_port``
    that injects the faults it is told to, now or on a :class:`Schedule`."""

    def __init__(self, upstream_port: int, upstream_host: str = '127.0.0.1', *,
                 listen_port: int = 0, chunk_size: int = 65536, queue_chunks: int = 64,
                 max_lifetime: float = 600.0, connect_timeout: float = 5.0):
        if upstream_host not in _LOOPBACK:
            raise ValueError('FaultProxy only proxies to 127.0.0.1')
        self.upstream_host = upstream_host
        self.upstream_port = int(upstream_port)
        self.listen_port = listen_port
        self.chunk_size = chunk_size
        self.queue_chunks = queue_chunks
        self.max_lifetime = max_lifetime
        self.connect_timeout = connect_timeout
        self.stats = ProxyStats()
        self.log: list[tuple[float, str, dict]] = []     # (time since start, kind, params)
        self._dirs = {d: _DirState() for d in DIRECTIONS}
        self._conns: dict[int, _Conn] = {}
        self._next_id = 0
        self._refuse_until = 0.0
        self._server: asyncio.base_events.Server | None = None
        self._t0 = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._lifetime_timer: asyncio.TimerHandle | None = None
        self._handlers: set[asyncio.Task] = set()
        self._closed = False
        self._conn_event: asyncio.Event | None = None
        self._flowing: asyncio.Event | None = None      # cleared while a stall is on
        self._stalls = 0                                 # stalls in progress
        self._schedule_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        assert self._server is not None, 'proxy not started'
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    @property
    def live_connections(self) -> int:
        return len(self._conns)

    @property
    def faulting(self) -> bool:
        """A background schedule is running, or a stall, blackhole or refusal is in effect."""
        if self._schedule_task is not None and not self._schedule_task.done():
            return True
        now = self._now()
        return (self._stalls > 0 or now < self._refuse_until
                or any(now < st.blackhole_until for st in self._dirs.values()))

    async def start(self) -> FaultProxy:
        """Listen (``async with`` calls it)."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._conn_event = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._on_client, '127.0.0.1', self.listen_port)
        self._lifetime_timer = loop.call_later(
            self.max_lifetime, lambda: asyncio.ensure_future(self.close()))
        return self

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for h in self._timers:
            h.cancel()
        if self._lifetime_timer is not None:
            self._lifetime_timer.cancel()
        schedule = self._schedule_task
        if schedule is not None and schedule is not asyncio.current_task():
            schedule.cancel()
        if self._server is not None:
            self._server.close()
        if self._flowing is not None:
            self._flowing.set()
        for conn in list(self._conns.values()):
            conn.abort()
        pumps = [t for c in list(self._conns.values()) for t in c.tasks]
        for t in pumps:
            t.cancel()
        # let the per-connection handlers finish by themselves: cancelling a handler task makes
        # asyncio.streams (3.11) log "Exception in callback" from task.exception()
        handlers = list(self._handlers)
        waits = pumps + handlers
        if schedule is not None and schedule is not asyncio.current_task():
            waits.append(schedule)
        if waits:
            await asyncio.wait(waits, timeout=self.connect_timeout + 1)
        for t in handlers:
            if not t.done():  # pragma: no cover - stuck beyond every timeout
                t.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------------ faults
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _record(self, kind: str, **params) -> None:
        self.log.append((round(self._now() - self._t0, 3), kind, params))

    def _revert(self, direction: str, attr: str, value, default) -> None:
        # undo a timed throttle/delay unless a later call changed the setting meanwhile
        for d in _dirs(direction):
            if getattr(self._dirs[d], attr) == value:
                setattr(self._dirs[d], attr, default)

    def _later(self, seconds: float, fn) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(seconds, fn))

    async def cut(self, mode: str = 'abort') -> int:
        """Close both sides of every live connection (mode 'reset' sends RST).
        Returns the number of connections cut (those not already closing)."""
        conns = list(self._conns.values())
        live = sum(c.live for c in conns)
        for c in conns:
            c.abort(reset=(mode == 'reset'))
        self.stats.cuts += 1
        self.stats.connections_cut += live
        self._record('cut', mode=mode, connections=live)
        await asyncio.sleep(0)
        return live

    def blackhole(self, direction: str = 'both', seconds: float = 1.0, *,
                  mode: str = 'drop') -> None:
        """Stop forwarding for ``seconds`` while keeping sockets open.
        mode='drop' discards the websocket frames that begin meanwhile, mode='hold' stalls the bytes
        (delivered afterwards)."""
        if mode not in ('drop', 'hold'):
            raise ValueError(mode)
        until = self._now() + seconds
        for d in _dirs(direction):
            st = self._dirs[d]
            st.blackhole_until = max(st.blackhole_until, until)
            st.blackhole_mode = mode
        self.stats.blackholes += 1
        self._record('blackhole', direction=direction, seconds=seconds, mode=mode)

    async def stall(self, seconds: float) -> int:
        """Forward nothing, either way and on any connection (new ones included), for ``seconds``;
        then abort the connections that were open when the stall began (those opened during it go
        on). Returns how many were aborted.

        A network outage that leaves TCP up: bytes wait, a reconnect goes through only when the
        stall is over. Longer than the Socket.IO heartbeat, both endpoints give up on their
        connection during it; the connections it froze are then aborted, as a path that comes back
        after a handover would be. (Left open, such a connection can linger: python-engineio's
        client write loop drops the close sentinel its read loop queues behind pending packets,
        and keeps writing to the dead connection until its queue stays empty for
        ``max(ping_interval, ping_timeout) + 5`` seconds.)"""
        assert self._flowing is not None, 'proxy not started'
        frozen = [c for c in self._conns.values() if c.live]
        self.stats.stalls += 1
        self.stats.connections_stalled += len(frozen)
        self._record('stall', seconds=seconds, connections=len(frozen))
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
        return len(frozen)

    def throttle(self, bps: int | None, direction: str = 'both', *,
                 seconds: float | None = None) -> None:
        """Cap each connection's throughput to ``bps`` bytes/s per direction (None = no cap)."""
        for d in _dirs(direction):
            self._dirs[d].bps = bps
        self.stats.throttles += 1
        self._record('throttle', direction=direction, bps=bps, seconds=seconds)
        if seconds:
            self._later(seconds, lambda: self._revert(direction, 'bps', bps, None))

    def delay(self, latency: float, direction: str = 'both', *,
              seconds: float | None = None) -> None:
        """Deliver every chunk ``latency`` seconds after it was read (order kept)."""
        for d in _dirs(direction):
            self._dirs[d].latency = latency
        self.stats.delays += 1
        self._record('delay', direction=direction, latency=latency, seconds=seconds)
        if seconds:
            self._later(seconds, lambda: self._revert(direction, 'latency', latency, 0.0))

    def refuse(self, seconds: float) -> None:
        """Accept-and-close new connections for ``seconds``."""
        self._refuse_until = max(self._refuse_until, self._now() + seconds)
        self._record('refuse', seconds=seconds)

    def admit(self) -> None:
        """End a refusal now: new connections are forwarded again."""
        self._refuse_until = 0.0
        self._record('admit')

    async def partition(self, seconds: float, mode: str = 'abort') -> int:
        """Cut every connection and refuse new ones for ``seconds``."""
        self.refuse(seconds)
        self.stats.partitions += 1
        return await self.cut(mode)

    def clear(self) -> None:
        """Remove blackholes, throttles, delays and refusals."""
        for st in self._dirs.values():
            st.blackhole_until = 0.0
            st.bps = None
            st.latency = 0.0
        self._refuse_until = 0.0
        self._record('clear')

    async def apply(self, f: Fault) -> None:
        if f.kind == 'cut':
            await self.cut(f.mode)
        elif f.kind == 'blackhole':
            self.blackhole(f.direction, f.seconds, mode=f.mode)
        elif f.kind == 'throttle':
            self.throttle(f.bps, f.direction, seconds=f.seconds or None)
        elif f.kind == 'delay':
            self.delay(f.latency, f.direction, seconds=f.seconds or None)
        elif f.kind == 'partition':
            await self.partition(f.seconds)
        elif f.kind == 'stall':
            await self.stall(f.seconds)
        elif f.kind == 'clear':
            self.clear()
        else:
            raise ValueError(f'unknown fault kind {f.kind!r}')

    async def run_schedule(self, schedule: Schedule | Iterable[Fault], *,
                           speed: float = 1.0) -> ProxyStats:
        """Apply each fault at its time (relative to now); returns the stats. A stall is waited
        out before the next fault."""
        faults = schedule.faults if isinstance(schedule, Schedule) else list(schedule)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for f in sorted(faults, key=lambda f: f.at):
            wait = t0 + f.at / speed - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._closed:
                break
            await self.apply(f)
            self.stats.faults_applied += 1
        return self.stats

    def start_schedule(self, schedule: Schedule | Iterable[Fault], *,
                       speed: float = 1.0) -> asyncio.Task:
        """:meth:`run_schedule` in the background, from now; returns its task (``close()``
        cancels it)."""
        self._schedule_task = asyncio.create_task(self.run_schedule(schedule, speed=speed))
        return self._schedule_task

    async def wait_connections(self, n: int = 1, timeout: float = 5.0) -> None:
        """Wait until at least ``n`` connections are live."""
        assert self._conn_event is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for _ in range(10_000):
            if len(self._conns) >= n:
                return
            self._conn_event.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._conn_event.wait(), remaining)
        raise asyncio.TimeoutError(f'{len(self._conns)} live connections, wanted {n}')

    # ------------------------------------------------------------------ plumbing
    async def _on_client(self, creader: asyncio.StreamReader,
                         cwriter: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._serve_client(creader, cwriter)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _serve_client(self, creader, cwriter) -> None:
        if self._closed or self._now() < self._refuse_until:
            self.stats.connections_refused += 1
            cwriter.transport.abort()
            return
        try:
            ureader, uwriter = await asyncio.wait_for(
                asyncio.open_connection(self.upstream_host, self.upstream_port),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError):
            self.stats.upstream_failures += 1
            cwriter.transport.abort()
            return
        self._next_id += 1
        conn = _Conn(self._next_id, cwriter, uwriter)
        self._conns[conn.id] = conn
        self.stats.connections_accepted += 1
        if self._conn_event is not None:
            self._conn_event.set()
        for direction, reader, writer in (('up', creader, uwriter), ('down', ureader, cwriter)):
            q: asyncio.Queue = asyncio.Queue(self.queue_chunks)
            conn.tasks.append(asyncio.create_task(self._reader(reader, q)))
            conn.tasks.append(asyncio.create_task(self._writer(direction, q, writer)))
        try:
            # the connection ends when a side errors out / is cut, or both directions hit EOF
            pending = set(conn.tasks)
            for _ in range(len(conn.tasks)):
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.exception() is not None for t in done if not t.cancelled()):
                    break
                if not pending:
                    break
            conn.abort()
            for t in conn.tasks:
                t.cancel()
            await asyncio.wait(conn.tasks, timeout=5)
        finally:
            conn.abort()
            for t in conn.tasks:
                if t.done() and not t.cancelled():
                    t.exception()  # mark retrieved
            self._conns.pop(conn.id, None)
            self.stats.connections_closed += 1

    async def _reader(self, reader: asyncio.StreamReader, q: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_MAX_CHUNKS):
            data = await reader.read(self.chunk_size)
            if not data:
                break
            await q.put((loop.time(), data))
        await q.put(None)  # EOF marker; if the writer is gone this task gets cancelled

    async def _writer(self, direction: str, q: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        st = self._dirs[direction]
        flowing = self._flowing
        assert flowing is not None
        next_free = 0.0  # token-bucket time for the throttle
        units = DropUnits()     # what a 'drop' blackhole discards whole (see relio.demo.wsframes)
        dropping: bool | None = False
        for _ in range(_MAX_CHUNKS):
            item = await q.get()
            if item is None:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            t_read, data = item
            # one-way latency
            delayed = False
            for _ in range(_MAX_SLEEP_STEPS):
                wait = t_read + st.latency - loop.time()
                if wait <= 0:
                    break
                delayed = True
                await asyncio.sleep(min(wait, 0.05))
            if delayed:
                self.stats.add('delayed', direction, len(data))
            if writer.transport.is_closing():
                return
            for piece, starts in units.split(data):
                if starts:
                    dropping = None            # a unit is dropped or forwarded whole
                off = 0
                held = False
                for _ in range(_MAX_SLEEP_STEPS):
                    if off >= len(piece):
                        break
                    hold = not flowing.is_set()                     # a stall
                    now = loop.time()
                    blackhole = now < st.blackhole_until
                    if dropping is None and not hold:
                        dropping = blackhole and st.blackhole_mode == 'drop'
                        if dropping:
                            self.stats.add('dropped_chunks', direction, 1)
                    if dropping:
                        self.stats.add('dropped', direction, len(piece) - off)
                        break
                    if blackhole and st.blackhole_mode == 'hold':
                        hold = True                                 # a 'hold' blackhole
                    if hold:
                        if not held:
                            held = True
                            self.stats.add('held', direction, len(piece) - off)
                        if not flowing.is_set():
                            await flowing.wait()
                        else:
                            await asyncio.sleep(min(st.blackhole_until - now, 0.05))
                        if writer.transport.is_closing():           # cut or aborted by its stall
                            return
                        continue
                    bps = st.bps
                    if bps:
                        if next_free > now:
                            await asyncio.sleep(min(next_free - now, 0.05))
                            continue
                        n = max(1, min(len(piece) - off, int(bps * 0.02)))
                        next_free = max(now, next_free) + n / bps
                        self.stats.add('throttled', direction, n)
                    else:
                        n = len(piece) - off
                    writer.write(bytes(piece[off:off + n]))
                    off += n
                    self.stats.add('bytes', direction, n)
                    await writer.drain()
