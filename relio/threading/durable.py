"""Durable sessions of the thread-based server: :class:`DurableThreadChannel`.

The asyncio shell's :class:`~relio.asyncio.durable.DurableChannel` (nothing leaves a session, and no
handler sees a message, before the state that includes it is saved) on a
:class:`~relio.threading.channel.ThreadChannel`. Only the scheduling of the saves differs: the
asyncio channel awaits each save in a task; here ``persist(channel, state)`` returns a
:class:`concurrent.futures.Future` (the save runs on the cluster loop,
:mod:`relio.cluster.loop`), and its completion continues the session's save loop in the driver
thread, under the session's lock. No thread waits for a save, and there is no thread per session.
"""

from __future__ import annotations

import concurrent.futures

from relio.asyncio.durable import DurableChannel, PersistStep
from relio.threading.channel import ThreadChannel, _locked


class DurableThreadChannel(ThreadChannel, DurableChannel):
    """A thread-based channel whose batches and events wait for the save that includes them.

    ``persist(channel, state)`` returns a future of the save (see the module)."""

    # DurableChannel's entry points, under the session's lock like ThreadChannel's
    send_nowait = _locked("send_nowait", DurableChannel)
    redeliver = _locked("redeliver", DurableChannel)
    _handler_done = _locked("_handler_done", DurableChannel)   # from the handler thread

    def _request_persist(self) -> None:            # under the session's lock
        if self._persisting:
            self._persist_again = True
            return
        self._persist_next()

    def _persist_next(self) -> None:
        step = self._persist_begin() if not self.closed else None
        if step is None:
            self._persisting = False
            return
        self._persisting = True
        future: concurrent.futures.Future = self._persist(self, step.state)  # type: ignore[assignment]
        future.add_done_callback(lambda _f: self.loop.call_soon(lambda: self._persisted(step)))

    def _persisted(self, step: PersistStep) -> None:   # the driver thread, once saved
        with self.lock:
            if self._persist_end(step):
                self._persist_next()
            else:
                self._persisting = False
