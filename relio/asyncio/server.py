"""``relio.AsyncServer``: python-socketio's ``AsyncServer`` with reliable, resumable sessions.

This module owns the server's socket.io plumbing: which connections speak relio (the handshake in
:mod:`relio.binding.wire`), the session table (sids, credentials, parking and expiry), routing emits to
sessions and batches to connections, and turning delivered messages into handler calls exactly as
python-socketio would make them. The protocol itself is the engine's; the asyncio glue is
:class:`relio.asyncio.channel.Channel`.

A relio session keeps its socket.io ``sid`` for its whole life. When its connection drops, the sid
stays in the manager's rooms, mapped to the dead engine.io sid: broadcasts, ``rooms()``,
``enter_room()`` and sessions keep working and whatever is emitted to it waits in its outbox. When the
client resumes on a new connection, every room entry is re-pointed to the new engine.io sid and the
engine retransmits exactly what the client lacks. Plain Socket.IO clients take python-socketio's
paths untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import socketio
from engineio import packet as eio_packet
from socketio import exceptions, packet

from relio.binding import payload as payload_codec
from relio.binding import wire
from relio.engine._engine import Engine
from relio.asyncio.channel import Channel, Delivery, spawn
from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import DeliveryError, QueueFull, RemoteProtocolError
from relio.binding.sessions import ResumeRefused, SessionTable

logger = logging.getLogger("relio")


class AsyncManager(socketio.AsyncManager):
    """python-socketio's in-process client manager, delivering to relio sessions through their
    channels (so a broadcast reaches connected and suspended relio sessions alike)."""

    async def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None,
                   to=None, block=True, _encoded: bytes | None = None,
                   _msg_id: bytes | None = None, **kwargs):
        """Emit to one client, a room or a namespace; returns a :class:`relio.Delivery`.

        (``_encoded``, ``_msg_id``: the payload already encoded and the message's id, as a message
        relayed between nodes arrives.)
        Note: this method is a coroutine.
        """
        delivery = Delivery()
        room = to or room
        args = payload_codec.as_args(data)
        if namespace not in self.rooms:
            error = self.server._ended_error(room, namespace, event)
            if error is not None:
                delivery._add()
                delivery._settle(error)
                self.server.on_undelivered(None, error)
            return delivery
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid]
        channels = self.server._relio_channels
        encoded = _encoded
        plain = []
        full = []
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip_sid:
                continue
            channel = channels.get(sid)
            if channel is None:
                plain.append((sid, eio_sid))
                continue
            if encoded is None:
                encoded = payload_codec.encode([event, *args], self.server._relio_codec)
            try:
                try:
                    channel.send_nowait(encoded, event, delivery, callback, _msg_id)
                except QueueFull:
                    if not block:
                        full.append(sid)
                        continue
                    # Waits for room; a session that ends meanwhile fails only its own delivery.
                    await channel.send(encoded, event, delivery, callback, msg_id=_msg_id)
            except DeliveryError as exc:
                delivery._add()
                delivery._settle(exc)
        if not delivery.recipients and not plain and isinstance(room, str):
            error = self.server._ended_error(room, namespace, event)
            if error is not None:       # addressed to a relio session that has ended
                delivery._add()
                delivery._settle(error)
                self.server.on_undelivered(None, error)
        if plain:
            delivery.unconfirmed = len(plain)
            await self._emit_plain(event, args, namespace, plain, callback)
        if full:
            raise QueueFull(f"outbox full for {', '.join(full)}: the message was not queued for "
                            "them (queued for the other recipients)")
        return delivery

    async def _emit_plain(self, event, args, namespace, recipients, callback):
        """python-socketio's own emit, for the plain Socket.IO clients among the recipients."""
        server = self.server
        if not callback:
            pkt = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args])
            encoded = pkt.encode()
            if not isinstance(encoded, list):
                encoded = [encoded]
            eio_pkts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]
            for _, eio_sid in recipients:
                for p in eio_pkts:
                    await server._send_eio_packet(eio_sid, p)
        else:
            for sid, eio_sid in recipients:
                ack_id = self._generate_ack_id(sid, callback)
                pkt = server.packet_class(packet.EVENT, namespace=namespace,
                                          data=[event, *args], id=ack_id)
                await server._send_packet(eio_sid, pkt)


class AsyncServer(socketio.AsyncServer):
    """A Socket.IO server for asyncio with reliable delivery and resumable sessions.

    Takes every argument of ``socketio.AsyncServer`` (and of engine.io), plus:

    :param relio_config: a :class:`relio.Config` with relio's limits and timers (one per server;
                         every session uses it). Defaults to :data:`relio.DEFAULT_CONFIG`.

    Between this server and :class:`relio.AsyncClient` every ``emit``, ``send`` and ``call`` is
    delivered exactly once and in order per namespace, across disconnects, for as long as the
    session lives (``session_ttl`` after its connection drops). Plain Socket.IO clients connect and
    behave exactly as with python-socketio.

    Events relio adds (register them like any handler): ``relio_resume(sid, environ, auth)`` when a
    session resumes on a new connection (return False to refuse), ``relio_suspend(sid, reason)`` when
    its connection drops and it waits to be resumed, ``relio_delivery_error(sid, error)`` when a
    message will never be delivered. ``connect`` and ``disconnect`` fire once per session.
    """

    def __init__(self, client_manager=None, logger=False, json=None, async_handlers=True,
                 namespaces=None, relio_config: Config | None = None, **kwargs):
        if client_manager is None:
            client_manager = AsyncManager()
        elif not isinstance(client_manager, AsyncManager):
            raise TypeError("relio.AsyncServer needs a relio client manager "
                            "(relio.AsyncManager); got " + type(client_manager).__name__)
        super().__init__(client_manager=client_manager, logger=logger, json=json,
                         async_handlers=async_handlers, namespaces=namespaces, **kwargs)
        self.relio_config = relio_config or DEFAULT_CONFIG
        self._relio_codec = payload_codec.JsonCodec(self.packet_class.json)
        self.reserved_events = list(self.reserved_events) + [
            e for e in sorted(wire.LIFECYCLE_EVENTS) if e not in self.reserved_events]
        wire.redact_credentials(self.logger, self.eio.logger)   # credentials are never logged
        self._relio_table = SessionTable(self.relio_config)
        self._relio_channels: dict[str, Channel] = {}                 # sid -> channel
        self._relio_bound: dict[tuple[str, str], Channel] = {}        # (eio_sid, ns) -> channel
        self._relio_eio_refs: dict[str, int] = {}                     # eio_sid -> sessions on it
        self._relio_expiry: asyncio.TimerHandle | None = None
        self._relio_ended: OrderedDict[str, str] = OrderedDict()     # sid -> why it ended
        self._relio_draining: dict[str, Channel] = {}    # ended, sequential handlers still running
        self._relio_connections: set[str] = set()        # eio sids that carry relio sessions

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
        if target is None:
            raise ValueError('Cannot use call() to broadcast.')
        channel = self._relio_channels.get(target)
        if channel is None:
            error = self._ended_error(target, namespace or '/', event)
            if error is not None:
                raise error
            return await super().call(event, data=data, to=target, namespace=namespace,
                                      timeout=timeout, ignore_queue=ignore_queue)
        encoded = payload_codec.encode([event, *payload_codec.as_args(data)],
                                       self._relio_codec)
        return await channel.call(encoded, event, timeout, block)

    async def get_session(self, sid, namespace=None):
        channel = self._relio_channels.get(sid)
        if channel is not None:
            return channel.user_session
        return await super().get_session(sid, namespace=namespace)

    async def save_session(self, sid, session, namespace=None):
        channel = self._relio_channels.get(sid)
        if channel is not None:
            channel.user_session = session
            return
        await super().save_session(sid, session, namespace=namespace)

    def transport(self, sid, namespace=None):
        """The transport of a client (None for a relio session waiting to be resumed)."""
        channel = self._relio_channels.get(sid)
        if channel is not None and not channel.attached:
            return None
        return super().transport(sid, namespace=namespace)

    async def disconnect(self, sid, namespace=None, ignore_queue=False):
        """Disconnect a client; a relio session ends (its pending messages fail with
        :class:`relio.DeliveryError`, reason ``"server disconnect"``)."""
        channel = self._relio_channels.get(sid)
        if channel is not None:
            # Like python-socketio, what was emitted before disconnect() still goes out first;
            # relio waits (bounded) for it to be acknowledged so its senders hear the truth.
            await channel.drain(self.relio_config.drain_timeout)
            self._forget(channel)
            channel.close('server disconnect')
        await super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)

    async def shutdown(self):
        """Stop Socket.IO background tasks; every relio session ends (reason ``server shutdown``).

        Note: this method is a coroutine.
        """
        if self._relio_expiry is not None:
            self._relio_expiry.cancel()
            self._relio_expiry = None
        if getattr(self.manager, 'relio_movable', False):
            # Several nodes: the sessions live on; their clients resume them on another node.
            await self.manager.relio_hand_over_all()
        for channel in list(self._relio_channels.values()):
            self._forget(channel)
            channel.close('server shutdown')
            await self._finish_session(channel, 'server shutdown')
        close = getattr(self.manager, 'close', None)
        if close is not None:           # relio.AsyncRedisManager: stop its reader and publisher
            await close()
        await super().shutdown()

    def session_stats(self, sid) -> dict | None:
        """Counters of a relio session (sent, delivered, retransmitted, duplicates dropped, in
        flight, outbox depth, RTT...), or None if ``sid`` is not a relio session."""
        channel = self._relio_channels.get(sid)
        if channel is None:
            return None
        stats = channel.stats
        session = self._relio_table.get(sid)
        stats["resumes"] = session.resumes if session is not None else 0
        return stats

    @property
    def relio_sessions(self) -> int:
        """relio sessions alive (connected or waiting to be resumed)."""
        return len(self._relio_channels)

    @property
    def relio_parked_sessions(self) -> int:
        """relio sessions whose connection dropped, waiting to be resumed."""
        return self._relio_table.parked

    # --- connection handshake ------------------------------------------------------------------
    async def _handle_connect(self, eio_sid, namespace, data):
        namespace = namespace or '/'
        hello = data.get(wire.HANDSHAKE_KEY) if isinstance(data, dict) else None
        if hello is None:
            return await super()._handle_connect(eio_sid, namespace, data)
        auth = {k: v for k, v in data.items() if k != wire.HANDSHAKE_KEY}
        if not isinstance(hello, dict) or hello.get('v') != wire.HANDSHAKE_VERSION:
            # A relio client of another version: serve it as a plain Socket.IO client.
            return await super()._handle_connect(eio_sid, namespace, auth)
        refused = None
        if 'sid' in hello:
            refused = await self._resume_session(eio_sid, namespace, hello, auth)
            if refused is None:
                return
        await self._connect_session(eio_sid, namespace, auth, refused)

    async def _connect_session(self, eio_sid, namespace, auth, refused):
        """python-socketio's ``_handle_connect``, creating a relio session for the new sid."""
        sid = None
        if namespace in self.handlers or namespace in self.namespace_handlers \
                or self.namespaces == '*' or namespace in self.namespaces:
            sid = await self.manager.pre_connect(eio_sid, namespace)
        if sid is None:
            await self._send_packet(eio_sid, self.packet_class(
                packet.CONNECT_ERROR, data='Unable to connect', namespace=namespace))
            return
        channel = self._new_session(sid, namespace, eio_sid)
        reply = {'sid': sid, wire.HANDSHAKE_KEY: {
            'v': wire.HANDSHAKE_VERSION, 'credential': channel.credential, 'resumed': False,
            'ttl': self.relio_config.session_ttl}}
        if refused:
            reply[wire.HANDSHAKE_KEY]['refused'] = refused
        if self.always_connect:
            await self._send_connect(eio_sid, namespace, reply, channel)
            await self.manager.connect(sid, namespace)
        fail_reason = exceptions.ConnectionRefusedError().error_args
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
                        raise exc
        except exceptions.ConnectionRefusedError as exc:
            fail_reason = exc.error_args
            success = False
        except ConnectionRefusedError:
            fail_reason = {"message": "Connection refused by server"}
            success = False
        if success is False:
            self._forget(channel)
            channel.close('connection refused')
            if self.always_connect:
                self.manager.pre_disconnect(sid, namespace)
                await self._send_packet(eio_sid, self.packet_class(
                    packet.DISCONNECT, data=fail_reason, namespace=namespace))
            else:
                await self._send_packet(eio_sid, self.packet_class(
                    packet.CONNECT_ERROR, data=fail_reason, namespace=namespace))
            await self.manager.disconnect(sid, namespace, ignore_queue=True)
        elif not self.always_connect:
            await self._send_connect(eio_sid, namespace, reply, channel)
            await self.manager.connect(sid, namespace)

    async def _send_connect(self, eio_sid, namespace, reply, channel):
        await self._send_packet(eio_sid, self.packet_class(packet.CONNECT, reply,
                                                           namespace=namespace))
        # Batches follow the CONNECT packet on the same connection, so the client has set the
        # session up before the first one arrives.
        if not channel.closed:
            self._bind(channel, eio_sid)
            channel.attach(self._writer(eio_sid, namespace))

    def _new_session(self, sid, namespace, eio_sid) -> Channel:
        now = asyncio.get_running_loop().time()
        channel = Channel(Engine(self.relio_config, now=now), self, json=self._relio_codec,
                          sid=sid, namespace=namespace)
        session = self._relio_table.create(sid, channel)
        channel.credential = session.credential
        channel.user_session = {}
        channel.eio_sid = eio_sid
        channel.finished = False
        self._relio_channels[sid] = channel
        self._relio_eio_refs[eio_sid] = self._relio_eio_refs.get(eio_sid, 0) + 1
        self._relio_make_durable(channel)
        return channel

    def _relio_make_durable(self, channel: Channel) -> None:
        if getattr(self.manager, 'mode', None) == 'durable':
            channel.make_durable(self.manager.relio_capture, self.manager.relio_persist)

    async def _resume_session(self, eio_sid, namespace, hello, auth) -> str | None:
        """Resume the session named in ``hello`` on this connection; None if resumed, else the
        reason it was refused (the caller starts a new session and tells the client why)."""
        loop = asyncio.get_running_loop()
        sid = hello.get('sid')
        if isinstance(sid, str) and sid not in self._relio_table \
                and getattr(self.manager, 'relio_movable', False) \
                and self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            # Not here: another node has it (or had it). Take it over through Redis.
            refused = await self.manager.relio_claim(sid, namespace, eio_sid,
                                                     hello.get('credential'))
            if refused is not None:
                logger.info('relio: resume refused on %s [%s]: %s', eio_sid, namespace, refused)
                return refused
        try:
            if not isinstance(sid, str):
                raise ResumeRefused('no session to resume for these credentials')
            session = self._relio_table.resume(sid, hello.get('credential'), loop.time())
        except ResumeRefused as exc:
            logger.info('relio: resume refused on %s [%s]: %s', eio_sid, namespace, exc)
            self._arm_expiry()
            return str(exc)
        channel: Channel = session.state
        if channel.namespace != namespace:
            self._forget(channel)
            channel.close('resumed on another namespace')
            spawn(self._finish_session(channel, 'resume refused'))
            return 'no session to resume for these credentials'
        current = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if current is not None and current != sid:
            # This connection already holds another session of the namespace (one per connection,
            # as in Socket.IO): refuse, and leave the session as it was (suspended or connected).
            if not channel.attached:
                self._suspend_again(channel)
            return 'the connection already has a session in this namespace'
        try:
            peer_state = wire.decode_state(hello.get('state'))
        except RemoteProtocolError as exc:
            return self._refuse_resume(channel, f'protocol error: {exc.reason}')
        environ = self.environ.get(eio_sid, {})
        try:
            allowed = await self._trigger_event(wire.RESUME_EVENT, namespace, sid, environ,
                                                auth or None)
        except (exceptions.ConnectionRefusedError, ConnectionRefusedError):
            allowed = False
        if allowed is False:
            return self._refuse_resume(channel, 'resume refused by the server')
        old_eio = channel.eio_sid
        self._unbind(channel)
        if channel.attached:
            channel.detach()           # half-open: the old connection is still up
        try:
            channel.engine.resume(peer_state, loop.time())
        except RemoteProtocolError as exc:
            return self._refuse_resume(channel, f'protocol error: {exc.reason}')
        # Re-point every room entry (and the "connected" room None) at the new connection.
        rooms = self.manager.rooms.get(namespace, {})
        for room in [None, *self.manager.get_rooms(sid, namespace)]:
            if room in rooms and sid in rooms[room]:
                rooms[room][sid] = eio_sid
        self._move_ref(old_eio, eio_sid)
        channel.eio_sid = eio_sid
        channel.unconfirmed_resume = True
        reply = {'sid': sid, wire.HANDSHAKE_KEY: {
            'v': wire.HANDSHAKE_VERSION, 'credential': session.credential, 'resumed': True,
            'ttl': self.relio_config.session_ttl,
            'state': wire.encode_state(channel.resume_state())}}
        await self._send_connect(eio_sid, namespace, reply, channel)
        logger.info('relio: session %s [%s] resumed on %s', sid, namespace, eio_sid)
        if getattr(self.manager, 'relio_movable', False):
            spawn(self.manager.relio_save(channel))     # the new credential, for other nodes
        if old_eio != eio_sid and old_eio in self.eio.sockets \
                and not self._relio_eio_refs.get(old_eio):
            spawn(self.eio.disconnect(old_eio))
        return None

    def _refuse_resume(self, channel: Channel, reason: str) -> str:
        self._forget(channel)
        channel.close(reason)
        spawn(self._finish_session(channel, reason))
        return reason

    # --- transport ---------------------------------------------------------------------------------
    def _writer(self, eio_sid, namespace):
        prefix = wire.carrier_prefix(namespace)
        sockets = self.eio.sockets
        Packet, MESSAGE = eio_packet.Packet, eio_packet.MESSAGE

        def write(batch: bytes) -> None:
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                raise ConnectionError('connection closed')
            sock.queue.put_nowait(Packet(MESSAGE, prefix + batch))
        return write

    def _bind(self, channel, eio_sid):
        self._relio_bound[(eio_sid, channel.namespace)] = channel
        # Remembered until the connection closes: a batch still in flight when its session ended
        # is a stray carrier to drop quietly, not a Socket.IO packet.
        self._relio_connections.add(eio_sid)

    def _unbind(self, channel):
        key = (channel.eio_sid, channel.namespace)
        if self._relio_bound.get(key) is channel:
            del self._relio_bound[key]

    def _move_ref(self, old_eio, new_eio):
        if old_eio == new_eio:
            return
        self._drop_ref(old_eio)
        self._relio_eio_refs[new_eio] = self._relio_eio_refs.get(new_eio, 0) + 1

    def _drop_ref(self, eio_sid):
        count = self._relio_eio_refs.get(eio_sid, 0) - 1
        if count > 0:
            self._relio_eio_refs[eio_sid] = count
            return
        self._relio_eio_refs.pop(eio_sid, None)
        if eio_sid not in self.eio.sockets:
            self.environ.pop(eio_sid, None)

    async def _handle_eio_message(self, eio_sid, data):
        if data.__class__ is bytes and eio_sid not in self._binary_packet \
                and (eio_sid in self._relio_eio_refs or eio_sid in self._relio_connections):
            try:
                namespace, batch = wire.split_carrier(data)
            except RemoteProtocolError as exc:
                logger.warning('relio: closing %s: %s', eio_sid, exc.reason)
                await self.eio.disconnect(eio_sid)
                return
            channel = self._relio_bound.get((eio_sid, namespace))
            if channel is not None:
                if channel.unconfirmed_resume:
                    # The client uses the resumed connection, so it got the new credential.
                    channel.unconfirmed_resume = False
                    self._relio_table.confirm(channel.sid)
                channel.receive(batch)
            return
        return await super()._handle_eio_message(eio_sid, data)

    async def _handle_event(self, eio_sid, namespace, id, data):
        if (eio_sid, namespace or '/') in self._relio_bound:
            # A relio session's events come through its engine only: a plain EVENT packet on its
            # connection would bypass ordering and exactly-once (and could fake 'disconnect').
            logger.warning('relio: dropped a plain Socket.IO event on relio session %s',
                           eio_sid)
            return
        # A plain client may not fire relio's lifecycle events (everything else is python-socketio's).
        if data and data[0] in wire.LIFECYCLE_EVENTS:
            logger.warning('relio: dropped reserved event %r from %s', data[0], eio_sid)
            return
        return await super()._handle_event(eio_sid, namespace, id, data)

    async def _send_packet(self, eio_sid, pkt):
        if eio_sid in self._relio_eio_refs and eio_sid not in self.eio.sockets:
            return       # a suspended session's connection is gone; nothing to tell it
        await super()._send_packet(eio_sid, pkt)

    async def _handle_eio_disconnect(self, eio_sid, reason):
        self._relio_connections.discard(eio_sid)
        environ = self.environ.get(eio_sid)
        if environ is not None and eio_sid in self._relio_eio_refs:
            # Suspended sessions keep the environ, not the dead connection's ASGI callables
            # (they hold the whole websocket object graph, ~18 KB per session).
            self.environ[eio_sid] = {k: v for k, v in environ.items()
                                     if k not in ('asgi.receive', 'asgi.send')}
        for namespace in list(self.manager.get_namespaces()):
            channel = self._relio_bound.get((eio_sid, namespace))
            if channel is not None and not channel.closed:
                self._suspend(channel, reason)
                continue
            await self._handle_disconnect(eio_sid, namespace, reason)
        if eio_sid in self.environ and eio_sid not in self._relio_eio_refs:
            del self.environ[eio_sid]

    async def _handle_disconnect(self, eio_sid, namespace, reason=None):
        namespace = namespace or '/'
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        channel = self._relio_channels.get(sid)
        if channel is not None:
            # The client ended the session (socket.io DISCONNECT, after relio's CLOSE).
            self._forget(channel)
            channel.close(reason or 'client disconnect')
        else:
            channel = self._relio_draining.get(sid)
        if channel is not None:
            await channel.idle()       # sequential handlers first, as python-socketio orders them
        await super()._handle_disconnect(eio_sid, namespace, reason)

    # --- session lifetime --------------------------------------------------------------------------
    def _suspend(self, channel: Channel, reason) -> None:
        loop = asyncio.get_running_loop()
        self._unbind(channel)
        channel.detach()
        logger.info('relio: session %s [%s] suspended (%s)', channel.sid, channel.namespace,
                         reason)
        for evicted in self._relio_table.park(channel.sid, loop.time()):
            self._end(evicted.state, 'session evicted')
        self._arm_expiry()
        if getattr(self.manager, 'relio_movable', False):
            # The client may come back through another node: leave the session where it can
            # find it.
            spawn(self.manager.relio_save(channel))
        spawn(self._trigger_event(wire.SUSPEND_EVENT, channel.namespace, channel.sid, reason))

    def _suspend_again(self, channel: Channel) -> None:
        """Put back a suspended session that a refused resume attempt took out of the table."""
        for evicted in self._relio_table.park(channel.sid, asyncio.get_running_loop().time()):
            self._end(evicted.state, 'session evicted')
        self._arm_expiry()

    def _arm_expiry(self) -> None:
        when = self._relio_table.next_expiry()
        if self._relio_expiry is not None:
            self._relio_expiry.cancel()
            self._relio_expiry = None
        if when is not None:
            self._relio_expiry = asyncio.get_running_loop().call_at(when, self._on_expiry)

    def _on_expiry(self) -> None:
        self._relio_expiry = None
        for session in self._relio_table.expire(asyncio.get_running_loop().time()):
            self._end(session.state, 'session expired')
        self._arm_expiry()

    def _end(self, channel: Channel, reason: str) -> None:
        """End a session for ``reason``: its pending messages fail and ``disconnect`` fires."""
        self._forget(channel)
        channel.close(reason)
        spawn(self._finish_session(channel, reason))

    def _remember_ended(self, sid: str, reason: str) -> None:
        """Keep why a session ended (bounded, oldest forgotten first), so that an emit or call to its
        sid fails with that reason instead of reaching nobody in silence."""
        ended = self._relio_ended
        ended[sid] = reason
        ended.move_to_end(sid)
        while len(ended) > self.relio_config.max_parked_sessions:
            ended.popitem(last=False)

    def _ended_error(self, sid, namespace, event) -> DeliveryError | None:
        reason = self._relio_ended.get(sid) if isinstance(sid, str) else None
        if reason is None:
            return None
        return DeliveryError(f'the session ended ({reason})', None, sid=sid, namespace=namespace,
                             event=event)

    def _forget(self, channel: Channel) -> None:
        """Drop the session from relio's tables (once)."""
        if channel.finished:
            return
        channel.finished = True
        consumer = channel._consumer
        if consumer is not None and not consumer.done():
            # Its sequential handlers still run: `disconnect` must wait for them (see idle()).
            sid = channel.sid
            self._relio_draining[sid] = channel
            consumer.add_done_callback(lambda _, sid=sid: self._relio_draining.pop(sid, None))
        self._relio_table.remove(channel.sid)
        self._relio_channels.pop(channel.sid, None)
        self._unbind(channel)
        self._drop_ref(channel.eio_sid)

    async def _finish_session(self, channel: Channel, reason: str) -> None:
        """The socket.io side of a session that relio ended: tell the client if it is still
        connected, fire ``disconnect`` once, leave every room."""
        sid, namespace = channel.sid, channel.namespace
        self._remember_ended(sid, reason)
        if getattr(self.manager, 'relio_movable', False):
            spawn(self.manager.relio_ended(channel, reason))
        # With async_handlers=False python-socketio runs each handler before reading the next
        # packet, so `disconnect` comes after every handler of the session: keep that order.
        await channel.idle()
        if not self.manager.is_connected(sid, namespace):
            return
        eio_sid = self.manager.pre_disconnect(sid, namespace)
        if eio_sid in self.eio.sockets:
            await super()._send_packet(eio_sid, self.packet_class(packet.DISCONNECT,
                                                                  namespace=namespace))
        await self._trigger_event('disconnect', namespace, sid, reason)
        await self.manager.disconnect(sid, namespace, ignore_queue=True)
        if eio_sid not in self._relio_eio_refs and eio_sid not in self.eio.sockets:
            self.environ.pop(eio_sid, None)

    # --- sessions moving between nodes (relio.AsyncRedisManager) ------------------------------
    def _relio_export(self, channel: Channel, max_ids: int = -1) -> tuple[dict, bytes]:
        """What another node needs to carry the session on: the engine snapshot (``max_ids``: of
        the id set, only the newest) and the socket.io layer's part (rooms, the application's
        session dict). Taken synchronously."""
        snapshot = channel.engine.snapshot(asyncio.get_running_loop().time(), max_ids)
        rooms = [r for r in self.manager.get_rooms(channel.sid, channel.namespace)
                 if r != channel.sid]
        return {'v': 1, 'sid': channel.sid, 'ns': channel.namespace, 'rooms': rooms,
                'session': channel.user_session}, snapshot

    def _relio_adopt(self, sid, namespace, eio_sid, credential, meta, snapshot) -> Channel:
        """Register a session moved here from another node (parked on ``eio_sid`` until the resume
        that asked for it completes). :raises RemoteProtocolError: the snapshot is invalid."""
        if meta.get('ns') != namespace or meta.get('sid') != sid:
            raise ValueError('the record is for another session or namespace')
        now = asyncio.get_running_loop().time()
        engine = Engine.restore(snapshot, self.relio_config, now=now)
        channel = Channel(engine, self, json=self._relio_codec, sid=sid, namespace=namespace)
        self._relio_table.adopt(sid, channel, credential, now)
        channel.credential = credential
        session = meta.get('session')
        channel.user_session = session if isinstance(session, dict) else {}
        channel.eio_sid = eio_sid
        channel.finished = False
        self._relio_channels[sid] = channel
        self._relio_eio_refs[eio_sid] = self._relio_eio_refs.get(eio_sid, 0) + 1
        manager = self.manager
        manager.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        for room in meta.get('rooms') or ():
            if isinstance(room, (str, int)) and room != sid:
                manager.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._relio_make_durable(channel)
        return channel

    def _relio_moved_away(self, channel: Channel, reason: str | None) -> None:
        """The session now lives on another node: drop it here without ending it (no
        ``disconnect``; its record is not touched). ``reason``: this copy was stale (fenced)."""
        if channel.finished:
            return
        sid, namespace, eio_sid = channel.sid, channel.namespace, channel.eio_sid
        self._forget(channel)
        channel.abandon(reason)
        self.manager.basic_disconnect(sid, namespace)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None and not self._relio_eio_refs.get(eio_sid) and not sock.closed:
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
        if not items or not isinstance(items[0], str):
            channel._protocol_error(RemoteProtocolError("event without a name"))
            return
        event = items[0]
        if event in wire.RESERVED_EVENTS:
            logger.warning('relio: dropped reserved event %r from %s', event, channel.sid)
            if request:
                channel.answer(msg_id, None)
            return
        namespace, sid = channel.namespace, channel.sid
        args = (sid, *items[1:])
        then = None
        if request:
            not_handled = self.not_handled

            def then(result, channel=channel, msg_id=msg_id):
                if result is not not_handled:
                    channel.answer(msg_id, result)
                else:
                    channel.decline(msg_id)
        sequential = not self.async_handlers
        request_id = msg_id if request else None
        if '_trigger_event' in self.__dict__:        # instrumented (admin UI): its wrapper counts
            channel.run(self._trigger_event, (event, namespace, *args), then, sequential,
                        request_id)
            return
        handler, handler_args = self._get_event_handler(event, namespace, args)
        if handler is not None:
            channel.run(handler, handler_args, then, sequential, request_id)
            return
        ns_handler, ns_args = self._get_namespace_handler(namespace, args)
        if ns_handler is not None:
            channel.run(ns_handler.trigger_event, (event, *ns_args), then, sequential,
                        request_id)
            return
        logger.info('relio: no handler for event "%s" [%s]', event, namespace)
        if request:
            channel.decline(msg_id)     # python-socketio sends no ack: the call times out

    def on_undelivered(self, channel: Channel | None, error: DeliveryError) -> None:
        logger.warning('relio: %s', error)
        spawn(self._trigger_event(wire.DELIVERY_ERROR_EVENT, error.namespace or '/', error.sid,
                                  error))

    def on_closed(self, channel: Channel, reason: str, by_peer: bool) -> None:
        if channel.finished:
            return
        logger.info('relio: session %s [%s] closed (%s)', channel.sid, channel.namespace,
                         reason)
        self._forget(channel)
        if by_peer:
            # The client's CLOSE: python-socketio's reason for a client-initiated disconnect.
            reason = self.reason.CLIENT_DISCONNECT
        spawn(self._finish_session(channel, reason))


__all__ = ["AsyncManager", "AsyncServer"]
