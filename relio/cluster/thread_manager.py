"""``relio.RedisManager``: several thread-based server processes sharing emits, rooms and sessions
through Redis.

The drop-in for python-socketio's ``socketio.RedisManager`` (same arguments) on a
:class:`relio.Server` (``WSGIApp``, Flask-SocketIO), with :class:`relio.AsyncRedisManager`'s
guarantees and modes, on the same bus: asyncio and thread-based nodes of one application share one
``channel`` and serve each other's clients, emits and sessions both ways.

It is the thread-based twin of :mod:`relio.cluster.redis_manager`, on the same code:
:class:`~relio.cluster.node.RedisNode` decides what is local and applies other nodes' entries, and
the asyncio bus, session store and python-socketio bridge run unchanged on the process's cluster
loop (:mod:`relio.cluster.loop`, one thread per process). This module is the crossing: an emit
delivers to this node's sessions in the calling thread and hands its bus entry to the cluster loop
in the thread's order, without waiting while the relay queue has room (else it waits for room,
bounded by ``relay_timeout``, as the asyncio manager does); entries of other nodes are applied on
the cluster loop without waiting (blocking work, such as a disconnect or an emit's callback, goes
to a background task of the server). The session host is
:class:`~relio.cluster.thread_host.ThreadRedisHost`.

``write_only=True`` (a Celery or cron emitter, or Flask-SocketIO's ``SocketIO(message_queue=...)``
without an app) publishes from the calling thread instead, without a loop or a thread
(:class:`~relio.cluster.redis_emitter.RedisEmitter`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relio.binding import payload as payload_codec
from relio.cluster.bus import CLOSE_ROOM, DISCONNECT, ENTER_ROOM, LEAVE_ROOM, count_relayed
from relio.cluster.loop import CLUSTER_LOOP, ClusterLoop
from relio.cluster.node import READER_READY_WAIT, RedisNode
from relio.cluster.redis_emitter import RedisEmitter
from relio.cluster.store import DURABLE, FAST
from relio.cluster.thread_host import HAND_OVER_ALL_WAIT, ThreadRedisHost
from relio.config import Config
from relio.engine.errors import QueueFull
from relio.threading.server import Manager

__all__ = ["RedisManager", "DURABLE", "FAST"]


class RedisManager(RedisNode, Manager):
    """Redis-backed client manager for thread-based relio servers on several processes or hosts.

    Arguments are python-socketio's ``RedisManager``'s:

    :param url: the Redis connection URL (``redis://``, ``rediss://``, ``unix://``).
    :param channel: the name shared by every node of one application (the stream is
                    ``relio:<channel>:bus``); asyncio nodes (:class:`relio.AsyncRedisManager`)
                    on the same channel are nodes of the same application.
    :param write_only: only emit (a process that is not a Socket.IO server, e.g. a worker).
    :param logger: a logger for the manager's messages (default: relio's).
    :param json: a JSON module for ``write_only`` instances (servers use their own).
    :param redis_options: keyword arguments for ``redis.Redis.from_url`` (``write_only``) or
                          ``redis.asyncio.Redis.from_url`` (a server's manager).

    relio adds ``relio_config`` (a :class:`relio.Config`; the ``relay_*`` fields apply) for
    ``write_only`` instances (a server's manager uses the server's), ``mode`` (``'durable'``, the
    default: nothing leaves a session, and no handler sees a message, before the session's state
    is in Redis; or ``'fast'``) and ``bridge_socketio``, as :class:`relio.AsyncRedisManager`. See
    ``docs/SCALING.md``.

    ``emit`` returns a :class:`relio.Delivery` (thread-based: ``delivery.wait()``): its local
    recipients confirm delivery; the part that goes to other nodes (``delivery.relayed``) confirms
    that Redis holds the message, after which every node applies it exactly once.

    Usage::

        mgr = relio.RedisManager('redis://')
        sio = relio.Server(client_manager=mgr)
    """

    name = "relio-redis"

    def __init__(self, url: str = "redis://localhost:6379/0", channel: str = "socketio",
                 write_only: bool = False, logger: logging.Logger | None = None, json=None,
                 redis_options: dict | None = None, relio_config: Config | None = None,
                 mode: str = DURABLE, bridge_socketio: bool = True,
                 cluster_loop: ClusterLoop = CLUSTER_LOOP):
        super().__init__()
        #: the publisher of a write-only manager (None on a server's)
        self.emitter: RedisEmitter | None = None
        if write_only:
            self.write_only = True
            self.channel = channel
            self.logger = logger
            self.mode = mode
            self.emitter = RedisEmitter(url, channel, logger, json, redis_options, relio_config)
            return
        self._setup_node(url, channel, write_only, logger, json, redis_options, relio_config,
                         mode, bridge_socketio)
        #: the loop the bus, the store and the bridge run on
        self.cluster = cluster_loop
        #: the server's session host: the store, on the cluster loop
        self.session_host = ThreadRedisHost(self.session_store, cluster_loop)
        self._closed = False

    @property
    def host_id(self) -> str:
        """This node's id on the bus (a write-only manager's: its publisher id)."""
        return self.emitter.host_id if self.emitter is not None else self.bus.host_id

    @property
    def stats(self) -> dict:
        """The counters of :attr:`relio.AsyncRedisManager.stats` (a write-only manager's:
        ``published``, ``failed``, ``redis_errors``)."""
        if self.emitter is not None:
            return self.emitter.stats
        return super().stats

    # --- set-up and tear-down ------------------------------------------------------------------
    def initialize(self):
        super().initialize()
        if self.emitter is None:
            self.cluster.run(self._start())

    async def _start(self) -> None:
        self._start_node()

    def close(self) -> None:
        """Stop the reader, give the queued entries ``relay_timeout`` to reach Redis (what does not
        fails its Delivery), close the connection. Servers call it on shutdown."""
        if self.emitter is not None:
            self.emitter.close()
            return
        if not self._closed:
            self._closed = True
            self.cluster.run(self._close_node(), HAND_OVER_ALL_WAIT + self.config.relay_timeout)

    # --- what the server calls ---------------------------------------------------------------
    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
             to=None, block=True, _encoded: bytes | None = None, _msg_id: bytes | None = None,
             ignore_queue=False, **kwargs):
        """Emit to one client, a room or a namespace, on every node.

        The local recipients get it at once; the other nodes through Redis (the entry is handed
        to the cluster loop in this thread's order; this waits only while the relay queue is
        full). Returns a :class:`relio.Delivery` (``wait()``: the local recipients have it and
        Redis holds the entry).
        """
        namespace = namespace or "/"
        room = to or room
        if self.emitter is not None:
            return self.emitter.emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                     callback=callback)
        if ignore_queue or self._local_sid(room, namespace):
            return super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                callback=callback, block=block)
        msg_id = self._next_msg_id()
        server = getattr(self, "server", None)
        codec = self._codec if server is None else server.relio_codec
        payload = payload_codec.encode([event, *payload_codec.as_args(data)], codec)
        delivery = super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                callback=callback, block=block, _msg_id=msg_id,
                                _encoded=payload)
        header = self._emit_entry(event, namespace, room, skip_sid, callback, msg_id, False)
        self._relay(header, payload, delivery, block)
        return delivery

    def pre_connect(self, eio_sid, namespace):
        """python-socketio's ``pre_connect``, once this node's bus reader knows where it starts
        (see :meth:`relio.AsyncRedisManager.pre_connect`)."""
        if self.emitter is None and self.bus.reading and not self.bus.reader_ready.is_set():
            self.cluster.run(self._reader_ready())
        return super().pre_connect(eio_sid, namespace)

    async def _reader_ready(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.bus.reader_ready.wait(), READER_READY_WAIT)

    def can_disconnect(self, sid, namespace):
        if self.emitter is not None:
            return self.emitter.can_disconnect(sid, namespace)
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return super().can_disconnect(sid, namespace)
        self._relay(self._entry(DISCONNECT, namespace, sid=sid))
        return False

    def disconnect(self, sid, namespace, **kwargs):
        if self.emitter is not None:
            return self.emitter.disconnect(sid, namespace)
        if kwargs.get("ignore_queue") or self._local_sid(sid, namespace):
            return super().disconnect(sid, namespace=namespace)
        self._relay(self._entry(DISCONNECT, namespace, sid=sid))

    def enter_room(self, sid, namespace, room, eio_sid=None):
        if self.emitter is not None:
            return self.emitter.enter_room(sid, namespace, room)
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._relay(self._entry(ENTER_ROOM, namespace, sid=sid, r=room))

    def leave_room(self, sid, namespace, room):
        if self.emitter is not None:
            return self.emitter.leave_room(sid, namespace, room)
        if self._local_sid(sid, namespace) or self.is_pre_connected(sid, namespace):
            return super().leave_room(sid, namespace, room)
        self._relay(self._entry(LEAVE_ROOM, namespace, sid=sid, r=room))

    def close_room(self, room, namespace=None):
        if self.emitter is not None:
            return self.emitter.close_room(room, namespace)
        super().close_room(room, namespace or "/")
        self._relay(self._entry(CLOSE_ROOM, namespace, r=room))

    def _relay(self, header, payload: bytes = b"", delivery=None, block: bool = True) -> None:
        """Queue one entry for the bus, in this thread's order. With room in the relay queue it
        is handed to the cluster loop without waiting (the delivery counts it at once);
        otherwise this waits, as :meth:`relio.AsyncRedisManager.emit` does, for room (bounded by
        relay_timeout; :raises QueueFull: with ``block=False``; :raises RelayError:)."""
        bus = self.bus
        # (on the loop itself, applying an entry, nothing may wait)
        if bus.has_room(self.cluster.posted) or self.cluster.in_loop():
            if delivery is not None:
                count_relayed(delivery)
            self.cluster.post(bus.enqueue, header, payload, delivery)
            return
        self.cluster.run(bus.relay(header, payload, delivery, block))

    # --- RedisNode's hooks (on the cluster loop) -----------------------------------------------
    async def emit_here(self, event, data, namespace, room=None, skip_sid=None, callback=None,
                        *, source: str, _encoded: bytes | None = None,
                        _msg_id: bytes | None = None) -> None:
        """Emit to this node's clients only, a message that came from elsewhere (``source``). It
        never waits: a session whose outbox is full fails the message (``relio_delivery_error``
        on this node) and the others get theirs."""
        try:
            Manager.emit(self, event, data, namespace, room=room, skip_sid=skip_sid,
                         callback=callback, block=False, _encoded=_encoded, _msg_id=_msg_id)
        except QueueFull as exc:
            self._undeliverable(source, exc, namespace, event)

    async def disconnect_here(self, sid, namespace) -> None:
        # (the server's disconnect waits for the session's outbox: not on the cluster loop)
        self.server.start_background_task(self.server.disconnect, sid, namespace=namespace,
                                          ignore_queue=True)

    async def _callback_here(self, sid, callback_id, args: list) -> None:
        self.server.start_background_task(self.trigger_callback, sid, callback_id, args)

    def schedule(self, coro):
        return self.cluster.submit(coro)
