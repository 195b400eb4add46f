"""The interface between ``relio.AsyncServer`` and whatever keeps its sessions beyond this process.

A server asks its client manager for a :class:`SessionHost` (``manager.session_host``). The default,
here, keeps every session on this node: nothing is saved, nothing moves, a resume of a sid this node
does not have is refused. ``relio.AsyncRedisManager`` gives a host that saves sessions in Redis and
moves them between nodes (:mod:`relio.cluster.store`). The thread-based server's twin, with the same
methods blocking where these are coroutines, is :mod:`relio.threading.hosting`.

What a host may call on the server is public and documented there: ``server.relio_registry`` (the
live sessions), :meth:`~relio.asyncio.server.AsyncServer.relio_export` (and
:meth:`~relio.asyncio.server.AsyncServer.relio_export_apart`, its queued messages kept apart),
:meth:`~relio.asyncio.server.AsyncServer.relio_adopt` and
:meth:`~relio.asyncio.server.AsyncServer.relio_release`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relio.asyncio.channel import Channel
from relio.binding.sessions import UNKNOWN_SESSION

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession
    from relio.asyncio.server import AsyncServer
    from relio.engine import Engine


class SessionHost:
    """Where a server's sessions live: this node only (every method a no-op).

    A host for several nodes overrides what it needs. The server calls:

    * :meth:`make_channel` for every session it creates or adopts (a durable host returns a
      :class:`~relio.asyncio.durable.DurableChannel`);
    * :meth:`suspended`, :meth:`resumed` and :meth:`ended` as a session's life goes on;
    * :meth:`claim` when a client resumes a sid this node does not have (only when
      :attr:`movable`);
    * :meth:`hand_over_all` and :meth:`close` on shutdown.
    """

    #: Sessions can move between nodes: a resume of an unknown sid is worth a :meth:`claim`.
    movable = False

    def bind(self, server: AsyncServer) -> None:
        """The server this host serves (called once, when the server is made)."""
        self.server = server

    def make_channel(self, engine: Engine, handler: Any, *, json: Any, sid: str,
                     namespace: str) -> Channel:
        return Channel(engine, handler, json=json, sid=sid, namespace=namespace)

    def suspended(self, session: ServerSession) -> None:
        """The session's connection dropped; its client may resume it elsewhere."""

    def resumed(self, session: ServerSession) -> None:
        """The session resumed here (its credential rotated)."""

    def ended(self, session: ServerSession, reason: str) -> None:
        """The session is over (``disconnect`` fired or fires now)."""

    async def claim(self, sid: str, namespace: str, eio_sid: str,
                    credential: Any) -> str | None:
        """Bring session ``sid`` here for a resume on ``eio_sid`` (adopting it with
        ``server.relio_adopt``); None when it is here now, else why it cannot be."""
        return UNKNOWN_SESSION

    async def hand_over_all(self) -> None:
        """The server shuts down: let another node carry its sessions on."""

    async def close(self) -> None:
        """Stop background work (the server is shutting down)."""
