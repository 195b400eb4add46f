"""One relio session wired to asyncio: the glue between a sans-I/O :class:`relio.Engine` and a loop.

A :class:`Channel` owns what the engine must not: the clock (``loop.time()``), the engine's timer
(one ``call_at`` handle), the transport's write function, and the futures and callbacks waiting on
messages. It owns no socket.io knowledge: the server and client layers give it a ``write`` function
while a transport is up and a :class:`ChannelHandler` that turns delivered messages into handler
calls (aioquic's ``QuicConnectionProtocol`` plays the same part for ``QuicConnection``).

Coalescing (corking): ``send`` only marks the channel dirty and schedules one flush with
``call_soon``. Everything emitted in the same loop iteration leaves as one batch (one engine.io
message), and a lone emit on an idle link still leaves on the very next iteration: nothing waits
for a timer.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections import deque
from typing import Any, Callable, Protocol

from relio.engine import _frames
from relio.binding import payload as payload_codec
from relio.engine._engine import Engine
from relio.engine._events import (MessageExpired, MessageReceived, MessagesDelivered, ResponseReceived,
                           SessionClosed)
from socketio.exceptions import TimeoutError as SocketIOTimeoutError

from relio.asyncio.dispatch import ASYNC_INLINE, ASYNC_TASK, SYNC, handler_kind
from relio.engine.errors import DeliveryError, LocalProtocolError, QueueFull, RemoteProtocolError

logger = logging.getLogger("relio")

_background_tasks: set[asyncio.Task] = set()


def spawn(coro) -> asyncio.Task:
    """Run ``coro`` in a task that is referenced until it ends (asyncio keeps only weak refs)."""
    task = asyncio.get_running_loop().create_task(coro)
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)
    return task


class Reply:
    """A handler's answer that asks for an answer in turn (a chained reply).

    Return it from an event handler (or from an emit callback that is itself answering a chained
    reply) instead of a plain value::

        @sio.on('checkout')
        async def checkout(sid, cart):
            async def on_confirm(confirmed):
                return 'charged' if confirmed else 'cancelled'
            return relio.Reply({'total': 42}, callback=on_confirm)

    The requester's callback (``emit(..., callback=cb)``) receives ``{'total': 42}``; what ``cb``
    returns is sent back and passed to ``on_confirm``, whose return value goes back again, and so on.
    Each step is a relio message: delivered exactly once, its handler run once, re-sent from the
    response cache if the link fails. With ``call()`` the requester gets a :class:`Question`.
    """

    __slots__ = ("args", "callback")

    def __init__(self, *args: Any, callback: Callable | None = None):
        self.args = list(args)
        self.callback = callback


class Question:
    """A reply that asks for an answer: returned by ``call()`` when the peer answered with
    :class:`Reply`. ``data`` is the reply's data (as ``call()`` would have returned it)."""

    def __init__(self, channel: "Channel", msg_id: bytes, args: list):
        self._channel = channel
        self._msg_id = msg_id
        self.args = args
        self.data = collapse(args)

    async def answer(self, data: Any = None) -> Delivery:
        """Send the final answer (the peer's callback receives it); returns its :class:`Delivery`."""
        delivery = Delivery()
        self._channel.answer(self._msg_id, data, delivery=delivery)
        return delivery

    async def ask(self, data: Any = None, timeout: float | None = 60) -> Any:
        """Answer with a further question and wait for the peer's reply to it (a value, or another
        :class:`Question`)."""
        future = self._channel.loop.create_future()
        msg_id = self._channel.answer(self._msg_id,
                                      Reply(*payload_codec.as_args(data), callback=future))
        return await self._channel.wait_reply(msg_id, future, timeout)

    def __repr__(self) -> str:
        return f"<relio.Question data={self.data!r}>"


def collapse(args: list) -> Any:
    """python-socketio's ``call()`` result rule: no argument is None, one is itself, more a tuple."""
    if len(args) == 1:
        return args[0]
    return tuple(args) if args else None


class Delivery:
    """What became of an ``emit``: await it to learn that every relio recipient acknowledged it.

    ``await sio.emit(...)`` returns a ``Delivery`` as soon as the message is queued (as
    python-socketio's ``emit`` returns when it is handed to the transport); ``await delivery`` then
    returns None once each relio recipient has it, or raises :class:`relio.DeliveryError` if it
    cannot be delivered to one of them (session closed or expired, delivery timeout). Recipients that
    are plain Socket.IO clients cannot acknowledge; they are counted in ``unconfirmed``.
    """

    __slots__ = ("recipients", "unconfirmed", "relayed", "failures", "_remaining", "_future")

    def __init__(self) -> None:
        self.recipients = 0
        self.unconfirmed = 0
        #: Parts sent on to other server nodes (relio.AsyncRedisManager): for those, awaiting the
        #: Delivery confirms that Redis holds the message, not that the remote clients have it.
        self.relayed = 0
        self.failures: list[DeliveryError] = []
        self._remaining = 0
        self._future: asyncio.Future | None = None

    @property
    def done(self) -> bool:
        """Every relio recipient acknowledged the message or was reported failed."""
        return self._remaining == 0

    @property
    def delivered(self) -> bool:
        return self._remaining == 0 and not self.failures

    def _add(self) -> None:
        self.recipients += 1
        self._remaining += 1

    def _settle(self, error: DeliveryError | None) -> None:
        if error is not None:
            self.failures.append(error)
        self._remaining -= 1
        if self._remaining == 0 and self._future is not None and not self._future.done():
            self._future.set_result(None)

    def __await__(self):
        if self._remaining:
            if self._future is None:
                self._future = asyncio.get_running_loop().create_future()
            yield from self._future.__await__()
        if self.failures:
            if len(self.failures) == 1:
                raise self.failures[0]
            first = self.failures[0]
            raise DeliveryError(first.reason, first.msg_id, event=first.event,
                                failures=list(self.failures))

    def __repr__(self) -> str:
        state = "pending" if self._remaining else ("failed" if self.failures else "delivered")
        return f"<relio.Delivery {state} recipients={self.recipients}>"


class ChannelHandler(Protocol):
    """What the server or client layer does with a channel's events."""

    def on_message(self, channel: "Channel", msg_id: bytes, items: list, request: bool) -> None: ...
    def on_undelivered(self, channel: "Channel", error: DeliveryError) -> None: ...
    def on_closed(self, channel: "Channel", reason: str, by_peer: bool) -> None: ...


class Channel:
    """One session's engine driven by an asyncio loop."""

    def __init__(self, engine: Engine, handler: ChannelHandler, *,
                 json: payload_codec.JsonCodec | Any = None,
                 sid: str | None = None, namespace: str = "/"):
        self.engine = engine
        self.handler = handler
        self.json = json if isinstance(json, payload_codec.JsonCodec) else \
            payload_codec.JsonCodec(json)
        self.sid = sid
        self.namespace = namespace
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self._write: Callable[[bytes], Any] | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        # msg_id -> (Delivery or None, event name) for our messages not yet acknowledged
        self._pending: dict[bytes, tuple[Delivery | None, str | None]] = {}
        # msg_id of our request -> callback or Future waiting for its reply
        self._awaiting: dict[bytes, Any] = {}
        self._room_waiters: deque[asyncio.Future] = deque()
        self._inbox: deque | None = None       # sequential dispatch (async_handlers=False)
        self._consumer: asyncio.Task | None = None
        self._unstarted = 0                    # handler tasks spawned, not yet started
        # Kept here for the server and client layers:
        self.credential: str | None = None     # secret resume credential (never logged)
        self.user_session: dict = {}           # get_session/save_session data
        self.eio_sid: str | None = None        # connection the session is (or was last) bound to
        self.finished = False                  # removed from the layer's tables
        self.unconfirmed_resume = False        # server: resumed, client not yet heard from
        self.session_ttl: float | None = None  # client: how long the server keeps it suspended
        self.expiry_handle: asyncio.TimerHandle | None = None   # client: local expiry timer
        self._persist = None                   # durable mode (make_durable)
        self._persist_again = False
        self._persist_dirty = False            # durable: a message was queued since the last save
        #: durable: received messages whose handler has not finished, msg_id -> (payload, request)
        self.running: dict[bytes, tuple[bytes, bool]] = {}
        self._dispatching: bytes | None = None
        self._deferred = False

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

    async def idle(self) -> None:
        """Wait until the sequential handlers (``async_handlers=False``) have run."""
        consumer = self._consumer
        while consumer is not None and not consumer.done() \
                and consumer is not asyncio.current_task():
            await asyncio.shield(consumer)
            consumer = self._consumer

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
        try:
            self.engine.receive(data, self.loop.time())
        except RemoteProtocolError as exc:
            logger.warning("relio session %s [%s] closed: %s", self.sid, self.namespace, exc.reason)
        self._drain_events()
        self.kick()

    # --- sending -----------------------------------------------------------------------------
    def send_nowait(self, items_payload: bytes, event: str | None, delivery: Delivery | None,
                    callback: Any = None, msg_id: bytes | None = None) -> bytes:
        """Queue an encoded message; ``callback`` (a callable or Future) waits for its reply.
        ``msg_id``: the message's id when it has one already (a message relayed between nodes
        keeps its id, so a copy that reaches the client twice is dropped there).

        :raises QueueFull: no room now. :raises DeliveryError: the session is closed.
        """
        if self.closed:
            raise DeliveryError(self.engine.close_reason or "session closed", None, sid=self.sid,
                                namespace=self.namespace, event=event)
        msg_id = self.engine.send(items_payload, self.loop.time(), request=callback is not None,
                                  msg_id=msg_id)
        self._pending[msg_id] = (delivery, event)
        self._persist_dirty = True
        if delivery is not None:
            delivery._add()
        if callback is not None:
            self._awaiting[msg_id] = callback
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        return msg_id

    async def send(self, items_payload: bytes, event: str | None, delivery: Delivery | None,
                   callback: Any = None, block: bool = True,
                   msg_id: bytes | None = None) -> bytes:
        """Like :meth:`send_nowait`, but waits for room in the outbox (backpressure)."""
        while True:
            try:
                return self.send_nowait(items_payload, event, delivery, callback, msg_id)
            except QueueFull:
                if not block:
                    raise
            await self._wait_for_room()

    async def call(self, items_payload: bytes, event: str | None, timeout: float | None,
                   block: bool = True) -> Any:
        """Send a request and wait for its reply (python-socketio's ``call()`` semantics: the
        ``timeout`` is the only reason to give up while the session lives; a reconnect is not)."""
        future = self.loop.create_future()
        msg_id = await self.send(items_payload, event, None, future, block)
        return await self.wait_reply(msg_id, future, timeout)

    async def wait_reply(self, msg_id: bytes | None, future: asyncio.Future,
                         timeout: float | None) -> Any:
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            self._awaiting.pop(msg_id, None)
            raise SocketIOTimeoutError() from None

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
        except (QueueFull, LocalProtocolError) as exc:
            # The outbox limit also bounds replies; a reply that finds it full is reported like an
            # undeliverable message (the requester's call times out or its session ends).
            self.handler.on_undelivered(self, DeliveryError(
                f"reply not sent: {exc}", request_id, sid=self.sid, namespace=self.namespace))
            return None
        self._pending[msg_id] = (delivery, None)
        if delivery is not None:
            delivery._add()
        if callback is not None:
            self._awaiting[msg_id] = callback
        self.kick()
        return msg_id

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

    # --- dispatch ------------------------------------------------------------------------------
    def decline(self, request_id: bytes) -> None:
        """Leave a request of the peer unanswered (no handler, or the handler raised)."""
        if not self.closed:
            self.engine.decline(request_id)

    def run(self, fn: Callable, args: tuple, then: Callable[[Any], None] | None = None,
            sequential: bool = False, request_id: bytes | None = None) -> None:
        """Run a handler or callback: a plain function at once, a coroutine function in a task (or,
        with ``sequential``, one after another in this session's consumer task). Handlers start in
        delivery order either way; ``then(result)`` gets the return value."""
        track = self._dispatching         # durable: the received message this handler is for
        if sequential:
            if self._inbox is None:
                self._inbox = deque()
            self._inbox.append((fn, args, then, request_id, track))
            if track is not None:
                self._deferred = True
            if self._consumer is None:
                self._consumer = spawn(self._consume())
            return
        kind = handler_kind(fn)
        if kind == ASYNC_TASK or self._unstarted:
            # A handler that may suspend gets its own task. Until every task spawned so far has
            # started, later handlers go through tasks too, so that handlers start in delivery
            # order (tasks start first-in first-out).
            self._unstarted += 1
            task = spawn(self._run_async(fn, args, then, request_id))
            if track is not None:
                self._deferred = True
                task.add_done_callback(lambda _, track=track: self._handler_done(track))
            return
        context = contextvars.copy_context()
        try:
            result = context.run(fn, *args)
            if kind == ASYNC_INLINE:
                try:
                    context.run(result.send, None)
                except StopIteration as done:
                    result = done.value
                else:        # cannot happen for code without suspension points; be safe anyway
                    result.close()
                    raise RuntimeError("handler without await points suspended")
        except Exception:
            logger.exception("relio: handler %r raised", getattr(fn, "__name__", fn))
            if request_id is not None:
                self.decline(request_id)
            return
        if kind == SYNC and result is not None and inspect.isawaitable(result):
            task = spawn(self._finish_awaitable(result, then, request_id))   # e.g. a partial of a coroutine function
            if track is not None:
                self._deferred = True
                task.add_done_callback(lambda _, track=track: self._handler_done(track))
        elif then is not None:
            then(result)

    async def _run_async(self, fn, args, then, request_id=None) -> None:
        self._unstarted -= 1
        try:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                logger.exception("relio: handler %r raised", getattr(fn, "__name__", fn))
            if request_id is not None:
                self.decline(request_id)
            return
        if then is not None:
            then(result)

    async def _finish_awaitable(self, awaitable, then, request_id=None) -> None:
        try:
            result = await awaitable
        except Exception:
            logger.exception("relio: handler raised")
            if request_id is not None:
                self.decline(request_id)
            return
        if then is not None:
            then(result)

    async def _consume(self) -> None:
        inbox = self._inbox
        try:
            while inbox:
                fn, args, then, request_id, track = inbox.popleft()
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:
                    logger.exception("relio: handler %r raised", getattr(fn, "__name__", fn))
                    if request_id is not None:
                        self.decline(request_id)
                    continue
                finally:
                    if track is not None:
                        self._handler_done(track)
                if then is not None:
                    then(result)
        finally:
            self._consumer = None

    # --- engine driving ------------------------------------------------------------------------
    def kick(self) -> None:
        """Schedule one flush for the next loop iteration (coalesces everything queued until then)."""
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def flush(self) -> None:
        """Hand everything sendable to the transport now."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        write = self._write
        if self._persist is not None and not self.engine.closed:
            # durable: what goes out waits for the save of the state that includes it (and a
            # message queued while the session is suspended is saved too)
            if write is not None:
                self._held_batches.extend(self.engine.data_to_send(self.loop.time()))
            self._request_persist()
            self._arm_timer()
            return
        if write is not None:
            batches = self.engine.data_to_send(self.loop.time())
            try:
                for batch in batches:
                    write(batch)
            except Exception as exc:  # a dying transport: the engine retransmits after resume
                logger.info("relio session %s: write failed (%r)", self.sid, exc)
        self._drain_events()
        self._arm_timer()

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

    # --- durable mode (relio.AsyncRedisManager(mode='durable')) ----------------------------------
    def make_durable(self, capture: Callable[["Channel"], Any],
                     persist: Callable[["Channel", Any], Any]) -> None:
        """From now on nothing leaves this session and nothing received reaches a handler before
        the session's state including it is saved: ``capture(channel)`` takes the state now,
        ``await persist(channel, state)`` saves it (False: not saved; the session goes on anyway,
        as in fast mode, and is saved again later)."""
        self._capture = capture
        self._persist = persist
        self._held_batches: list[bytes] = []
        self._persist_task: asyncio.Task | None = None

    def _request_persist(self) -> None:
        task = self._persist_task
        if task is None or task.done():
            self._persist_task = self.loop.create_task(self._persist_loop())
        else:
            self._persist_again = True

    async def _persist_loop(self) -> None:
        while not self.closed:
            self._persist_again = False
            batches, self._held_batches = self._held_batches, []
            events = []
            event = self.engine.next_event()
            while event is not None:          # the events this state includes, no later ones
                events.append(event)
                event = self.engine.next_event()
            if not batches and not events and not self._persist_dirty:
                return
            self._persist_dirty = False
            for event in events:
                if type(event) is MessageReceived:
                    # Saved as "handler not finished" until it has: a node that takes the session
                    # over after this one died runs it (at least once, never lost).
                    self.running[event.msg_id] = (event.payload, event.request)
            state = self._capture(self)
            await self._persist(self, state)
            if self.closed and not self.engine.closed:
                return                         # moved away meanwhile (fenced): nothing goes out
            write = self._write
            if write is not None and batches:
                try:
                    for batch in batches:
                        write(batch)
                except Exception as exc:
                    logger.info("relio session %s: write failed (%r)", self.sid, exc)
            for event in events:
                if type(event) is MessageReceived:
                    if not self._dispatch_tracked(event.msg_id, event.payload, event.request):
                        break
                elif not self._handle_event(event):
                    break
            self._arm_timer()
            if not self._persist_again and not self._held_batches:
                return

    def _dispatch_tracked(self, msg_id: bytes, payload: bytes, request: bool) -> bool:
        """Durable: hand a received message to its handler; it stays in ``running`` until the
        handler has finished. False if the payload was malformed (the session is closed)."""
        self._dispatching, self._deferred = msg_id, False
        try:
            delivered = self._deliver(msg_id, payload, request)
        finally:
            self._dispatching = None
        if delivered and not self._deferred:
            self._handler_done(msg_id)
        return delivered

    def _deliver(self, msg_id: bytes, payload: bytes, request: bool) -> bool:
        """Decode a received message and hand it to the layer; False if the payload was
        malformed (the session is closed)."""
        try:
            items = payload_codec.decode(payload, self.json)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return False
        self.handler.on_message(self, msg_id, items, request)
        return True

    def _handler_done(self, msg_id: bytes) -> None:
        if self.running.pop(msg_id, None) is not None and not self.closed:
            self._persist_dirty = True         # the next save says it has run
            self.kick()

    def redeliver(self, running: list[tuple[bytes, bytes, bool]]) -> None:
        """Durable takeover: run again the handlers the previous node had not finished (it died
        or froze meanwhile), in the order it received their messages."""
        for msg_id, payload, request in running:
            self.running[msg_id] = (payload, request)
        for msg_id, payload, request in running:
            if not self._dispatch_tracked(msg_id, payload, request):
                return

    def _drain_events(self) -> None:
        if self._persist is not None and not self.engine.closed:
            self._request_persist()           # durable: events wait for their state's save
            return
        engine = self.engine
        event = engine.next_event()
        while event is not None:
            if not self._handle_event(event):
                return
            event = engine.next_event()

    def _handle_event(self, event) -> bool:
        """Act on one engine event; False stops (the session was closed for a protocol error)."""
        kind = type(event)
        if kind is MessagesDelivered:
            pending = self._pending
            for msg_id in event.msg_ids:
                record = pending.pop(msg_id, None)
                if record is not None and record[0] is not None:
                    record[0]._settle(None)
            if self._room_waiters:
                self._wake_room_waiters()
        elif kind is MessageReceived:
            return self._deliver(event.msg_id, event.payload, event.request)
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
            args = payload_codec.decode(event.payload, self.json)
        except RemoteProtocolError as exc:
            self._protocol_error(exc)
            return
        if waiter is None:
            if event.request:   # nobody can answer it: answer with nothing rather than leak it
                self.answer(event.msg_id, None)
            return
        if isinstance(waiter, asyncio.Future):
            if not waiter.done():
                waiter.set_result(Question(self, event.msg_id, args) if event.request
                                  else collapse(args))
            elif event.request:
                self.answer(event.msg_id, None)
            return
        then = (lambda result, msg_id=event.msg_id: self.answer(msg_id, result)) \
            if event.request else None
        self.run(waiter, tuple(args), then, False, event.msg_id if event.request else None)

    def _on_expired(self, msg_id: bytes, reason: str) -> None:
        record = self._pending.pop(msg_id, None)
        event_name = record[1] if record is not None else None
        error = DeliveryError(reason, msg_id, sid=self.sid, namespace=self.namespace,
                              event=event_name)
        if record is not None and record[0] is not None:
            record[0]._settle(error)
        waiter = self._awaiting.pop(msg_id, None)
        if isinstance(waiter, asyncio.Future) and not waiter.done():
            waiter.set_exception(error)
            waiter.exception()      # retrieved: a call() that timed out already is not an error
        self.handler.on_undelivered(self, error)
        if self._room_waiters:
            self._wake_room_waiters()

    def _protocol_error(self, exc: RemoteProtocolError) -> None:
        logger.warning("relio session %s [%s] closed: %s", self.sid, self.namespace, exc.reason)
        self.close(f"protocol error: {exc.reason}")

    def _on_session_closed(self, reason: str, by_peer: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self._fail_awaiting(reason)
        self._wake_room_waiters()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.handler.on_closed(self, reason, by_peer)

    def _fail_awaiting(self, reason: str) -> None:
        """Every call waiting here for its reply fails with ``reason``."""
        for future in self._awaiting.values():
            if isinstance(future, asyncio.Future) and not future.done():
                future.set_exception(DeliveryError(reason, None, sid=self.sid,
                                                   namespace=self.namespace))
                future.exception()
        self._awaiting.clear()

    def abandon(self, reason: str | None = None) -> None:
        """The session moved to another server node: stop driving it here without closing it
        (its state lives on there). Deliveries waiting here settle: handed on (counted in
        ``relayed``) when ``reason`` is None, else failed with ``reason`` (this copy was stale);
        calls waiting here for a reply fail (the reply goes to the other node)."""
        if self.closed:
            return
        self.closed = True
        self._write = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._fail_awaiting(reason or "the session moved to another server node")
        for msg_id, (delivery, event) in self._pending.items():
            if delivery is None:
                continue
            if reason is None:
                delivery.relayed += 1
                delivery._settle(None)
            else:
                delivery._settle(DeliveryError(reason, msg_id, sid=self.sid,
                                               namespace=self.namespace, event=event))
        self._pending.clear()
        self._wake_room_waiters()

    def close(self, reason: str = "session closed") -> None:
        """End the session: pending messages fail with ``reason``; the peer is told if connected."""
        if self.closed:
            return
        self.engine.close(reason, self.loop.time())
        self.flush()

    # --- observability -----------------------------------------------------------------------------
    @property
    def stats(self) -> dict:
        """The engine's counters plus what this layer waits on."""
        stats = self.engine.stats
        stats["awaiting_replies"] = len(self._awaiting)
        stats["connected"] = self._write is not None
        return stats
