"""``relio.AsyncSimpleClient``: python-socketio's ``AsyncSimpleClient`` on a relio client.

The same API (``connect``, ``emit``, ``call``, ``receive``, ``disconnect``, ``sid``,
``transport``), with relio's guarantees underneath: a dropped connection is not a disconnect, so
``emit`` and ``call`` do not wait for a reconnect or fail: their messages are queued in the session
and delivered exactly once when it resumes; ``receive`` gets every event of the session once, in
order.
"""

from __future__ import annotations

import socketio

from relio.asyncio.client import AsyncClient


class AsyncSimpleClient(socketio.AsyncSimpleClient):
    """A Socket.IO client for asyncio with a simple, blocking-style API and relio's guarantees.

    The positional and keyword arguments given in the constructor are passed to the underlying
    :class:`relio.AsyncClient` object.
    """

    client_class = AsyncClient


__all__ = ["AsyncSimpleClient"]
