"""``relio.AsyncServer``: python-socketio's ``AsyncServer`` with reliable, resumable sessions.

This module owns the server's socket.io plumbing: which connections speak relio (the handshake in
:mod:`relio.binding.wire`), creating, suspending, resuming and ending sessions, routing emits to
sessions and batches to connections, and turning delivered messages into handler calls exactly as
python-socketio would make them (the decisions that never wait are
:class:`~relio.binding.server_shell.ServerShell`'s, shared with the thread-based server: this
module does the awaiting). The protocol itself is the engine's; the asyncio glue is
:class:`relio.asyncio.channel.Channel`; the session tables are
:class:`~relio.asyncio.registry.SessionRegistry`'s; whatever keeps sessions beyond this process is
the manager's :class:`~relio.asyncio.hosting.SessionHost`.

A relio session keeps its socket.io ``sid`` for its whole life. When its connection drops, the sid
stays in the manager's rooms, mapped to the dead engine.io sid: broadcasts, ``rooms()``,
``enter_room()`` and sessions keep working and whatever is emitted to it waits in its outbox. When
the client resumes on a new connection, every room entry is re-pointed to the new engine.io sid and
the engine retransmits exactly what the client lacks. Plain Socket.IO clients take
python-socketio's paths untouched.
"""

from __future__ import annotations

import asyncio
import logging

import socketio
from socketio import exceptions, packet

from relio.asyncio.channel import Channel
from relio.asyncio.dispatch import spawn
from relio.asyncio.hosting import SessionHost
from relio.asyncio.registry import ServerSession, SessionRegistry
from relio.asyncio.results import Delivery
from relio.binding import events, wire
from relio.binding import payload as payload_codec
from relio.binding.server_shell import FROM_ENCODED, EmitRoute, ManagerShell, ServerShell
from relio.config import Config
from relio.engine._engine import Engine
from relio.engine.errors import DeliveryError, QueueFull, RemoteProtocolError
from relio.observe.hooks import NULL_OBSERVER, Observer, Observers

logger = logging.getLogger("relio")


class AsyncManager(ManagerShell, socketio.AsyncManager):
    """python-socketio's in-process client manager, delivering to relio sessions through their
    channels (so a broadcast reaches connected and suspended relio sessions alike).

    ``session_host`` is where the server's sessions live beyond this process: a
    :class:`relio.asyncio.hosting.SessionHost` (this node only) unless a subclass gives another.
    """

    def __init__(self):
        super().__init__()
        self.session_host: SessionHost = SessionHost()

    def set_server(self, server):
        super().set_server(server)
        self.session_host.bind(server)

    # --- for relio.observe (metrics) -----------------------------------------------------------
    @property
    def relio_host_id(self) -> str | None:
        """This node's id among several (None: one node)."""
        return None

    @property
    def relio_cluster_stats(self) -> dict[str, int]:
        """Counters of the layer that joins several nodes (empty: one node)."""
        return {}

    @property
    def relio_cluster_latencies(self) -> dict:
        """Its :class:`relio.observe.instruments.Histogram` objects by name (``relay_lag``,
        ``save``)."""
        return {}

    async def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
                   to=None, block=True, ignore_queue=False, _encoded: bytes | None = None,
                   _msg_id: bytes | None = None, **kwargs):
        """Emit to one client, a room or a namespace; returns a :class:`relio.Delivery`.

        (``_encoded``, ``_msg_id``: the payload already encoded and the message's id, as a message
        relayed between nodes arrives.)
        Note: this method is a coroutine.
        """
        delivery = Delivery()
        room = to or room
        server = self.server
        encoded: payload_codec.Encoded | None = _encoded
        rooms = self.rooms.get(namespace)
        if rooms is None:
            self._fail_if_ended(delivery, room, namespace, event)
            return delivery
        if skip_sid is None and type(room) is str:
            # The common case, an emit to one client's sid: straight into its session's outbox
            # (what the routing below does for a one-member room, without its bookkeeping). Any
            # trouble (a full outbox, an ended session) goes the general way, which handles it.
            # (The room's members read from its bidict's forward dict, as python-socketio's own
            # get_participants reads them: the bidict's len and "in" are two Python calls more.)
            members = rooms.get(room)
            if members is not None and len(fwd := members._fwdm) == 1 and room in fwd:
                channel = server.relio_registry.channel(room)
                if channel is not None:
                    if encoded is None:
                        encoded = payload_codec.encode_event(event, data, server.relio_codec)
                    try:
                        channel.send_nowait(encoded, event, delivery, callback, _msg_id)
                        return delivery
                    except (QueueFull, DeliveryError):
                        pass                # encoded: the general way takes it as it is
        args = None if data is FROM_ENCODED else payload_codec.as_args(data)
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid]
        route = EmitRoute(delivery, args, encoded)
        for channel in self._relio_route(route, event, namespace,
                                         self.get_participants(namespace, room), skip_sid,
                                         callback, block, _msg_id):
            try:
                await channel.send(route.encoded, event, delivery, callback, msg_id=_msg_id)
            except DeliveryError as exc:
                route.failed(exc)
        plain = route.plain
        if not delivery.recipients and not plain:
            self._fail_if_ended(delivery, room, namespace, event)
        if plain:
            if args is None:
                assert _encoded is not None
                args = payload_codec.decode(_encoded, server.relio_codec)[1:]
            delivery.unconfirmed = len(plain)
            await self._emit_plain(event, args, namespace, plain, callback)
        route.raise_if_full()
        return delivery

    def _relio_queue_full(self, namespace) -> None:
        self.server.relio_observer.queue_full(namespace)

    async def _emit_plain(self, event, args, namespace, recipients, callback):
        """python-socketio's own emit, for the plain Socket.IO clients among the recipients."""
        server = self.server
        if not callback:
            eio_pkts = self._plain_packets(event, args, namespace)
            for _, eio_sid in recipients:
                for p in eio_pkts:
                    await server._send_eio_packet(eio_sid, p)
        else:
            for sid, eio_sid in recipients:
                await server._send_packet(
                    eio_sid, self._plain_request(sid, event, args, namespace, callback))


class AsyncServer(ServerShell, socketio.AsyncServer):
    """A Socket.IO server for asyncio with reliable delivery and resumable sessions.

    Takes every argument of ``socketio.AsyncServer`` (and of engine.io), plus:

    :param relio_config: a :class:`relio.Config` with relio's limits and timers (one per server;
                         every session uses it). Defaults to :data:`relio.DEFAULT_CONFIG`.

    Between this server and :class:`relio.AsyncClient` every ``emit``, ``send`` and ``call`` is
    delivered exactly once and in order per namespace, across disconnects, for as long as the
    session lives (``session_ttl`` after its connection drops). Plain Socket.IO clients connect and
    behave exactly as with python-socketio.

    Events relio adds (register them like any handler): ``relio_resume(sid, environ, auth)`` when
    a session resumes on a new connection (return False to refuse), ``relio_suspend(sid, reason)``
    when its connection drops and it waits to be resumed, ``relio_delivery_error(sid, error)``
    when a message will never be delivered. ``connect`` and ``disconnect`` fire once per session.
    """

    #: Suspended sessions keep the environ, not the dead connection's ASGI callables (they hold
    #: the whole websocket object graph, ~18 KB per session).
    _relio_connection_keys = frozenset({'asgi.receive', 'asgi.send'})

    def __init__(self, client_manager=None, logger=False, json=None, async_handlers=True,
                 namespaces=None, relio_config: Config | None = None, **kwargs):
        if client_manager is None:
            client_manager = AsyncManager()
        elif not isinstance(client_manager, AsyncManager):
            raise TypeError("relio.AsyncServer needs a relio client manager "
                            "(relio.AsyncManager); got " + type(client_manager).__name__)
        super().__init__(client_manager=client_manager, logger=logger, json=json,
                         async_handlers=async_handlers, namespaces=namespaces, **kwargs)
        self._relio_setup(relio_config)
        #: every relio session of this server and the tables that find them
        self.relio_registry = SessionRegistry(self.relio_config, self._end,
                                              self._connection_unreferenced)
        self._relio_host: SessionHost = client_manager.session_host
        self.relio_observer = NULL_OBSERVER

    @property
    def relio_observer(self) -> Observer:
        """What is told about sessions and failures (:class:`relio.observe.hooks.Observer`; set
        by :meth:`relio.observe.RelioMetrics.attach`)."""
        return self._relio_observer

    @relio_observer.setter
    def relio_observer(self, observer: Observer) -> None:
        self._relio_observer = observer
        self.relio_registry.observer = observer

    def relio_observe(self, observer: Observer) -> None:
        """Tell ``observer`` too about sessions and failures from now on (sessions already made
        keep the handler timing they had)."""
        current = self._relio_observer
        if current is NULL_OBSERVER:
            self.relio_observer = observer
        elif isinstance(current, Observers):
            self.relio_observer = Observers(*current.observers, observer)
        else:
            self.relio_observer = Observers(current, observer)

    # --- public API additions and overrides ---------------------------------------------------
    async def emit(self, event, data=None, to=None, room=None, skip_sid=None, namespace=None,
                   callback=None, ignore_queue=False, block=True):
        """Emit a custom event to one or more connected clients.

        Arguments are python-socketio's; relio adds ``block``: when a relio recipient's outbox is
        full, wait for room (the default) or raise :class:`relio.QueueFull`.

        Returns a :class:`relio.Delivery`: ``await`` it to learn that every relio recipient has the
        message (or get :class:`relio.DeliveryError`).

        Note: this method is a coroutine.
        """
        namespace = namespace or '/'
        room = to or room
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('emitting event "%s" to %s [%s]', event, room or 'all', namespace)
        return await self.manager.emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                       callback=callback, ignore_queue=ignore_queue, block=block)

    async def send(self, data, to=None, room=None, skip_sid=None, namespace=None, callback=None,
                   ignore_queue=False, block=True):
        """Send a ``message`` event; see :meth:`emit`. Note: this method is a coroutine."""
        return await self.emit('message', data=data, to=to, room=room, skip_sid=skip_sid,
                               namespace=namespace, callback=callback, ignore_queue=ignore_queue,
                               block=block)

    async def call(self, event, data=None, to=None, sid=None, namespace=None, timeout=60,
                   ignore_queue=False, block=True):
        """Emit an event to a client and wait for its handler's response.

        With a relio client the request and its response survive reconnects: the handler runs once,
        and only ``timeout`` (or the end of the session, as :class:`relio.DeliveryError`) stops the
        wait. If the client answers with a chained reply, a :class:`relio.Question` is returned.

        Note: this method is a coroutine.
        """
        target = to or sid
        channel, encoded = self._relio_call_channel(event, data, target, namespace)
        if channel is None:
            return await super().call(event, data=data, to=target, namespace=namespace,
                                      timeout=timeout, ignore_queue=ignore_queue)
        return await channel.call(encoded, event, timeout, block)

    async def get_session(self, sid, namespace=None):
        session = self.relio_registry.get(sid)
        if session is not None:
            return session.data
        return await super().get_session(sid, namespace=namespace)

    async def save_session(self, sid, session, namespace=None):
        relio_session = self.relio_registry.get(sid)
        if relio_session is not None:
            relio_session.data = session
            return
        await super().save_session(sid, session, namespace=namespace)

    def transport(self, sid, namespace=None):
        """The transport of a client (None for a relio session waiting to be resumed)."""
        session = self.relio_registry.get(sid)
        if session is not None and not session.attached:
            return None
        return super().transport(sid, namespace=namespace)

    async def disconnect(self, sid, namespace=None, ignore_queue=False):
        """Disconnect a client; a relio session ends (its pending messages fail with
        :class:`relio.DeliveryError`, reason ``"server disconnect"``)."""
        session = self.relio_registry.get(sid)
        if session is not None:
            # Like python-socketio, what was emitted before disconnect() still goes out first;
            # relio waits (bounded) for it to be acknowledged so its senders hear the truth.
            await session.channel.drain(self.relio_config.drain_timeout)
            if self.relio_registry.forget(session):
                self._relio_observer.session_ended(session.namespace, 'server disconnect')
            session.channel.close('server disconnect')
        await super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)

    async def shutdown(self):
        """Stop Socket.IO background tasks; every relio session ends (reason ``server shutdown``).

        Note: this method is a coroutine.
        """
        self.relio_registry.close()
        # Several nodes: the sessions live on; their clients resume them on another node.
        await self._relio_host.hand_over_all()
        for session in self.relio_registry:
            self.relio_registry.forget(session)
            session.channel.close('server shutdown')
            await self._finish_session(session, 'server shutdown')
        await self._relio_host.close()
        close = getattr(self.manager, 'close', None)
        if close is not None:           # relio.AsyncRedisManager: stop its reader and publisher
            await close()
        await super().shutdown()

    def instrument(self, auth=None, mode='development', read_only=False, server_id=None,
                   namespace='/admin', server_stats_interval=2):
        """Instrument the server for the Socket.IO Admin UI (python-socketio's arguments); relio
        sessions show as they are: a suspended one stays listed as suspended until it ends
        (:mod:`relio.observe.admin`)."""
        from relio.observe.admin import RelioInstrumentedServer
        return RelioInstrumentedServer(self, auth=auth, mode=mode, read_only=read_only,
                                       server_id=server_id, namespace=namespace,
                                       server_stats_interval=server_stats_interval)

    # --- connection handshake ------------------------------------------------------------------
    async def _handle_connect(self, eio_sid, namespace, data):
        namespace = namespace or '/'
        hello, auth = wire.relio_hello(data, self.environ.get(eio_sid), namespace)
        if hello is None:
            # No relio asked for, a relio client of another version, or a namespace too long for
            # a carrier: served as a plain Socket.IO client.
            return await super()._handle_connect(eio_sid, namespace, auth)
        refused = None
        if 'sid' in hello:
            refused = await self._resume_session(eio_sid, namespace, hello, auth)
            if refused is None:
                return
            self._relio_observer.resume_refused(namespace, refused)
        await self._connect_session(eio_sid, namespace, auth, refused)

    async def _connect_session(self, eio_sid, namespace, auth, refused):
        """python-socketio's ``_handle_connect``, creating a relio session for the new sid."""
        sid = None
        if self._relio_namespace_served(namespace):
            sid = await self.manager.pre_connect(eio_sid, namespace)
        if sid is None:
            await self._send_packet(eio_sid, self.packet_class(
                packet.CONNECT_ERROR, data='Unable to connect', namespace=namespace))
            return
        session = self._new_session(sid, namespace, eio_sid)
        reply = wire.connect_reply(sid, session.credential, self.relio_config,
                                   self.eio.max_http_buffer_size, refused=refused)
        if self.always_connect:
            await self._send_connect(eio_sid, namespace, reply, session)
            await self.manager.connect(sid, namespace)
        refusal = None
        environ = self.environ.get(eio_sid, {})
        try:
            if auth:
                success = await self._trigger_event('connect', namespace, sid, environ, auth)
            else:
                try:
                    success = await self._trigger_event('connect', namespace, sid, environ, None)
                except TypeError as exc:
                    try:
                        success = await self._trigger_event('connect', namespace, sid, environ)
                    except TypeError:
                        raise exc from None
        except (exceptions.ConnectionRefusedError, ConnectionRefusedError) as exc:
            refusal = exc
            success = False
        if success is False:
            await self._send_packet(eio_sid, self._relio_refuse_connect(session, refusal))
            await self.manager.disconnect(sid, namespace, ignore_queue=True)
        elif not self.always_connect:
            await self._send_connect(eio_sid, namespace, reply, session)
            await self.manager.connect(sid, namespace)

    async def _send_connect(self, eio_sid, namespace, reply, session: ServerSession):
        await self._send_packet(eio_sid, self.packet_class(packet.CONNECT, reply,
                                                           namespace=namespace))
        # Batches follow the CONNECT packet on the same connection, so the client has set the
        # session up before the first one arrives.
        if not session.channel.closed:
            session.channel.attach(self._writer(eio_sid, namespace))
            self.relio_registry.bind(session)

    def _new_channel(self, engine: Engine, sid: str, namespace: str) -> Channel:
        channel = self._relio_host.make_channel(engine, self, json=self.relio_codec, sid=sid,
                                                namespace=namespace)
        channel.runner.on_duration = self._relio_observer.handler_timer(namespace)
        return channel

    def _new_session(self, sid, namespace, eio_sid) -> ServerSession:
        now = asyncio.get_running_loop().time()
        channel = self._new_channel(Engine(self.relio_config, now=now), sid, namespace)
        return self.relio_registry.create(sid, namespace, channel, eio_sid)

    async def _resume_session(self, eio_sid, namespace, hello, auth) -> str | None:
        """Resume the session named in ``hello`` on this connection; None if resumed, else the
        reason it was refused (the caller starts a new session and tells the client why)."""
        loop = asyncio.get_running_loop()
        registry = self.relio_registry
        sid = hello.get('sid')
        if isinstance(sid, str) and sid not in registry and self._relio_host.movable \
                and self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            # Not here: another node has it (or had it). Take it over.
            refused = await self._relio_host.claim(sid, namespace, eio_sid,
                                                   hello.get('credential'))
            if refused is not None:
                logger.info('relio: resume refused on %s [%s]: %s', eio_sid, namespace, refused)
                return refused
        resumable = self._relio_resumable(eio_sid, namespace, hello, loop.time())
        if isinstance(resumable, str):
            return resumable
        session, peer_state = resumable
        channel = session.channel
        environ = self.environ.get(eio_sid, {})
        try:
            allowed = await self._trigger_event(wire.RESUME_EVENT, namespace, sid, environ,
                                                auth or None)
        except (exceptions.ConnectionRefusedError, ConnectionRefusedError):
            allowed = False
        if allowed is False:
            return self._refuse_resume(session, 'resume refused by the server')
        old_eio = session.eio_sid
        registry.unbind(session)
        if channel.attached:
            channel.detach()           # half-open: the old connection is still up
        try:
            channel.engine.resume(peer_state, loop.time())
        except RemoteProtocolError as exc:
            return self._refuse_resume(session, f'protocol error: {exc.reason}')
        reply = self._relio_move(session, eio_sid)
        await self._send_connect(eio_sid, namespace, reply, session)
        logger.info('relio: session %s [%s] resumed on %s', sid, namespace, eio_sid)
        self._relio_host.resumed(session)     # the new credential, for other nodes
        self._relio_observer.resumed(session)
        if old_eio != eio_sid and old_eio in self.eio.sockets \
                and not registry.references(old_eio):
            spawn(self.eio.disconnect(old_eio))
        return None

    # --- transport -------------------------------------------------------------------------
    async def _handle_eio_message(self, eio_sid, data):
        if self._relio_is_carrier(eio_sid, data):
            try:
                self._relio_receive(eio_sid, data)
            except RemoteProtocolError as exc:
                logger.warning('relio: closing %s: %s', eio_sid, exc.reason)
                await self.eio.disconnect(eio_sid)
            return
        return await super()._handle_eio_message(eio_sid, data)

    async def _handle_event(self, eio_sid, namespace, id, data):
        if self._relio_drops_event(eio_sid, namespace, data):
            return
        return await super()._handle_event(eio_sid, namespace, id, data)

    async def _send_packet(self, eio_sid, pkt):
        if self._relio_connection_gone(eio_sid):
            return       # a suspended session's connection is gone; nothing to tell it
        await super()._send_packet(eio_sid, pkt)

    async def _handle_eio_disconnect(self, eio_sid, reason):
        registry = self.relio_registry
        registry.connection_closed(eio_sid)
        self._relio_keep_environ(eio_sid)
        for namespace in list(self.manager.get_namespaces()):
            session = registry.bound(eio_sid, namespace)
            if session is not None and not session.channel.closed:
                self._suspend(session, reason)
                continue
            await self._handle_disconnect(eio_sid, namespace, reason)
        if eio_sid in self.environ and not registry.references(eio_sid):
            del self.environ[eio_sid]

    async def _handle_disconnect(self, eio_sid, namespace, reason=None):
        namespace = namespace or '/'
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        session = self.relio_registry.get(sid)
        if session is not None:
            # The client ended the session (socket.io DISCONNECT, after relio's CLOSE).
            if self.relio_registry.forget(session):
                self._relio_observer.session_ended(namespace, reason or 'client disconnect')
            session.channel.close(reason or 'client disconnect')
        else:
            session = self.relio_registry.draining(sid)
        if session is not None:
            await session.channel.idle()  # sequential handlers first, as python-socketio orders
        await super()._handle_disconnect(eio_sid, namespace, reason)

    # --- session lifetime ------------------------------------------------------------------
    def _suspend(self, session: ServerSession, reason) -> None:
        session.channel.detach()
        logger.info('relio: session %s [%s] suspended (%s)', session.sid, session.namespace,
                    reason)
        self.relio_registry.park(session, asyncio.get_running_loop().time())
        # The client may come back through another node: leave the session where it can find it.
        self._relio_host.suspended(session)
        self._relio_observer.suspended(session, reason)
        spawn(self._trigger_event(wire.SUSPEND_EVENT, session.namespace, session.sid, reason))

    def _end(self, session: ServerSession, reason: str, close_reason: str | None = None) -> None:
        """End a session for ``reason``: its pending messages fail (with ``close_reason``, by
        default ``reason``) and ``disconnect`` fires."""
        if not self.relio_registry.forget(session, reason):
            return
        session.channel.close(close_reason or reason)
        spawn(self._finish_session(session, reason))

    async def _finish_session(self, session: ServerSession, reason: str) -> None:
        """The socket.io side of a session that relio ended: tell the client if it is still
        connected, fire ``disconnect`` once, leave every room."""
        sid, namespace = session.sid, session.namespace
        self.relio_registry.remember_ended(sid, reason)
        self._relio_host.ended(session, reason)
        self._relio_observer.session_ended(namespace, reason)
        # With async_handlers=False python-socketio runs each handler before reading the next
        # packet, so `disconnect` comes after every handler of the session: keep that order.
        await session.channel.idle()
        if not self.manager.is_connected(sid, namespace):
            return
        eio_sid = self.manager.pre_disconnect(sid, namespace)
        if eio_sid in self.eio.sockets:
            await super()._send_packet(eio_sid, self.packet_class(packet.DISCONNECT,
                                                                  namespace=namespace))
        await self._trigger_event('disconnect', namespace, sid, reason)
        await self.manager.disconnect(sid, namespace, ignore_queue=True)
        if not self.relio_registry.references(eio_sid) and eio_sid not in self.eio.sockets:
            self.environ.pop(eio_sid, None)

    # --- for session hosts (sessions moving between nodes) --------------------------------------
    def relio_export(self, session: ServerSession, max_ids: int = -1) -> tuple[dict, bytes]:
        """What another node needs to carry ``session`` on: the socket.io layer's part (rooms,
        the application's session dict) and the engine snapshot (``max_ids``: of the id set, only
        the newest). Taken synchronously."""
        snapshot = session.channel.engine.snapshot(asyncio.get_running_loop().time(), max_ids)
        return self._relio_session_meta(session), snapshot

    def relio_export_apart(self, session: ServerSession, max_ids: int,
                           stored: set) -> tuple[dict, bytes, list, bytes, list]:
        """:meth:`relio_export` with the outbox's messages kept apart (a host that saves often
        writes each message once): ``(meta, snapshot, added, records, gone)``, see
        ``Engine.snapshot_apart``; :meth:`relio_adopt` takes the snapshot with every message's
        record (``records``, by id). Taken synchronously."""
        snapshot, added, records, gone = session.channel.engine.snapshot_apart(
            asyncio.get_running_loop().time(), max_ids, stored)
        return self._relio_session_meta(session), snapshot, added, records, gone

    def relio_adopt(self, sid, namespace, eio_sid, credential, meta, snapshot,
                    records=None) -> ServerSession:
        """Register a session moved here from another node (parked on ``eio_sid`` until the resume
        that asked for it completes; ``records``: the message records of a
        :meth:`relio_export_apart` snapshot). :raises RemoteProtocolError: the snapshot is
        invalid."""
        self._relio_check_record(sid, namespace, meta)
        now = asyncio.get_running_loop().time()
        engine = Engine.restore(snapshot, self.relio_config, now=now, records=records)
        channel = self._new_channel(engine, sid, namespace)
        return self._relio_adopted(sid, namespace, eio_sid, credential, meta, channel, now)

    def relio_release(self, session: ServerSession, reason: str | None) -> None:
        """The session now lives on another node: drop it here without ending it (no
        ``disconnect``; its record is not touched). ``reason``: this copy was stale (fenced)."""
        if not self.relio_registry.forget(session):
            return
        sid, namespace, eio_sid = session.sid, session.namespace, session.eio_sid
        session.channel.abandon(reason)
        self.manager.basic_disconnect(sid, namespace)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None and not self.relio_registry.references(eio_sid) and not sock.closed:
            # A connection the client left (or that shutdown will close): drop it *without*
            # engine.io's CLOSE packet, which would tell the client not to reconnect.
            if sock.upgraded:
                sock.queue.put_nowait(None)       # the websocket writer exits and closes
            else:
                spawn(sock.close(wait=False, abort=True))
        logger.info('relio: session %s [%s] left this node%s', sid, namespace,
                    f' ({reason})' if reason else '')

    # --- ChannelHandler ------------------------------------------------------------------------
    def on_message(self, channel: Channel, msg_id: bytes, items: list, request: bool) -> None:
        if self._relio_observer.count_events and items and isinstance(items[0], str) \
                and items[0] not in wire.RESERVED_EVENTS:
            self._relio_observer.message_received(channel.namespace, items[0])
        events.dispatch_server_message(self, channel, msg_id, items, request)

    def on_undelivered(self, channel: Channel | None, error: DeliveryError,
                       seen: bool = False) -> None:
        namespace = self._relio_log_undelivered(error, seen)
        self._relio_observer.delivery_failed(namespace, error.reason)
        spawn(self._trigger_event(wire.DELIVERY_ERROR_EVENT, namespace, error.sid, error))

    def on_closed(self, channel: Channel, reason: str, by_peer: bool) -> None:
        closed = self._relio_closed(channel, reason, by_peer)
        if closed is None:
            return                      # already removed (ended, refused, moved away)
        session, reason = closed
        self.relio_registry.forget(session, reason)
        spawn(self._finish_session(session, reason))


__all__ = ["AsyncManager", "AsyncServer"]
