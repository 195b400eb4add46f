"""python-socketio's Redis emitters reaching relio clients: its pub/sub channel, applied locally.

A deployment moving over to relio keeps workers that emit through python-socketio's own managers
(``socketio.RedisManager(url, write_only=True)`` in Celery or Flask workers,
``socketio.AsyncRedisManager(url, write_only=True)``). They publish JSON messages (``{"method":
"emit", ...}``) on the Redis pub/sub channel named by ``channel`` (``"socketio"`` by default); relio
nodes read their own stream, so without this bridge those emits would reach nobody and nobody
would be told. Every relio node subscribes to that channel and applies each message to its own
clients (an emit to a room reaches each member once, through the node that holds it), as a
python-socketio node would.

That hop is python-socketio's: at most once. A message published while a node is not subscribed
(Redis blip, node starting) is lost for that node's clients, as it is for python-socketio's nodes;
from the node on, relio's guarantees hold. Move workers to ``relio.AsyncRedisManager(url,
write_only=True)`` for reliable emits (docs/SCALING.md).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json as stdlib_json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from socketio.packet import Packet

if TYPE_CHECKING:
    from relio.cluster.node import RedisNode

#: Reconnect delays while Redis is unreachable (seconds): first, and the cap of the doubling.
RETRY_DELAY, RETRY_DELAY_MAX = 0.1, 5.0


class PubSubBridge:
    """Subscribes to python-socketio's channel and applies its messages on this node."""

    def __init__(self, manager: RedisNode, channel: str,
                 log: Callable[[], logging.Logger]):
        self.manager = manager
        self.channel = channel
        self._log = log
        self._task: asyncio.Task | None = None
        #: messages applied, and messages that were not python-socketio's (ignored)
        self.stats = {"bridged": 0, "ignored": 0}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def _listen(self) -> None:
        delay = RETRY_DELAY
        while True:
            pubsub = self.manager.bus.client().pubsub()
            try:
                await pubsub.subscribe(self.channel)
                delay = RETRY_DELAY
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._apply(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log().warning("relio: python-socketio channel %r: %s: %s; resubscribing",
                                    self.channel, type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_DELAY_MAX)
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass

    async def _apply(self, raw: Any) -> None:
        try:
            message = stdlib_json.loads(raw)
            method = message["method"]
        except (TypeError, ValueError, KeyError):
            self.stats["ignored"] += 1
            return
        manager = self.manager
        server = getattr(manager, "server", None)
        if server is None or not isinstance(message, dict):
            return
        self.stats["bridged"] += 1
        namespace = message.get("namespace") or "/"
        try:
            if method == "emit":
                await self._emit(message, namespace)
            elif method == "disconnect":
                sid = message.get("sid")
                if manager.is_connected(sid, namespace):
                    await manager.disconnect_here(sid, namespace)
            elif method == "enter_room":
                if manager.is_connected(message.get("sid"), namespace):
                    manager.basic_enter_room(message["sid"], namespace, message.get("room"))
            elif method == "leave_room":
                if manager.is_connected(message.get("sid"), namespace):
                    manager.basic_leave_room(message["sid"], namespace, message.get("room"))
            elif method == "close_room":
                manager.basic_close_room(message.get("room"), namespace)
        except Exception:
            self._log().exception("relio: cannot apply python-socketio message %r", method)

    async def _emit(self, message: dict, namespace: str) -> None:
        """python-socketio's ``AsyncPubSubManager._handle_emit``, delivering through relio."""
        data = message.get("data")
        if message.get("binary") and isinstance(data, list) and data:
            attachments = [base64.b64decode(a) for a in data[1:]]
            data = Packet.reconstruct_binary(data[0], attachments)
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        callback = None
        remote = message.get("callback")
        if isinstance(remote, list) and len(remote) == 3:
            callback = functools.partial(self._return_callback, message.get("host_id"), *remote)
        await self.manager.emit_here(message.get("event"), data, namespace,
                                     room=message.get("room"), skip_sid=message.get("skip_sid"),
                                     callback=callback, source="a python-socketio emitter")

    def _return_callback(self, host_id: Any, sid: str, namespace: str, callback_id: Any,
                         *args: Any) -> None:
        """The client answered an emit made with a callback: publish the answer back to the
        python-socketio node that asked, as python-socketio's managers do (called where the
        callback runs: the manager schedules the publish on the bus's loop)."""
        payload = stdlib_json.dumps({"method": "callback", "host_id": host_id, "sid": sid,
                                     "namespace": namespace, "id": callback_id,
                                     "args": list(args)})
        self.manager.schedule(self.manager.bus.client().publish(self.channel, payload))
