"""The server's table of relio sessions and their resume credentials (sans I/O: callers pass
``now``).

A session has a public id (the socket.io ``sid`` the application sees for the session's whole life)
and a secret resume credential, distinct from it as Socket.IO's ``pid`` is distinct from its ``id``:
sids are visible to other clients (rooms, broadcasts), credentials never are. A client resumes by
presenting both; the credential is compared in constant time, accepted only for its own session and
only while the session lives, and replaced on every resume so that a captured credential stops
working (the replaced one stays valid only until the client is seen using the resumed connection, so
that a resume whose answer was lost can be retried). A disconnected ("parked") session lives
``session_ttl`` seconds; at most ``max_parked_sessions`` are kept, the one parked longest expiring
first, so clients that vanish cannot run the server out of memory.
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import RelioError

#: Bytes of randomness in a resume credential (the issue asks for at least 128 bits).
CREDENTIAL_BYTES = 32


#: Why a resume naming no live session (or with credentials that do not match it) is refused. One
#: reason for both, so that a guess learns nothing; worded so that an application does not read it
#: as an authentication failure.
UNKNOWN_SESSION = ("the server no longer has this session (it expired, the server restarted, or "
                   "the credentials do not match)")


class ResumeRefused(RelioError):
    """A resume attempt named no live session, or the wrong credential for it."""


@dataclass(eq=False)
class Session:
    """One session: its public id, its engine(s) and whatever the server layer keeps with it."""

    sid: str
    state: Any = None
    credential: str = field(default="", repr=False)   # never logged: kept out of repr
    #: The credential replaced by the last resume, still accepted until the client proves it got
    #: the new one (:meth:`SessionTable.confirm`): a resume whose answer is lost on the way must
    #: not lose the session.
    previous_credential: str | None = field(default=None, repr=False)
    connected: bool = True
    parked_at: float | None = None
    resumes: int = 0


def _parked_at(session: Session) -> float:
    """When a disconnected session was parked (every path that disconnects one sets it)."""
    assert session.parked_at is not None, session
    return session.parked_at


class SessionTable:
    """Sessions by sid, with parking, expiry and credential checks."""

    def __init__(self, config: Config = DEFAULT_CONFIG):
        self.ttl = config.session_ttl
        self.max_parked = config.max_parked_sessions
        self._sessions: dict[str, Session] = {}
        self._parked: OrderedDict[str, Session] = OrderedDict()   # oldest parked first

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, sid: str) -> bool:
        return sid in self._sessions

    def get(self, sid: str) -> Session | None:
        return self._sessions.get(sid)

    @property
    def parked(self) -> int:
        return len(self._parked)

    def create(self, sid: str, state: Any = None) -> Session:
        """Register a new connected session; its credential is in ``session.credential``."""
        if sid in self._sessions:
            raise ValueError(f"session {sid!r} exists already")
        session = Session(sid, state, secrets.token_urlsafe(CREDENTIAL_BYTES))
        self._sessions[sid] = session
        return session

    def adopt(self, sid: str, state: Any, credential: str, now: float) -> Session:
        """A session moved here from another server node (its record's credential hash matched
        ``credential``): registered as parked, to be resumed by that client at once."""
        if sid in self._sessions:
            raise ValueError(f"session {sid!r} exists already")
        session = Session(sid, state, credential, connected=False, parked_at=now)
        self._sessions[sid] = session
        self._parked[sid] = session
        return session

    def park(self, sid: str, now: float) -> list[Session]:
        """The session's connection is gone: keep it for ``ttl``. Returns the sessions evicted to
        respect ``max_parked_sessions`` (the caller closes them)."""
        session = self._sessions[sid]
        session.connected = False
        session.parked_at = now
        self._parked[sid] = session
        self._parked.move_to_end(sid)
        evicted = []
        while len(self._parked) > self.max_parked:
            _, oldest = self._parked.popitem(last=False)
            del self._sessions[oldest.sid]
            evicted.append(oldest)
        return evicted

    def resume(self, sid: str, credential: str, now: float) -> Session:
        """Hand the session back to a client presenting its credential, with a new credential.

        A session that is still connected is resumed too (the caller closes the older connection
        cleanly rather than forking the session).

        :raises ResumeRefused: no live session with this sid, or the credential does not match.
        """
        session = self._sessions.get(sid)
        if session is None or not isinstance(credential, str):
            raise ResumeRefused(UNKNOWN_SESSION)
        given = credential.encode()
        current = hmac.compare_digest(session.credential.encode(), given)
        previous = session.previous_credential is not None and hmac.compare_digest(
            session.previous_credential.encode(), given)
        if not (current or previous):
            raise ResumeRefused(UNKNOWN_SESSION)
        if not session.connected and now - _parked_at(session) >= self.ttl:
            self._expire(session)
            raise ResumeRefused("the session expired")
        self._parked.pop(sid, None)
        session.connected = True
        session.parked_at = None
        session.resumes += 1
        if current:
            # The client holds `credential`; until it shows it received the new one, it stays valid.
            session.previous_credential = session.credential
        session.credential = secrets.token_urlsafe(CREDENTIAL_BYTES)
        return session

    def confirm(self, sid: str) -> None:
        """The client has the credential of its last resume (it spoke on the resumed connection):
        the one before stops working."""
        session = self._sessions.get(sid)
        if session is not None:
            session.previous_credential = None

    def remove(self, sid: str) -> Session | None:
        """Forget a session (closed by either side)."""
        self._parked.pop(sid, None)
        return self._sessions.pop(sid, None)

    def expire(self, now: float) -> list[Session]:
        """Remove and return every parked session older than ``ttl``."""
        expired = []
        while self._parked:
            session = next(iter(self._parked.values()))
            if now - _parked_at(session) < self.ttl:
                break
            self._expire(session)
            expired.append(session)
        return expired

    def next_expiry(self) -> float | None:
        """When :meth:`expire` next has work, or None."""
        if not self._parked:
            return None
        return _parked_at(next(iter(self._parked.values()))) + self.ttl

    def _expire(self, session: Session) -> None:
        self._parked.pop(session.sid, None)
        self._sessions.pop(session.sid, None)
