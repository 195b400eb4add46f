"""What relio hands back to the application: :class:`Delivery`, :class:`Reply`, :class:`Question`.

These are the public result types of the asyncio shell. A :class:`Delivery` is settled by the
:class:`~relio.asyncio.channel.Channel` that carries its message (``_add`` when a recipient's copy
is queued, ``_settle`` when that copy is acknowledged or fails); a :class:`Question` answers
through the channel that received it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relio.binding import payload as payload_codec
from relio.engine.errors import DeliveryError

if TYPE_CHECKING:
    from relio.asyncio.channel import Channel


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
    returns is sent back and passed to ``on_confirm``, whose return value goes back again, and so
    on.
    Each step is a relio message: delivered exactly once, its handler run once, re-sent from the
    response cache if the link fails. With ``call()`` the requester gets a :class:`Question`.
    """

    __slots__ = ("args", "callback")

    def __init__(self, *args: Any, callback: Callable | asyncio.Future | None = None):
        self.args = list(args)
        self.callback = callback


class Question:
    """A reply that asks for an answer: returned by ``call()`` when the peer answered with
    :class:`Reply`. ``data`` is the reply's data (as ``call()`` would have returned it)."""

    def __init__(self, channel: Channel, msg_id: bytes, args: list):
        self._channel = channel
        self._msg_id = msg_id
        self.args = args
        self.data = collapse(args)

    async def answer(self, data: Any = None) -> Delivery:
        """Send the final answer (the peer's callback receives it); returns its
        :class:`Delivery`."""
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
    """python-socketio's ``call()`` result rule: no argument is None, one is itself, more a
    tuple."""
    if len(args) == 1:
        return args[0]
    return tuple(args) if args else None


class Delivery:
    """What became of an ``emit``: await it to learn that every relio recipient acknowledged it.

    ``await sio.emit(...)`` returns a ``Delivery`` as soon as the message is queued (as
    python-socketio's ``emit`` returns when it is handed to the transport); ``await delivery`` then
    returns None once each relio recipient has it, or raises :class:`relio.DeliveryError` if it
    cannot be delivered to one of them (session closed or expired, delivery timeout). Recipients
    that are plain Socket.IO clients cannot acknowledge; they are counted in ``unconfirmed``.
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
    def awaited(self) -> bool:
        """Someone awaits (or awaited) this Delivery: a failure reaches them."""
        return self._future is not None

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
        self._raise_failures()

    def _raise_failures(self) -> None:
        """Once settled: raise what became of the failed copies (the one error, or a
        :class:`relio.DeliveryError` listing them all); return if every copy was delivered."""
        if self.failures:
            if len(self.failures) == 1:
                raise self.failures[0]
            first = self.failures[0]
            raise DeliveryError(first.reason, first.msg_id, event=first.event,
                                failures=list(self.failures))

    def __repr__(self) -> str:
        state = "pending" if self._remaining else ("failed" if self.failures else "delivered")
        return f"<relio.Delivery {state} recipients={self.recipients}>"
