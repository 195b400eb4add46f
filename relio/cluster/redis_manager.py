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
import logging

from relio.asyncio.dispatch import spawn
from relio.asyncio.results import Delivery
from relio.asyncio.server import AsyncManager
from relio.binding import payload as payload_codec
from relio.cluster.bus import CLOSE_ROOM, DISCONNECT, ENTER_ROOM, LEAVE_ROOM
from relio.cluster.node import READER_READY_WAIT, RedisNode
from relio.cluster.store import DURABLE, FAST, RedisSessionStore
from relio.config import Config
from relio.engine.errors import QueueFull

__all__ = ["AsyncRedisManager", "DURABLE", "FAST"]


class AsyncRedisManager(RedisNode, AsyncManager):
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
        self._setup_node(url, channel, write_only, logger, json, redis_options, relio_config,
                         mode, bridge_socketio)
        #: the server's session host: where this node's sessions are saved and how they move
        self.session_host: RedisSessionStore = self.session_store

    def initialize(self):
        super().initialize()
        self._start_node()

    async def close(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does not
        fails its Delivery), close the connection. Servers call it on shutdown."""
        await self._close_node()

    # --- what the server calls ---------------------------------------------------------------
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
        header = self._emit_entry(event, namespace, room, skip_sid, callback, msg_id, write_only)
        if not self.bus.relay_nowait(header, payload, delivery):
            await self.bus.relay(header, payload, delivery, block)
        return delivery

    async def pre_connect(self, eio_sid, namespace):
        """python-socketio's ``pre_connect``, once this node's bus reader knows where it starts: an
        entry for a client of this node (a remote ``enter_room`` for its sid, an emit to it)
        published before that position would never be applied here. Bounded by
        :data:`~relio.cluster.node.READER_READY_WAIT` (Redis away at start: the reader starts from
        that time once it is back, see :class:`~relio.cluster.bus.RedisBus`)."""
        ready = self.bus.reader_ready
        if self.bus.reading and not ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), READER_READY_WAIT)
        return await super().pre_connect(eio_sid, namespace)

    async def can_disconnect(self, sid, namespace):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().can_disconnect(sid, namespace)
        await self.bus.relay(self._entry(DISCONNECT, namespace, sid=sid))
        return False

    async def disconnect(self, sid, namespace, **kwargs):
        if kwargs.get("ignore_queue") or self._local_sid(sid, namespace):
            return await super().disconnect(sid, namespace=namespace)
        await self.bus.relay(self._entry(DISCONNECT, namespace, sid=sid))

    async def enter_room(self, sid, namespace, room, eio_sid=None):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self.bus.relay(self._entry(ENTER_ROOM, namespace, sid=sid, r=room))

    async def leave_room(self, sid, namespace, room):
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return await super().leave_room(sid, namespace, room)
        await self.bus.relay(self._entry(LEAVE_ROOM, namespace, sid=sid, r=room))

    async def close_room(self, room, namespace=None):
        if not self.write_only:
            await super().close_room(room, namespace or "/")
        await self.bus.relay(self._entry(CLOSE_ROOM, namespace, r=room))

    # --- RedisNode's hooks ---------------------------------------------------------------------
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
            self._undeliverable(source, exc, namespace, event)

    async def disconnect_here(self, sid, namespace) -> None:
        await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

    async def _callback_here(self, sid, callback_id, args: list) -> None:
        await self.trigger_callback(sid, callback_id, args)

    def schedule(self, coro):
        return spawn(coro)
