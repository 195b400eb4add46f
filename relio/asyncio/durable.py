"""Durable sessions: nothing leaves a session, and no handler sees a message, before it is saved.

:class:`DurableChannel` is a :class:`~relio.asyncio.channel.Channel` whose output waits for the
save of the session state that includes it (``relio.AsyncRedisManager(mode='durable')``). The
driver does not know about it: the subclass takes over the two seams the channel leaves for it,
what a flush does with the engine's output (:meth:`_output`) and what happens when the handler of a
received message has finished (:meth:`_on_handled`).

A received message whose handler has not finished is part of the saved state ("running"): a node
that takes the session over after this one died or froze runs it again (:meth:`redeliver`), so
nothing is lost; a handler interrupted by the death may run twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from relio.asyncio.channel import Channel
from relio.asyncio.dispatch import Done
from relio.asyncio.results import Delivery
from relio.binding import payload as payload_codec
from relio.engine._events import MessageReceived

#: ``capture(channel)``: the session's state now, taken synchronously.
Capture = Callable[["DurableChannel"], Any]
#: ``await persist(channel, state)``: save it (False: not saved; the session goes on as in fast
#: mode and is saved again later).
Persist = Callable[["DurableChannel", Any], Awaitable[bool]]


class PersistStep(NamedTuple):
    """One save: the state taken, and the batches and engine events that wait for it."""

    state: Any
    batches: list
    events: list


class DurableChannel(Channel):
    """A channel whose batches and events wait for ``persist`` of the state that includes them."""

    def __init__(self, *args, capture: Capture, persist: Persist, **kwargs):
        super().__init__(*args, **kwargs)
        self._capture = capture
        self._persist = persist
        self._held_batches: list[bytes] = []
        self._persisting = False             # a save of this session is under way
        self._persist_task: Any = None        # (referenced: asyncio keeps tasks weakly)
        self._persist_again = False
        self._dirty = False                  # state changed since the last save
        #: received messages whose handler has not finished, msg_id -> (payload, request)
        self.running: dict[bytes, tuple[bytes, bool]] = {}
        self._dispatching: bytes | None = None
        self._dispatch_claimed = False

    # --- the seams ---------------------------------------------------------------------------
    def send_nowait(self, items_payload: payload_codec.Encoded, event: str | None,
                    delivery: Delivery | None, callback: Any = None,
                    msg_id: bytes | None = None) -> bytes:
        # (the same signature: *args/**kwargs cost a tuple and a dict per message sent)
        msg_id = super().send_nowait(items_payload, event, delivery, callback, msg_id)
        self._dirty = True                    # saved even while no transport takes it
        return msg_id

    def _output(self) -> None:
        if self.engine.closed:
            super()._output()                 # the end of the session goes out unsaved
            return
        if self._write is not None:
            self._held_batches.extend(self.engine.data_to_send(self.loop.time()))
        self._request_persist()

    def _drain_events(self) -> None:
        if self.engine.closed:
            super()._drain_events()
        else:
            self._request_persist()           # events wait for their state's save

    def _on_handled(self) -> Done | None:
        msg_id = self._dispatching
        if msg_id is None:
            return None                       # a callback, not a received message's handler
        self._dispatch_claimed = True
        return lambda: self._handler_done(msg_id)

    # --- saving ------------------------------------------------------------------------------
    # One save at a time per session: _persist_begin takes the state and what it includes,
    # _persist_end lets that out once saved. The asyncio channel runs them in a task; the
    # thread-based one (relio.threading.durable) from the save's future.
    def _request_persist(self) -> None:
        if self._persisting:
            self._persist_again = True
        else:
            self._persisting = True
            self._persist_task = self.loop.create_task(self._persist_loop())

    async def _persist_loop(self) -> None:
        try:
            while not self.closed:
                step = self._persist_begin()
                if step is None:
                    return
                await self._persist(self, step.state)
                if not self._persist_end(step):
                    return
        finally:
            self._persisting = False

    def _persist_begin(self) -> PersistStep | None:
        """Take the session's state and the batches and events it includes (None: nothing to
        save)."""
        self._persist_again = False
        batches, self._held_batches = self._held_batches, []
        events = []
        event = self.engine.next_event()
        while event is not None:              # the events this state includes, no later ones
            events.append(event)
            event = self.engine.next_event()
        if not batches and not events and not self._dirty:
            return None
        self._dirty = False
        for event in events:
            if type(event) is MessageReceived:
                # Saved as "handler not finished" until it has: a node that takes the session
                # over after this one died runs it (at least once, never lost).
                self.running[event.msg_id] = (event.payload, event.request)
        return PersistStep(self._capture(self), batches, events)

    def _persist_end(self, step: PersistStep) -> bool:
        """The state of ``step`` is saved (or could not be: the session goes on as in fast mode):
        let its batches out and its events reach the handlers. Whether to save again."""
        if self.closed and not self.engine.closed:
            return False                      # moved away meanwhile (fenced): nothing goes out
        if self._write is not None and step.batches:
            self._write_batches(self._write, step.batches)
        for event in step.events:
            if type(event) is MessageReceived:
                if not self._dispatch_tracked(event.msg_id, event.payload, event.request):
                    break
            elif not self._handle_event(event):
                break
        self._arm_timer()
        return self._persist_again or bool(self._held_batches)

    def _dispatch_tracked(self, msg_id: bytes, payload: bytes, request: bool) -> bool:
        """Hand a received message to its handler; it stays in ``running`` until the handler has
        finished. False if the payload was malformed (the session is closed)."""
        self._dispatching, self._dispatch_claimed = msg_id, False
        try:
            delivered = self._deliver(msg_id, payload, request)
        finally:
            self._dispatching = None
        if delivered and not self._dispatch_claimed:
            self._handler_done(msg_id)        # no handler ran (none registered, reserved event)
        return delivered

    def _handler_done(self, msg_id: bytes) -> None:
        if self.running.pop(msg_id, None) is not None and not self.closed:
            self._dirty = True                # the next save says it has run
            self.kick()

    def redeliver(self, running: list[tuple[bytes, bytes, bool]]) -> None:
        """Takeover: run again the handlers the previous node had not finished (it died or froze
        meanwhile), in the order it received their messages."""
        for msg_id, payload, request in running:
            self.running[msg_id] = (payload, request)
        for msg_id, payload, request in running:
            if not self._dispatch_tracked(msg_id, payload, request):
                return
