"""What both Redis managers share: one server node on the bus, without the waiting.

:class:`RedisNode` is the await-free half of :class:`relio.AsyncRedisManager` (asyncio) and of the
serving :class:`relio.RedisManager` (thread-based), mixed in before their in-process manager: it
builds the node's parts (the bus :class:`~relio.cluster.bus.RedisBus`, the session store
:class:`~relio.cluster.store.RedisSessionStore`, the python-socketio bridge), decides what is local
and how an emit is described on the bus, and applies the entries of other nodes
(:meth:`RedisNode._apply`, :meth:`RedisNode._replay`). Those two run on the loop the bus runs on:
the server's loop for the asyncio manager, the process's cluster loop
(:mod:`relio.cluster.loop`) for the thread-based one.

What differs between the shells is a handful of hooks, each a subclass's: :meth:`emit_here`
(deliver to this node's clients without waiting), :meth:`disconnect_here`, :meth:`_callback_here`
(run an emit's callback), :meth:`schedule` (run a coroutine on the bus's loop from wherever the
caller is).
"""

from __future__ import annotations

import itertools
import json as stdlib_json
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from relio.binding import payload as payload_codec
from relio.binding.server_shell import FROM_ENCODED
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

FAST_MODE_WARNING = (
    "relio: %s(mode='fast'): a session whose node is killed or paused resumes on another node "
    "only from its last save (at suspend, resume and shutdown): what it sent or received since "
    "can be lost, and its client is told (disconnect, then a new session). The default "
    "mode='durable' loses nothing.")


class RedisNode:
    """The await-free half of a relio Redis manager (see the module)."""

    # the in-process manager's (python-socketio's), and the server once attached
    rooms: dict
    server: Any
    logger: logging.Logger | None
    get_rooms: Any
    is_connected: Any
    is_pre_connected: Any
    basic_enter_room: Any
    basic_leave_room: Any
    basic_close_room: Any
    _generate_ack_id: Any

    def _setup_node(self, url: str, channel: str, write_only: bool,
                    logger: logging.Logger | None, json, redis_options: dict | None,
                    relio_config: Config | None, mode: str, bridge_socketio: bool) -> None:
        """The node's parts (python-socketio's manager arguments, plus relio's)."""
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
        #: where this node's sessions are saved and how they move
        self.session_store = RedisSessionStore(self.bus, mode, lambda: self.config, self._log,
                                               self._replay)
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
        return {**self.bus.stats, **self.session_store.stats}

    @property
    def relio_host_id(self) -> str | None:
        return self.bus.host_id

    @property
    def relio_cluster_stats(self) -> dict[str, int]:
        return self.stats

    @property
    def relio_cluster_latencies(self) -> dict:
        return {"relay_lag": self.bus.relay_lag, "save": self.session_store.save_latency}

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

    def _start_node(self) -> None:
        """A serving node starts reading the bus, keeping its sessions' records and bridging
        python-socketio's channel (on the bus's loop)."""
        if self.mode == FAST and not self.write_only:
            self._log().warning(FAST_MODE_WARNING, type(self).__name__)
        if not self.write_only:
            self.bus.start_reading(self._apply)
            self.session_store.start()
            if self.pubsub_bridge is not None:
                self.pubsub_bridge.start()
        self._log().info("relio: redis manager %s initialized (%s)", self.host_id[:8],
                         self.bus.stream_key)

    async def _close_node(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does
        not fails its Delivery), close the connection."""
        if self.pubsub_bridge is not None:
            await self.pubsub_bridge.close()
        await self.session_store.close()
        await self.bus.close()
        await self.bus.disconnect()

    # --- the shell's hooks -------------------------------------------------------------------
    async def emit_here(self, event, data, namespace, room=None, skip_sid=None, callback=None,
                        *, source: str, _encoded: bytes | None = None,
                        _msg_id: bytes | None = None) -> None:
        """Emit to this node's clients only, a message that came from elsewhere (``source``: the
        bus, python-socketio's channel), without waiting for room."""
        raise NotImplementedError

    async def disconnect_here(self, sid, namespace) -> None:
        """Disconnect this node's client ``sid`` (asked by another node or an emitter)."""
        raise NotImplementedError

    async def _callback_here(self, sid, callback_id, args: list) -> None:
        """A client of another node answered an emit of this node that had a callback."""
        raise NotImplementedError

    def schedule(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the bus's loop (called from wherever the caller runs)."""
        raise NotImplementedError

    def _undeliverable(self, source: str, exc: Exception, namespace, event) -> None:
        """A message from ``source`` found a local session's outbox full: that session fails it
        (``relio_delivery_error`` on this node); the reader does not stall on it."""
        self.server.on_undelivered(None, DeliveryError(
            f"message from {source} dropped: {exc}", None, namespace=namespace, event=event))

    # --- what is local, and how an emit goes on the bus ----------------------------------------
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
        return connected is not None and room in connected and \
            self.is_connected(room, namespace)

    def _next_msg_id(self) -> bytes:
        """Ids of relayed messages (see :func:`~relio.cluster.bus.relayed_msg_id`)."""
        return self._msg_id_prefix + next(self._msg_counter).to_bytes(8, "big")

    def _emit_entry(self, event, namespace, room, skip_sid, callback, msg_id: bytes,
                    write_only: bool) -> dict | bytes:
        """The bus header of an emit (``callback``: the emitting node is asked for the answer).

        :raises RuntimeError: a callback without a server. :raises ValueError: a callback
        without a room."""
        remote_callback = None
        if callback is not None:
            if write_only or getattr(self, "server", None) is None:
                raise RuntimeError("Callbacks can only be issued from the context of a server.")
            if room is None:
                raise ValueError("Cannot use callback without a room set.")
            remote_callback = [room, namespace, self._generate_ack_id(room, callback)]
        if skip_sid is None and remote_callback is None:
            return self._emit_headers.encode(namespace, room, event, msg_id)
        return emit_header(self.bus.host_id, namespace, room, event, msg_id, skip_sid,
                           remote_callback)

    def _entry(self, kind: str, namespace, **fields) -> dict:
        """The header of a room change or a disconnect addressed to other nodes."""
        return {"k": kind, "h": self.bus.host_id, "ns": namespace or "/", **fields}

    # --- applying entries of other nodes -------------------------------------------------------
    async def _apply(self, header: dict, fields: dict, entry_id: bytes) -> None:
        """Apply one bus entry of another node (the bus calls this, in stream order)."""
        kind = header.get("k")
        host_id = self.bus.host_id
        if kind == HANDOVER:
            if header.get("to") == host_id:
                self.session_store.hand_over_sid(header.get("sid"))
            return
        if kind == CALLBACK:
            if header.get("to") == host_id:
                args = payload_codec.decode(fields[b"p"], self._codec)
                await self._callback_here(header["sid"], header["id"], args)
            return
        if header.get("h") == host_id:
            return                          # this node applied it when it was emitted
        namespace = header.get("ns") or "/"
        if kind == EMIT:
            await self._apply_emit(header, fields[b"p"], namespace)
        elif kind == DISCONNECT:
            if self._local_sid(header.get("sid"), namespace):
                await self.disconnect_here(header["sid"], namespace)
        elif kind in (ENTER_ROOM, LEAVE_ROOM):
            sid = header.get("sid")
            if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
                if kind == ENTER_ROOM:
                    self.basic_enter_room(sid, namespace, header.get("r"))
                else:
                    self.basic_leave_room(sid, namespace, header.get("r"))
        elif kind == CLOSE_ROOM:
            self.basic_close_room(header.get("r"), namespace)

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
            self.schedule(self.disconnect_here(sid, namespace))

    def _remote_callback(self, host_id: str, sid: str, namespace: str, callback_id):
        """The callback of an emit from node ``host_id``: the answer goes back on the bus."""
        async def send_back(*args):
            await self.bus.relay({"k": CALLBACK, "h": self.bus.host_id, "to": host_id, "sid": sid,
                                  "ns": namespace, "id": callback_id},
                                 payload_codec.encode(list(args), self._codec))
        return lambda *args: self.schedule(send_back(*args))


def _entry_msg_id(header: dict) -> bytes | None:
    value = header.get("id")
    try:
        return bytes.fromhex(value) if isinstance(value, str) and len(value) == 32 else None
    except ValueError:
        return None


def _as_data(args: list):
    """Arguments as python-socketio's ``emit(data=...)`` takes them."""
    return tuple(args) if len(args) != 1 else args[0]


__all__ = ["RedisNode", "DURABLE", "FAST", "READER_READY_WAIT"]
