"""One relio session driven by threads: the asyncio shell's :class:`~relio.asyncio.channel.Channel`
on the process's :class:`~relio.threading.driver.Driver`, behind a lock.

The channel code (flush coalescing, the engine's timer, delivery reports, replies, callbacks) is
the asyncio shell's, unchanged: the driver gives it the loop it asks for (``time``,
``call_soon``, ``call_at``, ``create_future``, with :class:`concurrent.futures.Future` as the
future). What this module adds:

* one re-entrant lock per session around every entry point (transport threads, the driver thread,
  application threads and handler threads all reach the engine through it);
* a :class:`~relio.threading.runner.ThreadRunner`, so handlers and callbacks run in the
  session's handler thread, never under the lock;
* blocking versions of what is a coroutine in the asyncio shell: :meth:`send` (waits for room),
  :meth:`call`, :meth:`wait_reply`, :meth:`drain`.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any

from socketio.exceptions import TimeoutError as SocketIOTimeoutError

from relio.asyncio.channel import Channel, ChannelHandler
from relio.asyncio.results import Delivery as AnyDelivery
from relio.binding import payload as payload_codec
from relio.engine._engine import Engine
from relio.engine.errors import QueueFull
from relio.threading.driver import DRIVER, Driver
from relio.threading.results import Question
from relio.threading.runner import ThreadRunner


def _locked(name: str, base: type = Channel):
    """``base``'s method ``name``, called under the session's lock."""
    method = getattr(base, name)

    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    locked.__name__ = name
    locked.__doc__ = method.__doc__
    return locked


class ThreadChannel(Channel):
    """One session's engine driven by the process's driver thread, behind the session's lock."""

    _future_type = concurrent.futures.Future
    question_class = Question

    def __init__(self, engine: Engine, handler: ChannelHandler, *,
                 start_task: Callable[..., Any], json: Any = None, sid: str | None = None,
                 namespace: str = "/", recipient: str | None = None, driver: Driver = DRIVER,
                 linger: float = 0.0, **kwargs: Any):
        #: the session's lock: held around every use of the engine, never while a handler runs
        self.lock = threading.RLock()
        super().__init__(engine, handler, json=json, sid=sid, namespace=namespace,
                         recipient=recipient, loop=driver, **kwargs)
        self.runner = ThreadRunner(self.decline, start_task,  # type: ignore[assignment]
                                   linger)

    # every entry point of the channel takes the session's lock
    attach = _locked("attach")
    detach = _locked("detach")
    send_ack_now = _locked("send_ack_now")
    resume_state = _locked("resume_state")
    receive = _locked("receive")
    send_nowait = _locked("send_nowait")
    answer = _locked("answer")
    decline = _locked("decline")
    kick = _locked("kick")
    flush = _locked("flush")
    _flush = _locked("_flush")
    _on_timer = _locked("_on_timer")
    _next_turn = _locked("_next_turn")
    protocol_error = _locked("protocol_error")
    abandon = _locked("abandon")
    close = _locked("close")

    @property
    def stats(self) -> dict:
        with self.lock:
            return Channel.stats.fget(self)  # type: ignore[attr-defined]

    # --- blocking API ----------------------------------------------------------------------------
    def send(self, items_payload: payload_codec.Encoded,  # type: ignore[override]
             event: str | None,
             delivery: AnyDelivery | None, callback: Any = None, block: bool = True,
             msg_id: bytes | None = None) -> bytes:
        """Like :meth:`send_nowait`, but waits for room in the outbox (backpressure)."""
        while True:
            with self.lock:
                try:
                    return self.send_nowait(items_payload, event, delivery, callback, msg_id)
                except QueueFull:
                    if not block:
                        raise
                waiter = self._room_waiter()
            waiter.result()             # woken by the next delivery report, a detach, the end

    def call(self, items_payload: payload_codec.Encoded, event: str | None,
             timeout: float | None, block: bool = True) -> Any:
        """Send a request and wait for its reply (only ``timeout`` or the end of the session stop
        the wait; a reconnect does not)."""
        future = self.loop.create_future()
        msg_id = self.send(items_payload, event, None, future, block)
        return self.wait_reply(msg_id, future, timeout)

    def wait_reply(self, msg_id: bytes | None, future: Any,
                   timeout: float | None) -> Any:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if msg_id is not None:
                with self.lock:
                    self._awaiting.pop(msg_id, None)
            raise SocketIOTimeoutError() from None

    def drain(self, timeout: float) -> None:  # type: ignore[override]
        """Flush, then wait up to ``timeout`` seconds for every pending message to be acknowledged
        (only while a transport is attached)."""
        self.flush()
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if self.closed or self._write is None or not self.engine.outbox_messages:
                    return
                waiter = self._room_waiter()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                waiter.result(remaining)
            except concurrent.futures.TimeoutError:
                return

    def idle(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Wait until the handlers queued so far have run."""
        return self.runner.idle(timeout)  # type: ignore[call-arg,return-value]

    def _room_waiter(self) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._room_waiters.append(future)  # type: ignore[arg-type]
        return future

    def _answer_later(self, request_id: bytes, result: Any,
                      delivery: AnyDelivery | None) -> None:
        waiter = self._room_waiter()

        def answer_when_room() -> None:
            waiter.result()
            if not self.closed:
                self.answer(request_id, result, delivery)     # full again: waits again
        self.runner.spawn(answer_when_room)
