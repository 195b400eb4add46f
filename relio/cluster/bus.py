"""The bus between server nodes: one Redis Stream that every node appends to and reads in order.

Every emit, room change, disconnect, callback and hand-over request addressed beyond this process is
appended to ``relio:<channel>:bus`` and every node reads that stream from the position it has
reached. python-socketio's Redis manager uses pub/sub instead, which drops whatever is published
while a listener reconnects and whatever a publisher fails to send; here:

* **Nothing published is skipped by a reader.** A node keeps the id of the last entry it applied
  and, after a Redis blip, reads on from there. Entries trimmed before a slow node read them (the
  stream is capped at ``Config.relay_stream_maxlen``) are reported as a gap at ERROR level and
  counted, never skipped silently.
* **Nothing is published twice.** Entries are numbered per publisher and appended by a Lua script
  that keeps each publisher's last number, so a batch retried after a lost reply is not appended
  again (Redis runs the script atomically: all of a batch or none of it).
* **A publisher is told.** Entries waiting for Redis are held in a bounded queue
  (``relay_queue_messages``): when it is full :meth:`RedisBus.relay` waits (or raises
  :class:`relio.QueueFull` with ``block=False``); an entry Redis has not accepted within
  ``relay_timeout`` fails its :class:`relio.Delivery` with :class:`relio.RelayError`.
* **Order is kept** per publisher: one task appends the queue in order and every node applies the
  stream in order.

An entry is a JSON header (``k``: its kind, ``h``: the publishing node, ...) and an opaque payload.
The bus does not interpret them: it hands each entry from another node to ``apply(header, fields,
entry_id)``, in stream order, holding :attr:`RedisBus.apply_lock` (a session being taken over is
caught up from the stream under the same lock, so no entry is applied twice or missed).
"""

from __future__ import annotations

import asyncio
import itertools
import json as stdlib_json
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from relio.asyncio.results import Delivery
from relio.config import Config
from relio.engine.errors import QueueFull, RelayError
from relio.observe.instruments import LATENCY_BUCKETS, Histogram

try:                                        # optional: pip install "relio-socketio[redis]"
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:                         # pragma: no cover - exercised without redis installed
    aioredis = None  # type: ignore[assignment]

logger = logging.getLogger("relio")

#: Appends a batch of entries from one publisher, skipping those it appended before (a batch
#: retried after its reply was lost). KEYS: stream, the publisher's last-number key. ARGV: stream
#: cap, seconds the publisher's number is kept, the batch's first number, the publisher's id (each
#: entry's ``o``, so that a node skips its own entries without decoding them), then (header,
#: payload) per entry, or the whole batch in one argument (:func:`pack_entries`: redis-py builds
#: a command in Python argument by argument, ~1 µs each, two per entry). Runs atomically, so a
#: batch is in the stream entirely or not at all.
_APPEND_SCRIPT = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = tonumber(ARGV[3])
local fields = ARGV
local at = 5
if #ARGV == 5 then
  local packed, pos = ARGV[5], 1
  fields, at = {}, 1
  while pos + 7 <= #packed do
    local a, b, c, d, e, f, g, h = string.byte(packed, pos, pos + 7)
    local hl = ((a * 256 + b) * 256 + c) * 256 + d
    local pl = ((e * 256 + f) * 256 + g) * 256 + h
    fields[#fields + 1] = string.sub(packed, pos + 8, pos + 7 + hl)
    fields[#fields + 1] = string.sub(packed, pos + 8 + hl, pos + 7 + hl + pl)
    pos = pos + 8 + hl + pl
  end
end
local n = (#fields - at + 1) / 2
for i = 0, n - 1 do
  if first + i > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[4],
               'h', fields[at + 2 * i], 'p', fields[at + 1 + 2 * i])
  end
end
if first + n - 1 > last then
  redis.call('SET', KEYS[2], first + n - 1, 'EX', ARGV[2])
end
return n
"""

_LENGTHS = struct.Struct(">II").pack


def pack_entries(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A batch of ``(header, payload)`` as :data:`_APPEND_SCRIPT`'s one-argument form: for each,
    the two lengths (4 bytes each, big-endian), the header, the payload."""
    parts: list[bytes] = []
    for header, payload in entries:
        parts += (_LENGTHS(len(header), len(payload)), header, payload)
    return b"".join(parts)


#: How long Redis keeps a publisher's last number after its last append. A publisher is one
#: manager instance (a random id per process start), so only a batch retried after this long
#: could be appended twice; relay_timeout fails entries long before.
PUBLISHER_ID_TTL = 24 * 3600
#: Reader's XREAD block time (ms): how long one read waits for new entries before asking again.
READ_BLOCK_MS = 1000
#: A node that cannot reach Redis when it starts reads the bus, once Redis is back, from its start
#: time minus this (ms): stream ids are Redis's clock, which may lag this host's a little.
START_SLACK_MS = 2000
#: Retry delays while Redis is unreachable (seconds): first, and the cap of the doubling.
RETRY_DELAY, RETRY_DELAY_MAX = 0.05, 1.0


class _EntryQueue:
    """The entries waiting for Redis, oldest first, numbered consecutively (the publisher's
    numbers, see :data:`_APPEND_SCRIPT`), taken from the head only.

    Parallel deques rather than an object per entry: a room broadcast queues an entry per message,
    and an object per entry, alive until its batch is appended, was a third more young objects for
    the garbage collector than on one node (``bench.redis_bench --workloads s2c-all``)."""

    __slots__ = ("next_seq", "headers", "payloads", "deliveries", "deadlines")

    def __init__(self) -> None:
        #: the number the next entry appended gets
        self.next_seq = 1
        self.headers: deque[bytes] = deque()
        self.payloads: deque[bytes] = deque()
        self.deliveries: deque[Delivery | None] = deque()
        self.deadlines: deque[float] = deque()

    def __len__(self) -> int:
        return len(self.headers)

    @property
    def head_seq(self) -> int:
        """The number of the oldest entry."""
        return self.next_seq - len(self.headers)

    def append(self, header: bytes, payload: bytes, delivery: Delivery | None,
               deadline: float) -> None:
        self.headers.append(header)
        self.payloads.append(payload)
        self.deliveries.append(delivery)
        self.deadlines.append(deadline)
        self.next_seq += 1

    def head(self, n: int) -> Iterator[tuple[bytes, bytes]]:
        """The oldest ``n`` entries' (header, payload) (an iterator: no tuple kept per entry)."""
        return zip(itertools.islice(self.headers, n), itertools.islice(self.payloads, n),
                   strict=False)

    def popleft(self) -> tuple[bytes, Delivery | None]:
        """Take the oldest entry: its header and Delivery."""
        self.payloads.popleft()
        self.deadlines.popleft()
        return self.headers.popleft(), self.deliveries.popleft()


# Entry kinds (a header's "k"): the manager's vocabulary; the bus itself interprets none of them.
EMIT, CALLBACK, DISCONNECT, ENTER_ROOM, LEAVE_ROOM, CLOSE_ROOM = "e", "c", "d", "j", "l", "x"
#: a node asks the owner of a session to hand it over
HANDOVER = "h"
#: The kinds that can concern one session when it is caught up after a takeover.
SESSION_ENTRY_KINDS = frozenset({EMIT, ENTER_ROOM, LEAVE_ROOM, CLOSE_ROOM, DISCONNECT})

def relayed_msg_id(host_id: str, n: int) -> bytes:
    """The relio message id of the ``n``-th message publisher ``host_id`` relays: the same on
    every node that delivers it, so that a session moved while the message was on its way drops
    the second copy. Unique without a hash: 8 bytes of the publisher's random id, then ``n``.
    Nothing needs ids to look random (the engine's id set hashes them with a per-process secret
    key)."""
    return bytes.fromhex(host_id[:16]) + n.to_bytes(8, "big")


def emit_header(host_id: str, namespace: str, room: Any, event: str, msg_id: bytes,
                skip_sid: Any = None, callback: list | None = None) -> dict:
    """The header of an :data:`EMIT` entry (its payload: the encoded ``[event, *args]``)."""
    header = {"k": EMIT, "h": host_id, "ns": namespace, "r": room, "ev": event,
              "id": msg_id.hex()}
    if skip_sid is not None:
        header["s"] = skip_sid if isinstance(skip_sid, list) else [skip_sid]
    if callback is not None:
        header["cb"] = callback
    return header


class EmitHeaders:
    """The encoded header of a plain :data:`EMIT` entry (no ``skip_sid``, no callback; the same
    JSON as :func:`emit_header` gives), made by appending the
    message id to a cached encoding of everything else: a room broadcast repeats the same
    namespace, room and event, and encoding the header dict every time was a third of the bus's
    cost per message. Bounded: the cache is emptied when it holds :data:`CAPACITY` prefixes."""

    #: Prefixes kept (namespace, room, event combinations): beyond this, start over.
    CAPACITY = 1024

    def __init__(self, host_id: str):
        self._host_id = host_id
        self._prefixes: dict[tuple, bytes] = {}

    def encode(self, namespace: str, room, event, msg_id: bytes) -> bytes:
        key: tuple | None = (namespace, room, event)
        try:
            prefix = self._prefixes.get((namespace, room, event))
        except TypeError:                   # a list of rooms: not a cache key
            prefix, key = None, None
        if prefix is None:
            header = stdlib_json.dumps({"k": EMIT, "h": self._host_id, "ns": namespace, "r": room,
                                        "ev": event, "id": ""}, separators=(",", ":"))
            prefix = header[:-len('"}')].encode()  # ends with ,"id":"  (the id's opening quote)
            if key is not None:
                if len(self._prefixes) >= self.CAPACITY:
                    self._prefixes.clear()
                self._prefixes[key] = prefix
        return b"".join((prefix, msg_id.hex().encode(), b'"}'))


def count_relayed(delivery: Any) -> None:
    """``delivery`` waits for one more part: the entry that carries it to the other nodes."""
    delivery._add()
    delivery.relayed += 1


def publisher_identity(channel: str) -> tuple[str, bytes, str, str]:
    """A new publisher on ``channel``'s bus: its random id (hex), the origin every entry it appends
    carries, the stream's key, and the key keeping its last entry number (see
    :data:`_APPEND_SCRIPT`)."""
    host_id = os.urandom(16).hex()
    return (host_id, host_id.encode(), f"relio:{channel}:bus",
            f"relio:{channel}:pub:{host_id}")


def client_options(redis_options: dict | None) -> dict[str, Any]:
    """redis-py client options for the bus (the application's ``redis_options`` on top)."""
    options: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0,
                               # relio retries itself (in order, deduplicated): no hidden
                               # retries underneath.
                               "retry": Retry(NoBackoff(), 0), "retry_on_timeout": False}
    options.update(redis_options or {})
    return options


#: What the bus hands each entry of another node to: ``apply(header, fields, entry_id)``.
Apply = Callable[[dict, dict, bytes], Awaitable[None]]


class RedisBus:
    """One node's publisher to and reader of the bus stream.

    :param url: the Redis connection URL; :param channel: the application's name (the stream is
    ``relio:<channel>:bus``); :param config: a callable giving the :class:`relio.Config` in force
    (the server's, known only once the manager is attached); :param redis_options: for
    ``redis.asyncio.Redis.from_url``; :param log: the logger to use.
    """

    def __init__(self, url: str, channel: str, config: Callable[[], Config],
                 redis_options: dict | None, log: Callable[[], logging.Logger]):
        if aioredis is None:
            raise RuntimeError('relio.AsyncRedisManager needs redis-py: '
                               'pip install "relio-socketio[redis]"')
        self.redis_url = url
        self.channel = channel
        self._config = config
        self._log = log
        #: this node's id on the bus (random per process start)
        self.host_id, self._origin, self.stream_key, self._publisher_key = publisher_identity(
            channel)
        self._redis_options = client_options(redis_options)
        self._redis: Any = None
        self._script: Any = None
        self._queue = _EntryQueue()
        self._queue_changed = asyncio.Event()
        self._publisher: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._apply: Apply | None = None
        self._closed = False
        self._redis_down_since: float | None = None
        #: the last entry applied here (or skipped as this node's own)
        self.applied_id = b"0-0"
        #: held while entries are applied (and while a session taken over is caught up)
        self.apply_lock = asyncio.Lock()
        #: the reader runs (a serving node; a write-only emitter publishes only)
        self.reading = False
        #: set once :attr:`applied_id` is known (the reader has found where it starts)
        self.reader_ready = asyncio.Event()
        #: ``published``, ``applied``, ``failed`` (entries Redis never accepted), ``gaps``
        #: (entries trimmed before this node read them), ``redis_errors``
        self.stats = {"published": 0, "applied": 0, "failed": 0, "gaps": 0, "redis_errors": 0}
        #: seconds from an entry's publication (its stream id's time) to this node reading it
        self.relay_lag = Histogram(LATENCY_BUCKETS)

    @property
    def config(self) -> Config:
        return self._config()

    def client(self):
        """The Redis client (made on first use, in the running loop)."""
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.redis_url, **self._redis_options)
            self._script = self._redis.register_script(_APPEND_SCRIPT)
        return self._redis

    @staticmethod
    def _raw_reader(client):
        """A client on ``client``'s connections whose XREAD returns Redis's reply unparsed:
        redis-py turns every entry into a tuple and a dict, which the reader would then do for
        this node's own entries (half of a room broadcast's entries on a two-node bus) only to
        skip them. :func:`_stream_entries` reads the raw reply."""
        reader = aioredis.Redis(connection_pool=client.connection_pool)
        reader.set_response_callback("XREAD", _raw_reply)
        return reader

    def start_reading(self, apply: Apply) -> None:
        """Read the stream from its current end, handing other nodes' entries to ``apply``."""
        self._apply = apply
        self.reading = True
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def read_range(self, after: bytes, upto: bytes) -> list:
        """The entries after ``after`` up to ``upto`` (inclusive), one page."""
        return await self.client().xrange(self.stream_key, min=b"(" + after, max=upto,
                                          count=self.config.relay_read_count)

    async def close(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does not
        fails its Delivery), close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
        if self._queue and self._publisher is not None and not self._publisher.done():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.relay_timeout
            while self._queue and loop.time() < deadline and not self._publisher.done():
                await asyncio.sleep(0.01)
        if self._publisher is not None:
            self._publisher.cancel()
        for task in (self._reader, self._publisher):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._fail_queued("manager closed")

    @property
    def has_client(self) -> bool:
        """A Redis client was made (and not yet closed)."""
        return self._redis is not None

    async def disconnect(self) -> None:
        """Close the Redis connection (after :meth:`close` and whoever else used the client)."""
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # --- publishing ------------------------------------------------------------------------------
    async def relay(self, header: dict | bytes, payload: bytes = b"",
                    delivery: Delivery | None = None, block: bool = True) -> None:
        """Queue one entry for the stream, waiting (bounded by relay_timeout) for room.
        ``header``: a dict, or its JSON encoding when the caller made it already."""
        if self._closed:
            raise RelayError("the manager is closed", event=_header(header).get("ev"))
        cfg = self._config()
        loop = asyncio.get_running_loop()
        queue = self._queue
        if len(queue) >= cfg.relay_queue_messages:
            if not block:
                raise QueueFull(f"{len(self._queue)} messages wait for Redis (relay queue full)")
            deadline = loop.time() + cfg.relay_timeout
            while len(self._queue) >= cfg.relay_queue_messages:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    fields = _header(header)
                    raise RelayError(self._down_reason("relay queue full"),
                                     event=fields.get("ev"), namespace=fields.get("ns"))
                self._queue_changed.clear()
                try:
                    await asyncio.wait_for(self._queue_changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        self._append(header, payload, delivery, cfg)

    def relay_nowait(self, header: dict | bytes, payload: bytes = b"",
                     delivery: Delivery | None = None) -> bool:
        """:meth:`relay` when the queue has room now, without a coroutine to await (a room
        broadcast relays every message); False when it has not, or the bus is closed: then
        await :meth:`relay`, which waits for room or raises."""
        cfg = self._config()
        if self._closed or len(self._queue) >= cfg.relay_queue_messages:
            return False
        self._append(header, payload, delivery, cfg)
        return True

    def _append(self, header: dict | bytes, payload: bytes, delivery: Delivery | None,
                cfg: Config) -> None:
        if delivery is not None:
            count_relayed(delivery)
        self.enqueue(header, payload, delivery)

    def has_room(self, coming: int = 0) -> bool:
        """The relay queue has room now, with ``coming`` more entries on their way to
        :meth:`enqueue` (may be asked from any thread: a thread-based emitter that finds room
        hands its entry over without waiting)."""
        return not self._closed and \
            len(self._queue) + coming < self._config().relay_queue_messages

    def enqueue(self, header: dict | bytes, payload: bytes = b"",
                delivery: Delivery | None = None) -> None:
        """Append one entry to the relay queue now, without a room check (on the bus's loop; the
        caller checked :meth:`has_room`, and counted ``delivery`` with :func:`count_relayed`).
        On a closed bus the entry fails its delivery."""
        if not isinstance(header, bytes):
            header = stdlib_json.dumps(header, separators=(",", ":")).encode()
        loop = asyncio.get_running_loop()
        if self._closed:
            self._fail(header, delivery, "the manager is closed")
            return
        self._queue.append(header, payload, delivery, loop.time() + self._config().relay_timeout)
        self._queue_changed.set()
        publisher = self._publisher
        if publisher is None or publisher.done():
            self._publisher = loop.create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_DELAY
        client = self.client()
        while not self._closed or self._queue:
            if not self._queue:
                self._queue_changed.clear()
                await self._queue_changed.wait()
                continue
            self._expire_queued(loop.time())
            if not self._queue:
                continue
            count = min(len(self._queue), self.config.relay_batch)
            packed = pack_entries(self._queue.head(count))
            try:
                await self._script(keys=[self.stream_key, self._publisher_key],
                                   args=[self.config.relay_stream_maxlen, PUBLISHER_ID_TTL,
                                         self._queue.head_seq, self._origin, packed],
                                   client=client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:          # redis unreachable, loading, script error...
                self.redis_trouble(exc, "publish")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
                continue
            delay = RETRY_DELAY
            self.redis_ok()
            for _ in range(count):
                # (the queue's head is this batch: entries are only removed here and in
                # _expire_queued, which ran above in this same task)
                _, delivery = self._queue.popleft()
                if delivery is not None:
                    delivery._settle(None)
            self.stats["published"] += count
            self._queue_changed.set()

    def _expire_queued(self, now: float) -> None:
        """Entries Redis has not accepted within relay_timeout fail (oldest first, in order)."""
        expired = 0
        while self._queue and self._queue.deadlines[0] <= now:
            expired += 1
            self._fail(*self._queue.popleft(), self._down_reason(
                f"not accepted within {self.config.relay_timeout:g} s"))
        if expired:
            self._queue_changed.set()

    def _fail_queued(self, reason: str) -> None:
        while self._queue:
            self._fail(*self._queue.popleft(), reason)

    def _fail(self, encoded: bytes, delivery: Delivery | None, reason: str) -> None:
        self.stats["failed"] += 1
        if delivery is None:
            self._log().error("relio: redis: %s dropped: %s", encoded.decode(), reason)
            return
        header = stdlib_json.loads(encoded)
        error = RelayError(reason, event=header.get("ev"), namespace=header.get("ns"),
                           sid=header.get("r") if isinstance(header.get("r"), str) else None)
        self._log().warning("relio: %s", error)
        delivery._settle(error)

    def _down_reason(self, what: str) -> str:
        return f"redis unavailable ({what})" if self._redis_down_since is not None else what

    def redis_trouble(self, exc: BaseException, doing: str) -> None:
        """Redis failed while ``doing``: counted, and logged once per outage."""
        self.stats["redis_errors"] += 1
        if self._redis_down_since is None:
            self._redis_down_since = asyncio.get_running_loop().time()
            self._log().warning("relio: redis unreachable (%s): %s: %s; retrying", doing,
                                type(exc).__name__, exc)

    def redis_ok(self) -> None:
        """Redis answered: an outage (if any) is over."""
        if self._redis_down_since is not None:
            down = asyncio.get_running_loop().time() - self._redis_down_since
            self._redis_down_since = None
            self._log().warning("relio: redis reachable again after %.1f s", down)

    # --- reading -------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        """Apply the stream's entries in order, from where this node started, across blips."""
        apply = self._apply
        assert apply is not None
        client = self.client()
        reader = self._raw_reader(client)
        delay = RETRY_DELAY
        last_id = None
        started_ms = None
        while True:
            try:
                if last_id is None:
                    # Start at the stream's current end: earlier entries predate this node's
                    # clients. Read explicitly from that id from then on, so that a blip
                    # cannot make the reader skip what was appended meanwhile. (If Redis was
                    # away when this node started, start from the time it started instead.)
                    if started_ms is None:
                        tail = await client.xrevrange(self.stream_key, count=1)
                        last_id = tail[0][0] if tail else b"0-0"
                    else:
                        last_id = f"{started_ms}-0".encode()
                    self.applied_id = last_id
                    self.reader_ready.set()
                    resumed = False
                elif resumed:
                    await self._check_gap(client, last_id)
                    resumed = False
                reply = await reader.xread({self.stream_key: last_id},
                                           count=self.config.relay_read_count,
                                           block=READ_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.redis_trouble(exc, "read")
                if last_id is None and started_ms is None:
                    started_ms = int(time.time() * 1000) - START_SLACK_MS
                resumed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
                continue
            delay = RETRY_DELAY
            self.redis_ok()
            origin = self._origin
            lag = self.relay_lag.labels(())
            for entries in _stream_entries(reply):
                if entries:
                    lag.observe(max(0.0, time.time() - id_tuple(entries[-1][0])[0] / 1000))
                self.stats["applied"] += len(entries)
                async with self.apply_lock:
                    for entry_id, raw_fields in entries:
                        # (_is_from, inlined for the usual flat list: on a busy bus a node
                        # reads back as many of its own entries as it publishes)
                        if (raw_fields[1] == origin and raw_fields[0] == b"o"
                                if type(raw_fields) is list and len(raw_fields) >= 2
                                else _is_from(raw_fields, origin)):
                            # this node's own entry: applied here when it was emitted
                            last_id = self.applied_id = entry_id
                            continue
                        try:
                            fields = _as_fields(raw_fields)
                            await apply(stdlib_json.loads(fields[b"h"]), fields, entry_id)
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            self._log().exception("relio: redis: cannot apply bus entry %s",
                                                  entry_id)
                        last_id = self.applied_id = entry_id

    async def _check_gap(self, client, last_id: bytes) -> None:
        """After a blip: did the stream lose entries this node had not read (trimmed past us,
        or Redis restarted without its data)? Reported, never skipped silently."""
        try:
            info = await client.xinfo_stream(self.stream_key)
        except redis_errors.ResponseError:       # no such key: Redis lost the stream
            if last_id != b"0-0":
                self._report_gap(f"the stream {self.stream_key} is gone (Redis restarted "
                                 "without persistence?)")
            return
        deleted = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
        if deleted is not None and id_tuple(deleted) > id_tuple(last_id):
            self._report_gap(f"entries after {last_id.decode()} were trimmed before this node "
                             f"read them (up to {deleted!r}); raise relay_stream_maxlen")

    def _report_gap(self, what: str) -> None:
        self.stats["gaps"] += 1
        self._log().error("relio: redis bus gap: %s; emits from other nodes may be missing", what)


def _raw_reply(response, **options):
    return response


def _stream_entries(reply) -> list:
    """The entry lists of a raw XREAD reply: RESP3 gives a map of stream to entries, RESP2 a
    list of (stream, entries) pairs; each entry is ``[id, [field, value, ...]]``."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(reply.values())
    return [entries for _stream, entries in reply]


def _is_from(raw_fields, origin: bytes) -> bool:
    """The entry was appended by the publisher ``origin`` (its first field, ``o``, says so: see
    :data:`_APPEND_SCRIPT`)."""
    if isinstance(raw_fields, dict):
        return raw_fields.get(b"o") == origin
    return len(raw_fields) >= 2 and raw_fields[1] == origin and raw_fields[0] == b"o"


def _as_fields(raw_fields) -> dict:
    """An entry's flat ``[field, value, ...]`` list as a dict (a map already, under RESP3
    with some parsers)."""
    if isinstance(raw_fields, dict):
        return raw_fields
    it = iter(raw_fields)
    return dict(zip(it, it, strict=False))  # a dangling field: dropped, the entry then fails
                                             # to apply (logged) like any malformed one


def _header(header: dict | bytes) -> dict:
    """A header as a dict (for an error message), whether given encoded or not."""
    return stdlib_json.loads(header) if isinstance(header, bytes) else header


def id_tuple(entry_id) -> tuple[int, int]:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = str(entry_id).partition("-")
    return int(ms), int(seq or 0)
