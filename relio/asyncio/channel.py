"""One relio session wired to asyncio: the glue between a sans-I/O :class:`relio.Engine` and a loop.

A :class:`Channel` owns what the engine must not: the clock (``loop.time()``), the engine's timer
(one ``call_at`` handle), the transport's write function, and the futures and callbacks waiting on
messages. It owns no socket.io knowledge: the server and client layers give it a ``write`` function
while a transport is up and a :class:`ChannelHandler` that turns delivered messages into handler
calls (aioquic's ``QuicConnectionProtocol`` plays the same part for ``QuicConnection``). Handlers
run through the session's :class:`~relio.asyncio.dispatch.HandlerRunner`.

Coalescing (corking): ``send`` only marks the channel dirty and schedules one flush with
``call_soon``. Everything emitted in the same loop iteration leaves as one batch (one engine.io
message), and a lone emit on an idle link still leaves on the very next iteration: nothing waits
for a timer.

Two methods are the seams for a subclass that must hold output back (durable sessions,
:mod:`relio.asyncio.durable`): :meth:`_output` (what a flush does with the engine's batches and
events) and :meth:`_on_handled` (a handler of a received message has finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from socketio.exceptions import TimeoutError as SocketIOTimeoutError

from relio.asyncio.deadlines import Deadlines, TimedOut
from relio.asyncio.dispatch import Done, HandlerRunner, Then
from relio.asyncio.results import Delivery, Question, Reply, collapse
from relio.binding import payload as payload_codec
from relio.engine import _frames
from relio.engine._engine import Engine
from relio.engine._events import (
    MessageExpired,
    MessageReceived,
    MessagesDelivered,
    ResponseReceived,
    SessionClosed,
)
from relio.engine.errors import DeliveryError, LocalProtocolError, QueueFull, RemoteProtocolError

logger = logging.getLogger("relio")


class ChannelHandler(Protocol):
    """What the server or client layer does with a channel's events."""

    def on_message(self, channel: Channel, msg_id: bytes, items: list, request: bool) -> None: ...
    def on_reply(self, channel: Channel) -> None: ...
    """A reply to one of our requests arrived (python-socketio logs "received ack")."""
    def on_undelivered(self, channel: Channel, error: DeliveryError,
                       seen: bool = False) -> None: ...
    """``seen``: the application already got the error (it awaits the Delivery or the call)."""
    def on_closed(self, channel: Channel, reason: str, by_peer: bool) -> None: ...


class Channel:
    """One session's engine driven by an asyncio loop."""

    #: what ``loop.create_future()`` returns (the waiters of calls are told apart from callbacks;
    #: asyncio's or concurrent.futures' Future, which have the methods used here)
    _future_type: Any = asyncio.Future
    #: what a call whose reply asks for an answer returns
    question_class: type = Question
    #: what guards the engine against other threads: nothing here (one loop); the thread-based
    #: channel's session lock. Whoever reads the session from outside its shell holds it.
    lock: Any = contextlib.nullcontext()

    def __init__(self, engine: Engine, handler: ChannelHandler, *,
                 json: payload_codec.JsonCodec | Any = None,
                 sid: str | None = None, namespace: str = "/", recipient: str | None = None,
                 loop: Any = None):
        self.engine = engine
        self.handler = handler
        self.json = json if isinstance(json, payload_codec.JsonCodec) else \
            payload_codec.JsonCodec(json)
        self.sid = sid
        self.namespace = namespace
        #: how errors name the peer (default: the sid; a client's channel says "the server")
        self.recipient = recipient or sid
        #: the clock and scheduler: the running asyncio loop, or any object with its ``time()``,
        #: ``call_soon(fn)``, ``call_at(when, fn)`` and ``create_future()`` (the thread-based
        #: shell's :class:`relio.threading.driver.Driver`)
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.closed = False
        #: runs this session's handlers and callbacks in delivery order
        self.runner = HandlerRunner(self.decline)
        self._write: Callable[[bytes], Any] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._drain_handle: asyncio.Handle | None = None
        self._events_per_turn = engine.config.events_per_turn
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # msg_id -> (Delivery or None, event name) for our messages not yet acknowledged
        #: messages sent and not yet acknowledged: their Delivery, and their event name (two
        #: dicts, not a tuple per message: a tuple holding a Delivery stays tracked by the garbage
        #: collector until the client's ack, and a room broadcast makes one per recipient)
        self._pending: dict[bytes, Delivery | None] = {}
        self._pending_events: dict[bytes, str | None] = {}
        # msg_id of our request -> callback or Future waiting for its reply
        self._awaiting: dict[bytes, Any] = {}
        self._room_waiters: deque[asyncio.Future] = deque()
        #: the deadlines of our calls waiting for their replies
        self._deadlines = Deadlines(self.loop, engine.config.call_timeout_resolution)
        #: bytes of the batches written to the transport and received from it
        self.bytes_sent = 0
        self.bytes_received = 0

    # --- transport ---------------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._write is not None

    def attach(self, write: Callable[[bytes], Any], peer_state: bytes | None = None) -> None:
        """A transport is up: ``write(batch)`` sends one binary message. With ``peer_state`` (the
        peer's ``resume_state``), retransmit exactly what the peer lacks."""
        if self.closed:
            return
        if peer_state is not None:
            if self.engine.connected:
                self.engine.disconnect(self.loop.time())
            self.engine.resume(peer_state, self.loop.time())   # RemoteProtocolError: caller closes
        self._write = write
        self.kick()

    def detach(self) -> None:
        """The transport is gone: keep everything, send nothing until :meth:`attach`."""
        self._write = None
        self._wake_room_waiters()        # a drain() waiting on this transport gives up
        if not self.closed:
            self.engine.disconnect(self.loop.time())
        self._drain_events()
        self._arm_timer()

    def send_ack_now(self) -> None:
        """Send our receive state at once as a batch holding one ACK frame (idempotent for the
        peer). The client does this right after a resume: it tells the server the resumed
        connection works, which retires the replaced credential."""
        if self._write is not None and not self.closed:
            self._write(bytes((_frames.VERSION,)) + self.engine.resume_state())

    async def drain(self, timeout: float) -> None:
        """Flush, then wait up to ``timeout`` seconds for every pending message to be acknowledged
        (only while a transport is attached: a suspended session cannot drain)."""
        self.flush()
        if timeout <= 0 or self.closed or not self.engine.outbox_messages:
            return
        deadline = self.loop.time() + timeout
        while (self.engine.outbox_messages and self._write is not None and not self.closed
               and self.loop.time() < deadline):
            future = self.loop.create_future()
            self._room_waiters.append(future)       # woken on every delivery report
            try:
                await asyncio.wait_for(future, max(0.0, deadline - self.loop.time()))
            except asyncio.TimeoutError:
                break

    def resume_state(self) -> bytes:
        return self.engine.resume_state()

    def receive(self, data: bytes) -> None:
        """A batch arrived from the peer. A malformed one closes this session (only this one)."""
        if self.closed:
            return
        self.bytes_received += len(data)
        try:
            self.engine.receive(data, self.loop.time())
        except RemoteProtocolError as exc:
            logger.warning("relio session %s [%s] closed: %s", self.sid, self.namespace, exc.reason)
        self._drain_events()
        self.kick()

    # --- sending -----------------------------------------------------------------------------
    def send_nowait(self, items_payload: payload_codec.Encoded, event: str | None,
                    delivery: Delivery | None, callback: Any = None,
                    msg_id: bytes | None = None) -> bytes:
        """Queue an encoded message; ``callback`` (a callable or Future) waits for its reply.
        ``msg_id``: the message's id when it has one already (a message relayed between nodes
        keeps its id, so a copy that reaches the client twice is dropped there).

        :raises QueueFull: no room now. :raises DeliveryError: the session is closed.
        """
        if self.closed:
            raise self._error(self.engine.close_reason or "session closed", None, event)
        msg_id = self.engine.send(items_payload, self.loop.time(), request=callback is not None,
                                  msg_id=msg_id)
        self._pending[msg_id] = delivery
        self._pending_events[msg_id] = event
        if delivery is not None:
            delivery._add()
        if callback is not None:
            self._awaiting[msg_id] = callback
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        return msg_id

    async def send(self, items_payload: payload_codec.Encoded, event: str | None,
                   delivery: Delivery | None, callback: Any = None, block: bool = True,
                   msg_id: bytes | None = None) -> bytes:
        """Like :meth:`send_nowait`, but waits for room in the outbox (backpressure)."""
        while True:
            try:
                return self.send_nowait(items_payload, event, delivery, callback, msg_id)
            except QueueFull:
                if not block:
                    raise
            await self._wait_for_room()

    async def call(self, items_payload: payload_codec.Encoded, event: str | None,
                   timeout: float | None, block: bool = True) -> Any:
        """Send a request and wait for its reply (python-socketio's ``call()`` semantics: the
        ``timeout`` is the only reason to give up while the session lives; a reconnect is not)."""
        future = self.loop.create_future()
        try:
            msg_id = self.send_nowait(items_payload, event, None, future)
        except QueueFull:
            if not block:
                raise
            msg_id = await self.send(items_payload, event, None, future, block)
        return await self.wait_reply(msg_id, future, timeout)

    async def wait_reply(self, msg_id: bytes | None, future: asyncio.Future,
                         timeout: float | None) -> Any:
        """Wait for ``future``, the reply to ``msg_id``, at most ``timeout`` seconds.

        The future is awaited directly and fails at its deadline (:class:`Deadlines`, one timer
        per tick): ``asyncio.wait_for`` would add a second future, a done-callback, a task lookup
        and a timer to every call (a third of a small call's CPU on the requesting side).
        Cancelling the caller cancels the wait."""
        tick = None if timeout is None else self._deadlines.add(future, timeout)
        try:
            return await future
        except TimedOut:
            raise SocketIOTimeoutError() from None
        finally:
            if tick is not None:
                self._deadlines.discard(tick, future)
            if msg_id is not None and future.done() and (
                    future.cancelled() or future.exception() is not None):
                self._awaiting.pop(msg_id, None)      # nobody waits for this reply any more

    def answer(self, request_id: bytes, result: Any,
               delivery: Delivery | None = None) -> bytes | None:
        """Send a handler's result as the reply to ``request_id`` (a :class:`Reply` chains);
        returns the reply's id (None if it could not be sent)."""
        if self.closed:
            return None
        callback = None
        if isinstance(result, Reply):
            args, callback = result.args, result.callback
        else:
            args = payload_codec.as_args(result)
        try:
            encoded = payload_codec.encode(args, self.json)
            msg_id = self.engine.reply(request_id, encoded, self.loop.time(),
                                       request=callback is not None)
        except QueueFull:
            # The outbox limit also bounds replies: this one waits for room, as an emit would.
            self._answer_later(request_id, result, delivery)
            return None
        except (LocalProtocolError, TypeError, ValueError) as exc:
            # Too large for max_message_size, or not encodable: the requester is told at once
            # (its call raises DeliveryError) instead of waiting for its timeout.
            self._fail_request(request_id, f"the reply could not be sent: {exc}")
            return None
        self._pending[msg_id] = delivery
        self._pending_events[msg_id] = None
        if delivery is not None:
            delivery._add()
        if callback is not None:
            self._awaiting[msg_id] = callback
        self.kick()
        return msg_id

    def _answer_later(self, request_id: bytes, result: Any, delivery: Delivery | None) -> None:
        """Send the answer once the outbox has room (counted as the session's handler work)."""
        self.runner.spawn(self._answer_when_room(request_id, result, delivery))

    async def _answer_when_room(self, request_id: bytes, result: Any,
                                delivery: Delivery | None) -> None:
        await self._wait_for_room()           # woken by the next delivery report (or the end)
        if not self.closed:
            self.answer(request_id, result, delivery)        # full again: waits again

    def _fail_request(self, request_id: bytes, reason: str) -> None:
        """Answer the peer's request with a failure (it learns at once that no answer comes)."""
        logger.warning("relio session %s [%s]: %s", self.sid, self.namespace, reason)
        try:
            self.engine.reply(request_id, payload_codec.encode_failure(reason), self.loop.time())
        except (QueueFull, LocalProtocolError):
            self.decline(request_id)
            return
        self.kick()

    def decline(self, request_id: bytes) -> None:
        """Leave a request of the peer unanswered (no handler, or the handler raised)."""
        if not self.closed:
            self.engine.decline(request_id)

    async def _wait_for_room(self) -> None:
        future = self.loop.create_future()
        self._room_waiters.append(future)
        await future

    def _wake_room_waiters(self) -> None:
        # Waiters re-check their own condition (room in the outbox, or an empty outbox), so waking
        # all of them on each delivery report is correct; it happens only when someone waits.
        waiters = self._room_waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)

    # --- handlers ----------------------------------------------------------------------------
    def run(self, fn: Callable, args: tuple, then: Then | None = None,
            sequential: bool = False, request_id: bytes | None = None) -> None:
        """Run a handler or callback for the message being delivered (see
        :meth:`HandlerRunner.run <relio.asyncio.dispatch.HandlerRunner.run>`)."""
        self.runner.run(fn, args, then, sequential, request_id, self._on_handled())

    async def idle(self) -> None:
        """Wait until the sequential handlers (``async_handlers=False``) have run."""
        await self.runner.idle()

    def _on_handled(self) -> Done | None:
        """What to call when the handler now being started has finished (nothing here)."""
        return None

    def _deliver(self, msg_id: bytes, payload: bytes | MessageReceived, request: bool) -> bool:
        """Decode a received message and hand it to the layer; False if the payload was
        malformed (the session is closed). ``payload``: the message, or the engine's event
        carrying it, whose payload is then taken (a big binary attachment without a copy:
        :func:`relio.binding.payload.decode_received`)."""
        try:
            items = payload_codec.decode(payload, self.json)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return False
        self.handler.on_message(self, msg_id, items, request)
        return True

    # --- engine driving ------------------------------------------------------------------------
    def kick(self) -> None:
        """Schedule one flush for the next loop iteration (coalescing all that is queued until
        then)."""
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def flush(self) -> None:
        """Hand everything sendable to the transport now."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        self._output()
        self._arm_timer()

    def _output(self) -> None:
        """Write what the engine has to send, then act on its events."""
        write = self._write
        if write is not None:
            self._write_batches(write, self.engine.data_to_send(self.loop.time()))
        self._drain_events()

    def _write_batches(self, write: Callable[[bytes], Any], batches: list[bytes]) -> None:
        try:
            for batch in batches:
                write(batch)
                self.bytes_sent += len(batch)
        except Exception as exc:  # a dying transport: the engine retransmits after resume
            logger.info("relio session %s: write failed (%r)", self.sid, exc)

    def _arm_timer(self) -> None:
        when = self.engine.get_timer()
        if when is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        if self._timer is not None:
            if self._timer_at <= when:
                return            # fires early; handle_timer is then a no-op and we re-arm
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        self.engine.handle_timer(self.loop.time())
        self._flush()

    def _drain_events(self) -> None:
        """Act on the engine's events in order. When ``events_per_turn`` of them have produced
        something to send (their handlers' answers, emits), that is written at once and the rest
        waits for the next loop turn (:meth:`_next_turn`): the peer starts on the first answers
        while this side handles the rest, and other sessions get the loop in between."""
        engine = self.engine
        budget = self._events_per_turn
        next_event = engine.next_event
        # The common case (a message without attachments, python-socketio's default json)
        # decoded and handed to the layer here, without the calls of _deliver and decode.
        decode_fast = self.json.decode_event_fast
        on_message = self.handler.on_message
        event = next_event()
        while event is not None:
            if type(event) is MessageReceived:
                items = None if decode_fast is None else decode_fast(event)
                if items is not None:
                    on_message(self, event.msg_id, items, event.request)
                elif not self._deliver(event.msg_id, event, event.request):
                    return
            elif not self._handle_event(event):
                return
            budget -= 1
            if budget <= 0 and self._flush_handle is not None and engine.events_pending:
                self._yield_turn()
                return
            event = next_event()

    def _yield_turn(self) -> None:
        self._flush_handle.cancel()              # type: ignore[union-attr]
        self._flush_handle = None
        write = self._write
        if write is not None:
            self._write_batches(write, self.engine.data_to_send(self.loop.time()))
        if self._drain_handle is None:
            self._drain_handle = self.loop.call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._drain_handle = None
        if not self.closed:
            self._drain_events()
            self._arm_timer()

    def _handle_event(self, event) -> bool:
        """Act on one engine event; False stops (the session was closed for a protocol error)."""
        kind = type(event)
        if kind is MessagesDelivered:
            pending, events = self._pending, self._pending_events
            for msg_id in event.msg_ids:
                delivery = pending.pop(msg_id, None)
                events.pop(msg_id, None)
                if delivery is not None:
                    delivery._settle(None)
            if self._room_waiters:
                self._wake_room_waiters()
        elif kind is MessageReceived:
            return self._deliver(event.msg_id, event, event.request)
        elif kind is ResponseReceived:
            self._on_response(event)
        elif kind is MessageExpired:
            self._on_expired(event.msg_id, event.reason)
        elif kind is SessionClosed:
            self._on_session_closed(event.reason, event.by_peer)
        return True

    def _on_response(self, event: ResponseReceived) -> None:
        waiter = self._awaiting.pop(event.reply_to, None)
        try:
            args = payload_codec.decode_reply(event, self.json)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return
        if isinstance(args, str):          # the peer could not answer: say so, at once
            self._request_failed(event.reply_to, waiter, args)
            return
        if waiter is None:
            if event.request:   # nobody can answer it: answer with nothing rather than leak it
                self.answer(event.msg_id, None)
            return
        self.handler.on_reply(self)
        if isinstance(waiter, self._future_type):
            if not waiter.done():
                waiter.set_result(self.question_class(self, event.msg_id, args) if event.request
                                  else collapse(args))
            elif event.request:
                self.answer(event.msg_id, None)
            return
        if not event.request:
            self.run(waiter, tuple(args))
            return
        request_id = event.msg_id

        def then(result: Any) -> None:        # the callback's return value answers the request
            self.answer(request_id, result)
        self.run(waiter, tuple(args), then, False, request_id)

    def _request_failed(self, msg_id: bytes, waiter: Any, reason: str) -> None:
        error = self._error(reason, msg_id)
        if isinstance(waiter, self._future_type):
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
                self.handler.on_undelivered(self, error, True)
            return
        if waiter is not None:           # an emit callback that will not be called
            self.handler.on_undelivered(self, error, False)

    def _on_expired(self, msg_id: bytes, reason: str) -> None:
        delivery = self._pending.pop(msg_id, None)
        event_name = self._pending_events.pop(msg_id, None)
        error = self._error(reason, msg_id, event_name)
        if delivery is not None:
            delivery._settle(error)
        seen = delivery is not None and delivery.awaited
        waiter = self._awaiting.pop(msg_id, None)
        if isinstance(waiter, self._future_type) and not waiter.done():
            waiter.set_exception(error)
            waiter.exception()      # retrieved: a call() that timed out already is not an error
            seen = True
        self.handler.on_undelivered(self, error, seen)
        if self._room_waiters:
            self._wake_room_waiters()

    def _error(self, reason: str, msg_id: bytes | None = None,
               event: str | None = None) -> DeliveryError:
        """The error that tells a sender its message of this session will not be delivered."""
        return DeliveryError(reason, msg_id, sid=self.sid, namespace=self.namespace, event=event,
                             recipient=self.recipient)

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        """The peer sent something invalid above the engine (a payload, an event without a
        name): the session is closed with the reason."""
        logger.warning("relio session %s [%s] closed: %s", self.sid, self.namespace, exc.reason)
        self.close(f"protocol error: {exc.reason}")

    def _on_session_closed(self, reason: str, by_peer: bool) -> None:
        if self.closed:
            return
        self._stop()
        self._fail_awaiting(reason)
        self._wake_room_waiters()
        self.handler.on_closed(self, reason, by_peer)

    def _stop(self) -> None:
        """Drive nothing more: no flush, no timer."""
        self.closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail_awaiting(self, reason: str) -> None:
        """Every call waiting here for its reply fails with ``reason``."""
        for future in self._awaiting.values():
            if isinstance(future, self._future_type) and not future.done():
                future.set_exception(self._error(reason))
                future.exception()
        self._awaiting.clear()

    def abandon(self, reason: str | None = None) -> None:
        """The session moved to another server node: stop driving it here without closing it
        (its state lives on there). Deliveries waiting here settle: handed on (counted in
        ``relayed``) when ``reason`` is None, else failed with ``reason`` (this copy was stale);
        calls waiting here for a reply fail (the reply goes to the other node)."""
        if self.closed:
            return
        self._stop()
        self._write = None
        self._fail_awaiting(reason or "the session moved to another server node")
        events = self._pending_events
        for msg_id, delivery in self._pending.items():
            if delivery is None:
                continue
            if reason is None:
                delivery.relayed += 1
                delivery._settle(None)
            else:
                delivery._settle(self._error(reason, msg_id, events.get(msg_id)))
        self._pending.clear()
        events.clear()
        self._wake_room_waiters()

    def close(self, reason: str = "session closed") -> None:
        """End the session: pending messages fail with ``reason``; the peer is told if connected."""
        if self.closed:
            return
        self.engine.close(reason, self.loop.time())
        self.flush()

    # --- observability ---------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        """The engine's counters plus what this layer waits on."""
        stats = self.engine.stats
        stats["awaiting_replies"] = len(self._awaiting)
        stats["tracked_messages"] = len(self._pending)    # sent, their sender not yet told
        stats["connected"] = self._write is not None
        stats["bytes_sent"] = self.bytes_sent
        stats["bytes_received"] = self.bytes_received
        return stats
