"""``relio.AsyncRedisManager``: several server processes sharing emits, rooms and sessions through
Redis.

The drop-in for python-socketio's ``socketio.AsyncRedisManager`` (same arguments). It is the
python-socketio client manager side of the cluster: what an emit, a room change or a disconnect
means when it is addressed beyond this process, and how an entry from another node is applied here.
It composes two parts with one concern each:

* :class:`~relio.cluster.bus.RedisBus`: the Redis Stream every node appends to and reads in order
  (nothing skipped, nothing published twice, publishers told of failures);
* :class:`~relio.cluster.store.RedisSessionStore`: the server's session host: session records in
  Redis, sessions moving between nodes (hand-over, takeover, fencing), durable mode.

See ``docs/SCALING.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json as stdlib_json
import logging
from typing import TYPE_CHECKING, Any

from relio.asyncio.dispatch import spawn
from relio.asyncio.results import Delivery
from relio.asyncio.server import FROM_ENCODED, AsyncManager
from relio.binding import payload as payload_codec
from relio.cluster.bus import (
    CALLBACK,
    CLOSE_ROOM,
    DISCONNECT,
    EMIT,
    ENTER_ROOM,
    HANDOVER,
    LEAVE_ROOM,
    EmitHeaders,
    RedisBus,
    emit_header,
    relayed_msg_id,
)
from relio.cluster.pubsub_bridge import PubSubBridge
from relio.cluster.store import DURABLE, FAST, RedisSessionStore
from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import DeliveryError, QueueFull

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession

logger = logging.getLogger("relio")

#: How long a client's connect waits for a starting node's bus reader to know its position (s).
READER_READY_WAIT = 2.0

__all__ = ["AsyncRedisManager", "DURABLE", "FAST"]


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
    ``write_only`` instances; a server's manager uses the server's; and ``mode``:
    ``'durable'`` (the default: nothing leaves a session, and no handler sees a message, before the
    session's state is in Redis, so a node killed or paused loses nothing) or ``'fast'`` (saves at
    suspend, resume and shutdown only; a killed node's sessions lose what changed since, and their
    clients are told). See ``docs/SCALING.md``. ``bridge_socketio`` (default True): apply what
    python-socketio's own Redis managers publish on ``channel`` (workers not moved over yet) to
    this node's clients.

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
                 mode: str = DURABLE, bridge_socketio: bool = True):
        super().__init__()
        self.redis_url = url
        self.channel = channel
        self.write_only = write_only
        self.logger = logger
        self._config = relio_config
        self._codec = payload_codec.JsonCodec(json or stdlib_json)
        self._msg_counter = itertools.count(1)
        #: the stream between the nodes
        self.bus = RedisBus(url, channel, lambda: self.config, redis_options, self._log)
        self._emit_headers = EmitHeaders(self.bus.host_id)
        self._msg_id_prefix = relayed_msg_id(self.bus.host_id, 0)[:8]
        #: where this node's sessions are saved and how they move (the server's session host)
        self.session_host: RedisSessionStore = RedisSessionStore(
            self.bus, mode, lambda: self.config, self._log, self._replay)
        self.mode = mode
        #: python-socketio's emitters (its Redis managers publishing on ``channel``) reach this
        #: node's clients (at most once on that hop; see :mod:`relio.cluster.pubsub_bridge`)
        self.pubsub_bridge = PubSubBridge(self, channel, self._log) if bridge_socketio else None

    @property
    def host_id(self) -> str:
        """This node's id on the bus."""
        return self.bus.host_id

    @property
    def stats(self) -> dict:
        """The bus's counters (``published``, ``applied``, ``failed``, ``gaps``, ``redis_errors``)
        and the session store's (``saved``, ``save_failed``, ``claimed``, ``forced``,
        ``handed_over``, ``fenced``, ``replayed``, ``refreshed``)."""
        return {**self.bus.stats, **self.session_host.stats}

    @property
    def relio_host_id(self) -> str | None:
        return self.bus.host_id

    @property
    def relio_cluster_stats(self) -> dict[str, int]:
        return self.stats

    @property
    def relio_cluster_latencies(self) -> dict:
        return {"relay_lag": self.bus.relay_lag, "save": self.session_host.save_latency}

    # --- set-up and tear-down ------------------------------------------------------------------
    @property
    def config(self) -> Config:
        if self._config is None:
            server = getattr(self, "server", None)
            return getattr(server, "relio_config", None) or DEFAULT_CONFIG
        return self._config

    def _log(self) -> logging.Logger:
        if self.logger is not None:
            return self.logger
        return logger

    def initialize(self):
        super().initialize()
        if self.mode == FAST and not self.write_only:
            self._log().warning(
                "relio: AsyncRedisManager(mode='fast'): a session whose node is killed or paused "
                "resumes on another node only from its last save (at suspend, resume and "
                "shutdown): what it sent or received since can be lost, and its client is told "
                "(disconnect, then a new session). The default mode='durable' loses nothing.")
        if not self.write_only:
            self.bus.start_reading(self._apply)
            self.session_host.start()
            if self.pubsub_bridge is not None:
                self.pubsub_bridge.start()
        self._log().info("relio: redis manager %s initialized (%s)", self.host_id[:8],
                         self.bus.stream_key)

    async def close(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does not
        fails its Delivery), close the connection. Servers call it on shutdown."""
        if self.pubsub_bridge is not None:
            await self.pubsub_bridge.close()
        await self.session_host.close()
        await self.bus.close()
        await self.bus.disconnect()

    # --- what the server calls ---------------------------------------------------------------
    def _local_sid(self, room, namespace) -> bool:
        """``room`` is the sid of a client of this node (connected or a suspended relio session)."""
        if not isinstance(room, str):
            return False
        server = getattr(self, "server", None)
        if server is not None and room in server.relio_registry:
            return True
        # A room name is not a key of the connected clients: python-socketio's is_connected
        # finds that out by catching a KeyError, which cost ~1 µs of every room broadcast.
        connected = self.rooms.get(namespace, {}).get(None)
        return connected is not None and room in connected and self.is_connected(room, namespace)

    async def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
                   to=None, block=True, ignore_queue=False, _encoded: bytes | None = None,
                   _msg_id: bytes | None = None, **kwargs):
        """Emit to one client, a room or a namespace, on every node.

        The local recipients get it at once; the other nodes through Redis. Returns a
        :class:`relio.Delivery`. Note: this method is a coroutine.
        """
        namespace = namespace or "/"
        room = to or room
        server = getattr(self, "server", None)
        write_only = self.write_only
        if write_only:
            delivery = Delivery()
        elif ignore_queue or self._local_sid(room, namespace):
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, block=block)
        msg_id = self._next_msg_id()
        codec = self._codec if server is None else server.relio_codec
        payload = payload_codec.encode([event, *payload_codec.as_args(data)], codec)
        if not write_only:
            delivery = await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                          callback=callback, block=block, _msg_id=msg_id,
                                          _encoded=payload)
        remote_callback = None
        if callback is not None:
            if write_only or server is None:
                raise RuntimeError("Callbacks can only be issued from the context of a server.")
            if room is None:
                raise ValueError("Cannot use callback without a room set.")
            remote_callback = [room, namespace, self._generate_ack_id(room, callback)]
        if skip_sid is None and remote_callback is None:
            header: dict | bytes = self._emit_headers.encode(namespace, room, event, msg_id)
        else:
            header = emit_header(self.bus.host_id, namespace, room, event, msg_id, skip_sid,
                                 remote_callback)
        if not self.bus.relay_nowait(header, payload, delivery):
            await self.bus.relay(header, payload, delivery, block)
        return delivery

    async def pre_connect(self, eio_sid, namespace):
        """python-socketio's ``pre_connect``, once this node's bus reader knows where it starts: an
        entry for a client of this node (a remote ``enter_room`` for its sid, an emit to it)
        published before that position would never be applied here. Bounded by
        :data:`READER_READY_WAIT` (Redis away at start: the reader starts from that time once it
        is back, see :class:`~relio.cluster.bus.RedisBus`)."""
        ready = self.bus.reader_ready
        if self.bus.reading and not ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), READER_READY_WAIT)
        return await super().pre_connect(eio_sid, namespace)

    async def emit_here(self, event, data, namespace, room=None, skip_sid=None, callback=None,
                        *, source: str, _encoded: bytes | None = None,
                        _msg_id: bytes | None = None) -> None:
        """Emit to this node's clients only, a message that came from elsewhere (``source``: the
        bus, python-socketio's channel). It never waits: the reader must not stall on one
        session's full outbox, so that session fails the message (``relio_delivery_error`` on this
        node) and the others get theirs."""
        try:
            await AsyncManager.emit(self, event, data, namespace, room=room, skip_sid=skip_sid,
                                    callback=callback, block=False, _encoded=_encoded,
                                    _msg_id=_msg_id)
        except QueueFull as exc:
            self.server.on_undelivered(None, DeliveryError(
                f"message from {source} dropped: {exc}", None, namespace=namespace,
                event=event))

    async def can_disconnect(self, sid, namespace):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().can_disconnect(sid, namespace)
        await self.bus.relay({"k": DISCONNECT, "h": self.bus.host_id, "sid": sid,
                           "ns": namespace or "/"})
        return False

    async def disconnect(self, sid, namespace, **kwargs):
        if kwargs.get("ignore_queue") or self._local_sid(sid, namespace):
            return await super().disconnect(sid, namespace=namespace)
        await self.bus.relay({"k": DISCONNECT, "h": self.bus.host_id, "sid": sid,
                           "ns": namespace or "/"})

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self.bus.relay({"k": ENTER_ROOM, "h": self.bus.host_id, "sid": sid,
                              "ns": namespace or "/",
                           "r": room})

    async def leave_room(self, sid, namespace, room):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().leave_room(sid, namespace, room)
        await self.bus.relay({"k": LEAVE_ROOM, "h": self.bus.host_id, "sid": sid,
                              "ns": namespace or "/",
                           "r": room})

    async def close_room(self, room, namespace=None):
        if not self.write_only:
            await super().close_room(room, namespace or "/")
        await self.bus.relay({"k": CLOSE_ROOM, "h": self.bus.host_id, "r": room,
                           "ns": namespace or "/"})

    # --- applying entries of other nodes ---------------------------------------------------
    async def _apply(self, header: dict, fields: dict, entry_id: bytes) -> None:
        """Apply one bus entry of another node (the bus calls this, in stream order)."""
        kind = header.get("k")
        host_id = self.bus.host_id
        if kind == HANDOVER:
            if header.get("to") == host_id:
                self.session_host.hand_over_sid(header.get("sid"))
            return
        if kind == CALLBACK:
            if header.get("to") == host_id:
                args = payload_codec.decode(fields[b"p"], self._codec)
                await self.trigger_callback(header["sid"], header["id"], args)
            return
        if header.get("h") == host_id:
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
        event = header.get("ev")
        if isinstance(event, str):
            data: Any = FROM_ENCODED           # decoded only for plain recipients, if any
        else:
            items = payload_codec.decode(payload, self.server.relio_codec)
            event, data = items[0], _as_data(items[1:])
        await self.emit_here(event, data, namespace, room=room, skip_sid=header.get("s"),
                             callback=callback, source="another node", _encoded=payload,
                             _msg_id=_entry_msg_id(header))

    def _next_msg_id(self) -> bytes:
        """Ids of relayed messages (see :func:`~relio.cluster.bus.relayed_msg_id`)."""
        return self._msg_id_prefix + next(self._msg_counter).to_bytes(8, "big")

    async def _replay(self, session: ServerSession, fields: dict) -> None:
        """Apply one bus entry (from after the snapshot) to one adopted session only (the
        session store calls this while it catches a session up after a takeover)."""
        header = stdlib_json.loads(fields[b"h"])
        kind = header.get("k")
        channel = session.channel
        sid, namespace = session.sid, session.namespace
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
            items = payload_codec.decode(payload, self.server.relio_codec)
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
            await self.bus.relay({"k": CALLBACK, "h": self.bus.host_id, "to": host_id, "sid": sid,
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
