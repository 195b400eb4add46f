"""``relio.Client``: python-socketio's thread-based ``Client`` whose sessions survive reconnects.

The socket.io plumbing of :mod:`relio.asyncio.client` without ``await`` (asking for relio in each
namespace's CONNECT, resuming the session on every reconnect, queueing emits while the connection
is down, dispatching delivered messages as python-socketio would), on the shared pieces: the
decisions that never wait (:class:`~relio.binding.client_shell.ClientShell`), the engine,
:class:`~relio.threading.channel.ThreadChannel`, the wire helpers, the dispatch of
:mod:`relio.binding.events`. Against a plain Socket.IO server it behaves like
``socketio.Client``.

While a relio session lives, a dropped connection is not a disconnect for the application:
``disconnect`` is not fired (``relio_suspend`` is), ``emit``/``call`` keep working (the messages
wait in the session's outbox), and after python-socketio's reconnect logic has a new connection
the session resumes. Handlers run in the session's handler thread, one after another in delivery
order (python-socketio's thread-based client runs them in its read loop, in order, too).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from typing import Any

import engineio
import socketio
from socketio import packet

from relio.binding import events, wire
from relio.binding.client_shell import ClientSession, ClientShell
from relio.config import Config
from relio.engine._engine import Engine
from relio.engine.errors import DeliveryError, QueueFull, RemoteProtocolError
from relio.threading.channel import ThreadChannel
from relio.threading.driver import DRIVER
from relio.threading.results import Delivery

logger = logging.getLogger("relio")

#: How long ``disconnect()`` lets engine.io's writer send what is queued before it closes the
#: websocket (the asyncio client waits as long).
DISCONNECT_FLUSH_WAIT = 1.0


def _url_asking_for_relio(url: Any) -> Any:
    """:func:`relio.binding.wire.url_asking_for_relio` for python-socketio's thread-based client,
    whose callable URLs are plain functions."""
    if not callable(url):
        return wire.url_asking_for_relio(url)
    if getattr(url, 'relio_url', False):
        return url

    def relio_url() -> str:
        return wire.url_asking_for_relio(url())
    relio_url.relio_url = True  # type: ignore[attr-defined]
    return relio_url


class _StopSafeQueue(queue.Queue):
    """engine.io's send queue, with a stop signal that cannot get lost (see the asyncio
    client's ``_StopSafeQueue``: python-engineio's write loop drops the ``None`` that stops it when
    packets are queued ahead of it); ``stopping`` tells relio not to write into a connection that
    is going away."""

    stopping = False

    def put(self, item, block=True, timeout=None):
        if item is None:
            self.stopping = True
            super().put(None, block, timeout)
        super().put(item, block, timeout)


def _wait_until_sent(q: Any, timeout: float) -> None:
    """Wait up to ``timeout`` seconds until engine.io's writer has sent what is in its queue
    (``task_done`` for each). The queue is the standard library's, or gevent's once the standard
    library is monkey-patched: gevent's has no ``all_tasks_done`` but a ``join`` that takes a
    timeout."""
    all_tasks_done = getattr(q, 'all_tasks_done', None)
    if all_tasks_done is None:
        q.join(timeout)
        return
    deadline = time.monotonic() + timeout
    with all_tasks_done:
        while q.unfinished_tasks and time.monotonic() < deadline:
            all_tasks_done.wait(deadline - time.monotonic())


class _EngineIOClient(engineio.Client):
    """python-engineio's thread-based client with :class:`_StopSafeQueue` as its send queue."""

    def create_queue(self, *args, **kwargs):
        return _StopSafeQueue(*args, **kwargs)

    def _read_loop_websocket(self):
        # python-engineio leaves the websocket of a connection that died (the server stopped
        # answering) open until it is garbage collected: a socket per reconnect. Close it here.
        ws = self.ws
        try:
            super()._read_loop_websocket()
        finally:
            if ws is not None:
                try:
                    ws.shutdown()
                except Exception:     # already closed
                    pass


class Client(ClientShell, socketio.Client):
    """A Socket.IO client (thread-based) with reliable delivery and resumable sessions.

    Takes every argument of ``socketio.Client`` (and of engine.io), plus:

    :param relio_config: a :class:`relio.Config` (limits and timers of this client's sessions).
    :param relio: set to False to behave exactly as ``socketio.Client`` (no handshake).

    Handlers relio adds: ``relio_resume()`` after a session resumed on a new connection,
    ``relio_suspend(reason)`` when the connection dropped and the session waits to resume,
    ``relio_delivery_error(error)`` when a message will never be delivered.
    """

    connected: bool

    def __init__(self, *args, relio_config: Config | None = None, relio: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.relio_sessions: dict[str, ClientSession[ThreadChannel]]
        self._relio_setup(relio_config, relio)
        self._relio_lock = threading.RLock()
        self._relio_connect_thread: Any = None     # the thread inside connect()

    # --- public API ------------------------------------------------------------------------------
    def connect(self, url, headers={}, auth=None, transports=None,  # noqa: B006
                namespaces=None, socketio_path='socket.io', wait=True, wait_timeout=1,
                retry=False):
        """Connect to a Socket.IO server (python-socketio's arguments and behaviour)."""
        if self.relio_enabled:
            url = _url_asking_for_relio(url)
            self._relio_check_namespaces(namespaces)
        self._relio_connecting = True
        self._relio_connect_thread = threading.current_thread()
        wait_timeout = self._relio_wait_timeout(wait_timeout)
        try:
            return super().connect(url, headers=headers, auth=auth, transports=transports,
                                   namespaces=namespaces, socketio_path=socketio_path,
                                   wait=wait, wait_timeout=wait_timeout, retry=retry)
        finally:
            self._relio_connecting = False
            self._relio_connect_thread = None

    def emit(self, event, data=None, namespace=None, callback=None, block=True):
        """Emit a custom event to the server.

        Arguments are python-socketio's; relio adds ``block`` (wait for room when the session's
        outbox is full, or raise :class:`relio.QueueFull`). In a relio session the emit never
        fails because the connection is down: it is queued and sent on resume.

        Returns a :class:`relio.Delivery`: ``delivery.wait()`` returns once the server has it.
        """
        namespace = namespace or '/'
        channel = self._relio_channel(namespace)
        if channel is None:
            super().emit(event, data=data, namespace=namespace, callback=callback)
            delivery = Delivery()
            delivery.unconfirmed = 1
            return delivery
        encoded = self._relio_encode(event, data, namespace)
        delivery = Delivery()
        try:
            channel.send_nowait(encoded, event, delivery, callback)
        except QueueFull:
            if not block:
                raise
            channel.send(encoded, event, delivery, callback)
        return delivery

    def send(self, data, namespace=None, callback=None, block=True):
        """Send a ``message`` event; see :meth:`emit`."""
        return self.emit('message', data=data, namespace=namespace, callback=callback,
                         block=block)

    def call(self, event, data=None, namespace=None, timeout=60, block=True):
        """Emit an event and wait for the server handler's response.

        In a relio session the request survives reconnects and its handler runs once; only
        ``timeout`` (``socketio.exceptions.TimeoutError``) or the end of the session
        (:class:`relio.DeliveryError`) ends the wait. A chained reply returns a
        :class:`relio.Question`.
        """
        namespace = namespace or '/'
        channel = self._relio_channel(namespace)
        if channel is None:
            return super().call(event, data=data, namespace=namespace, timeout=timeout)
        encoded = self._relio_encode(event, data, namespace)
        return channel.call(encoded, event, timeout, block)

    def disconnect(self, drain_timeout: float | None = None):
        """Disconnect from the server, ending the relio sessions.

        Messages not yet acknowledged get up to ``drain_timeout`` seconds (default:
        ``relio_config.drain_timeout``) to be delivered; what is still pending after that fails
        with :class:`relio.DeliveryError`.
        """
        if self._relio_connecting and threading.current_thread() is self._relio_connect_thread:
            # python-socketio's connect() giving up on this attempt (its wait_timeout): only the
            # connection goes; the sessions stay suspended for the next attempt.
            return super().disconnect()
        timeout = self.relio_config.drain_timeout if drain_timeout is None else drain_timeout
        for session in list(self.relio_sessions.values()):
            session.channel.drain(timeout)
        reason = self.reason.CLIENT_DISCONNECT
        with self._relio_lock:
            leaving = [n for n in self.relio_sessions if n in self.namespaces and self.connected]
            sessions = list(self.relio_sessions.values())
            for session in sessions:
                self.namespaces.pop(session.channel.namespace, None)
            self.relio_sessions.clear()
        for session in sessions:
            self._end_session(session, reason)
        if self._reconnect_task is not None and self._reconnect_abort is not None:
            self._reconnect_abort.set()      # the application asked to go: stop reconnecting
        for n in [*leaving, *self.namespaces]:
            self._send_packet(self.packet_class(packet.DISCONNECT, namespace=n))
        # engine.io's disconnect closes the websocket without flushing its queue
        # (python-socketio #888): let the writer send what is queued first (the session's CLOSE,
        # the DISCONNECTs), briefly, or the server takes the close for a dropped connection.
        q = self.eio.queue
        if self.eio.state == 'connected' and q is not None:
            _wait_until_sent(q, DISCONNECT_FLUSH_WAIT)
        self.eio.disconnect()

    # --- handshake -------------------------------------------------------------------------------
    def _handle_eio_connect(self):
        """Send each namespace's CONNECT, asking for (or resuming) a relio session."""
        self._relio_connection_up()
        real_auth = self._get_real_value(self.connection_auth) or {}
        for n in self.connection_namespaces:
            data = self._relio_connect_data(n, real_auth)
            self._send_packet(self.packet_class(packet.CONNECT, data=data, namespace=n))

    def _handle_connect(self, namespace, data):
        namespace = namespace or '/'
        info, ttl = wire.server_session_info(data, self.relio_config.session_ttl)
        session = self.relio_sessions.get(namespace)
        if info is None:
            if session is not None:        # the server no longer speaks relio
                self._end_session(session, 'server does not support relio')
            return super()._handle_connect(namespace, data)
        sid = data.get('sid')
        if session is not None and self._relio_resumes(session, info, ttl, sid):
            channel = session.channel
            try:
                peer_state = wire.decode_state(info.get('state'))
                with channel.lock:
                    channel.attach(self._writer(namespace), peer_state)
                    channel.send_ack_now()
            except RemoteProtocolError as exc:
                logger.warning('relio: cannot resume %s [%s]: %s', sid, namespace, exc.reason)
                self._end_session(session, f'protocol error: {exc.reason}')
                self._send_packet(self.packet_class(packet.DISCONNECT, namespace=namespace))
                return
            logger.info('relio: session %s [%s] resumed', sid, namespace)
            self.namespaces[namespace] = sid
            channel.runner.run(self._trigger_event, (wire.RESUME_EVENT, namespace))
            self._connect_event.set()
            return
        if session is not None:
            self._end_session(session, info.get('refused') or 'session expired')
        config = self._relio_session_config(info, namespace)
        channel = ThreadChannel(Engine(config, now=DRIVER.time()), self,
                                start_task=self.start_background_task, json=self.relio_codec,
                                sid=sid, namespace=namespace, recipient='the server',
                                linger=self.relio_config.handler_thread_linger)
        self._relio_add_session(ClientSession(channel, info['credential'], ttl),
                                self._writer(namespace))
        super()._handle_connect(namespace, data)

    def _end_session(self, session: ClientSession, reason: str) -> None:
        """A session is over (refused on resume, closed): fail what is pending, fire disconnect
        (in the session's handler thread, after its handlers)."""
        channel = session.channel
        if self._relio_end(session, reason):
            # Its disconnect was withheld when the connection dropped (or the application is
            # leaving): fire it now, and python-socketio's final one (SimpleClient waits for it).
            channel.runner.run(self._trigger_event, ('disconnect', channel.namespace, reason))
            channel.runner.run(self._trigger_event, ('__disconnect_final', channel.namespace))

    # --- transport -------------------------------------------------------------------------
    def _engineio_client_class(self):
        return _EngineIOClient

    def _handle_eio_message(self, data):
        if self._relio_receive(data):
            return
        return super()._handle_eio_message(data)

    def _handle_eio_disconnect(self, reason):
        will_reconnect = self._relio_will_reconnect()
        suspended = []
        ended = []
        with self._relio_lock:
            for namespace, session in list(self.relio_sessions.items()):
                was_attached = session.channel.attached
                session.channel.detach()
                self.namespaces.pop(namespace, None)
                if will_reconnect:
                    if was_attached:
                        suspended.append(session)
                else:
                    ended.append(session)
        for session in ended:
            self._end_session(session, reason)
        super()._handle_eio_disconnect(reason)
        self._relio_fail_connect_attempt()
        for session in suspended:
            namespace = session.channel.namespace
            logger.info('relio: session [%s] suspended (%s)', namespace, reason)
            if session.expiry_handle is None:
                session.expiry_handle = DRIVER.call_later(
                    session.ttl, functools.partial(self._on_local_expiry, session))
            session.channel.runner.run(self._trigger_event,
                                       (wire.SUSPEND_EVENT, namespace, reason))

    def _on_local_expiry(self, session: ClientSession) -> None:
        """The server forgot the suspended session by now: end ours too (in a handler thread: the
        driver thread runs no application code)."""
        session.expiry_handle = None
        if not session.channel.attached and not session.ended:
            self.start_background_task(self._end_session, session, 'session expired')

    def _handle_reconnect(self):
        self._relio_reconnecting = True
        try:
            while True:
                task = self._reconnect_task or threading.current_thread()
                try:
                    super()._handle_reconnect()
                except Exception as exc:
                    if not self._relio_reconnect_again(exc):
                        raise
                else:
                    if not self._relio_reconnect_again():
                        break
                    self._relio_forget_lost_connection()
                self._reconnect_task = task      # (shutdown() joins it)
        finally:
            self._relio_reconnecting = False
            if self.eio.state != 'connected':
                # python-socketio gave up reconnecting (or was told to stop): the sessions end
                # here and everything still pending in them is reported undelivered.
                for session in list(self.relio_sessions.values()):
                    self._end_session(session, 'reconnection failed')

    def _relio_forget_lost_connection(self):
        """python-socketio took a connection that was already lost for a success: undo what it
        set (its plain namespaces get ``disconnect``, as a drop gives them)."""
        if self.connected:
            for n in list(self.namespaces):
                if n not in self.relio_sessions:
                    self._trigger_event('disconnect', n, self.reason.TRANSPORT_ERROR)
        self.namespaces = {}
        self.connected = False

    def _handle_disconnect(self, namespace):
        namespace = namespace or '/'
        if namespace not in self.namespaces:
            return            # already ended by relio's CLOSE
        session = self._relio_server_ended(namespace)
        if session is not None:
            session.channel.idle()      # its handlers first, then `disconnect`
        super()._handle_disconnect(namespace)

    def _handle_error(self, namespace, data):
        namespace = namespace or '/'
        session = self.relio_sessions.get(namespace)
        if session is not None:       # a resume was refused by the application
            self._end_session(session, 'resume refused')
        super()._handle_error(namespace, data)

    def _handle_event(self, namespace, id, data):
        if self._relio_drops_event(data):
            return
        return super()._handle_event(namespace, id, data)

    # --- ChannelHandler (called under the session's lock) --------------------------------------
    def on_message(self, channel: ThreadChannel, msg_id: bytes, items: list,
                   request: bool) -> None:
        events.dispatch_client_message(self, channel, msg_id, items, request)

    def on_undelivered(self, channel: ThreadChannel, error: DeliveryError,
                       seen: bool = False) -> None:
        self._relio_log_undelivered(channel, error, seen)
        channel.runner.run(self._trigger_event,
                           (wire.DELIVERY_ERROR_EVENT, channel.namespace, error))

    def on_closed(self, channel: ThreadChannel, reason: str, by_peer: bool) -> None:
        session = self._relio_closed(channel, reason)
        if session is None:
            return
        if by_peer:     # the server ended the session; its socket.io DISCONNECT follows
            channel.runner.run(self._close_namespace,
                               (session, self.reason.SERVER_DISCONNECT, False))
        else:           # we ended it (protocol error, delivery timeout): tell the server
            channel.runner.run(self._close_namespace, (session, reason, True))

    def _close_namespace(self, session: ClientSession, reason: str, tell_server: bool) -> None:
        namespace = session.channel.namespace
        connected = namespace in self.namespaces
        self._end_session(session, reason)
        if not connected:
            return
        self.namespaces.pop(namespace, None)
        if tell_server and self.eio.state == 'connected':
            self._send_packet(self.packet_class(packet.DISCONNECT, namespace=namespace))
        self._trigger_event('disconnect', namespace, reason)
        self._trigger_event('__disconnect_final', namespace)
        if not self.namespaces and self.connected:
            self.connected = False
            self.eio.disconnect()


__all__ = ["Client", "ClientSession"]
