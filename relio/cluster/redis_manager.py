"""``relio.AsyncRedisManager``: several server processes sharing emits and rooms through Redis.

The drop-in for python-socketio's ``socketio.AsyncRedisManager`` (same arguments). What it owns is
the *bus* between nodes: every emit, room change and disconnect addressed beyond this process is
appended to one Redis Stream (``relio:<channel>:bus``) and every node reads that stream from the
position it has reached. python-socketio's manager uses pub/sub instead, which drops whatever is
published while a listener reconnects and whatever a publisher fails to send; here:

* **Nothing published is skipped by a reader.** A node keeps the id of the last entry it applied
  and, after a Redis blip, reads on from there. Entries trimmed before a slow node read them (the
  stream is capped at ``Config.relay_stream_maxlen``) are reported as a gap at ERROR level and
  counted in :attr:`AsyncRedisManager.stats`, never skipped silently.
* **Nothing is published twice.** Entries are numbered per publisher and appended by a Lua script
  that keeps each publisher's last number, so a batch retried after a lost reply is not appended
  again (Redis runs the script atomically: all of a batch or none of it).
* **A publisher is told.** Emits waiting for Redis are held in a bounded queue
  (``relay_queue_messages``): when it is full ``emit`` waits (or raises :class:`relio.QueueFull`
  with ``block=False``); an entry Redis has not accepted within ``relay_timeout`` fails the emit's
  :class:`relio.Delivery` with :class:`relio.RelayError`, and an ``emit`` that could not even be
  queued in that time raises it.
* **Order is kept** per publisher: one task appends the queue in order and every node applies the
  stream in order, so a relio session receives one process's emits in the order they were made
  (the sequence number is assigned where the frame enters the session, on the node that holds it).

Sessions stay on their node (sticky or not, a resume must reach the node holding the session; moving
a session to another node is not part of this module yet). See ``docs/SCALING.md``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json as stdlib_json
import logging
import os
import time
from collections import deque
from typing import Any

from relio.binding import payload as payload_codec
from relio.cluster import redis_sessions as records
from relio.asyncio.channel import Delivery, spawn
from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import DeliveryError, QueueFull, RelayError, RemoteProtocolError
from relio.asyncio.server import AsyncManager

logger = logging.getLogger("relio")

try:                                        # optional: pip install "relio-socketio[redis]"
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:                         # pragma: no cover - exercised without redis installed
    aioredis = None

#: Appends a batch of entries from one publisher, skipping those it appended before (a batch
#: retried after its reply was lost). KEYS: stream, the publisher's last-number key. ARGV: stream
#: cap, seconds the publisher's number is kept, the batch's first number, the publisher's id (each
#: entry's ``o``, so that a node skips its own entries without decoding them), then (header,
#: payload) per entry. Runs atomically, so a batch is in the stream entirely or not at all.
_APPEND_SCRIPT = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = tonumber(ARGV[3])
local n = (#ARGV - 4) / 2
for i = 0, n - 1 do
  if first + i > last then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'o', ARGV[4],
               'h', ARGV[5 + 2 * i], 'p', ARGV[6 + 2 * i])
  end
end
if first + n - 1 > last then
  redis.call('SET', KEYS[2], first + n - 1, 'EX', ARGV[2])
end
return n
"""

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

#: How long a node asking for a session waits for its live owner to hand it over before taking the
#: owner's last saved state (the owner is paused or partitioned from its clients).
HANDOVER_TIMEOUT = 3.0
#: How long an owner waits for the handlers of the client's calls still running before it hands the
#: session over (their answers go with it); a handler running longer loses its answer.
HANDOVER_HANDLER_WAIT = 2.0

# Entry kinds (the header's "k").
EMIT, CALLBACK, DISCONNECT, ENTER_ROOM, LEAVE_ROOM, CLOSE_ROOM = "e", "c", "d", "j", "l", "x"
HANDOVER = "h"
#: Modes (see the class docstring and docs/SCALING.md).
FAST, DURABLE = "fast", "durable"


class _Entry:
    __slots__ = ("seq", "header", "payload", "delivery", "deadline")

    def __init__(self, seq: int, header: bytes, payload: bytes, delivery: Delivery | None,
                 deadline: float):
        self.seq = seq
        self.header = header
        self.payload = payload
        self.delivery = delivery
        self.deadline = deadline


class AsyncRedisManager(AsyncManager):
    """Redis-backed client manager for relio servers on several processes or hosts.

    Arguments are python-socketio's ``AsyncRedisManager``'s:

    :param url: the Redis connection URL (``redis://``, ``rediss://``, ``unix://``).
    :param channel: the name shared by every node of one application (the stream is
                    ``relio:<channel>:bus``).
    :param write_only: only emit (a process that is not a Socket.IO server, e.g. a worker).
    :param logger: a logger for the manager's messages (default: the server's).
    :param json: a JSON module for ``write_only`` instances (servers use their own).
    :param redis_options: keyword arguments for ``redis.asyncio.Redis.from_url``.

    relio adds ``relio_config`` (a :class:`relio.Config`; the ``relay_*`` fields apply) for
    ``write_only`` instances; a server's manager uses the server's.

    ``emit`` returns a :class:`relio.Delivery` like the server's: its local recipients confirm
    delivery; the part that goes to other nodes (``delivery.relayed``) confirms that Redis holds the
    message, after which every node applies it exactly once.

    Usage::

        mgr = relio.AsyncRedisManager('redis://')
        sio = relio.AsyncServer(client_manager=mgr)
    """

    name = "relio-redis"

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json=None,
                 redis_options: dict | None = None, relio_config: Config | None = None,
                 mode: str = FAST):
        if mode not in (FAST, DURABLE):
            raise ValueError(f"mode must be {FAST!r} or {DURABLE!r}")
        if aioredis is None:
            raise RuntimeError('relio.AsyncRedisManager needs redis-py: '
                               'pip install "relio-socketio[redis]"')
        super().__init__()
        self.redis_url = url
        self.channel = channel
        self.write_only = write_only
        self.logger = logger
        self.host_id = os.urandom(16).hex()
        self._origin = self.host_id.encode()
        self.stream_key = f"relio:{channel}:bus"
        self._publisher_key = f"relio:{channel}:pub:{self.host_id}"
        options = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0,
                   # relio retries itself (in order, deduplicated): no hidden retries underneath.
                   "retry": Retry(NoBackoff(), 0), "retry_on_timeout": False}
        options.update(redis_options or {})
        self._redis_options = options
        self._redis = None
        self._script = None
        self._config = relio_config
        self._codec = payload_codec.JsonCodec(json or stdlib_json)
        self._queue: deque[_Entry] = deque()
        self._queue_changed: asyncio.Event | None = None
        self._seq = itertools.count(1)
        self._msg_counter = itertools.count(1)
        self._publisher: asyncio.Task | None = None
        self._reader: asyncio.Task | None = None
        self._closed = False
        self._redis_down_since: float | None = None
        self.mode = mode
        self._applied_id = b"0-0"             # last bus entry applied here (reader)
        self._apply_lock: asyncio.Lock | None = None
        self._reader_ready = asyncio.Event()
        self._alive: asyncio.Task | None = None
        self._alive_key = f"relio:{channel}:node:{self.host_id}"
        self._save_scripts = None
        #: Counters: ``published``, ``applied``, ``failed`` (entries Redis never accepted),
        #: ``gaps`` (entries trimmed before this node read them), ``redis_errors``; sessions:
        #: ``saved``, ``save_failed``, ``claimed`` (taken over from another node), ``forced``
        #: (taken from an owner that did not hand over), ``handed_over``, ``fenced`` (dropped here
        #: because another node owns them now), ``replayed`` (bus entries caught up on takeovers).
        self.stats = {"published": 0, "applied": 0, "failed": 0, "gaps": 0, "redis_errors": 0,
                      "saved": 0, "save_failed": 0, "claimed": 0, "forced": 0,
                      "handed_over": 0, "fenced": 0, "replayed": 0}

    #: The server may move sessions through this manager (it keeps session records in Redis).
    relio_movable = True

    # --- set-up and tear-down ------------------------------------------------------------------
    @property
    def config(self) -> Config:
        if self._config is None:
            server = getattr(self, "server", None)
            return getattr(server, "relio_config", None) or DEFAULT_CONFIG
        return self._config

    def _client(self):
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.redis_url, **self._redis_options)
            self._script = self._redis.register_script(_APPEND_SCRIPT)
            self._save_scripts = (self._redis.register_script(records.SAVE_SCRIPT),
                                  self._redis.register_script(records.CLAIM_SCRIPT),
                                  self._redis.register_script(records.END_SCRIPT))
        return self._redis

    def _log(self) -> logging.Logger:
        if self.logger is not None:
            return self.logger
        return logger

    def initialize(self):
        super().initialize()
        if not self.write_only:
            loop = asyncio.get_running_loop()
            self._apply_lock = asyncio.Lock()
            self._reader = loop.create_task(self._read_loop())
            self._alive = loop.create_task(self._alive_loop())
        self._log().info("relio: redis manager %s initialized (%s)", self.host_id[:8],
                         self.stream_key)

    async def close(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does not
        fails its Delivery), close the connection. Servers call it on shutdown."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
        if self._alive is not None:
            self._alive.cancel()
        if self._queue and self._publisher is not None and not self._publisher.done():
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.relay_timeout
            while self._queue and loop.time() < deadline and not self._publisher.done():
                await asyncio.sleep(0.01)
        if self._publisher is not None:
            self._publisher.cancel()
        for task in (self._reader, self._publisher, self._alive):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._fail_queued("manager closed")
        if self._redis is not None:
            try:
                await self._redis.delete(self._alive_key)
            except Exception:
                pass
            await self._redis.aclose()
            self._redis = None

    # --- what the server calls ---------------------------------------------------------------
    def _local_sid(self, room, namespace) -> bool:
        """``room`` is the sid of a client of this node (connected or a suspended relio session)."""
        if not isinstance(room, str):
            return False
        server = getattr(self, "server", None)
        if server is not None and room in getattr(server, "_relio_channels", ()):
            return True
        return self.is_connected(room, namespace)

    async def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
                   to=None, block=True, ignore_queue=False, **kwargs):
        """Emit to one client, a room or a namespace, on every node.

        The local recipients get it at once; the other nodes through Redis. Returns a
        :class:`relio.Delivery`. Note: this method is a coroutine.
        """
        namespace = namespace or "/"
        room = to or room
        if self.write_only:
            delivery = Delivery()
        elif ignore_queue or self._local_sid(room, namespace):
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, block=block)
        msg_id = self._next_msg_id()
        server = getattr(self, "server", None)
        codec = self._codec if server is None else server._relio_codec
        payload = payload_codec.encode([event, *payload_codec.as_args(data)], codec)
        if not self.write_only:
            delivery = await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                          callback=callback, block=block, _msg_id=msg_id,
                                          _encoded=payload)
        remote_callback = None
        if callback is not None:
            if self.write_only or getattr(self, "server", None) is None:
                raise RuntimeError("Callbacks can only be issued from the context of a server.")
            if room is None:
                raise ValueError("Cannot use callback without a room set.")
            remote_callback = [room, namespace, self._generate_ack_id(room, callback)]
        header = {"k": EMIT, "h": self.host_id, "ns": namespace, "r": room, "ev": event,
                  "id": msg_id.hex()}
        if skip_sid is not None:
            header["s"] = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        if remote_callback is not None:
            header["cb"] = remote_callback
        await self._relay(header, payload, delivery, block)
        return delivery

    async def can_disconnect(self, sid, namespace):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().can_disconnect(sid, namespace)
        await self._relay({"k": DISCONNECT, "h": self.host_id, "sid": sid,
                           "ns": namespace or "/"})
        return False

    async def disconnect(self, sid, namespace, **kwargs):
        if kwargs.get("ignore_queue") or self._local_sid(sid, namespace):
            return await super().disconnect(sid, namespace=namespace)
        await self._relay({"k": DISCONNECT, "h": self.host_id, "sid": sid,
                           "ns": namespace or "/"})

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self._relay({"k": ENTER_ROOM, "h": self.host_id, "sid": sid, "ns": namespace or "/",
                           "r": room})

    async def leave_room(self, sid, namespace, room):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().leave_room(sid, namespace, room)
        await self._relay({"k": LEAVE_ROOM, "h": self.host_id, "sid": sid, "ns": namespace or "/",
                           "r": room})

    async def close_room(self, room, namespace=None):
        if not self.write_only:
            await super().close_room(room, namespace or "/")
        await self._relay({"k": CLOSE_ROOM, "h": self.host_id, "r": room,
                           "ns": namespace or "/"})

    # --- publishing ------------------------------------------------------------------------------
    async def _relay(self, header: dict, payload: bytes = b"", delivery: Delivery | None = None,
                     block: bool = True) -> None:
        """Queue one entry for the stream, waiting (bounded by relay_timeout) for room."""
        if self._closed:
            raise RelayError("the manager is closed", event=header.get("ev"))
        cfg = self.config
        loop = asyncio.get_running_loop()
        if self._queue_changed is None:
            self._queue_changed = asyncio.Event()
        if len(self._queue) >= cfg.relay_queue_messages:
            if not block:
                raise QueueFull(f"{len(self._queue)} messages wait for Redis (relay queue full)")
            deadline = loop.time() + cfg.relay_timeout
            while len(self._queue) >= cfg.relay_queue_messages:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise RelayError(self._down_reason("relay queue full"),
                                     event=header.get("ev"), namespace=header.get("ns"))
                self._queue_changed.clear()
                try:
                    await asyncio.wait_for(self._queue_changed.wait(), remaining)
                except asyncio.TimeoutError:
                    pass
        if delivery is not None:
            delivery._add()
            delivery.relayed += 1
        entry = _Entry(next(self._seq), stdlib_json.dumps(header, separators=(",", ":")).encode(),
                       payload, delivery, loop.time() + cfg.relay_timeout)
        self._queue.append(entry)
        self._queue_changed.set()
        if self._publisher is None or self._publisher.done():
            self._publisher = loop.create_task(self._publish_loop())

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay = RETRY_DELAY
        client = self._client()
        while not self._closed or self._queue:
            if not self._queue:
                self._queue_changed.clear()
                await self._queue_changed.wait()
                continue
            self._expire_queued(loop.time())
            if not self._queue:
                continue
            batch = list(itertools.islice(self._queue, self.config.relay_batch))
            args: list[Any] = [self.config.relay_stream_maxlen, PUBLISHER_ID_TTL, batch[0].seq,
                               self._origin]
            for entry in batch:
                args.append(entry.header)
                args.append(entry.payload)
            try:
                await self._script(keys=[self.stream_key, self._publisher_key], args=args,
                                   client=client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:          # redis unreachable, loading, script error...
                self._redis_trouble(exc, "publish")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
                continue
            delay = RETRY_DELAY
            self._redis_ok()
            for entry in batch:
                # (the queue's head is this batch: entries are only removed here and in
                # _expire_queued, which ran above in this same task)
                self._queue.popleft()
                if entry.delivery is not None:
                    entry.delivery._settle(None)
            self.stats["published"] += len(batch)
            self._queue_changed.set()

    def _expire_queued(self, now: float) -> None:
        """Entries Redis has not accepted within relay_timeout fail (oldest first, in order)."""
        expired = 0
        while self._queue and self._queue[0].deadline <= now:
            entry = self._queue.popleft()
            expired += 1
            self._fail(entry, self._down_reason(f"not accepted within "
                                                f"{self.config.relay_timeout:g} s"))
        if expired:
            self._queue_changed.set()

    def _fail_queued(self, reason: str) -> None:
        while self._queue:
            self._fail(self._queue.popleft(), reason)

    def _fail(self, entry: _Entry, reason: str) -> None:
        self.stats["failed"] += 1
        if entry.delivery is None:
            self._log().error("relio: redis: %s dropped: %s", entry.header.decode(), reason)
            return
        header = stdlib_json.loads(entry.header)
        error = RelayError(reason, event=header.get("ev"), namespace=header.get("ns"),
                           sid=header.get("r") if isinstance(header.get("r"), str) else None)
        self._log().warning("relio: %s", error)
        entry.delivery._settle(error)

    def _down_reason(self, what: str) -> str:
        return f"redis unavailable ({what})" if self._redis_down_since is not None else what

    def _redis_trouble(self, exc: BaseException, doing: str) -> None:
        self.stats["redis_errors"] += 1
        if self._redis_down_since is None:
            self._redis_down_since = asyncio.get_running_loop().time()
            self._log().warning("relio: redis unreachable (%s): %s: %s; retrying", doing,
                                type(exc).__name__, exc)

    def _redis_ok(self) -> None:
        if self._redis_down_since is not None:
            down = asyncio.get_running_loop().time() - self._redis_down_since
            self._redis_down_since = None
            self._log().warning("relio: redis reachable again after %.1f s", down)

    # --- reading -------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        """Apply the stream's entries in order, from where this node started, across blips."""
        client = self._client()
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
                    self._applied_id = last_id
                    self._reader_ready.set()
                    resumed = False
                elif resumed:
                    await self._check_gap(client, last_id)
                    resumed = False
                reply = await client.xread({self.stream_key: last_id},
                                           count=self.config.relay_read_count,
                                           block=READ_BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._redis_trouble(exc, "read")
                if last_id is None and started_ms is None:
                    started_ms = int(time.time() * 1000) - START_SLACK_MS
                resumed = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
                continue
            delay = RETRY_DELAY
            self._redis_ok()
            for _stream, entries in reply or ():
                async with self._apply_lock:
                    for entry_id, fields in entries:
                        try:
                            await self._apply(fields, entry_id)
                        except asyncio.CancelledError:
                            raise
                        except Exception:
                            self._log().exception("relio: redis: cannot apply bus entry %s",
                                                  entry_id)
                        last_id = self._applied_id = entry_id

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
        if deleted is not None and _id_tuple(deleted) > _id_tuple(last_id):
            self._report_gap(f"entries after {last_id.decode()} were trimmed before this node "
                             f"read them (up to {deleted!r}); raise relay_stream_maxlen")

    def _report_gap(self, what: str) -> None:
        self.stats["gaps"] += 1
        self._log().error("relio: redis bus gap: %s; emits from other nodes may be missing", what)

    async def _apply(self, fields: dict, entry_id: bytes = b"") -> None:
        self.stats["applied"] += 1
        if fields.get(b"o") == self._origin:
            return                # this node's own entry: applied here when it was emitted
        header = stdlib_json.loads(fields[b"h"])
        kind = header.get("k")
        if kind == HANDOVER:
            if header.get("to") == self.host_id:
                channel = self.server._relio_channels.get(header.get("sid"))
                if channel is not None:
                    spawn(self._hand_over(channel))
            return
        if kind == CALLBACK:
            if header.get("to") == self.host_id:
                args = payload_codec.decode(fields[b"p"], self._codec)
                await self.trigger_callback(header["sid"], header["id"], args)
            return
        if header.get("h") == self.host_id:
            return                          # this node applied it when it was emitted
        namespace = header.get("ns") or "/"
        if kind == EMIT:
            await self._apply_emit(header, fields[b"p"], namespace)
        elif kind == DISCONNECT:
            if self._local_sid(header.get("sid"), namespace):
                await self.server.disconnect(header["sid"], namespace=namespace,
                                             ignore_queue=True)
        elif kind in (ENTER_ROOM, LEAVE_ROOM):
            sid = header.get("sid")
            if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
                if kind == ENTER_ROOM:
                    await AsyncManager.enter_room(self, sid, namespace, header.get("r"))
                else:
                    await AsyncManager.leave_room(self, sid, namespace, header.get("r"))
        elif kind == CLOSE_ROOM:
            await AsyncManager.close_room(self, header.get("r"), namespace)

    async def _apply_emit(self, header: dict, payload: bytes, namespace: str) -> None:
        room = header.get("r")
        if namespace not in self.rooms:
            return
        if isinstance(room, str) and room not in self.rooms[namespace]:
            return                          # nobody here
        callback = None
        remote_callback = header.get("cb")
        if remote_callback:
            callback = self._remote_callback(header["h"], *remote_callback)
        items = payload_codec.decode(payload, self.server._relio_codec)
        try:
            # Never block the bus on one session's full outbox: that session fails the message
            # (relio_delivery_error on this node); the others get theirs.
            await AsyncManager.emit(self, items[0], _as_data(items[1:]), namespace, room=room,
                                    skip_sid=header.get("s"), callback=callback, block=False,
                                    _encoded=payload, _msg_id=_entry_msg_id(header))
        except QueueFull as exc:
            self.server.on_undelivered(None, DeliveryError(
                f"relayed message dropped: {exc}", None, namespace=namespace,
                event=header.get("ev")))

    def _next_msg_id(self) -> bytes:
        """Ids of relayed messages: the same on every node that delivers the message, so that a
        session moved while the message was on its way drops the second copy."""
        return hashlib.blake2b(next(self._msg_counter).to_bytes(8, "big"),
                               key=bytes.fromhex(self.host_id), digest_size=16).digest()

    # --- sessions that move between nodes --------------------------------------------------------
    def _record_key(self, sid: str) -> str:
        return f"relio:{self.channel}:s:{sid}"

    def _record_ttl_ms(self) -> int:
        return int((self.config.session_ttl + records.RECORD_TTL_MARGIN) * 1000)

    async def _alive_loop(self) -> None:
        """Keep this node's liveness key (other nodes ask a live owner to hand a session over
        and take a dead owner's at once) and re-save sessions whose last save failed."""
        client = self._client()
        ttl_ms = int(records.NODE_ALIVE_TTL * 1000)
        while True:
            try:
                await client.set(self._alive_key, b"1", px=ttl_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._redis_trouble(exc, "alive")
            else:
                self._redis_ok()
                server = self.server
                for channel in list(server._relio_channels.values()):
                    if getattr(channel, "save_failed", False) and not channel.finished:
                        spawn(self.relio_save(channel))
            await asyncio.sleep(records.NODE_ALIVE_TTL / 3)

    def _state_of(self, channel, max_ids: int = -1) -> tuple[bytes, str, str]:
        """The session's record state, taken now (synchronously, with the bus position it
        includes), and its credential hashes."""
        meta, snapshot = self.server._relio_export(channel, max_ids)
        meta["bus"] = self._applied_id.decode()
        if channel.running:
            meta["running"] = [[msg_id.hex(), base64.b64encode(payload).decode(), request]
                               for msg_id, (payload, request) in channel.running.items()]
        session = self.server._relio_table.get(channel.sid)
        cred = records.credential_hash(session.credential if session else channel.credential)
        prev = records.credential_hash(session.previous_credential if session else None)
        try:
            blob = records.pack_state(meta, snapshot)
        except (TypeError, ValueError) as exc:
            self._log().warning("relio: session %s: its session data cannot move to another node "
                                "(not JSON: %s); it moves without it", channel.sid, exc)
            meta["session"] = None
            blob = records.pack_state(meta, snapshot)
        return blob, cred, prev

    def relio_capture(self, channel):
        """Durable mode: the session's state now (see :meth:`relio_persist`)."""
        return self._state_of(channel, self.config.durable_id_tail)

    async def relio_persist(self, channel, state) -> bool:
        """Durable mode: save ``state`` before what it includes leaves or reaches a handler."""
        if channel.finished:
            return False
        return await self.relio_save(channel, state=state)

    async def relio_save(self, channel, release: bool = False, state=None) -> bool:
        """Write the session's record (the server calls this when it suspends or hands over a
        session, and in durable mode after every change). False if Redis did not take it; a
        session this node no longer owns is dropped here (fenced)."""
        if state is None:
            state = self._state_of(channel)
        blob, cred, prev = state
        epoch = getattr(channel, "epoch", 1)
        self._client()
        save = self._save_scripts[0]
        lock = getattr(channel, "save_lock", None)
        if lock is None:
            # Saves of one session reach Redis in the order their states were taken.
            lock = channel.save_lock = asyncio.Lock()
        try:
            async with lock:
                ok = await save(keys=[self._record_key(channel.sid)],
                                args=[epoch, self.host_id, blob, cred, prev,
                                      self._record_ttl_ms(), 1 if release else 0])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._redis_trouble(exc, "save session")
            self.stats["save_failed"] += 1
            channel.save_failed = True
            return False
        self._redis_ok()
        channel.save_failed = False
        if not ok:
            self.stats["fenced"] += 1
            self._log().warning("relio: session %s is owned by another node now: dropped here",
                                channel.sid)
            self.server._relio_moved_away(channel, "the session moved to another node")
            return False
        self.stats["saved"] += 1
        return True

    async def relio_ended(self, channel, reason: str) -> None:
        """The session ended: mark its record so that no node resumes (or resurrects) it."""
        self._client()
        try:
            await self._save_scripts[2](keys=[self._record_key(channel.sid)],
                                        args=[getattr(channel, "epoch", 1), reason[:200],
                                              int(records.RECORD_TTL_MARGIN * 1000)])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._redis_trouble(exc, "end session")

    async def _hand_over(self, channel) -> None:
        """Another node has the session's client: give it the session (handlers of the
        client's calls first, bounded), then drop it here without ending it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_HANDLER_WAIT
        while (channel.engine.stats.get("peer_requests_pending") or channel._unstarted) \
                and loop.time() < deadline and not channel.finished:
            await asyncio.sleep(0.01)
        if channel.finished or self.server._relio_channels.get(channel.sid) is not channel:
            return
        state = self._state_of(channel)
        self.server._relio_moved_away(channel, None)
        if await self.relio_save(channel, release=True, state=state):
            self.stats["handed_over"] += 1
            self._log().info("relio: session %s handed over", channel.sid)

    async def relio_hand_over_all(self) -> None:
        """Server shutdown: every session is saved and released for another node to resume."""
        server = self.server
        channels = list(server._relio_channels.values())
        await asyncio.gather(*(self._hand_over(c) for c in channels), return_exceptions=True)

    async def relio_claim(self, sid: str, namespace: str, eio_sid: str, credential) -> str | None:
        """Take the session ``sid`` over from the node that has it (asking a live owner to hand it
        over, taking a dead or silent owner's last saved state) and register it on this server.
        Returns None when the session is now local, else why not."""
        refused = "no session to resume for these credentials"
        if not isinstance(credential, str) or self._apply_lock is None:
            return refused
        client = self._client()
        claim = self._save_scripts[1]
        key = self._record_key(sid)
        if not self._reader_ready.is_set():
            # The bus position this node has applied must be known before a snapshot is
            # caught up from it.
            try:
                await asyncio.wait_for(self._reader_ready.wait(), HANDOVER_TIMEOUT)
            except asyncio.TimeoutError:
                return "the session store is unavailable"
        wanted = records.credential_hash(credential)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_TIMEOUT
        asked = False
        try:
            while True:
                force = loop.time() >= deadline
                reply = await claim(keys=[key], args=[wanted, self.host_id, 1 if force else 0])
                kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
                if kind == "ok":
                    if force:
                        self.stats["forced"] += 1
                    break
                if kind != "owned":
                    return refused if kind != "ended" else "the session ended"
                owner = reply[1].decode() if isinstance(reply[1], bytes) else reply[1]
                if not await client.exists(f"relio:{self.channel}:node:{owner}"):
                    deadline = loop.time()             # the owner is dead: take it now
                    continue
                if not asked:
                    asked = True
                    await self._relay({"k": HANDOVER, "h": self.host_id, "to": owner,
                                       "sid": sid, "ns": namespace})
                await asyncio.sleep(0.02)
            epoch = int(reply[1])
            meta, snapshot = records.unpack_state(reply[2])
            async with self._apply_lock:
                replay = await self._entries_for(client, sid, namespace, meta)
                channel = self.server._relio_adopt(sid, namespace, eio_sid, credential, meta,
                                                   snapshot)
                channel.epoch = epoch
                for entry_id, fields in replay:
                    await self._replay(channel, fields)
                running = [(bytes.fromhex(m), base64.b64decode(p), bool(r))
                           for m, p, r in meta.get("running") or ()]
                if running:
                    # Handlers the previous owner had not finished when it stopped: run here.
                    channel.redeliver(running)
        except asyncio.CancelledError:
            raise
        except (ValueError, KeyError) as exc:
            self._log().warning("relio: session %s: unreadable record: %s", sid, exc)
            return refused
        except RemoteProtocolError as exc:
            self._log().warning("relio: session %s: cannot restore: %s", sid, exc.reason)
            return refused
        except Exception as exc:
            self._redis_trouble(exc, "claim session")
            return "the session store is unavailable"
        self.stats["claimed"] += 1
        self.stats["replayed"] += len(replay)
        self._log().info("relio: session %s taken over (epoch %d, %d bus entries replayed)", sid,
                         epoch, len(replay))
        return None

    async def _entries_for(self, client, sid: str, namespace: str, meta: dict) -> list:
        """The bus entries after the snapshot's position, up to what this node has applied, that
        may concern the session (read a page at a time; only those are kept)."""
        start, end = (meta.get("bus") or "0-0").encode(), self._applied_id
        rooms = {sid, *[r for r in meta.get("rooms") or () if isinstance(r, str)]}
        kept = []
        while _id_tuple(end) > _id_tuple(start):
            page = await client.xrange(self.stream_key, min=b"(" + start, max=end,
                                       count=self.config.relay_read_count)
            if not page:
                break
            for entry_id, fields in page:
                header = stdlib_json.loads(fields[b"h"])
                if (header.get("ns") or "/") != namespace:
                    continue
                kind, room = header.get("k"), header.get("r")
                if kind == ENTER_ROOM and header.get("sid") == sid:
                    rooms.add(room)
                if kind == EMIT and room is not None:
                    targets = room if isinstance(room, list) else [room]
                    if not any(r in rooms for r in targets):
                        continue          # (a room it enters later is added before its emits)
                elif kind not in (EMIT, ENTER_ROOM, LEAVE_ROOM, CLOSE_ROOM, DISCONNECT):
                    continue
                kept.append((entry_id, fields))
            start = page[-1][0]
        return kept

    async def _replay(self, channel, fields: dict) -> None:
        """Apply one bus entry (from after the snapshot) to one adopted session only."""
        header = stdlib_json.loads(fields[b"h"])
        kind = header.get("k")
        sid, namespace = channel.sid, channel.namespace
        if (header.get("ns") or "/") != namespace:
            return
        if kind == EMIT:
            room = header.get("r")
            rooms = self.get_rooms(sid, namespace)
            targets = room if isinstance(room, list) else [room]
            if room is not None and not any(r == sid or r in rooms for r in targets):
                return
            if sid in (header.get("s") or ()):
                return
            payload = fields[b"p"]
            items = payload_codec.decode(payload, self.server._relio_codec)
            callback = None
            if header.get("cb"):
                callback = self._remote_callback(header["h"], *header["cb"])
            try:
                channel.send_nowait(payload, items[0] if items else None, None, callback,
                                    _entry_msg_id(header))
            except (QueueFull, DeliveryError) as exc:
                self.server.on_undelivered(channel, DeliveryError(
                    f"relayed message dropped: {exc}", None, sid=sid, namespace=namespace,
                    event=header.get("ev")))
        elif kind in (ENTER_ROOM, LEAVE_ROOM) and header.get("sid") == sid:
            if kind == ENTER_ROOM:
                self.basic_enter_room(sid, namespace, header.get("r"))
            else:
                self.basic_leave_room(sid, namespace, header.get("r"))
        elif kind == CLOSE_ROOM:
            self.basic_leave_room(sid, namespace, header.get("r"))
        elif kind == DISCONNECT and header.get("sid") == sid:
            spawn(self.server.disconnect(sid, namespace=namespace, ignore_queue=True))

    def _remote_callback(self, host_id: str, sid: str, namespace: str, callback_id):
        async def send_back(*args):
            await self._relay({"k": CALLBACK, "h": self.host_id, "to": host_id, "sid": sid,
                               "ns": namespace, "id": callback_id},
                              payload_codec.encode(list(args), self._codec))
        return lambda *args: spawn(send_back(*args))


def _entry_msg_id(header: dict) -> bytes | None:
    value = header.get("id")
    try:
        return bytes.fromhex(value) if isinstance(value, str) and len(value) == 32 else None
    except ValueError:
        return None


def _as_data(args: list):
    """Arguments as python-socketio's ``emit(data=...)`` takes them."""
    return tuple(args) if len(args) != 1 else args[0]


def _id_tuple(entry_id) -> tuple[int, int]:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = str(entry_id).partition("-")
    return int(ms), int(seq or 0)
