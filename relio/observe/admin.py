"""The Socket.IO Admin UI on a relio server: ``sio.instrument()`` that tells the truth.

python-socketio's :class:`~socketio.async_admin.InstrumentedAsyncServer` reports what it sees of
engine.io connections. A relio session outlives its connection, so this subclass adds what only
relio knows, through the server's :class:`~relio.observe.hooks.Observer` interface:

* a suspended session stays listed, as ``transport: "suspended"`` with ``data.relio``
  ``"suspended"`` (a ``socket_updated`` event when it happens; in ``all_sockets`` while it lasts),
  and is reported ``socket_disconnected`` only when it really ends;
* a resumed session is reported again (``socket_connected`` on its new connection, ``data.relio``
  ``"connected"``), so is one taken over from another node;
* events relio delivers reach the Admin UI as python-socketio's do: the server routes them through
  the instrumented ``_trigger_event`` (``event_received``) and emits through the instrumented
  manager (``event_sent``).
"""

from __future__ import annotations

import inspect
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from socketio.async_admin import InstrumentedAsyncServer

from relio.asyncio.dispatch import spawn
from relio.binding import wire
from relio.observe.hooks import Observer

if TYPE_CHECKING:
    from relio.asyncio.registry import ServerSession

SUSPENDED = "suspended"
CONNECTED = "connected"


class RelioInstrumentedServer(InstrumentedAsyncServer):
    """python-socketio's Admin UI instrumentation, aware of suspended relio sessions."""

    def __init__(self, sio, **kwargs: Any):
        #: the server's own _trigger_event (relio's lifecycle events are not application events)
        self._plain_trigger_event = sio._trigger_event
        super().__init__(sio, **kwargs)
        if self.mode == "development":
            sio.relio_observe(_AdminObserver(self))

    async def admin_connect(self, sid, environ, client_auth):
        # python-socketio's, except that its config task reuses the name ``sid`` for the loop
        # over every socket and so sends ``all_sockets`` to the last socket listed instead of the
        # Admin UI that connected (python-socketio 5.18).
        authenticated = True
        if self.auth:
            if isinstance(self.auth, dict):
                authenticated = client_auth == self.auth
            elif isinstance(self.auth, list):
                authenticated = client_auth in self.auth
            elif inspect.iscoroutinefunction(self.auth):
                authenticated = await self.auth(client_auth)
            else:
                authenticated = self.auth(client_auth)
        if not authenticated:
            raise ConnectionRefusedError("authentication failed")
        self.sio.start_background_task(self._send_config, sid)

    async def _send_config(self, admin_sid):
        await self.sio.sleep(0.1)
        features = ["AGGREGATED_EVENTS"]
        if not self.read_only:
            features += ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
        if self.mode == "development":
            features.append("ALL_EVENTS")
        await self.sio.emit("config", {"supportedFeatures": features}, to=admin_sid,
                            namespace=self.admin_namespace)
        if self.mode == "development":
            all_sockets = [self.serialize_socket(sid, nsp, eio_sid)
                           for nsp in self.sio.manager.get_namespaces()
                           for sid, eio_sid in self.sio.manager.get_participants(nsp, None)]
            await self.sio.emit("all_sockets", all_sockets, to=admin_sid,
                                namespace=self.admin_namespace)

    def _now(self) -> str:
        return datetime.fromtimestamp(time.time(), timezone.utc).isoformat()

    def serialize_socket(self, sid, namespace, eio_sid=None):
        session = self.sio.relio_registry.get(sid)
        if session is None:
            return super().serialize_socket(sid, namespace, eio_sid)
        if not session.suspended:
            out = super().serialize_socket(sid, namespace, session.eio_sid)
            out["data"] = {"relio": CONNECTED}
            return out
        # Suspended: its connection is gone; the environ kept for it still describes the client.
        environ = self.sio.environ.get(session.eio_sid, {})
        issued = self.sio.manager._timestamps.get(sid, 0)
        return {
            "id": sid,
            "clientId": session.eio_sid,
            "transport": SUSPENDED,
            "nsp": namespace,
            "data": {"relio": SUSPENDED},
            "handshake": {
                "address": environ.get("REMOTE_ADDR", ""),
                "headers": {k[5:].lower(): v for k, v in environ.items()
                            if k.startswith("HTTP_")},
                "query": {k: v[0] if len(v) == 1 else v
                          for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()},
                "secure": environ.get("wsgi.url_scheme", "") == "https",
                "url": environ.get("PATH_INFO", ""),
                "issued": issued * 1000,
                "time": datetime.fromtimestamp(issued, timezone.utc).isoformat()
                if issued else "",
            },
            "rooms": self.sio.manager.get_rooms(sid, namespace),
        }

    async def _trigger_event(self, event, namespace, *args):
        if event in wire.LIFECYCLE_EVENTS:
            return await self._plain_trigger_event(event, namespace, *args)
        if event == "disconnect":
            # A session that came from another node never fired connect here.
            self.sio.manager._timestamps.setdefault(args[0], time.time())
        return await super()._trigger_event(event, namespace, *args)

    def _report(self, event: str, data: Any) -> None:
        spawn(self.sio.emit(event, data, namespace=self.admin_namespace))

    def session_suspended(self, session: ServerSession) -> None:
        self._report("socket_updated", {"id": session.sid, "nsp": session.namespace,
                                        "transport": SUSPENDED, "data": {"relio": SUSPENDED}})

    def session_resumed(self, session: ServerSession) -> None:
        self.sio.manager._timestamps.setdefault(session.sid, time.time())
        self._report("socket_connected", (
            self.serialize_socket(session.sid, session.namespace, session.eio_sid), self._now()))


class _AdminObserver(Observer):
    """Forwards the session events the Admin UI shows."""

    def __init__(self, admin: RelioInstrumentedServer):
        self.admin = admin

    def suspended(self, session: ServerSession, reason: str) -> None:
        self.admin.session_suspended(session)

    def resumed(self, session: ServerSession) -> None:
        self.admin.session_resumed(session)
