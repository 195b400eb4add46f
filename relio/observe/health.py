"""Health for load balancers and orchestrators, and graceful shutdown: :class:`Health`.

A server is ``ready`` (take new clients), ``draining`` (finishing: send no new clients here) or
``stopped``. :meth:`Health.app` answers ``GET /readyz`` with 200 only while ready and ``GET
/livez`` with 200 until stopped, each with a small JSON body.

:meth:`Health.shutdown` is the graceful shutdown: the server turns ``draining``, every connected
session's outbox is flushed and waited for until the client has acknowledged it (bounded by
``Config.drain_timeout``), then ``AsyncServer.shutdown()`` runs. With one node that ends every
session with reason ``server shutdown``: a connected client is told (a Socket.IO DISCONNECT), so
its ``disconnect`` handler runs and it does not reconnect. With ``relio.AsyncRedisManager`` the
sessions are handed over instead: their clients resume them on another node.

:meth:`Health.install_signal_handlers` runs that shutdown on SIGTERM *before* the ASGI server's
own shutdown closes the connections (uvicorn closes websockets first, which would only suspend the
sessions), then hands the signal on to the handler it replaced (uvicorn's), so the process exits
as it would have. Install it once the ASGI server has installed its handlers, e.g. from the
lifespan startup::

    health = relio.observe.health.Health(sio)
    app = socketio.ASGIApp(sio, on_startup=health.install_signal_handlers)

docs/OPERATIONS.md shows it under uvicorn and gunicorn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relio.asyncio.dispatch import spawn

if TYPE_CHECKING:
    from relio.asyncio.server import AsyncServer

logger = logging.getLogger("relio")

READY = "ready"
DRAINING = "draining"
STOPPED = "stopped"


class Health:
    """Ready / draining / stopped state of one server, and its graceful shutdown.

    :param server: the :class:`relio.AsyncServer`.
    :param drain_timeout: seconds to wait for connected clients to acknowledge what is queued for
                          them (default: the server's ``Config.drain_timeout``).
    """

    def __init__(self, server: AsyncServer, drain_timeout: float | None = None):
        self.server = server
        self.drain_timeout = (server.relio_config.drain_timeout if drain_timeout is None
                              else drain_timeout)
        self.state = READY
        self._shutdown: asyncio.Task | None = None
        self._signals: dict[int, Any] = {}

    @property
    def ready(self) -> bool:
        return self.state == READY

    def status(self) -> dict[str, Any]:
        """``{"status": ..., "sessions": ..., "suspended": ...}``."""
        return {"status": self.state, "sessions": self.server.relio_sessions,
                "suspended": self.server.relio_parked_sessions}

    # --- graceful shutdown -----------------------------------------------------------------------
    async def shutdown(self) -> None:
        """Drain, then shut the server down (hand sessions over, or end them telling their
        clients). Calls after the first wait for it."""
        if self._shutdown is None:
            self._shutdown = spawn(self._shut_down())
        await asyncio.shield(self._shutdown)

    async def _shut_down(self) -> None:
        self.state = DRAINING
        server = self.server
        connected = [s for s in server.relio_registry if s.attached]
        logger.info("relio: draining %d connected sessions (up to %.1f s)", len(connected),
                    self.drain_timeout)
        await asyncio.gather(*(s.channel.drain(self.drain_timeout) for s in connected))
        try:
            await server.shutdown()
        finally:
            self.state = STOPPED

    def install_signal_handlers(self, signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
        """On each of ``signals``: :meth:`shutdown`, then the handler that was there before
        (a second signal during the shutdown goes to that handler at once). Call it on the event
        loop's thread, after the ASGI server installed its own handlers."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            self._signals[sig] = signal.getsignal(sig)
            signal.signal(sig, lambda signum, frame: loop.call_soon_threadsafe(
                self._on_signal, signum))

    def _on_signal(self, signum: int) -> None:
        if self._shutdown is not None:          # asked again: do not wait any longer
            self._chain(signum)
            return
        logger.info("relio: signal %d: graceful shutdown", signum)
        task = spawn(self.shutdown())
        task.add_done_callback(lambda _t: self._chain(signum))

    def _chain(self, signum: int) -> None:
        previous = self._signals.get(signum)
        if callable(previous):
            previous(signum, None)
        elif previous != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    # --- ASGI --------------------------------------------------------------------------------
    def app(self, other_asgi_app: Callable | None = None, *, ready_path: str = "/readyz",
            live_path: str = "/livez"):
        """An ASGI app answering ``ready_path`` and ``live_path``; other requests go to
        ``other_asgi_app`` (e.g. :func:`relio.observe.prometheus.metrics_app`), or get 404."""
        async def app(scope, receive, send):
            if scope["type"] == "http" and scope.get("path") in (ready_path, live_path):
                ok = self.ready if scope["path"] == ready_path else self.state != STOPPED
                body = json.dumps(self.status()).encode()
                await send({"type": "http.response.start", "status": 200 if ok else 503,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"cache-control", b"no-store")]})
                await send({"type": "http.response.body", "body": body})
                return
            if other_asgi_app is not None:
                await other_asgi_app(scope, receive, send)
                return
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 404,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"not found"})
        return app
