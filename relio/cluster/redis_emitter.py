"""``relio.RedisManager(write_only=True)``'s publisher: :class:`RedisEmitter`, for processes that
only emit.

A Celery task, a cron job or a Flask view outside a Socket.IO server emits to the clients of relio
nodes (``relio.AsyncRedisManager`` or ``relio.RedisManager``) the way python-socketio's
``RedisManager(write_only=True)`` does::

    external = relio.RedisManager('redis://', write_only=True)
    external.emit('report', {'done': True}, room='user:42').wait()

Each entry is appended to the nodes' bus stream (:mod:`relio.cluster.bus`) with the same Lua
script, entry kinds and message ids as the asyncio manager, so the nodes apply it exactly once and
in order, and relio sessions drop a second copy. The append happens in the emitting thread (one at
a time per manager, in order): retried until ``relay_timeout`` while Redis is away, the same
publisher number each time, so a retry whose first reply was lost is not appended twice. The
returned :class:`relio.Delivery` (thread-based) is settled when Redis holds the entry
(``relayed == 1``) or failed with :class:`relio.RelayError`; nothing is dropped in silence. No
thread and no event loop: a forked worker can use it at once.

A serving node (``write_only=False``) is :mod:`relio.cluster.thread_manager`'s.
"""

from __future__ import annotations

import itertools
import json as stdlib_json
import logging
import threading
import time

from relio.binding import payload as payload_codec
from relio.cluster.bus import (
    _APPEND_SCRIPT,
    CLOSE_ROOM,
    DISCONNECT,
    ENTER_ROOM,
    LEAVE_ROOM,
    PUBLISHER_ID_TTL,
    RETRY_DELAY,
    RETRY_DELAY_MAX,
    client_options,
    emit_header,
    publisher_identity,
    relayed_msg_id,
)
from relio.config import DEFAULT_CONFIG, Config
from relio.engine.errors import RelayError
from relio.threading.results import Delivery

try:                                        # optional: pip install "relio-socketio[redis]"
    import redis
except ImportError:                         # pragma: no cover - exercised without redis installed
    redis = None  # type: ignore[assignment]

logger = logging.getLogger("relio")


class RedisEmitter:
    """The publisher of a write-only ``relio.RedisManager`` (emitters such as Celery or cron
    workers), interoperable with every relio node on ``channel``.

    :param url: the Redis connection URL.
    :param channel: the channel name the nodes use (python-socketio's ``channel``).
    :param logger: a logger to use instead of relio's.
    :param json: a JSON module for the payloads (the nodes decode them with theirs).
    :param redis_options: options for ``redis.Redis.from_url``.
    :param relio_config: a :class:`relio.Config` (``relay_timeout``, ``relay_stream_maxlen``).
    """

    def __init__(self, url: str, channel: str, logger: logging.Logger | None = None, json=None,
                 redis_options: dict | None = None, relio_config: Config | None = None):
        if redis is None:
            raise RuntimeError('relio.RedisManager needs redis-py: '
                               'pip install "relio-socketio[redis]"')
        self.channel = channel
        self.logger = logger
        self.config = relio_config or DEFAULT_CONFIG
        self._codec = payload_codec.JsonCodec(json or stdlib_json)
        #: this publisher's id on the bus (random per instance)
        self.host_id, self._origin, self.stream_key, self._publisher_key = publisher_identity(
            channel)
        self._redis = redis.Redis.from_url(url, **client_options(redis_options))
        self._script = self._redis.register_script(_APPEND_SCRIPT)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._msg_counter = itertools.count(1)
        #: ``published``, ``failed`` (entries Redis did not accept in time), ``redis_errors``
        self.stats = {"published": 0, "failed": 0, "redis_errors": 0}

    def emit(self, event, data, namespace=None, room=None, skip_sid=None, callback=None,
             to=None, **kwargs):
        """Emit to a client, a room or a namespace of the nodes; returns a
        :class:`relio.Delivery` (``wait()`` returns once Redis holds it, or raises
        :class:`relio.RelayError`)."""
        if callback is not None:
            raise RuntimeError("Callbacks can only be issued from the context of a server.")
        namespace = namespace or "/"
        msg_id = relayed_msg_id(self.host_id, next(self._msg_counter))
        payload = payload_codec.encode([event, *payload_codec.as_args(data)], self._codec)
        header = emit_header(self.host_id, namespace, to or room, event, msg_id, skip_sid)
        delivery = Delivery()
        self._relay(header, payload, delivery)
        return delivery

    def enter_room(self, sid, namespace, room, eio_sid=None):
        self._relay({"k": ENTER_ROOM, "h": self.host_id, "sid": sid, "ns": namespace or "/",
                     "r": room})

    def leave_room(self, sid, namespace, room):
        self._relay({"k": LEAVE_ROOM, "h": self.host_id, "sid": sid, "ns": namespace or "/",
                     "r": room})

    def close_room(self, room, namespace=None):
        self._relay({"k": CLOSE_ROOM, "h": self.host_id, "r": room, "ns": namespace or "/"})

    def disconnect(self, sid, namespace=None, **kwargs):
        self._relay({"k": DISCONNECT, "h": self.host_id, "sid": sid, "ns": namespace or "/"})

    def can_disconnect(self, sid, namespace):
        self.disconnect(sid, namespace)
        return False

    def close(self) -> None:
        """Close the Redis connection."""
        self._redis.close()

    def _relay(self, header: dict, payload: bytes = b"",
               delivery: Delivery | None = None) -> None:
        """Append one entry, retrying (same publisher number) until ``relay_timeout``."""
        if delivery is not None:
            delivery._add()
            delivery.relayed += 1
        encoded = stdlib_json.dumps(header, separators=(",", ":")).encode()
        with self._lock:            # one append at a time: entries reach the stream in order
            seq = next(self._seq)
            deadline = time.monotonic() + self.config.relay_timeout
            delay = RETRY_DELAY
            while True:
                try:
                    self._script(keys=[self.stream_key, self._publisher_key],
                                 args=[self.config.relay_stream_maxlen, PUBLISHER_ID_TTL, seq,
                                       self._origin, encoded, payload])
                    break
                except Exception as exc:      # redis unreachable, loading, script error...
                    self.stats["redis_errors"] += 1
                    if time.monotonic() + delay > deadline:
                        self.stats["failed"] += 1
                        error = RelayError(
                            f"redis unavailable (not accepted within "
                            f"{self.config.relay_timeout:g} s: {type(exc).__name__}: {exc})",
                            event=header.get("ev"), namespace=header.get("ns"),
                            sid=header.get("r") if isinstance(header.get("r"), str) else None)
                        (self.logger or logger).warning("relio: %s", error)
                        if delivery is None:
                            raise error from exc
                        delivery._settle(error)
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_DELAY_MAX)
        self.stats["published"] += 1
        if delivery is not None:
            delivery._settle(None)


__all__ = ["RedisEmitter"]
