"""What relio's two servers share above the engine and below their I/O: :class:`ServerShell`.

:class:`relio.AsyncServer` (asyncio) and :class:`relio.Server` (thread-based) run the same socket.io
plumbing; they differ only where it waits (``await`` or a blocking call under a lock). This module
owns the decisions that never wait, as a mixin both servers put before python-socketio's class:
relio's part of the constructor, the session counters, the error for a message addressed to an ended
session, which packets relio takes from python-socketio (carriers, plain events on a relio
connection), the writer that puts a session's batches on its connection, the checks of a resume and
the bookkeeping that moves a session to its new connection, and what to log when a channel reports a
failure or a close. Each server keeps the I/O: sending packets, firing handlers, closing
connections.

The mixin takes the server's session table as ``self.relio_registry``
(:class:`~relio.asyncio.registry.SessionRegistry`) and python-socketio's attributes (``manager``,
``eio``, ``environ``, ``logger``, ``packet_class``); ``self._relio_lock`` is what guards the tables
(the thread-based server's lock; nothing in the asyncio server, which has one thread).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engineio import packet as eio_packet
from socketio import exceptions, packet

from relio.binding import payload as payload_codec
from relio.binding import wire
from relio.binding.sessions import UNKNOWN_SESSION, ResumeRefused
from relio.binding.shell import Shell
from relio.config import Config
from relio.engine.errors import DeliveryError, QueueFull, RemoteProtocolError

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession, SessionRegistry

logger = logging.getLogger("relio")

#: ``manager.emit(event, FROM_ENCODED, ..., _encoded=payload)``: the arguments are in the encoded
#: payload; it is decoded only if a plain Socket.IO client is among the recipients (a message
#: relayed between nodes arrives encoded, and relio sessions take it as it is).
FROM_ENCODED = object()


class ServerShell(Shell):
    """The await-free half of a relio server (see the module); mixed in before python-socketio's
    ``Server`` or ``AsyncServer``."""

    # python-socketio's (the server class this is mixed into)
    manager: Any
    environ: dict
    always_connect: bool
    # the server's own
    relio_registry: SessionRegistry
    #: environ entries of the connection itself (not the client): a suspended session keeps its
    #: environ without them
    _relio_connection_keys: frozenset[str] = frozenset()

    def _relio_setup(self, relio_config: Config | None) -> None:
        """relio's part of the constructor, once python-socketio's has run."""
        self._relio_setup_shell(relio_config)

    def _end(self, session: ServerSession, reason: str, close_reason: str | None = None) -> None:
        raise NotImplementedError

    # --- public API additions ------------------------------------------------------------------
    def session_stats(self, sid) -> dict | None:
        """Counters of a relio session (sent, delivered, retransmitted, duplicates dropped, in
        flight, outbox depth, RTT...), or None if ``sid`` is not a relio session."""
        session = self.relio_registry.get(sid)
        if session is None:
            return None
        stats = session.channel.stats
        stats["resumes"] = session.record.resumes
        return stats

    @property
    def relio_sessions(self) -> int:
        """relio sessions alive (connected or waiting to be resumed)."""
        return len(self.relio_registry)

    @property
    def relio_parked_sessions(self) -> int:
        """relio sessions whose connection dropped, waiting to be resumed."""
        return self.relio_registry.parked

    def relio_ended_error(self, sid, namespace, event) -> DeliveryError | None:
        """The error for a message addressed to ``sid`` if that relio session recently ended."""
        reason = self.relio_registry.ended_reason(sid)
        if reason is None:
            return None
        return DeliveryError(f'the session ended ({reason})', None, sid=sid, namespace=namespace,
                             event=event)

    def _relio_call_channel(self, event, data, target, namespace):
        """``call()``'s choice: the relio channel of ``target`` and the encoded request, or
        ``(None, None)`` for a plain Socket.IO client (python-socketio's call).

        :raises ValueError: no ``target`` (call() cannot broadcast).
        :raises DeliveryError: ``target`` was a relio session that has ended."""
        if target is None:
            raise ValueError('Cannot use call() to broadcast.')
        channel = self.relio_registry.channel(target)
        if channel is None:
            error = self.relio_ended_error(target, namespace or '/', event)
            if error is not None:
                raise error
            return None, None
        self.logger.info('emitting event "%s" to %s [%s]', event, target, namespace or '/')
        return channel, payload_codec.encode_event(event, data, self.relio_codec)

    def _relio_refuse_connect(self, session: ServerSession, error: Exception | None):
        """The application's ``connect`` handler refused a new session (returned False, or raised
        ``error``): the session ends unused; returns python-socketio's packet that tells the client
        (DISCONNECT after leaving the namespace with ``always_connect``, else CONNECT_ERROR)."""
        if isinstance(error, exceptions.ConnectionRefusedError):
            fail_reason = error.error_args
        elif error is not None:
            fail_reason = {"message": "Connection refused by server"}
        else:
            fail_reason = exceptions.ConnectionRefusedError().error_args
        sid, namespace = session.sid, session.namespace
        with self._relio_lock:
            self.relio_registry.forget(session)
        session.channel.close('connection refused')
        if self.always_connect:
            self.manager.pre_disconnect(sid, namespace)
            return self.packet_class(packet.DISCONNECT, data=fail_reason, namespace=namespace)
        return self.packet_class(packet.CONNECT_ERROR, data=fail_reason, namespace=namespace)

    # --- what relio takes from python-socketio -------------------------------------------------
    def _relio_namespace_served(self, namespace) -> bool:
        """python-socketio's test in ``_handle_connect``: a handler or ``namespaces`` admits it."""
        return namespace in self.handlers or namespace in self.namespace_handlers \
            or self.namespaces == '*' or namespace in self.namespaces

    def _relio_is_carrier(self, eio_sid, data) -> bool:
        """Whether an engine.io message is a relio carrier (else python-socketio's)."""
        return data.__class__ is bytes and eio_sid not in self._binary_packet \
            and self.relio_registry.carries_relio(eio_sid) \
            and (not self._relio_binary_serializer or wire.is_carrier(data))

    def _relio_receive(self, eio_sid, data: bytes) -> None:
        """Hand a carrier to the session it is for (dropped if none is bound there).

        :raises RemoteProtocolError: not a valid carrier (the caller closes the connection)."""
        registry = self.relio_registry
        namespace, batch = wire.split_carrier(data)
        session = registry.bound(eio_sid, namespace)
        if session is not None:
            if session.unconfirmed_resume:
                # The client uses the resumed connection, so it got the new credential.
                with self._relio_lock:
                    registry.confirm(session)
            session.channel.receive(batch)

    def _relio_drops_event(self, eio_sid, namespace, data) -> bool:
        """Whether a socket.io EVENT packet is refused (logged): one on a relio session's
        connection, whose events come through its engine only (a plain EVENT would bypass ordering
        and exactly-once, and could fake 'disconnect'), or one of relio's lifecycle events from a
        plain client."""
        if self.relio_registry.bound(eio_sid, namespace or '/') is not None:
            logger.warning('relio: dropped a plain Socket.IO event on relio session %s',
                           eio_sid)
            return True
        if data and data[0] in wire.LIFECYCLE_EVENTS:
            logger.warning('relio: dropped reserved event %r from %s', data[0], eio_sid)
            return True
        return False

    def _relio_connection_gone(self, eio_sid) -> bool:
        """A suspended session's connection is gone: nothing is sent to it."""
        return self.relio_registry.references(eio_sid) and eio_sid not in self.eio.sockets

    def _relio_keep_environ(self, eio_sid) -> None:
        """The connection ``eio_sid`` closed: sessions suspended on it keep its environ, without
        the connection's own entries (``_relio_connection_keys``)."""
        environ = self.environ.get(eio_sid)
        if environ is not None and self.relio_registry.references(eio_sid):
            self.environ[eio_sid] = {k: v for k, v in environ.items()
                                     if k not in self._relio_connection_keys}

    def _connection_unreferenced(self, eio_sid: str) -> None:
        """No session refers to ``eio_sid`` any more: its environ goes with its connection."""
        if eio_sid not in self.eio.sockets:
            self.environ.pop(eio_sid, None)

    # --- transport -----------------------------------------------------------------------------
    def _writer(self, eio_sid, namespace):
        """The writer of a session's channel on connection ``eio_sid``: each batch goes out as a
        binary engine.io message (a carrier) on the connection's send queue, without waiting.
        Writing raises ConnectionError once the connection is closed."""
        prefix = wire.carrier_prefix(namespace)
        sockets = self.eio.sockets
        Packet, MESSAGE = eio_packet.Packet, eio_packet.MESSAGE

        def write(batch: bytes) -> None:
            sock = sockets.get(eio_sid)
            if sock is None or sock.closed:
                raise ConnectionError('connection closed')
            sock.queue.put_nowait(Packet(MESSAGE, prefix + batch))
        return write

    # --- resume --------------------------------------------------------------------------------
    def _relio_resumable(self, eio_sid, namespace, hello, now: float):
        """The checks of a resume before the application is asked: ``(session, peer_state)``, or
        the reason it is refused (a session refused for a reason that is the client's fault
        ends)."""
        registry = self.relio_registry
        sid = hello.get('sid')
        try:
            if not isinstance(sid, str):
                raise ResumeRefused(UNKNOWN_SESSION)
            session = registry.resume(sid, hello.get('credential'), now)
        except ResumeRefused as exc:
            logger.info('relio: resume refused on %s [%s]: %s', eio_sid, namespace, exc)
            return str(exc)
        if session.namespace != namespace:
            self._end(session, 'resume refused', 'resumed on another namespace')
            return UNKNOWN_SESSION
        current = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if current is not None and current != sid:
            # This connection already holds another session of the namespace (one per connection,
            # as in Socket.IO): refuse, and leave the session as it was (suspended or connected).
            if not session.channel.attached:
                registry.park(session, now)
            return 'the connection already has a session in this namespace'
        try:
            return session, wire.decode_state(hello.get('state'))
        except RemoteProtocolError as exc:
            return self._refuse_resume(session, f'protocol error: {exc.reason}')

    def _relio_move(self, session: ServerSession, eio_sid) -> dict:
        """Point a resumed session at its new connection: every room entry (and the "connected"
        room None), the session table; returns the CONNECT reply that gives the client its new
        credential."""
        sid, namespace = session.sid, session.namespace
        rooms = self.manager.rooms.get(namespace, {})
        for room in [None, *self.manager.get_rooms(sid, namespace)]:
            if room in rooms and sid in rooms[room]:
                rooms[room][sid] = eio_sid
        self.relio_registry.move(session, eio_sid)
        session.unconfirmed_resume = True
        return wire.resume_reply(sid, session.credential, self.relio_config,
                                 self.eio.max_http_buffer_size, session.channel.resume_state())

    def _refuse_resume(self, session: ServerSession, reason: str) -> str:
        self._end(session, reason)
        return reason

    # --- for session hosts (sessions moving between nodes) --------------------------------------
    def _relio_session_meta(self, session: ServerSession) -> dict:
        """The socket.io layer's part of a session that moves to another node: its rooms (read
        from a copy of the room table, which another thread may be changing) and the
        application's session dict."""
        sid, namespace = session.sid, session.namespace
        table = self.manager.rooms.get(namespace) or {}
        rooms = [name for name, members in list(table.items())
                 if name is not None and name != sid and sid in members]
        return {'v': 1, 'sid': sid, 'ns': namespace, 'rooms': rooms, 'session': session.data}

    def _relio_adopted(self, sid, namespace, eio_sid, credential, meta, channel,
                       now: float) -> ServerSession:
        """Register a session moved here (its channel made from the record) and put it back in
        its rooms, parked on ``eio_sid``."""
        data = meta.get('session')
        session = self.relio_registry.adopt(sid, namespace, channel, eio_sid, credential,
                                            data if isinstance(data, dict) else {}, now)
        manager = self.manager
        manager.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        manager.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        for room in meta.get('rooms') or ():
            if isinstance(room, (str, int)) and room != sid:
                manager.basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        return session

    @staticmethod
    def _relio_check_record(sid, namespace, meta) -> None:
        if meta.get('ns') != namespace or meta.get('sid') != sid:
            raise ValueError('the record is for another session or namespace')

    # --- ChannelHandler ------------------------------------------------------------------------
    def on_reply(self, channel) -> None:
        self.logger.info('received ack from %s [%s]', channel.sid, channel.namespace)

    def _relio_log_undelivered(self, error: DeliveryError, seen: bool) -> str:
        """Log a message that will never be delivered; returns its namespace.

        WARNING only for what nobody handles: the application awaited the Delivery or the call,
        or it has a relio_delivery_error handler, so it knows (a chat server's logs would fill
        with every emit to a client that just left)."""
        namespace = error.namespace or '/'
        handled = seen or wire.has_handler(self, wire.DELIVERY_ERROR_EVENT, namespace)
        logger.log(logging.INFO if handled else logging.WARNING, 'relio: %s', error)
        return namespace

    def _relio_closed(self, channel, reason: str, by_peer: bool):
        """A channel closed: ``(session, reason)`` to finish (python-socketio's reason when the
        client closed it), or None if its session is already removed (ended, refused, moved
        away)."""
        session = self.relio_registry.get(channel.sid)
        if session is None or session.channel is not channel:
            return None
        logger.info('relio: session %s [%s] closed (%s)', channel.sid, channel.namespace,
                    reason)
        if by_peer:
            # The client's CLOSE: python-socketio's reason for a client-initiated disconnect.
            reason = self.reason.CLIENT_DISCONNECT
        return session, reason


class EmitRoute:
    """Where an emit went (:meth:`ManagerShell._relio_route`): its ``delivery``, the message
    (``args``, and ``encoded`` once a relio session took it), the ``plain`` Socket.IO recipients
    (``(sid, eio_sid)`` pairs, for python-socketio's emit) and the relio sessions whose outbox was
    ``full`` (``block=False``)."""

    __slots__ = ("delivery", "args", "encoded", "plain", "full")

    def __init__(self, delivery, args: list | None, encoded: payload_codec.Encoded | None):
        self.delivery = delivery
        self.args = args
        self.encoded = encoded
        self.plain: list[tuple[Any, Any]] = []
        self.full: list[Any] = []

    def failed(self, error: DeliveryError) -> None:
        """A relio session's copy cannot be queued (its session ended while it waited)."""
        self.delivery._add()
        self.delivery._settle(error)

    def raise_if_full(self) -> None:
        """:raises QueueFull: some relio sessions' outboxes were full (``block=False``)."""
        if self.full:
            raise QueueFull(f"outbox full for {', '.join(self.full)}: the message was not queued "
                            "for them (queued for the other recipients)")


class ManagerShell:
    """The await-free half of a relio client manager; mixed in before python-socketio's
    ``Manager`` or ``AsyncManager``."""

    # python-socketio's (the manager class this is mixed into)
    server: Any
    _generate_ack_id: Any

    def _plain_packets(self, event, args, namespace) -> list:
        """python-socketio's EVENT packet (no callback: the same for every plain Socket.IO
        recipient), as the engine.io packets that carry it."""
        pkt = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args])
        encoded = pkt.encode()
        if not isinstance(encoded, list):
            encoded = [encoded]
        return [eio_packet.Packet(eio_packet.MESSAGE, p) for p in encoded]

    def _plain_request(self, sid, event, args, namespace, callback):
        """python-socketio's EVENT packet for one plain Socket.IO recipient, with the id its
        acknowledgement will carry to ``callback``."""
        ack_id = self._generate_ack_id(sid, callback)
        return self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args],
                                        id=ack_id)

    def _relio_queue_full(self, namespace) -> None:
        """A relio recipient's outbox was full (for metrics; nothing here)."""

    def _relio_route(self, route: EmitRoute, event, namespace, participants, skip_sid, callback,
                     block: bool, msg_id: bytes | None = None) -> Iterator[Any]:
        """Route an emit to its ``participants`` (``(sid, eio_sid)`` pairs; those in the list
        ``skip_sid`` are skipped): queue it in each relio session's outbox, collect the plain
        Socket.IO recipients in ``route``. A generator: it yields each channel whose outbox is full
        when ``block``; the caller waits for room with ``channel.send(route.encoded, ...)``
        (reporting a :class:`DeliveryError` with ``route.failed``) before routing goes on, so
        recipients are served in order."""
        server = self.server
        channel_of = server.relio_registry.channel
        delivery = route.delivery
        for sid, eio_sid in participants:
            if sid in skip_sid:
                continue
            channel = channel_of(sid)
            if channel is None:
                route.plain.append((sid, eio_sid))
                continue
            if route.encoded is None:
                assert route.args is not None
                route.encoded = payload_codec.encode_parts([event, *route.args],
                                                           server.relio_codec)
            try:
                channel.send_nowait(route.encoded, event, delivery, callback, msg_id)
            except QueueFull:
                self._relio_queue_full(namespace)
                if not block:
                    route.full.append(sid)
                    continue
                # Waits for room; a session that ends meanwhile fails only its own delivery.
                yield channel
            except DeliveryError as exc:
                route.failed(exc)

    def _fail_if_ended(self, delivery, room, namespace, event) -> None:
        """A message addressed to the sid of a relio session that has ended fails with why it
        ended, instead of reaching nobody in silence."""
        error = self.server.relio_ended_error(room, namespace, event)
        if error is not None:
            delivery._add()
            delivery._settle(error)
            self.server.on_undelivered(None, error)
