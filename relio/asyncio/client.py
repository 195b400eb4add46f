"""``relio.AsyncClient``: python-socketio's ``AsyncClient`` whose sessions survive reconnects.

This module owns the client's socket.io plumbing: asking for relio in each namespace's CONNECT
(:mod:`relio.binding.wire`), resuming the session on every reconnect, queueing emits while the
connection is down, and dispatching delivered messages to handlers exactly as python-socketio
would (the decisions that never wait are :class:`~relio.binding.client_shell.ClientShell`'s,
shared with the thread-based client: this module does the awaiting). Against a plain Socket.IO
server it behaves like ``socketio.AsyncClient``.

While a relio session lives, a dropped connection is not a disconnect for the application:
``disconnect`` is not fired (``relio_suspend`` is), ``emit``/``call`` keep working (the messages
wait in the session's outbox), pending callbacks are kept, and after python-socketio's reconnect
logic has a new connection the session resumes and the engine retransmits exactly what the server
lacks. ``connect`` fires once per session; ``relio_resume`` on each resume.
"""

from __future__ import annotations

import asyncio
import logging

import engineio
import socketio
from socketio import packet

from relio.asyncio.channel import Channel
from relio.asyncio.dispatch import spawn
from relio.asyncio.results import Delivery
from relio.binding import events, wire
from relio.binding.client_shell import ClientSession, ClientShell
from relio.config import Config
from relio.engine._engine import Engine
from relio.engine.errors import DeliveryError, QueueFull, RemoteProtocolError

logger = logging.getLogger("relio")


class _StopSafeQueue(asyncio.Queue):
    """engine.io's send queue, with a stop signal that cannot get lost.

    python-engineio 4.x's write loop discards the ``None`` its read loop queues to stop it when
    packets are queued ahead of it, and then runs on until its queue has stayed empty for
    ``max(ping_interval, ping_timeout) + 5`` seconds; a sender that keeps writing (relio
    retransmits) keeps it alive indefinitely and the client never notices the dead connection.
    Queueing the signal twice stops the loop right after what is queued; ``stopping`` tells relio
    not to write into a connection that is going away.
    """

    stopping = False

    async def put(self, item):
        if item is None:
            self.stopping = True
            await super().put(None)
        await super().put(item)


class _EngineIOClient(engineio.AsyncClient):
    """python-engineio's asyncio client with :class:`_StopSafeQueue` as its send queue."""

    def create_queue(self, *args, **kwargs):
        return _StopSafeQueue(*args, **kwargs)


class AsyncClient(ClientShell, socketio.AsyncClient):
    """A Socket.IO client for asyncio with reliable delivery and resumable sessions.

    Takes every argument of ``socketio.AsyncClient`` (and of engine.io), plus:

    :param relio_config: a :class:`relio.Config` (limits and timers of this client's sessions).
    :param relio: set to False to behave exactly as ``socketio.AsyncClient`` (no handshake).

    Handlers relio adds: ``relio_resume()`` after a session resumed on a new connection,
    ``relio_suspend(reason)`` when the connection dropped and the session waits to resume,
    ``relio_delivery_error(error)`` when a message will never be delivered.
    """

    connected: bool          # python-socketio's, typed for the checker

    def __init__(self, *args, relio_config: Config | None = None, relio: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.relio_sessions: dict[str, ClientSession[Channel]]
        self._relio_setup(relio_config, relio)
        self._relio_connect_task: asyncio.Task | None = None    # the task inside connect()

    # --- public API ------------------------------------------------------------------------------
    async def connect(self, url, headers={}, auth=None, transports=None,  # noqa: B006
                      namespaces=None, socketio_path='socket.io', wait=True, wait_timeout=1,
                      retry=False):
        """Connect to a Socket.IO server (python-socketio's arguments and behaviour).

        Note: this method is a coroutine.
        """
        if self.relio_enabled:
            url = wire.url_asking_for_relio(url)     # relio=1 in the query, not in auth
            self._relio_check_namespaces(namespaces)
        self._relio_connecting = True
        self._relio_connect_task = asyncio.current_task()
        wait_timeout = self._relio_wait_timeout(wait_timeout)
        try:
            return await super().connect(url, headers=headers, auth=auth, transports=transports,
                                         namespaces=namespaces, socketio_path=socketio_path,
                                         wait=wait, wait_timeout=wait_timeout, retry=retry)
        finally:
            self._relio_connecting = False
            self._relio_connect_task = None

    async def emit(self, event, data=None, namespace=None, callback=None, block=True):
        """Emit a custom event to the server.

        Arguments are python-socketio's; relio adds ``block`` (wait for room when the session's
        outbox is full, or raise :class:`relio.QueueFull`). In a relio session the emit never fails
        because the connection is down: it is queued and sent on resume.

        Returns a :class:`relio.Delivery`: ``await`` it to learn that the server has the message.

        Note: this method is a coroutine.
        """
        namespace = namespace or '/'
        channel = self._relio_channel(namespace)
        if channel is None:
            await super().emit(event, data=data, namespace=namespace, callback=callback)
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
            await channel.send(encoded, event, delivery, callback)
        return delivery

    async def send(self, data, namespace=None, callback=None, block=True):
        """Send a ``message`` event; see :meth:`emit`. Note: this method is a coroutine."""
        return await self.emit('message', data=data, namespace=namespace, callback=callback,
                               block=block)

    async def call(self, event, data=None, namespace=None, timeout=60, block=True):
        """Emit an event and wait for the server handler's response.

        In a relio session the request survives reconnects and its handler runs once; only
        ``timeout`` (``socketio.exceptions.TimeoutError``) or the end of the session
        (:class:`relio.DeliveryError`) ends the wait. A chained reply returns a
        :class:`relio.Question`.

        Note: this method is a coroutine.
        """
        namespace = namespace or '/'
        channel = self._relio_channel(namespace)
        if channel is None:
            return await super().call(event, data=data, namespace=namespace, timeout=timeout)
        encoded = self._relio_encode(event, data, namespace)
        return await channel.call(encoded, event, timeout, block)

    async def disconnect(self, drain_timeout: float | None = None):
        """Disconnect from the server, ending the relio sessions.

        Messages not yet acknowledged get up to ``drain_timeout`` seconds (default:
        ``relio_config.drain_timeout``) to be delivered; what is still pending after that fails
        with :class:`relio.DeliveryError`. Note: this method is a coroutine.
        """
        if self._relio_connecting and asyncio.current_task() is self._relio_connect_task:
            # python-socketio's connect() giving up on this attempt (its wait_timeout): only the
            # connection goes; the sessions stay suspended for the next attempt.
            return await super().disconnect()
        await self._drain(self.relio_config.drain_timeout if drain_timeout is None
                          else drain_timeout)
        reason = self.reason.CLIENT_DISCONNECT
        leaving = [n for n in self.relio_sessions if n in self.namespaces and self.connected]
        for namespace, session in list(self.relio_sessions.items()):
            # The session ends here, now: its CLOSE tells the server (if the connection is up; a
            # suspended one's server lets it expire after its TTL), and its `disconnect` fires
            # with the reason python-socketio gives for a client's disconnect, whatever the
            # server's answer races it with (its DISCONNECT would read 'server disconnect').
            self.namespaces.pop(namespace, None)
            await self._end_session(session, reason)
        self.relio_sessions.clear()
        if self._reconnect_task is not None and self._reconnect_abort is not None:
            self._reconnect_abort.set()      # the application asked to go: stop reconnecting
        for n in [*leaving, *self.namespaces]:
            await self._send_packet(self.packet_class(packet.DISCONNECT, namespace=n))
        # engine.io's disconnect closes the websocket without flushing its queue
        # (python-socketio #888): let the writer send what is queued first, briefly.
        if self.eio.state == 'connected':
            try:
                await asyncio.wait_for(self.eio.queue.join(), 1.0)
            except asyncio.TimeoutError:
                pass
        await self.eio.disconnect()

    async def _drain(self, timeout: float) -> None:
        await asyncio.gather(*(session.channel.drain(timeout)
                               for session in self.relio_sessions.values()))

    # --- handshake -------------------------------------------------------------------------------
    async def _handle_eio_connect(self):
        """Send each namespace's CONNECT, asking for (or resuming) a relio session."""
        self._relio_connection_up()
        real_auth = await self._get_real_value(self.connection_auth) or {}
        for n in self.connection_namespaces:
            data = self._relio_connect_data(n, real_auth)
            await self._send_packet(self.packet_class(packet.CONNECT, data=data, namespace=n))

    async def _handle_connect(self, namespace, data):
        namespace = namespace or '/'
        info, ttl = wire.server_session_info(data, self.relio_config.session_ttl)
        session = self.relio_sessions.get(namespace)
        channel = None if session is None else session.channel
        if info is None:
            if session is not None:        # the server no longer speaks relio
                await self._end_session(session, 'server does not support relio')
            return await super()._handle_connect(namespace, data)
        sid = data.get('sid')
        if session is not None and self._relio_resumes(session, info, ttl, sid):
            channel = session.channel
            try:
                peer_state = wire.decode_state(info.get('state'))
                channel.attach(self._writer(namespace), peer_state)
                channel.send_ack_now()
            except RemoteProtocolError as exc:
                logger.warning('relio: cannot resume %s [%s]: %s', sid, namespace, exc.reason)
                await self._end_session(session, f'protocol error: {exc.reason}')
                await self._send_packet(self.packet_class(packet.DISCONNECT,
                                                          namespace=namespace))
                return
            logger.info('relio: session %s [%s] resumed', sid, namespace)
            self.namespaces[namespace] = sid
            await self._trigger_event(wire.RESUME_EVENT, namespace)
            self._connect_event.set()
            return
        if session is not None:
            await self._end_session(session, info.get('refused') or 'session expired')
        loop = asyncio.get_running_loop()
        config = self._relio_session_config(info, namespace)
        channel = Channel(Engine(config, now=loop.time()), self,
                          json=self.relio_codec, sid=sid, namespace=namespace,
                          recipient='the server')
        self._relio_add_session(ClientSession(channel, info['credential'], ttl),
                                self._writer(namespace))
        await super()._handle_connect(namespace, data)

    async def _end_session(self, session: ClientSession, reason: str) -> None:
        """A session is over (refused on resume, closed): fail what is pending, fire disconnect."""
        channel = session.channel
        if self._relio_end(session, reason):
            # Its disconnect was withheld when the connection dropped (or the application is
            # leaving): fire it now, and python-socketio's final one (AsyncSimpleClient waits
            # for it).
            await self._trigger_event('disconnect', channel.namespace, reason)
            await self._trigger_event('__disconnect_final', channel.namespace)

    # --- transport -------------------------------------------------------------------------
    def _engineio_client_class(self):
        return _EngineIOClient

    async def _handle_eio_message(self, data):
        if self._relio_receive(data):
            return
        return await super()._handle_eio_message(data)

    async def _handle_eio_disconnect(self, reason):
        will_reconnect = self._relio_will_reconnect()
        suspended = []
        for namespace, session in list(self.relio_sessions.items()):
            was_attached = session.channel.attached
            session.channel.detach()
            if will_reconnect:
                # The session lives on: hide this namespace from python-socketio's disconnect.
                self.namespaces.pop(namespace, None)
                if was_attached:           # (a failed resume attempt suspends nothing new)
                    suspended.append(namespace)
            else:
                self.namespaces.pop(namespace, None)
                await self._end_session(session, reason)
        await super()._handle_eio_disconnect(reason)
        self._relio_fail_connect_attempt()
        if suspended:
            self._arm_local_expiry()
        for namespace in suspended:
            logger.info('relio: session [%s] suspended (%s)', namespace, reason)
            await self._trigger_event(wire.SUSPEND_EVENT, namespace, reason)

    def _arm_local_expiry(self) -> None:
        """The server forgets a suspended session ``ttl`` seconds after it lost the connection (it
        said how long in the handshake): end ours then too, so that what waits in it fails now
        instead of at the next successful reconnect."""
        loop = asyncio.get_running_loop()
        for session in self.relio_sessions.values():
            if session.channel.attached or session.channel.closed:
                continue
            if session.expiry_handle is None:
                session.expiry_handle = loop.call_later(session.ttl, self._on_local_expiry,
                                                        session)

    def _on_local_expiry(self, session: ClientSession) -> None:
        session.expiry_handle = None
        if not session.channel.attached and not session.ended:
            spawn(self._end_session(session, 'session expired'))

    async def _handle_reconnect(self):
        self._relio_reconnecting = True
        try:
            while True:
                try:
                    await super()._handle_reconnect()
                except Exception as exc:
                    if not self._relio_reconnect_again(exc):
                        raise
                else:
                    if not self._relio_reconnect_again():
                        break
                    await self._relio_forget_lost_connection()
                self._reconnect_task = asyncio.current_task()
        finally:
            self._relio_reconnecting = False
            if self.eio.state != 'connected':
                # python-socketio gave up reconnecting (or was told to stop): the sessions end here
                # and everything still pending in them is reported undelivered.
                for session in list(self.relio_sessions.values()):
                    await self._end_session(session, 'reconnection failed')

    async def _relio_forget_lost_connection(self):
        """python-socketio took a connection that was already lost for a success: undo what it
        set (its plain namespaces get ``disconnect``, as a drop gives them)."""
        if self.connected:
            for n in list(self.namespaces):
                if n not in self.relio_sessions:
                    await self._trigger_event('disconnect', n, self.reason.TRANSPORT_ERROR)
        self.namespaces = {}
        self.connected = False

    async def _handle_disconnect(self, namespace):
        namespace = namespace or '/'
        if namespace not in self.namespaces:
            return            # already ended by relio's CLOSE
        self._relio_server_ended(namespace)
        await super()._handle_disconnect(namespace)

    async def _handle_error(self, namespace, data):
        namespace = namespace or '/'
        session = self.relio_sessions.get(namespace)
        if session is not None:       # a resume was refused by the application
            await self._end_session(session, 'resume refused')
        await super()._handle_error(namespace, data)

    async def _handle_event(self, namespace, id, data):
        if self._relio_drops_event(data):
            return
        return await super()._handle_event(namespace, id, data)

    # --- ChannelHandler ------------------------------------------------------------------------
    def on_message(self, channel: Channel, msg_id: bytes, items: list, request: bool) -> None:
        events.dispatch_client_message(self, channel, msg_id, items, request)

    def on_undelivered(self, channel: Channel, error: DeliveryError,
                       seen: bool = False) -> None:
        self._relio_log_undelivered(channel, error, seen)
        spawn(self._trigger_event(wire.DELIVERY_ERROR_EVENT, channel.namespace, error))

    def on_closed(self, channel: Channel, reason: str, by_peer: bool) -> None:
        session = self._relio_closed(channel, reason)
        if session is None:
            return
        if by_peer:     # the server ended the session; its socket.io DISCONNECT follows
            spawn(self._close_namespace(session, self.reason.SERVER_DISCONNECT, False))
        else:           # we ended it (protocol error, delivery timeout): tell the server
            spawn(self._close_namespace(session, reason, True))

    async def _close_namespace(self, session: ClientSession, reason: str,
                               tell_server: bool) -> None:
        namespace = session.channel.namespace
        connected = namespace in self.namespaces
        await self._end_session(session, reason)
        if not connected:
            return
        del self.namespaces[namespace]
        if tell_server and self.eio.state == 'connected':
            await self._send_packet(self.packet_class(packet.DISCONNECT, namespace=namespace))
        await self._trigger_event('disconnect', namespace, reason)
        await self._trigger_event('__disconnect_final', namespace)
        if not self.namespaces and self.connected:
            self.connected = False
            await self.eio.disconnect()


__all__ = ["AsyncClient", "ClientSession"]
