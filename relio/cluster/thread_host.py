"""The session host of the thread-based ``relio.RedisManager``: the asyncio session store, run on
the cluster loop.

:class:`ThreadRedisHost` is a :class:`~relio.threading.hosting.ThreadSessionHost` that hands every
call to a :class:`~relio.cluster.store.RedisSessionStore` running on the process's cluster loop
(:mod:`relio.cluster.loop`): session records, hand-over, takeover and fencing are the asyncio
store's code, unchanged. What it adds is the crossing: notifications (``suspended``, ``resumed``,
``ended``) are posted to the loop without waiting; ``claim``, ``hand_over_all`` and ``close``
block the calling thread (the server calls them holding no lock); in durable mode each session is a
:class:`~relio.threading.durable.DurableThreadChannel` whose saves are the store's
:meth:`~relio.cluster.store.RedisSessionStore.persist`, submitted to the loop.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from relio.cluster.loop import ClusterLoop
from relio.cluster.store import DURABLE, HANDOVER_HANDLER_WAIT, RedisSessionStore
from relio.threading.channel import ThreadChannel
from relio.threading.durable import DurableThreadChannel
from relio.threading.hosting import ThreadSessionHost

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession
    from relio.engine import Engine

logger = logging.getLogger("relio")

#: How long a shutdown waits for its sessions to be handed over (each waits for its running
#: handlers at most HANDOVER_HANDLER_WAIT, then one save, bounded by the Redis client's socket
#: timeout), seconds; past it the shutdown goes on (logged) and what was not saved is taken over
#: from the last save.
HAND_OVER_ALL_WAIT = HANDOVER_HANDLER_WAIT + 10.0


class ThreadRedisHost(ThreadSessionHost):
    """Sessions saved in Redis and moved between nodes, for a thread-based server."""

    movable = True

    def __init__(self, store: RedisSessionStore, cluster: ClusterLoop):
        self.store = store
        self.cluster = cluster

    def bind(self, server: Any) -> None:
        super().bind(server)
        self.store.bind(server)

    def make_channel(self, engine: Engine, handler: Any, *, json: Any, sid: str,
                     namespace: str) -> ThreadChannel:
        if self.store.mode != DURABLE:
            return super().make_channel(engine, handler, json=json, sid=sid, namespace=namespace)
        return DurableThreadChannel(engine, handler, start_task=handler.start_background_task,
                                    json=json, sid=sid, namespace=namespace,
                                    linger=handler.relio_config.handler_thread_linger,
                                    capture=self.store.capture, persist=self._persist)

    def _persist(self, channel: DurableThreadChannel, state: Any) -> concurrent.futures.Future:
        return self.cluster.submit(self.store.persist(channel, state))

    def suspended(self, session: ServerSession) -> None:
        self.cluster.call_soon(self.store.suspended, session)

    def resumed(self, session: ServerSession) -> None:
        self.cluster.call_soon(self.store.resumed, session)

    def ended(self, session: ServerSession, reason: str) -> None:
        self.cluster.call_soon(self.store.ended, session, reason)

    def claim(self, sid: str, namespace: str, eio_sid: str, credential: Any) -> str | None:
        return self.cluster.run(self.store.claim(sid, namespace, eio_sid, credential))

    def hand_over_all(self) -> None:
        self._wait(self.store.hand_over_all(), "handing the sessions over")

    def close(self) -> None:
        self._wait(self.store.close(), "closing the session store")

    def _wait(self, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Shutdown steps: bounded, and a slow one does not stop the shutdown."""
        try:
            self.cluster.run(coro, HAND_OVER_ALL_WAIT)
        except concurrent.futures.TimeoutError:
            logger.warning("relio: %s took longer than %g s; shutting down anyway", what,
                           HAND_OVER_ALL_WAIT)
