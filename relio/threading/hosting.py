"""The interface between ``relio.Server`` (thread-based) and whatever keeps its sessions beyond this
process: the thread-based twin of :mod:`relio.asyncio.hosting`.

A server asks its client manager for a :class:`ThreadSessionHost` (``manager.session_host``). The
default, here, keeps every session on this node. ``relio.RedisManager`` gives one that saves
sessions in Redis and moves them between nodes (:mod:`relio.cluster.thread_host`).

The methods are those of :class:`relio.asyncio.hosting.SessionHost`, blocking where that one's are
coroutines (:meth:`claim`, :meth:`hand_over_all`, :meth:`close`); the server calls those without
holding its lock or a session's. What a host may call on the server is the asyncio server's host
interface: ``server.relio_registry``, ``relio_export``, ``relio_adopt``, ``relio_release``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relio.binding.sessions import UNKNOWN_SESSION
from relio.threading.channel import ThreadChannel

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession
    from relio.engine import Engine


class ThreadSessionHost:
    """Where a thread-based server's sessions live: this node only (every method a no-op)."""

    #: Sessions can move between nodes: a resume of an unknown sid is worth a :meth:`claim`.
    movable = False

    def bind(self, server: Any) -> None:
        """The server this host serves (called once, when the server is made)."""
        self.server = server

    def make_channel(self, engine: Engine, handler: Any, *, json: Any, sid: str,
                     namespace: str) -> ThreadChannel:
        """The channel of a session the server creates or adopts (``handler``: the server)."""
        return ThreadChannel(engine, handler, start_task=handler.start_background_task,
                             json=json, sid=sid, namespace=namespace,
                             linger=handler.relio_config.handler_thread_linger)

    def suspended(self, session: ServerSession) -> None:
        """The session's connection dropped; its client may resume it elsewhere."""

    def resumed(self, session: ServerSession) -> None:
        """The session resumed here (its credential rotated)."""

    def ended(self, session: ServerSession, reason: str) -> None:
        """The session is over (``disconnect`` fired or fires now)."""

    def claim(self, sid: str, namespace: str, eio_sid: str, credential: Any) -> str | None:
        """Bring session ``sid`` here for a resume on ``eio_sid``; None when it is here now, else
        why it cannot be."""
        return UNKNOWN_SESSION

    def hand_over_all(self) -> None:
        """The server shuts down: let another node carry its sessions on."""

    def close(self) -> None:
        """Stop background work (the server is shutting down)."""
