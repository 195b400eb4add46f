"""``relio.SimpleClient``: python-socketio's ``SimpleClient`` on a thread-based relio client.

The same API (``connect``, ``emit``, ``call``, ``receive``, ``disconnect``, ``sid``,
``transport``), with relio's guarantees underneath: a dropped connection is not a disconnect, so
``emit`` and ``call`` neither wait for a reconnect nor fail; their messages are queued in the
session and delivered exactly once when it resumes; ``receive`` gets every event once, in order.
"""

from __future__ import annotations

import socketio

from relio.threading.client import Client


class SimpleClient(socketio.SimpleClient):
    """A Socket.IO client with a simple, blocking API and relio's guarantees.

    The positional and keyword arguments given in the constructor are passed to the underlying
    :class:`relio.Client` object.
    """

    client_class = Client


__all__ = ["SimpleClient"]
