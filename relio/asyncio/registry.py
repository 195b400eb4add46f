"""The server's relio sessions: one registry that owns every table about them and its invariants.

A relio session is a :class:`ServerSession`: its :class:`~relio.asyncio.channel.Channel`, the
engine.io connection it is bound to (or was last bound to, while suspended) and the application's
``save_session`` data. Its resume credential, parking and expiry belong to the sans-I/O
:class:`~relio.binding.sessions.SessionTable` record (``session.record``): the credential has one
owner, and a resume rotates it there.

:class:`SessionRegistry` keeps, and alone changes:

* ``sid -> session`` for every live session (connected or suspended);
* ``(eio_sid, namespace) -> session`` for the sessions whose connection is up ("bound");
* how many sessions reference each engine.io sid (a suspended session's sid stays in the manager's
  rooms mapped to its dead connection, so that connection's environ is kept while referenced);
* the connections that have carried relio (a batch still in flight when its session ended is a
  stray carrier to drop quietly, not a Socket.IO packet);
* why recently ended sessions ended (bounded), so an emit or call to their sid fails with it;
* ended sessions whose sequential handlers still run (``disconnect`` waits for them);
* the expiry timer of suspended sessions.

:meth:`SessionRegistry.check` states the invariants; the hostile-peer tests call it after every
step.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from relio.asyncio.channel import Channel
from relio.binding.sessions import Session, SessionTable
from relio.config import Config
from relio.observe.hooks import NULL_OBSERVER, Observer


class ServerSession:
    """One relio session on the server."""

    __slots__ = ("sid", "namespace", "channel", "record", "eio_sid", "data", "ended",
                 "unconfirmed_resume", "host_state")

    def __init__(self, sid: str, namespace: str, channel: Channel, eio_sid: str):
        self.sid = sid
        self.namespace = namespace
        self.channel = channel
        #: the session table's record: credential, parking, resumes (set by the registry)
        self.record: Session = None  # type: ignore[assignment]
        #: the connection the session is bound to, or was last bound to while suspended
        self.eio_sid = eio_sid
        #: the application's get_session/save_session data
        self.data: dict = {}
        #: removed from the registry (ended, refused, or moved to another node)
        self.ended = False
        #: resumed, and the client not yet heard from on the new connection
        self.unconfirmed_resume = False
        #: whatever the session host keeps for this session (relio.cluster: save lock, epoch)
        self.host_state: Any = None

    @property
    def credential(self) -> str:
        return self.record.credential

    @property
    def attached(self) -> bool:
        return self.channel.attached

    @property
    def suspended(self) -> bool:
        """Waiting to be resumed (parked; a new session not yet attached is not suspended)."""
        return not self.record.connected

    def __repr__(self) -> str:
        return f"<ServerSession {self.sid} [{self.namespace}] on {self.eio_sid}>"


class SessionRegistry:
    """Every relio session of one server and the tables that find them."""

    def __init__(self, config: Config, on_expired: Callable[[ServerSession, str], None],
                 on_unreferenced: Callable[[str], None], loop: Any = None):
        """``on_expired(session, reason)``: a suspended session expired or was evicted;
        ``on_unreferenced(eio_sid)``: no session refers to that connection any more;
        ``loop``: what arms the expiry timer (``time()``, ``call_at()``; default: the running
        asyncio loop)."""
        self._loop = loop
        self.config = config
        self._on_expired = on_expired
        self._on_unreferenced = on_unreferenced
        self._table = SessionTable(config)
        self._by_sid: dict[str, ServerSession] = {}
        self._bound: dict[tuple[str, str], ServerSession] = {}
        self._eio_refs: dict[str, int] = {}
        self._relio_connections: set[str] = set()
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._draining: dict[str, ServerSession] = {}
        self._expiry: asyncio.TimerHandle | None = None
        #: told when a session is added or removed (the server's ``relio_observer``)
        self.observer: Observer = NULL_OBSERVER

    # --- lookups -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_sid)

    def __contains__(self, sid: object) -> bool:
        return sid in self._by_sid

    def __iter__(self) -> Iterator[ServerSession]:
        return iter(list(self._by_sid.values()))

    def get(self, sid: Any) -> ServerSession | None:
        return self._by_sid.get(sid)

    def channel(self, sid: Any) -> Channel | None:
        """The channel of the live session ``sid`` (hot path of every emit)."""
        session = self._by_sid.get(sid)
        return None if session is None else session.channel

    def bound(self, eio_sid: str, namespace: str) -> ServerSession | None:
        """The session whose connection ``eio_sid`` is up in ``namespace``."""
        return self._bound.get((eio_sid, namespace))

    def carries_relio(self, eio_sid: str) -> bool:
        """Binary messages on ``eio_sid`` are relio carriers (a session uses or used it)."""
        return eio_sid in self._eio_refs or eio_sid in self._relio_connections

    def references(self, eio_sid: str) -> bool:
        """A live session (maybe suspended) is mapped to ``eio_sid`` in the manager's rooms."""
        return eio_sid in self._eio_refs

    def draining(self, sid: str) -> ServerSession | None:
        """An ended session whose sequential handlers still run."""
        return self._draining.get(sid)

    def ended_reason(self, sid: Any) -> str | None:
        """Why the recently ended session ``sid`` ended (None: not known to have ended)."""
        return self._ended.get(sid) if isinstance(sid, str) else None

    @property
    def parked(self) -> int:
        """Sessions waiting to be resumed."""
        return self._table.parked

    # --- lifecycle -----------------------------------------------------------------------------
    def create(self, sid: str, namespace: str, channel: Channel, eio_sid: str) -> ServerSession:
        """A new session on connection ``eio_sid`` (not yet bound: see :meth:`bind`)."""
        session = ServerSession(sid, namespace, channel, eio_sid)
        session.record = self._table.create(sid, session)
        self._add(session)
        self.observer.session_added(session, False)
        return session

    def adopt(self, sid: str, namespace: str, channel: Channel, eio_sid: str, credential: str,
              data: dict, now: float) -> ServerSession:
        """A session moved here from another node, parked on ``eio_sid`` until the resume that
        asked for it completes."""
        session = ServerSession(sid, namespace, channel, eio_sid)
        session.data = data
        session.record = self._table.adopt(sid, session, credential, now)
        self._add(session)
        self.observer.session_added(session, True)
        return session

    def _add(self, session: ServerSession) -> None:
        self._by_sid[session.sid] = session
        self._eio_refs[session.eio_sid] = self._eio_refs.get(session.eio_sid, 0) + 1
        self._ended.pop(session.sid, None)

    def bind(self, session: ServerSession) -> None:
        """The session's connection is up: its batches arrive there."""
        self._bound[(session.eio_sid, session.namespace)] = session
        self._relio_connections.add(session.eio_sid)

    def unbind(self, session: ServerSession) -> None:
        key = (session.eio_sid, session.namespace)
        if self._bound.get(key) is session:
            del self._bound[key]

    def move(self, session: ServerSession, eio_sid: str) -> None:
        """The session resumed on connection ``eio_sid`` (unbound from the old one first)."""
        self.unbind(session)
        old = session.eio_sid
        if old != eio_sid:
            self._drop_ref(old)
            self._eio_refs[eio_sid] = self._eio_refs.get(eio_sid, 0) + 1
            session.eio_sid = eio_sid

    def connection_closed(self, eio_sid: str) -> None:
        self._relio_connections.discard(eio_sid)

    def park(self, session: ServerSession, now: float) -> None:
        """The session's connection dropped: it waits ``session_ttl`` to be resumed. Sessions
        evicted to keep ``max_parked_sessions`` end (``on_expired``)."""
        self.unbind(session)
        for evicted in self._table.park(session.sid, now):
            self._on_expired(evicted.state, "session evicted")
        self._arm_expiry()

    def resume(self, sid: str, credential: Any, now: float) -> ServerSession:
        """Take ``sid`` out of the parked sessions if ``credential`` is its own (the credential
        rotates). :raises ResumeRefused:"""
        try:
            return self._table.resume(sid, credential, now).state
        finally:
            self._arm_expiry()

    def confirm(self, session: ServerSession) -> None:
        """The client spoke on the resumed connection: it has the new credential."""
        session.unconfirmed_resume = False
        self._table.confirm(session.sid)

    def forget(self, session: ServerSession, reason: str | None = None) -> bool:
        """Remove the session from every table (once); ``reason``: remember why it ended (a
        session that moved to another node did not end). False if it was already gone."""
        if session.ended:
            return False
        session.ended = True
        consumer = session.channel.runner.sequential_running
        if consumer is not None:
            # Its sequential handlers still run: `disconnect` must wait for them (see idle()).
            sid = session.sid
            self._draining[sid] = session
            consumer.add_done_callback(functools.partial(self._drained, sid))
        self._table.remove(session.sid)
        if self._by_sid.get(session.sid) is session:
            del self._by_sid[session.sid]
        self.unbind(session)
        self._drop_ref(session.eio_sid)
        if reason is not None:
            self.remember_ended(session.sid, reason)
        self.observer.session_removed(session)
        return True

    def _drained(self, sid: str, _task: asyncio.Task) -> None:
        self._draining.pop(sid, None)

    def remember_ended(self, sid: str, reason: str) -> None:
        """Keep why a session ended (bounded, oldest forgotten first), so that an emit or call to
        its sid fails with that reason instead of reaching nobody in silence."""
        ended = self._ended
        ended[sid] = reason
        ended.move_to_end(sid)
        while len(ended) > self.config.max_parked_sessions:
            ended.popitem(last=False)

    def _drop_ref(self, eio_sid: str) -> None:
        count = self._eio_refs.get(eio_sid, 0) - 1
        if count > 0:
            self._eio_refs[eio_sid] = count
        else:
            self._eio_refs.pop(eio_sid, None)
            self._on_unreferenced(eio_sid)

    # --- expiry --------------------------------------------------------------------------------
    def _arm_expiry(self) -> None:
        when = self._table.next_expiry()
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if when is not None:
            loop = self._loop or asyncio.get_running_loop()
            self._expiry = loop.call_at(when, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry = None
        for record in self._table.expire((self._loop or asyncio.get_running_loop()).time()):
            self._on_expired(record.state, "session expired")
        self._arm_expiry()

    def close(self) -> None:
        """Stop the expiry timer (server shutdown)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    # --- observability -------------------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        """How big each table is (the soak checks that none grows without bound)."""
        return {"sessions": len(self._by_sid), "table": len(self._table),
                "bound": len(self._bound), "eio_refs": len(self._eio_refs),
                "relio_connections": len(self._relio_connections), "ended": len(self._ended),
                "draining": len(self._draining), "parked": self._table.parked,
                "expiry_armed": int(self._expiry is not None)}

    def check(self) -> None:
        """Raise AssertionError if an invariant between the tables does not hold."""
        by_sid = self._by_sid
        assert len(self._table) == len(by_sid), "table and sessions disagree"
        refs: dict[str, int] = {}
        for sid, session in by_sid.items():
            assert session.sid == sid and not session.ended, f"{session!r} listed but ended"
            assert self._table.get(sid) is session.record, f"{session!r}: stale record"
            refs[session.eio_sid] = refs.get(session.eio_sid, 0) + 1
        assert refs == self._eio_refs, f"connection refs {self._eio_refs} != {refs}"
        for (eio_sid, namespace), session in self._bound.items():
            assert by_sid.get(session.sid) is session, f"{session!r} bound but not live"
            assert session.eio_sid == eio_sid and session.namespace == namespace, \
                f"{session!r} bound under ({eio_sid}, {namespace})"
            assert session.attached, f"{session!r} bound but detached"
            assert eio_sid in self._relio_connections
        assert self._table.parked == sum(not s.attached for s in by_sid.values()), \
            "parked sessions != detached sessions"
        assert len(self._ended) <= self.config.max_parked_sessions, "ended reasons unbounded"
