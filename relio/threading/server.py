"""``relio.Server``: python-socketio's thread-based ``Server`` with reliable, resumable sessions.

The socket.io plumbing of :mod:`relio.asyncio.server` (the handshake, creating, suspending,
resuming and ending sessions, routing emits to sessions and batches to connections, turning
delivered messages into handler calls) without ``await``: python-socketio's ``Server`` calls it
from its transport threads (``async_mode='threading'``, or gevent's greenlets). What it shares
with the asyncio server: the decisions that never wait
(:class:`~relio.binding.server_shell.ServerShell`), the engine, the session table and registry
(:class:`~relio.asyncio.registry.SessionRegistry`), the channel code
(:class:`~relio.threading.channel.ThreadChannel`), the wire helpers and the payload codec.

Threads: each session has its lock (the channel's); the server has one lock (``_relio_lock``)
around its tables and the manager's room entries of relio sessions. The server's lock may be held
while a session's lock is taken, never the reverse: what a channel reports under its lock
(``on_closed``, ``on_undelivered``) goes on in a handler thread.

Where sessions live beyond this process is the manager's
:class:`~relio.threading.hosting.ThreadSessionHost`: this process only with :class:`Manager`, Redis
with :class:`relio.RedisManager` (several server nodes; :mod:`relio.cluster.thread_host`). The
server never waits for the host while it holds its lock or a session's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import cast

import socketio
from socketio import exceptions, packet

from relio.asyncio.registry import ServerSession, SessionRegistry
from relio.binding import events, wire
from relio.binding import payload as payload_codec
from relio.binding.server_shell import FROM_ENCODED, EmitRoute, ManagerShell, ServerShell
from relio.binding.sessions import UNKNOWN_SESSION
from relio.config import Config
from relio.engine._engine import Engine
from relio.engine.errors import DeliveryError, RemoteProtocolError
from relio.threading.channel import ThreadChannel
from relio.threading.driver import DRIVER, Handle
from relio.threading.hosting import ThreadSessionHost
from relio.threading.results import Delivery

logger = logging.getLogger("relio")


def _channel(session: ServerSession) -> ThreadChannel:
    """The session's channel: a :class:`ThreadChannel` on this server (the registry is shared
    with the asyncio server and types it as the asyncio shell's channel)."""
    return cast(ThreadChannel, session.channel)


#: WSGI environ entries that belong to the connection (its socket and streams), not the client.
_CONNECTION_KEYS = frozenset({'wsgi.input', 'wsgi.errors', 'wsgi.file_wrapper', 'werkzeug.socket',
                              'gunicorn.socket', 'eventlet.input', 'eventlet.posthooks'})


class _LockedTimers:
    """The driver's clock and timers for the session registry, whose expiry timer then runs
    under the server's lock like every other change to its tables."""

    def __init__(self, lock: threading.RLock):
        self._lock = lock

    @staticmethod
    def time() -> float:
        return DRIVER.time()

    def call_at(self, when: float, fn: Callable[[], object]) -> Handle:
        def locked() -> None:
            with self._lock:
                fn()
        return DRIVER.call_at(when, locked)


class Manager(ManagerShell, socketio.Manager):
    """python-socketio's in-process client manager, delivering to relio sessions through their
    channels (so a broadcast reaches connected and suspended relio sessions alike).

    ``session_host`` is where the server's sessions live beyond this process: a
    :class:`relio.threading.hosting.ThreadSessionHost` (this node only) unless a subclass gives
    another.
    """

    def __init__(self):
        super().__init__()
        self.session_host: ThreadSessionHost = ThreadSessionHost()

    def set_server(self, server):
        super().set_server(server)
        self.session_host.bind(server)

    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
             to=None, block=True, _encoded: bytes | None = None, _msg_id: bytes | None = None,
             **kwargs):
        """Emit to one client, a room or a namespace; returns a :class:`relio.Delivery`
        (thread-based: ``delivery.wait()``).

        (``_encoded``, ``_msg_id``: the payload already encoded and the message's id, as a message
        relayed between nodes arrives; ``data`` is then ``FROM_ENCODED``.)"""
        delivery = Delivery()
        room = to or room
        args = None if data is FROM_ENCODED else payload_codec.as_args(data)
        if namespace not in self.rooms:
            self._fail_if_ended(delivery, room, namespace, event)
            return delivery
        if not isinstance(skip_sid, list):
            skip_sid = [skip_sid]
        route = EmitRoute(delivery, args, _encoded)
        for channel in self._relio_route(route, event, namespace,
                                         list(self.get_participants(namespace, room)), skip_sid,
                                         callback, block, _msg_id):
            try:
                channel.send(route.encoded, event, delivery, callback, msg_id=_msg_id)
            except DeliveryError as exc:
                route.failed(exc)
        plain = route.plain
        if not delivery.recipients and not plain:
            self._fail_if_ended(delivery, room, namespace, event)
        if plain:
            if args is None:
                assert _encoded is not None
                args = payload_codec.decode(_encoded, self.server.relio_codec)[1:]
            delivery.unconfirmed = len(plain)
            self._emit_plain(event, args, namespace, plain, callback)
        route.raise_if_full()
        return delivery

    def _emit_plain(self, event, args, namespace, recipients, callback):
        """python-socketio's own emit, for the plain Socket.IO clients among the recipients."""
        server = self.server
        if not callback:
            eio_pkts = self._plain_packets(event, args, namespace)
            for _, eio_sid in recipients:
                for p in eio_pkts:
                    server._send_eio_packet(eio_sid, p)
        else:
            for sid, eio_sid in recipients:
                server._send_packet(
                    eio_sid, self._plain_request(sid, event, args, namespace, callback))


class Server(ServerShell, socketio.Server):
    """A Socket.IO server (thread-based) with reliable delivery and resumable sessions.

    Takes every argument of ``socketio.Server`` (and of engine.io), plus:

    :param relio_config: a :class:`relio.Config` with relio's limits and timers (one per server;
                         every session uses it). Defaults to :data:`relio.DEFAULT_CONFIG`.

    Between this server and a relio client (:class:`relio.Client` or :class:`relio.AsyncClient`)
    every ``emit``, ``send`` and ``call`` is delivered exactly once and in order per namespace,
    across disconnects, for as long as the session lives. Plain Socket.IO clients connect and
    behave exactly as with python-socketio.

    The handlers of one relio session run one after another in delivery order, in a handler
    thread of the session (``start_background_task``), never in the transport's thread.
    Events relio adds: ``relio_resume(sid, environ, auth)`` (return False to refuse),
    ``relio_suspend(sid, reason)``, ``relio_delivery_error(sid, error)``.

    Several server processes share emits, rooms and sessions with
    ``client_manager=relio.RedisManager(url)`` (see ``docs/SCALING.md``); ``shutdown()`` then
    hands every session over to the other nodes instead of ending it.
    """

    #: Suspended sessions keep the environ, not the dead connection's socket and streams (they
    #: would keep its file descriptor open until the session ends).
    _relio_connection_keys = _CONNECTION_KEYS

    def __init__(self, client_manager=None, logger=False, serializer='default', json=None,
                 async_handlers=True, always_connect=False, namespaces=None,
                 relio_config: Config | None = None, **kwargs):
        if client_manager is None:
            client_manager = Manager()
        elif not isinstance(client_manager, Manager):
            raise TypeError("relio.Server needs a relio client manager (relio.Manager, or "
                            "relio.RedisManager for several nodes); got "
                            + type(client_manager).__name__)
        super().__init__(client_manager=client_manager, logger=logger, serializer=serializer,
                         json=json, async_handlers=async_handlers,
                         always_connect=always_connect, namespaces=namespaces, **kwargs)
        self._relio_setup(relio_config)
        #: around the session tables and the room entries of relio sessions (see the module)
        self._relio_lock = threading.RLock()
        #: every relio session of this server and the tables that find them
        self.relio_registry = SessionRegistry(self.relio_config, self._end,
                                              self._connection_unreferenced,
                                              loop=_LockedTimers(self._relio_lock))
        self._relio_host: ThreadSessionHost = client_manager.session_host

    # --- public API additions and overrides ---------------------------------------------------
    def emit(self, event, data=None, to=None, room=None, skip_sid=None, namespace=None,
             callback=None, ignore_queue=False, block=True):
        """Emit a custom event to one or more connected clients.

        Arguments are python-socketio's; relio adds ``block``: when a relio recipient's outbox is
        full, wait for room (the default) or raise :class:`relio.QueueFull`.

        Returns a :class:`relio.Delivery`: ``delivery.wait()`` returns once every relio recipient
        has the message (or raises :class:`relio.DeliveryError`).
        """
        namespace = namespace or '/'
        room = to or room
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('emitting event "%s" to %s [%s]', event, room or 'all', namespace)
        return self.manager.emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                 callback=callback, ignore_queue=ignore_queue, block=block)

    def send(self, data, to=None, room=None, skip_sid=None, namespace=None, callback=None,
             ignore_queue=False, block=True):
        """Send a ``message`` event; see :meth:`emit`."""
        return self.emit('message', data=data, to=to, room=room, skip_sid=skip_sid,
                         namespace=namespace, callback=callback, ignore_queue=ignore_queue,
                         block=block)

    def call(self, event, data=None, to=None, sid=None, namespace=None, timeout=60,
             ignore_queue=False, block=True):
        """Emit an event to a client and wait for its handler's response.

        With a relio client the request and its response survive reconnects: the handler runs
        once, and only ``timeout`` (or the end of the session, as :class:`relio.DeliveryError`)
        stops the wait. A chained reply returns a :class:`relio.Question`.
        """
        target = to or sid
        channel, encoded = self._relio_call_channel(event, data, target, namespace)
        if channel is None:
            return super().call(event, data=data, to=target, namespace=namespace,
                                timeout=timeout, ignore_queue=ignore_queue)
        return channel.call(encoded, event, timeout, block)

    def get_session(self, sid, namespace=None):
        session = self.relio_registry.get(sid)
        if session is not None:
            return session.data
        return super().get_session(sid, namespace=namespace)

    def save_session(self, sid, session, namespace=None):
        relio_session = self.relio_registry.get(sid)
        if relio_session is not None:
            relio_session.data = session
            return
        super().save_session(sid, session, namespace=namespace)

    def transport(self, sid, namespace=None):
        """The transport of a client (None for a relio session waiting to be resumed)."""
        session = self.relio_registry.get(sid)
        if session is not None and not session.attached:
            return None
        return super().transport(sid, namespace=namespace)

    def disconnect(self, sid, namespace=None, ignore_queue=False):
        """Disconnect a client; a relio session ends (its pending messages fail with
        :class:`relio.DeliveryError`, reason ``"server disconnect"``)."""
        session = self.relio_registry.get(sid)
        if session is not None:
            # Like python-socketio, what was emitted before disconnect() still goes out first;
            # relio waits (bounded) for it to be acknowledged so its senders hear the truth.
            _channel(session).drain(self.relio_config.drain_timeout)
            with self._relio_lock:
                self.relio_registry.forget(session)
            session.channel.close('server disconnect')
        super().disconnect(sid, namespace=namespace, ignore_queue=ignore_queue)

    def shutdown(self):
        """Stop Socket.IO background tasks; every relio session ends (reason
        ``server shutdown``)."""
        with self._relio_lock:
            self.relio_registry.close()
        # Several nodes: the sessions live on; their clients resume them on another node.
        self._relio_host.hand_over_all()
        with self._relio_lock:
            sessions = list(self.relio_registry)
            for session in sessions:
                self.relio_registry.forget(session)
        for session in sessions:
            session.channel.close('server shutdown')
            self._finish_session(session, 'server shutdown')
        self._relio_host.close()
        close = getattr(self.manager, 'close', None)
        if close is not None:           # relio.RedisManager: stop its reader and publisher
            close()
        super().shutdown()

    # --- connection handshake ------------------------------------------------------------------
    def _handle_connect(self, eio_sid, namespace, data):
        namespace = namespace or '/'
        hello, auth = wire.relio_hello(data, self.environ.get(eio_sid), namespace)
        if hello is None:
            return super()._handle_connect(eio_sid, namespace, auth)
        refused = None
        if 'sid' in hello:
            refused = self._resume_session(eio_sid, namespace, hello, auth)
            if refused is None:
                return
        self._connect_session(eio_sid, namespace, auth, refused)

    def _connect_session(self, eio_sid, namespace, auth, refused):
        """python-socketio's ``_handle_connect``, creating a relio session for the new sid."""
        sid = None
        if self._relio_namespace_served(namespace):
            sid = self.manager.pre_connect(eio_sid, namespace)
        if sid is None:
            self._send_packet(eio_sid, self.packet_class(
                packet.CONNECT_ERROR, data='Unable to connect', namespace=namespace))
            return
        with self._relio_lock:
            session = self._new_session(sid, namespace, eio_sid)
        reply = wire.connect_reply(sid, session.credential, self.relio_config,
                                   self.eio.max_http_buffer_size, refused=refused)
        if self.always_connect:
            self._send_connect(eio_sid, namespace, reply, session)
            self.manager.connect(sid, namespace)
        refusal = None
        environ = self.environ.get(eio_sid, {})
        try:
            if auth:
                success = self._trigger_event('connect', namespace, sid, environ, auth)
            else:
                try:
                    success = self._trigger_event('connect', namespace, sid, environ, None)
                except TypeError as exc:
                    try:
                        success = self._trigger_event('connect', namespace, sid, environ)
                    except TypeError:
                        raise exc from None
        except (exceptions.ConnectionRefusedError, ConnectionRefusedError) as exc:
            refusal = exc
            success = False
        if success is False:
            self._send_packet(eio_sid, self._relio_refuse_connect(session, refusal))
            self.manager.disconnect(sid, namespace, ignore_queue=True)
        elif not self.always_connect:
            self._send_connect(eio_sid, namespace, reply, session)
            self.manager.connect(sid, namespace)

    def _send_connect(self, eio_sid, namespace, reply, session: ServerSession):
        self._send_packet(eio_sid, self.packet_class(packet.CONNECT, reply, namespace=namespace))
        # Batches follow the CONNECT packet on the same connection, so the client has set the
        # session up before the first one arrives.
        with self._relio_lock:
            if not session.channel.closed and not session.ended:
                session.channel.attach(self._writer(eio_sid, namespace))
                self.relio_registry.bind(session)

    def _new_channel(self, engine: Engine, sid: str, namespace: str) -> ThreadChannel:
        return self._relio_host.make_channel(engine, self, json=self.relio_codec, sid=sid,
                                             namespace=namespace)

    def _new_session(self, sid, namespace, eio_sid) -> ServerSession:
        engine = Engine(self.relio_config, now=DRIVER.time())
        channel = self._new_channel(engine, sid, namespace)
        return self.relio_registry.create(sid, namespace, channel, eio_sid)

    def _resume_session(self, eio_sid, namespace, hello, auth) -> str | None:
        """Resume the session named in ``hello`` on this connection; None if resumed, else the
        reason it was refused (the caller starts a new session and tells the client why)."""
        registry = self.relio_registry
        sid = hello.get('sid')
        if isinstance(sid, str) and sid not in registry and self._relio_host.movable \
                and self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            # Not here: another node has it (or had it). Take it over (no lock held: the host
            # waits for Redis and for the other node).
            refused = self._relio_host.claim(sid, namespace, eio_sid, hello.get('credential'))
            if refused is not None:
                logger.info('relio: resume refused on %s [%s]: %s', eio_sid, namespace, refused)
                return refused
        with self._relio_lock:
            resumable = self._relio_resumable(eio_sid, namespace, hello, DRIVER.time())
        if isinstance(resumable, str):
            return resumable
        session, peer_state = resumable
        channel = session.channel
        environ = self.environ.get(eio_sid, {})
        try:
            allowed = self._trigger_event(wire.RESUME_EVENT, namespace, sid, environ,
                                          auth or None)
        except (exceptions.ConnectionRefusedError, ConnectionRefusedError):
            allowed = False
        with self._relio_lock:
            if session.ended:
                return UNKNOWN_SESSION
            if allowed is False:
                return self._refuse_resume(session, 'resume refused by the server')
            old_eio = session.eio_sid
            registry.unbind(session)
            with _channel(session).lock:
                if channel.attached:
                    channel.detach()           # half-open: the old connection is still up
                try:
                    channel.engine.resume(peer_state, DRIVER.time())
                except RemoteProtocolError as exc:
                    return self._refuse_resume(session, f'protocol error: {exc.reason}')
            reply = self._relio_move(session, eio_sid)
            unreferenced = old_eio != eio_sid and not registry.references(old_eio)
        self._send_connect(eio_sid, namespace, reply, session)
        logger.info('relio: session %s [%s] resumed on %s', sid, namespace, eio_sid)
        self._relio_host.resumed(session)     # the new credential, for other nodes
        if unreferenced and old_eio in self.eio.sockets:
            self.start_background_task(self.eio.disconnect, old_eio)
        return None

    # --- transport -------------------------------------------------------------------------
    def _handle_eio_message(self, eio_sid, data):
        if self._relio_is_carrier(eio_sid, data):
            try:
                self._relio_receive(eio_sid, data)
            except RemoteProtocolError as exc:
                logger.warning('relio: closing %s: %s', eio_sid, exc.reason)
                self.eio.disconnect(eio_sid)
            return
        return super()._handle_eio_message(eio_sid, data)

    def _handle_event(self, eio_sid, namespace, id, data):
        if self._relio_drops_event(eio_sid, namespace, data):
            return
        return super()._handle_event(eio_sid, namespace, id, data)

    def _send_packet(self, eio_sid, pkt):
        if self._relio_connection_gone(eio_sid):
            return       # a suspended session's connection is gone; nothing to tell it
        super()._send_packet(eio_sid, pkt)

    def _handle_eio_disconnect(self, eio_sid, reason):
        registry = self.relio_registry
        plain = []
        with self._relio_lock:
            registry.connection_closed(eio_sid)
            self._relio_keep_environ(eio_sid)
            for namespace in list(self.manager.get_namespaces()):
                session = registry.bound(eio_sid, namespace)
                if session is not None and not session.channel.closed:
                    self._suspend(session, reason)
                else:
                    plain.append(namespace)
        for namespace in plain:
            self._handle_disconnect(eio_sid, namespace, reason)
        with self._relio_lock:
            if eio_sid in self.environ and not registry.references(eio_sid):
                del self.environ[eio_sid]

    def _handle_disconnect(self, eio_sid, namespace, reason=None):
        namespace = namespace or '/'
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        session = self.relio_registry.get(sid)
        if session is not None:
            # The client ended the session (socket.io DISCONNECT, after relio's CLOSE).
            with self._relio_lock:
                self.relio_registry.forget(session)
            session.channel.close(reason or 'client disconnect')
            _channel(session).idle()     # its handlers first, as python-socketio orders them
        super()._handle_disconnect(eio_sid, namespace, reason)

    # --- session lifetime ------------------------------------------------------------------
    def _suspend(self, session: ServerSession, reason) -> None:
        session.channel.detach()
        logger.info('relio: session %s [%s] suspended (%s)', session.sid, session.namespace,
                    reason)
        self.relio_registry.park(session, DRIVER.time())
        # The client may come back through another node: leave the session where it can find it.
        self._relio_host.suspended(session)
        session.channel.runner.run(self._trigger_event,
                                   (wire.SUSPEND_EVENT, session.namespace, session.sid, reason))

    def _end(self, session: ServerSession, reason: str, close_reason: str | None = None) -> None:
        """End a session for ``reason``: its pending messages fail (with ``close_reason``, by
        default ``reason``) and ``disconnect`` fires (in the session's handler thread)."""
        with self._relio_lock:
            if not self.relio_registry.forget(session, reason):
                return
        session.channel.close(close_reason or reason)
        session.channel.runner.run(self._finish_session, (session, reason))

    def _finish_session(self, session: ServerSession, reason: str) -> None:
        """The socket.io side of a session that relio ended: tell the client if it is still
        connected, fire ``disconnect`` once, leave every room. Runs after the session's
        handlers (in its handler thread)."""
        sid, namespace = session.sid, session.namespace
        with self._relio_lock:
            self.relio_registry.remember_ended(sid, reason)
        self._relio_host.ended(session, reason)
        with self._relio_lock:
            if not self.manager.is_connected(sid, namespace):
                return
            eio_sid = self.manager.pre_disconnect(sid, namespace)
        if eio_sid in self.eio.sockets:
            super()._send_packet(eio_sid, self.packet_class(packet.DISCONNECT,
                                                            namespace=namespace))
        self._trigger_event('disconnect', namespace, sid, reason)
        with self._relio_lock:
            self.manager.disconnect(sid, namespace, ignore_queue=True)
            if not self.relio_registry.references(eio_sid) and eio_sid not in self.eio.sockets:
                self.environ.pop(eio_sid, None)

    # --- for session hosts (sessions moving between nodes) --------------------------------------
    def relio_export(self, session: ServerSession, max_ids: int = -1) -> tuple[dict, bytes]:
        """What another node needs to carry ``session`` on: the socket.io layer's part (rooms,
        the application's session dict) and the engine snapshot (``max_ids``: of the id set, only
        the newest). Taken under the session's lock."""
        with _channel(session).lock:
            snapshot = session.channel.engine.snapshot(DRIVER.time(), max_ids)
            return self._relio_session_meta(session), snapshot

    def relio_export_apart(self, session: ServerSession, max_ids: int,
                           stored: set) -> tuple[dict, bytes, list, bytes, list]:
        """:meth:`relio_export` with the outbox's messages kept apart (a host that saves often
        writes each message once): ``(meta, snapshot, added, records, gone)``, see
        ``Engine.snapshot_apart``. Taken under the session's lock."""
        with _channel(session).lock:
            snapshot, added, records, gone = session.channel.engine.snapshot_apart(
                DRIVER.time(), max_ids, stored)
            return self._relio_session_meta(session), snapshot, added, records, gone

    def relio_adopt(self, sid, namespace, eio_sid, credential, meta, snapshot,
                    records=None) -> ServerSession:
        """Register a session moved here from another node (parked on ``eio_sid`` until the resume
        that asked for it completes; ``records``: the message records of a
        :meth:`relio_export_apart` snapshot). :raises RemoteProtocolError: the snapshot is
        invalid."""
        self._relio_check_record(sid, namespace, meta)
        now = DRIVER.time()
        engine = Engine.restore(snapshot, self.relio_config, now=now, records=records)
        with self._relio_lock:
            channel = self._new_channel(engine, sid, namespace)
            return self._relio_adopted(sid, namespace, eio_sid, credential, meta, channel, now)

    def relio_release(self, session: ServerSession, reason: str | None) -> None:
        """The session now lives on another node: drop it here without ending it (no
        ``disconnect``; its record is not touched). ``reason``: this copy was stale (fenced)."""
        with self._relio_lock:
            if not self.relio_registry.forget(session):
                return
            sid, namespace, eio_sid = session.sid, session.namespace, session.eio_sid
            session.channel.abandon(reason)
            self.manager.basic_disconnect(sid, namespace)
            still_used = self.relio_registry.references(eio_sid)
        sock = self.eio.sockets.get(eio_sid)
        if sock is not None and not still_used and not sock.closed:
            # A connection the client left (or that shutdown will close): drop it *without*
            # engine.io's CLOSE packet, which would tell the client not to reconnect.
            if sock.upgraded:
                sock.queue.put(None)              # the websocket writer exits and closes
            else:
                self.start_background_task(sock.close, wait=False, abort=True)
        logger.info('relio: session %s [%s] left this node%s', sid, namespace,
                    f' ({reason})' if reason else '')

    # --- ChannelHandler (called under the session's lock) --------------------------------------
    def on_message(self, channel: ThreadChannel, msg_id: bytes, items: list,
                   request: bool) -> None:
        events.dispatch_server_message(self, channel, msg_id, items, request)

    def on_undelivered(self, channel: ThreadChannel | None, error: DeliveryError,
                       seen: bool = False) -> None:
        namespace = self._relio_log_undelivered(error, seen)
        args = (wire.DELIVERY_ERROR_EVENT, namespace, error.sid, error)
        if channel is not None:
            channel.runner.run(self._trigger_event, args)
        else:
            self.start_background_task(self._trigger_event, *args)

    def on_closed(self, channel: ThreadChannel, reason: str, by_peer: bool) -> None:
        closed = self._relio_closed(channel, reason, by_peer)
        if closed is None:
            return                      # already removed (ended, refused)
        session, reason = closed
        # The server's lock is never taken under a session's lock: the rest goes on in the
        # session's handler thread, after its handlers.
        channel.runner.run(self._closed, (session, reason))

    def _closed(self, session: ServerSession, reason: str) -> None:
        with self._relio_lock:
            if not self.relio_registry.forget(session, reason):
                return
        self._finish_session(session, reason)


__all__ = ["Manager", "Server"]
