"""The interface through which relio's shell reports what it does: :class:`Observer`.

``AsyncServer.relio_observer`` is an :class:`Observer`; the default one does nothing.
:class:`relio.observe.RelioMetrics` is an observer that counts. The server and its session registry
call these methods only where something happens once per session or once per failure (a session
added, removed, resumed, refused, ended; a delivery failed; an outbox full), never once per
message: what happens per message (messages, bytes, retransmissions) is counted by the engine and
the channel anyway and read from them at scrape time. Two opt-in exceptions, both off by default:
:meth:`Observer.handler_timer` (handler durations) and :attr:`Observer.count_events` (received
messages by event name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession


class Observer:
    """What the server tells an observer (every method a no-op here)."""

    #: Call :meth:`message_received` for every message delivered to a handler (event-name labels
    #: are opt-in: an application that names events after users would make one series each).
    count_events = False

    def session_added(self, session: ServerSession, adopted: bool) -> None:
        """A session joined the registry: new, or ``adopted`` from another node (its engine
        arrives with the counters it had there)."""

    def session_removed(self, session: ServerSession) -> None:
        """A session left the registry (ended, refused, or moved to another node)."""

    def suspended(self, session: ServerSession, reason: str) -> None:
        """The session's connection dropped; it waits to be resumed."""

    def resumed(self, session: ServerSession) -> None:
        """A client resumed its session on this node (on ``session.eio_sid``)."""

    def resume_refused(self, namespace: str, reason: str) -> None:
        """A resume was refused (the client got a new session and ``reason``)."""

    def session_ended(self, namespace: str, reason: str) -> None:
        """A session ended for ``reason`` (``disconnect`` fired); sessions that moved to another
        node did not end."""

    def delivery_failed(self, namespace: str, reason: str) -> None:
        """A message will never be delivered (``relio_delivery_error``)."""

    def queue_full(self, namespace: str) -> None:
        """An emit found a recipient's outbox full (it waited for room, or raised QueueFull)."""

    def handler_timer(self, namespace: str) -> Callable[[float], None] | None:
        """A function to call with each handler's duration in seconds for sessions of
        ``namespace``, or None not to time handlers."""
        return None

    def message_received(self, namespace: str, event: str) -> None:
        """A message for ``event`` is handed to its handler (only with :attr:`count_events`)."""


class Observers(Observer):
    """Several observers as one (``AsyncServer.relio_observe`` makes it when a second comes)."""

    def __init__(self, *observers: Observer):
        self.observers = list(observers)
        self.count_events = any(o.count_events for o in observers)

    def session_added(self, session: ServerSession, adopted: bool) -> None:
        for o in self.observers:
            o.session_added(session, adopted)

    def session_removed(self, session: ServerSession) -> None:
        for o in self.observers:
            o.session_removed(session)

    def suspended(self, session: ServerSession, reason: str) -> None:
        for o in self.observers:
            o.suspended(session, reason)

    def resumed(self, session: ServerSession) -> None:
        for o in self.observers:
            o.resumed(session)

    def resume_refused(self, namespace: str, reason: str) -> None:
        for o in self.observers:
            o.resume_refused(namespace, reason)

    def session_ended(self, namespace: str, reason: str) -> None:
        for o in self.observers:
            o.session_ended(namespace, reason)

    def delivery_failed(self, namespace: str, reason: str) -> None:
        for o in self.observers:
            o.delivery_failed(namespace, reason)

    def queue_full(self, namespace: str) -> None:
        for o in self.observers:
            o.queue_full(namespace)

    def handler_timer(self, namespace: str) -> Callable[[float], None] | None:
        timers = [t for t in (o.handler_timer(namespace) for o in self.observers)
                  if t is not None]
        if len(timers) <= 1:
            return timers[0] if timers else None

        def report(seconds: float) -> None:
            for timer in timers:
                timer(seconds)
        return report

    def message_received(self, namespace: str, event: str) -> None:
        for o in self.observers:
            if o.count_events:
                o.message_received(namespace, event)


#: The observer of a server nobody observes.
NULL_OBSERVER = Observer()
