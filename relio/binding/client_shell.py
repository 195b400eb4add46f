"""What relio's two clients share above the engine and below their I/O: :class:`ClientShell`.

:class:`relio.AsyncClient` (asyncio) and :class:`relio.Client` (thread-based) run the same socket.io
plumbing; they differ only where it waits (``await`` or a blocking call under a lock). This module
owns the decisions that never wait, as a mixin both clients put before python-socketio's class:
relio's part of the constructor, the checks ``connect()`` makes, encoding an emit, the CONNECT each
namespace sends (asking for or resuming a session), what a server's CONNECT answer means for the
session, the writer that puts a session's batches on the connection, which packets relio takes from
python-socketio (carriers, reserved events), and what to log when a channel reports a failure or a
close; and the :class:`ClientSession` record. Each client keeps the I/O: sending packets, firing
handlers, waiting for drains and reconnects.
"""

from __future__ import annotations

import logging
from typing import Any, Generic, Protocol, TypeVar

from engineio import packet as eio_packet
from socketio import base_client

from relio.binding import payload as payload_codec
from relio.binding import wire
from relio.binding.shell import Shell
from relio.config import Config
from relio.engine.errors import DeliveryError, RemoteProtocolError

logger = logging.getLogger("relio")

C = TypeVar("C")


class _Timer(Protocol):
    def cancel(self) -> Any: ...


class ClientSession(Generic[C]):
    """One relio session of the client (one per namespace): its channel, the resume credential
    the server gave (rotated on every resume) and the local expiry while suspended."""

    __slots__ = ("channel", "credential", "ttl", "expiry_handle", "ended")

    def __init__(self, channel: C, credential: str, ttl: float):
        self.channel = channel
        self.credential = credential
        #: how long the server keeps the session after its connection drops (it says so)
        self.ttl = ttl
        self.expiry_handle: _Timer | None = None
        #: over: removed from the client, its disconnect fired or about to be
        self.ended = False

    def cancel_expiry(self) -> None:
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
            self.expiry_handle = None


class ClientShell(Shell):
    """The await-free half of a relio client (see the module); mixed in before python-socketio's
    ``Client`` or ``AsyncClient``."""

    # python-socketio's (the client class this is mixed into)
    connection_namespaces: Any
    failed_namespaces: Any
    reconnection: Any
    reconnection_attempts: Any
    sid: Any
    _reconnect_abort: Any
    _reconnect_task: Any
    _connect_event: Any
    # the client's own
    relio_sessions: dict[str, Any]

    def _relio_setup(self, relio_config: Config | None, relio: bool) -> None:
        """relio's part of the constructor, once python-socketio's has run."""
        self._relio_setup_shell(relio_config)
        self.relio_enabled = relio
        #: the relio sessions, by namespace
        self.relio_sessions = {}
        self._relio_connecting = False
        self._relio_reconnecting = False    # inside python-socketio's reconnect loop
        self._relio_spoken = False

    # --- public API ------------------------------------------------------------------------------
    def _relio_check_namespaces(self, namespaces) -> None:
        """The namespaces ``connect()`` will join (python-socketio's choice when none are given)
        must fit in a carrier. :raises ValueError: one does not."""
        wanted = [namespaces] if isinstance(namespaces, str) else namespaces
        for n in wanted or (list(set(self.handlers) | set(self.namespace_handlers)) or ['/']):
            wire.check_namespace(n)

    def _relio_wait_timeout(self, wait_timeout):
        """``connect()``'s ``wait_timeout``. A resume: python-socketio's reconnect waits only 1 s
        for the answer, then drops the connection and tries again; give the server's resume
        handlers time to answer."""
        if self._relio_reconnecting and self.relio_sessions:
            return max(wait_timeout, self.relio_config.resume_wait_timeout)
        return wait_timeout

    def _relio_encode(self, event, data, namespace) -> payload_codec.Encoded:
        """An emit's message for the relio session of ``namespace`` (logged as python-socketio
        logs it)."""
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info('Emitting event "%s" [%s]', event, namespace)
        return payload_codec.encode_event(event, data, self.relio_codec)

    def session_stats(self, namespace='/') -> dict | None:
        """Counters of the relio session of ``namespace``, or None (plain server, no session)."""
        channel = self._relio_channel(namespace)
        return None if channel is None else channel.stats

    def _relio_channel(self, namespace: str) -> Any:
        session = self.relio_sessions.get(namespace)
        return None if session is None else session.channel

    # --- handshake -------------------------------------------------------------------------------
    def _relio_connection_up(self) -> None:
        """A new engine.io connection: its send queue is not stopping; the client's sid is it."""
        self.logger.info('Engine.IO connection established')
        queue = self.eio.queue
        if getattr(queue, 'stopping', False):
            queue.stopping = False
        self.sid = self.eio.sid

    def _relio_connect_data(self, namespace, real_auth):
        """The CONNECT data for ``namespace``: the application's auth, naming the session to
        resume if there is one (a new session is asked for in the URL's query, so a plain server
        sees the application's auth unchanged)."""
        session = self.relio_sessions.get(namespace)
        if self.relio_enabled and isinstance(real_auth, dict) and session is not None \
                and not session.channel.closed:
            return wire.resume_auth(real_auth, session.channel.sid, session.credential,
                                    session.channel.resume_state())
        return real_auth

    def _relio_resumes(self, session: ClientSession, info: dict, ttl: float, sid) -> bool:
        """Whether the server's CONNECT answer resumes ``session``; if it does, the session
        takes the new credential and TTL and stops its local expiry."""
        channel: Any = session.channel
        if not (info.get('resumed') and not channel.closed and channel.sid == sid):
            return False
        session.credential = info['credential']
        session.ttl = ttl
        session.cancel_expiry()
        return True

    def _relio_session_config(self, info: dict, namespace) -> Config:
        """The config of a new session: chunks of ``upload_chunk_size`` if the server takes them
        (its max_batch_size), batches sized for this connection's limit (the server's
        max_http_buffer_size; base64 in one POST when only long-polling is allowed), so that none
        is dropped for its size."""
        return wire.fit_config(self.relio_config, info.get('max_payload'), namespace,
                               'websocket' not in (self.eio.transports or ('websocket',)),
                               info.get('max_batch'))

    def _relio_add_session(self, session: ClientSession, writer) -> None:
        """Keep a new session (the server's CONNECT made it) and attach it to the connection."""
        self.relio_sessions[session.channel.namespace] = session
        self._relio_spoken = True       # from now on a raw binary message is a relio carrier
        session.channel.attach(writer)

    def _relio_end(self, session: ClientSession, reason: str) -> bool:
        """End ``session`` here (once): drop it from the client, stop its local expiry, fail what
        is pending with ``reason``. Returns whether its ``disconnect`` is yet to fire: it was
        withheld when the connection dropped (or the application is leaving)."""
        channel: Any = session.channel
        with self._relio_lock:
            if self.relio_sessions.get(channel.namespace) is session:
                del self.relio_sessions[channel.namespace]
            if session.ended:
                return False
            session.ended = True
        session.cancel_expiry()
        channel.close(reason)
        return channel.namespace not in self.namespaces

    def _relio_server_ended(self, namespace) -> ClientSession | None:
        """The server's DISCONNECT for ``namespace``: its session (if any) is over; its pending
        messages fail. Returns it."""
        with self._relio_lock:
            session = self.relio_sessions.pop(namespace, None)
            if session is not None:
                session.ended = True
        if session is not None:
            session.cancel_expiry()
            session.channel.close('server disconnect')
        return session

    # --- transport -----------------------------------------------------------------------------
    def _writer(self, namespace):
        """The writer of the session of ``namespace``: each batch goes out as a binary engine.io
        message (a carrier) on the connection's send queue, without waiting. Writing raises
        ConnectionError while there is no connection (or it is going away)."""
        prefix = wire.carrier_prefix(namespace)
        eio = self.eio
        Packet, MESSAGE = eio_packet.Packet, eio_packet.MESSAGE

        def write(batch: bytes) -> None:
            queue = eio.queue
            if eio.state != 'connected' or eio.write_loop_task is None \
                    or getattr(queue, 'stopping', False):
                raise ConnectionError('not connected')
            queue.put_nowait(Packet(MESSAGE, prefix + batch))
        return write

    # --- what relio takes from python-socketio -------------------------------------------------
    def _relio_receive(self, data) -> bool:
        """Whether an engine.io message is a relio carrier (handed to its session, or dropped
        with a warning if invalid); False: python-socketio's."""
        if data.__class__ is bytes and not self._binary_packet and self._relio_spoken \
                and (not self._relio_binary_serializer or wire.is_carrier(data)):
            try:
                namespace, batch = wire.split_carrier(data)
            except RemoteProtocolError as exc:
                logger.warning('relio: invalid carrier message from the server: %s', exc.reason)
                return True
            channel = self._relio_channel(namespace)
            if channel is not None and channel.attached:
                channel.receive(batch)
            return True
        return False

    def _relio_drops_event(self, data) -> bool:
        """Whether a socket.io EVENT is refused (logged): relio's lifecycle events are not the
        server's to fire."""
        if data and data[0] in wire.LIFECYCLE_EVENTS:
            logger.warning('relio: dropped reserved event %r', data[0])
            return True
        return False

    def _relio_will_reconnect(self) -> bool:
        """On a dropped connection: whether python-socketio reconnects. A reconnect attempt that
        failed (python-socketio drops its connection) is followed by another attempt: the
        sessions stay suspended; only giving up ends them."""
        return bool(self.reconnection and (self.eio.state == 'connected'
                                           or self._relio_reconnecting))

    def _relio_reconnect_again(self, exc: BaseException | None = None) -> bool:
        """After python-socketio's reconnect loop returned (or raised ``exc``): whether relio
        runs it again instead of ending the sessions.

        The loop ends for good when it connected, gave up (``reconnection_attempts``) or was told
        to stop. Two other exits are not the application's choice and would lose every session:
        an attempt raising something other than the ConnectionError/ValueError the loop expects
        (an unexpected transport error; retried unless attempts are limited), and an attempt the
        loop counted a success whose connection was already lost (its CONNECT answered, then the
        transport died before ``connect()`` returned): that loss came while the loop still ran,
        so python-socketio started no new loop for it, and the client would sit disconnected.
        """
        if exc is not None and self in base_client.reconnecting_clients:
            base_client.reconnecting_clients.remove(self)   # the loop's clean-up the raise skipped
        if self.eio.state == 'connected' or not self.reconnection:
            return False
        if self._reconnect_abort is not None and self._reconnect_abort.is_set():
            return False
        if exc is not None:
            if self.reconnection_attempts:
                return False
            logger.warning('relio: reconnection attempt failed (%r); trying again', exc)
            return True
        if self._reconnect_task is not None:
            return False                # python-socketio gave up (attempts exhausted)
        logger.info('relio: the connection was lost as it was made; reconnecting')
        return True

    def _relio_fail_connect_attempt(self) -> None:
        """The connection died while connect() waits for the namespaces' answers (a resume in
        progress): fail this attempt now instead of at the end of its wait_timeout."""
        if self._relio_connecting and self._connect_event is not None:
            for n in self.connection_namespaces or ():
                if n not in self.namespaces and n not in self.failed_namespaces:
                    self.failed_namespaces.append(n)
            self._connect_event.set()

    # --- ChannelHandler ------------------------------------------------------------------------
    def on_reply(self, channel) -> None:
        self.logger.info('Received ack [%s]', channel.namespace)

    def _relio_log_undelivered(self, channel, error: DeliveryError, seen: bool) -> None:
        """Log a message that will never be delivered: WARNING only if nobody handles it."""
        handled = seen or wire.has_handler(self, wire.DELIVERY_ERROR_EVENT, channel.namespace)
        logger.log(logging.INFO if handled else logging.WARNING, 'relio: %s', error)

    def _relio_closed(self, channel, reason: str):
        """A channel closed: its session to close, or None if it is already over."""
        session = self.relio_sessions.get(channel.namespace)
        if session is None or session.channel is not channel or session.ended:
            return None
        logger.info('relio: session [%s] closed (%s)', channel.namespace, reason)
        return session
