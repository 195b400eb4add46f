"""How relio rides on Socket.IO: the handshake keys, the carrier envelope and reserved event names.

Handshake (per namespace, inside Socket.IO's own CONNECT exchange, so plain peers are unaffected):

* A relio client asks for relio sessions with ``relio=1`` in the engine.io connection URL's query
  (its ``auth`` stays the application's for a new session; a server also takes
  ``"__relio": {"v": 1}`` in ``auth`` as that request), and adds ``"__relio": {"v": 1, "sid": ...,
  "credential": ..., "state": <base64 resume state>}`` to ``auth`` to resume one.
* A relio server answers in the CONNECT packet's data, next to ``sid``:
  ``"__relio": {"v": 1, "credential": ..., "resumed": bool, "state": <base64>, "refused": reason}``.
  Plain clients ignore the extra key (the JS client reads only ``sid`` and ``pid``; relio never
  sends ``pid``, which would start the JS client's own recovery protocol).
* A server that does not answer with ``__relio`` is a plain server: the client falls back to plain
  Socket.IO for that namespace.

Carrier: once a namespace is in relio mode, each engine batch travels as one raw engine.io *binary*
message (no socket.io packet around it: one websocket frame, no JSON), prefixed with the namespace::

    carrier = length(1 byte, 0-127) namespace(utf-8, "" for "/") batch

Raw binary messages are only sent to peers that asked for relio, so a plain client never sees one;
python-socketio reaches them only between a binary packet's placeholder and its attachments, which a
relio peer never interleaves with carrier messages.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import urllib.parse
from typing import Any

from relio.config import Config
from relio.engine.errors import RemoteProtocolError

#: The key relio adds to the CONNECT auth and reply objects.
HANDSHAKE_KEY = "__relio"
#: Version of the handshake and carrier described above.
HANDSHAKE_VERSION = 1
#: Longest namespace name the carrier can name (one length byte, high bit reserved).
MAX_NAMESPACE_BYTES = 127

#: Event fired on the server as ``(sid, environ, auth)`` and on the client as ``()`` when a session
#: resumes on a new connection; a server handler returning False refuses the resume.
RESUME_EVENT = "relio_resume"
#: Event fired as ``(sid, reason)`` / ``(reason)`` when a session's connection is lost but the
#: session lives on, waiting to be resumed.
SUSPEND_EVENT = "relio_suspend"
#: Event fired as ``(sid, error)`` / ``(error)`` with a :class:`relio.DeliveryError` when a message
#: will never be delivered.
DELIVERY_ERROR_EVENT = "relio_delivery_error"
#: relio's own lifecycle events: reserved (catch-all handlers do not get them) and never accepted
#: from any peer.
LIFECYCLE_EVENTS = frozenset({RESUME_EVENT, SUSPEND_EVENT, DELIVERY_ERROR_EVENT})
#: Names a relio peer may not emit in a relio session (they would impersonate lifecycle events).
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect"}) | LIFECYCLE_EVENTS


#: The query parameter of the engine.io connection URL by which a client asks for relio sessions
#: (``relio=1``): a plain server never sees relio in the CONNECT ``auth``, which stays the
#: application's own. Resumes, which only a relio server can have given rise to, name their session
#: in ``auth`` (:data:`HANDSHAKE_KEY`).
QUERY_KEY = "relio"


def url_asking_for_relio(url: Any) -> Any:
    """``url`` (a string, or python-socketio's callable giving one) with ``relio=1`` in its query
    (once: python-socketio reconnects with the URL it was given)."""
    if callable(url):
        if getattr(url, "relio_url", False):
            return url

        async def relio_url() -> str:
            value = url()
            if hasattr(value, "__await__"):
                value = await value
            return url_asking_for_relio(value)
        relio_url.relio_url = True  # type: ignore[attr-defined]
        return relio_url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if (QUERY_KEY, str(HANDSHAKE_VERSION)) in query:
        return url
    query.append((QUERY_KEY, str(HANDSHAKE_VERSION)))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def asks_for_relio(environ: dict | None) -> bool:
    """The engine.io connection of ``environ`` was opened with ``relio=1`` (see
    :func:`url_asking_for_relio`)."""
    query = (environ or {}).get("QUERY_STRING") or ""
    return (QUERY_KEY, str(HANDSHAKE_VERSION)) in urllib.parse.parse_qsl(query)


def relio_hello(data: Any, environ: dict | None, namespace: str) -> tuple[dict | None, Any]:
    """What a server makes of a namespace's CONNECT: ``(hello, auth)``, ``hello`` being the
    client's relio handshake (``{'v': 1}`` for a new session, with ``sid`` for a resume) and
    ``auth`` the application's own part of ``data``; ``hello`` is None when the connection is to
    be served as plain Socket.IO (no relio asked for, another handshake version, or a namespace
    too long for a carrier)."""
    hello = data.get(HANDSHAKE_KEY) if isinstance(data, dict) else None
    if hello is not None:                    # a resume (or a client asking the older way)
        auth = {k: v for k, v in data.items() if k != HANDSHAKE_KEY}
    elif asks_for_relio(environ):
        hello, auth = {"v": HANDSHAKE_VERSION}, data            # a new session
    else:
        return None, data
    if not isinstance(hello, dict) or hello.get("v") != HANDSHAKE_VERSION \
            or len(namespace.encode()) > MAX_NAMESPACE_BYTES:
        return None, auth
    return hello, auth


def connect_reply(sid: str, credential: str, config: Config, max_payload: int,
                  refused: str | None = None) -> dict:
    """The server's CONNECT data for a new relio session (``refused``: why the resume the client
    asked for was refused instead)."""
    info: dict[str, Any] = {"v": HANDSHAKE_VERSION, "credential": credential, "resumed": False,
                            "ttl": config.session_ttl, "max_payload": max_payload,
                            "max_batch": config.max_batch_size}
    if refused:
        info["refused"] = refused
    return {"sid": sid, HANDSHAKE_KEY: info}


def resume_reply(sid: str, credential: str, config: Config, max_payload: int,
                 state: bytes) -> dict:
    """The server's CONNECT data for a resumed session (``state``: its engine's resume state)."""
    return {"sid": sid, HANDSHAKE_KEY: {
        "v": HANDSHAKE_VERSION, "credential": credential, "resumed": True,
        "ttl": config.session_ttl, "max_payload": max_payload,
        "max_batch": config.max_batch_size, "state": encode_state(state)}}


def resume_auth(auth: dict, sid: str | None, credential: str, state: bytes) -> dict:
    """The CONNECT data by which a client resumes session ``sid``: the application's ``auth``
    with the relio handshake added (``state``: its engine's resume state)."""
    return {**auth, HANDSHAKE_KEY: {"v": HANDSHAKE_VERSION, "sid": sid, "credential": credential,
                                    "state": encode_state(state)}}


def server_session_info(data: Any, default_ttl: float) -> tuple[dict | None, float]:
    """What a client makes of a namespace's CONNECT answer: ``(info, ttl)``, ``info`` being the
    server's relio handshake (None: a plain server) and ``ttl`` how long the server keeps the
    session after its connection drops (``default_ttl`` if it did not say)."""
    info = data.get(HANDSHAKE_KEY) if isinstance(data, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("credential"), str):
        return None, default_ttl
    ttl = info.get("ttl")
    return info, (float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else default_ttl)


def has_handler(sio: Any, event: str, namespace: str) -> bool:
    """python-socketio server or client ``sio`` has a handler for ``event`` in ``namespace``
    (a decorated function, or an ``on_<event>`` method of its class-based namespace)."""
    if event in sio.handlers.get(namespace, ()):
        return True
    namespace_handler = sio.namespace_handlers.get(namespace)
    return namespace_handler is not None and hasattr(namespace_handler, "on_" + event)


def is_carrier(data: bytes) -> bool:
    """``data``, a binary engine.io message, is a relio carrier and not another serializer's
    Socket.IO packet. A carrier starts with its namespace's length (0 to
    :data:`MAX_NAMESPACE_BYTES`, so below 0x80); python-socketio's binary serializers start every
    packet at 0x80 or above (a msgpack map is 0x80-0x8f, 0xde or 0xdf; a pickle starts with its
    PROTO opcode 0x80). With the default (JSON text) serializer every binary message that is not a
    packet's attachment is a carrier, and one that starts at 0x80 or above is a malformed one."""
    return bool(data) and data[0] <= MAX_NAMESPACE_BYTES


def binary_serializer(packet_class: Any) -> bool:
    """python-socketio's ``packet_class`` (its ``serializer``) encodes packets as binary
    engine.io messages (msgpack, pickle...), so that carriers must be told apart by
    :func:`is_carrier`."""
    from socketio import packet
    encoded = packet_class(packet.EVENT, data=["relio"]).encode()
    return isinstance(encoded, (bytes, bytearray)) or (
        isinstance(encoded, list) and isinstance(encoded[0], (bytes, bytearray)))


def check_namespace(namespace: str) -> None:
    """:raises ValueError: relio cannot carry ``namespace`` (its UTF-8 name is longer than
    :data:`MAX_NAMESPACE_BYTES`): said at ``connect()``, not at the first batch."""
    size = len(namespace.encode()) if namespace != "/" else 0
    if size > MAX_NAMESPACE_BYTES:
        raise ValueError(f"relio carries namespaces of up to {MAX_NAMESPACE_BYTES} bytes (UTF-8); "
                         f"{namespace[:40]!r}... has {size}. Use a shorter namespace, or "
                         "relio.AsyncClient(relio=False) for plain Socket.IO on it")


#: A long-polling POST carries binary messages base64-encoded ('b' + 4/3 of the bytes) and
#: separated by one byte each: the bytes a POST may spend on that besides the batches themselves.
POLLING_SLACK = 2048
#: The most a DATA frame's header takes (docs/PROTOCOL.md 4.1), per message in flight.
DATA_HEADER_BYTES = 64
#: Below this many bytes for a chunk the connection's limit is too small to be worth fitting.
MIN_FITTED_CHUNK = 1024


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def fit_config(config: Config, max_payload: Any, namespace: str, polling_only: bool,
               max_batch: Any = None) -> Config:
    """A client's ``config`` for a session with a server: its chunks grown to
    ``upload_chunk_size`` if the server takes batches that big (``max_batch``, its
    ``max_batch_size``, which a relio server says in the handshake), then its batch, chunk and
    in-flight sizes cut to what one engine.io message may hold on the connection: the server's
    ``max_http_buffer_size`` (``max_payload``, which it says in the handshake too), and, when
    only long-polling is allowed, everything in flight base64-encoded in one POST. A batch over
    that limit would cost the connection (engine.io drops it) and come back on every resume.
    Either step is skipped if its limit is unknown (or too small to fit)."""
    if _positive_int(max_batch) and config.upload_chunk_size > config.chunk_size:
        overhead = config.largest_single_frame_batch - config.chunk_size
        chunk_size = min(config.upload_chunk_size, max_batch - overhead)
        if chunk_size > config.chunk_size:
            config = config.replace(chunk_size=chunk_size, max_batch_size=max(
                config.max_batch_size, chunk_size + overhead))
    if not _positive_int(max_payload):
        return config
    budget = max_payload
    if polling_only:
        budget = (budget - POLLING_SLACK) * 3 // 4
    budget -= len(carrier_prefix(namespace))
    overhead = config.largest_single_frame_batch - config.chunk_size
    if polling_only:
        # Everything in flight may leave in one POST: the engine sends while less than
        # max_inflight_bytes is in flight, so up to that plus one chunk, plus a DATA frame header
        # (at most DATA_HEADER_BYTES) per message in flight: a third of the budget each.
        budget //= 3
    if budget - overhead < MIN_FITTED_CHUNK:
        return config
    changes: dict[str, int] = {}
    if config.max_batch_size > budget:
        changes["max_batch_size"] = budget
        changes["chunk_size"] = min(config.chunk_size, budget - overhead)
        changes["coalesce_bytes"] = min(config.coalesce_bytes, budget)
    if polling_only:
        changes["max_inflight_bytes"] = min(config.max_inflight_bytes, budget - overhead)
        changes["max_inflight_messages"] = min(config.max_inflight_messages,
                                               max(1, (budget - overhead) // DATA_HEADER_BYTES))
    return config.replace(**changes)


def carrier_prefix(namespace: str) -> bytes:
    """The bytes that precede every batch of ``namespace``."""
    name = b"" if namespace == "/" else namespace.encode()
    if len(name) > MAX_NAMESPACE_BYTES:
        raise ValueError(f"namespace {namespace!r} is too long for relio ({len(name)} bytes)")
    return bytes((len(name),)) + name


def split_carrier(data: bytes) -> tuple[str, bytes]:
    """Split a carrier message into its namespace and batch.

    :raises RemoteProtocolError: the message is not a valid carrier.
    """
    if not data:
        raise RemoteProtocolError("empty carrier message")
    size = data[0]
    if size > MAX_NAMESPACE_BYTES or len(data) < 1 + size:
        raise RemoteProtocolError("invalid carrier namespace")
    if size == 0:
        return "/", data[1:]
    try:
        namespace = data[1:1 + size].decode()
    except UnicodeDecodeError:
        raise RemoteProtocolError("invalid carrier namespace") from None
    return namespace, data[1 + size:]


def encode_state(state: bytes) -> str:
    return base64.b64encode(state).decode("ascii")


def decode_state(text: object, limit: int = 4096) -> bytes:
    """Decode a base64 resume state from the handshake (bounded, validated).

    :raises RemoteProtocolError: not a string, too long or not base64.
    """
    if not isinstance(text, str) or len(text) > limit:
        raise RemoteProtocolError("invalid resume state")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("invalid resume state") from None


_CREDENTIAL_RE = re.compile(r"""(["']credential["']\s*:\s*["'])[^"']*""")


class CredentialRedactor(logging.Filter):
    """Blanks resume credentials out of log records: python-engineio and python-socketio log whole
    packets (the CONNECT auth and reply carry the credential) when their loggers are enabled."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "credential" in message:
            record.msg = _CREDENTIAL_RE.sub(r"\1<redacted>", message)
            record.args = None
        return True


REDACTOR = CredentialRedactor()
_LIBRARY_LOGGERS = ("engineio", "engineio.server", "engineio.client", "socketio",
                    "socketio.server", "socketio.client")


def redact_credentials(*loggers: logging.Logger) -> None:
    """Install :data:`REDACTOR` on python-socketio's and engine.io's loggers and on ``loggers``."""
    for logger in (*(logging.getLogger(name) for name in _LIBRARY_LOGGERS), *loggers):
        if isinstance(logger, logging.Logger) and REDACTOR not in logger.filters:
            logger.addFilter(REDACTOR)
