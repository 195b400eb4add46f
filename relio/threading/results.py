"""The thread-based shell's result types: :class:`Delivery` and :class:`Question` that block.

They are the asyncio shell's types (:mod:`relio.asyncio.results`: ``isinstance(d, relio.Delivery)``
holds for both), with blocking methods in place of ``await``: ``delivery.wait(timeout)``,
``question.answer(data)``, ``question.ask(data, timeout)``. A thread-based Delivery is settled
from the lock of each session that carries it, so its counters have a lock of their own.
"""

from __future__ import annotations

import threading
from typing import Any

from socketio.exceptions import TimeoutError as SocketIOTimeoutError

from relio.asyncio import results
from relio.asyncio.results import Reply
from relio.binding import payload as payload_codec
from relio.engine.errors import DeliveryError


class Delivery(results.Delivery):
    """What became of an ``emit`` of the thread-based API: call :meth:`wait` to learn that every
    relio recipient acknowledged it.

    ``sio.emit(...)`` returns it as soon as the message is queued; ``delivery.wait()`` then
    returns None once each relio recipient has it, or raises :class:`relio.DeliveryError` if it
    cannot be delivered to one of them. Plain Socket.IO recipients are counted in ``unconfirmed``.
    """

    __slots__ = ("_lock", "_event")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._event: threading.Event | None = None

    @property
    def awaited(self) -> bool:
        return self._event is not None

    def _add(self) -> None:
        with self._lock:
            self.recipients += 1
            self._remaining += 1

    def _settle(self, error: DeliveryError | None) -> None:
        with self._lock:
            if error is not None:
                self.failures.append(error)
            self._remaining -= 1
            if self._remaining == 0 and self._event is not None:
                self._event.set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until every relio recipient has the message.

        :raises relio.DeliveryError: it cannot be delivered to a recipient.
        :raises socketio.exceptions.TimeoutError: ``timeout`` seconds passed first.
        """
        with self._lock:
            if self._event is None:
                self._event = threading.Event()
            if self._remaining == 0:
                self._event.set()
        if not self._event.wait(timeout):
            raise SocketIOTimeoutError()
        self._raise_failures()

    def __await__(self):
        raise TypeError("a thread-based relio Delivery is not awaitable: call its wait()")


class Question(results.Question):
    """A reply that asks for an answer (see :class:`relio.Question`), answered by blocking
    calls."""

    def answer(self, data: Any = None) -> Delivery:  # type: ignore[override]
        """Send the final answer (the peer's callback receives it); returns its
        :class:`Delivery`."""
        delivery = Delivery()
        self._channel.answer(self._msg_id, data, delivery=delivery)
        return delivery

    def ask(self, data: Any = None, timeout: float | None = 60) -> Any:
        """Answer with a further question and wait for the peer's reply to it."""
        channel = self._channel
        future = channel.loop.create_future()
        msg_id = channel.answer(self._msg_id, Reply(*payload_codec.as_args(data), callback=future))
        return channel.wait_reply(msg_id, future, timeout)

    def __repr__(self) -> str:
        return f"<relio.Question data={self.data!r}>"
