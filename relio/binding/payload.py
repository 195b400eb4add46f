"""Application payloads inside relio messages: an event's name and arguments, or a reply's
arguments.

A relio message carries what one socket.io packet would: a JSON list (``[event, *args]`` for an
event, ``[*args]`` for a reply), with ``bytes`` arguments anywhere in it. Socket.IO sends each
binary argument as a separate websocket frame after a JSON text frame holding placeholders; relio
keeps the same placeholders (``{"_placeholder": true, "num": n}``) but puts the attachments in the
same message, so a message is one opaque byte string to the engine::

    payload   = count(varint) attachment* json
    attachment = length(varint) bytes

The common case (no binary) costs one byte over the JSON text. JSON is produced by the server's or
client's ``json`` module (python-socketio's ``json=`` option), with the same separators it uses.
:class:`JsonCodec` binds that module once: for python-socketio's default (``engineio.json``, the
standard library with integers capped at 100 digits against CPU exhaustion) it keeps one encoder and
one decoder instead of building them per message, as ``json.dumps(..., separators=...)`` and
``engineio.json.loads`` do, and writes and reads the common payload in compiled code
(``relio.engine._payload``: the same text and values, the general way behind it).

Binary is separated before the JSON module sees the data, as python-socketio does, whatever module
the application gives: a custom ``dumps`` with ``default=str`` (the usual way to encode datetimes)
would otherwise turn ``bytes`` into the text ``"b'...'"``. Only an encoder that refuses binary is
tried first (the fast path: no walk over data without binary): the bound standard-library encoder,
or a custom module's ``dumps`` found, when the codec is made, to raise ``TypeError`` for ``bytes``,
``bytearray`` and ``memoryview`` (as an orjson-backed module does).
"""

from __future__ import annotations

import json as _stdlib_json
from collections.abc import Callable
from json import encoder as _stdlib_encoder
from typing import Any

from relio.engine._chunks import take_range
from relio.engine._events import MessageReceived, ResponseReceived
from relio.engine._payload import EventDecoder, EventEncoder
from relio.engine.errors import RemoteProtocolError

#: A message's payload as :func:`encode_parts` gives it (and ``Engine.send`` takes it): bytes, or
#: its consecutive parts.
Encoded = bytes | tuple[bytes, ...]

_PLACEHOLDER = "_placeholder"
_NO_ATTACHMENTS = b"\x00"
#: Most digits of an integer python-socketio's JSON module (``engineio.json._safe_int``) accepts.
_SAFE_INT_DIGITS = 100
#: Bytes of the longest varint :func:`_read_varint` accepts.
_VARINT_MAX = 9


class JsonCodec:
    """``dumps(obj) -> str`` and ``loads(bytes) -> obj`` for one json module."""

    __slots__ = ("dumps", "loads", "loads_after_tag", "refuses_bytes", "encode_event_fast",
                 "encode_list_fast", "decode_event_fast")

    dumps: Callable[[Any], str]
    loads: Callable[[bytes], Any]
    #: ``loads(data[1:])`` (the JSON of a payload after its one-byte tag), without the copy
    loads_after_tag: Callable[[bytes], Any]
    #: ``dumps`` raises TypeError for ``bytes`` anywhere in the data (the standard library's
    #: encoder without ``default``): binary can be looked for only when it does.
    refuses_bytes: bool
    #: ``(event, data) -> payload`` without attachments, written in one compiled call for the
    #: standard library's module (None for other modules): None from it means "the general way",
    #: TypeError "binary inside": see :func:`encode_event`.
    encode_event_fast: Callable[[str, Any], bytes | None] | None
    #: ``items -> payload`` (a list: a reply's arguments, a broadcast's ``[event, *args]``), as
    #: ``encode_event_fast``: see :func:`encode_parts`.
    encode_list_fast: Callable[[list], bytes | None] | None
    #: ``(payload or MessageReceived) -> list or None``: a payload without attachments holding
    #: exactly one JSON list, decoded in one compiled call (the standard library's decoder; None
    #: for other modules; :func:`decode` tries it first); None from it means "the general way".
    decode_event_fast: Callable[[Any], list | None] | None

    def __init__(self, json_module: Any = None):
        import engineio.json
        if json_module is None or json_module is engineio.json or json_module is _stdlib_json:
            safe_int = getattr(engineio.json, "_safe_int", int) \
                if json_module is not _stdlib_json else int
            encoder = _stdlib_json.JSONEncoder(separators=(",", ":"))
            decoder = _stdlib_json.JSONDecoder(parse_int=safe_int)
            self.dumps = _bound_stdlib_dumps(encoder)
            writer = EventEncoder()
            self.encode_event_fast = writer.encode
            self.encode_list_fast = writer.encode_list
            # The compiled reader has no integer hook: an integer as long as the cap is left to
            # the general way, which has it (see EventDecoder).
            self.decode_event_fast = EventDecoder(
                0 if safe_int is int else _SAFE_INT_DIGITS).decode
            self.loads = _bound_stdlib_loads(decoder)
            self.loads_after_tag = _bound_stdlib_loads(decoder, start=1)
            self.refuses_bytes = True
        else:
            module_dumps = json_module.dumps

            def dumps(obj: Any) -> str:
                return module_dumps(obj, separators=(",", ":"))

            module_loads = json_module.loads

            def loads_after_tag(data: bytes) -> Any:
                return module_loads(data[1:])

            self.dumps = dumps
            self.loads = module_loads
            self.loads_after_tag = loads_after_tag
            self.refuses_bytes = _refuses_binary(dumps)
            self.encode_event_fast = None
            self.encode_list_fast = None
            self.decode_event_fast = None


def _refuses_binary(dumps: Callable[[Any], str]) -> bool:
    """Whether ``dumps`` raises TypeError for each binary type :func:`encode` separates."""
    for blob in (b"\x00", bytearray(b"\x00"), memoryview(b"\x00")):
        try:
            dumps([blob])
        except TypeError:
            continue
        except Exception:
            return False
        return False
    return True


def _bound_stdlib_dumps(encoder: _stdlib_json.JSONEncoder) -> Callable[[Any], str]:
    """``encoder.encode``, same output, without its per-call set-up: the standard library builds a
    new C encoder, a float formatter and a dict for cycle detection on every ``encode`` (half of
    the time of encoding a small payload). The C encoder is built once here, without cycle
    detection (a shared dict would make concurrent encodes from several threads see each other's
    objects): a cyclic structure then exhausts the recursion limit, and is encoded again by
    ``encoder.encode`` so that the caller gets the standard library's own error
    (``ValueError: Circular reference detected``, or ``RecursionError`` for data nested too
    deep)."""
    c_encode = _c_encoder(encoder)
    if c_encode is None:              # an interpreter without the C accelerator
        return encoder.encode
    join = "".join
    slow = encoder.encode

    def dumps(obj: Any) -> str:
        try:
            return join(c_encode(obj, 0))
        except RecursionError:
            return slow(obj)

    return dumps


def _c_encoder(encoder: _stdlib_json.JSONEncoder) -> Callable[[Any, int], Any] | None:
    """The standard library's C encoder with ``encoder``'s settings and no cycle detection (see
    :func:`_bound_stdlib_dumps`), called as ``c_encode(obj, 0)`` for the text's pieces; None on an
    interpreter without the C accelerator."""
    make = getattr(_stdlib_encoder, "c_make_encoder", None)
    if make is None:
        return None
    escape = (_stdlib_encoder.encode_basestring_ascii if encoder.ensure_ascii
              else _stdlib_encoder.encode_basestring)
    return make(None, encoder.default, escape, None, encoder.key_separator,
                encoder.item_separator, encoder.sort_keys, encoder.skipkeys, encoder.allow_nan)


def _bound_stdlib_loads(decoder: _stdlib_json.JSONDecoder,
                        start: int = 0) -> Callable[[bytes], Any]:
    """``decoder.decode`` of UTF-8 bytes from byte ``start`` on (an ASCII tag before it), same
    result: the scanner is called directly, at ``start`` of the whole text (no copy of the rest),
    on text that starts with a value there and ends with it (what every JSON encoder writes),
    skipping the two whitespace regexes ``decode`` runs per call; anything else (whitespace
    around the value, extra data, invalid JSON) goes through ``decoder.decode`` for the
    standard library's own result or error."""
    scan_once = decoder.scan_once  # type: ignore[attr-defined]  # set in JSONDecoder.__init__
    decode = decoder.decode

    def slow(data: bytes) -> Any:          # the standard library's result or error, as is
        return decode(data[start:].decode())

    def loads(data: bytes) -> Any:
        try:
            text = data.decode()
            obj, end = scan_once(text, start)
        except (StopIteration, ValueError):    # (UnicodeDecodeError, JSONDecodeError)
            return slow(data)
        if end != len(text):
            return slow(data)
        return obj

    return loads


DEFAULT_CODEC = JsonCodec()


def encode(items: list, codec: JsonCodec = DEFAULT_CODEC) -> bytes:
    """Encode a JSON list that may hold ``bytes`` anywhere into one payload."""
    encoded = encode_parts(items, codec)
    return encoded if isinstance(encoded, bytes) else b"".join(encoded)


def encode_event(event: str, data: Any, codec: JsonCodec = DEFAULT_CODEC) -> Encoded:
    """The payload of an emit: ``encode_parts([event, *as_args(data)], codec)``, in one compiled
    call when the codec has one and the data has no binary (the common case)."""
    fast = codec.encode_event_fast
    if fast is None:
        return encode_parts([event, *as_args(data)], codec)
    try:
        encoded = fast(event, data)
    except TypeError:            # binary inside
        return _encode_separating_binary([event, *as_args(data)], codec)
    return encoded if encoded is not None else _encode_general([event, *as_args(data)], codec)


def encode_parts(items: list, codec: JsonCodec = DEFAULT_CODEC) -> Encoded:
    """:func:`encode`, except that a payload with binary attachments is given as its consecutive
    parts (a tuple of bytes, the attachments themselves among them) instead of joined: the engine
    takes the tuple as one message (``Engine.send``) and copies each chunk straight from the
    parts. A big attachment is then never copied into a payload-sized buffer first (for 50 MiB
    that join was ~30 ms of page faults, spent before the first chunk could leave)."""
    fast = codec.encode_list_fast
    if fast is not None and type(items) is list:
        try:
            encoded = fast(items)
        except TypeError:        # binary inside
            return _encode_separating_binary(items, codec)
        if encoded is not None:
            return encoded
    return _encode_general(items, codec)


def _encode_general(items: list, codec: JsonCodec) -> Encoded:
    """:func:`encode_parts` with the codec's JSON module (what the compiled writer does not take:
    subclasses, non-str keys, big integers, deep nesting, other modules)."""
    if codec.refuses_bytes:
        try:
            return _NO_ATTACHMENTS + codec.dumps(items).encode()
        except TypeError:
            pass                      # binary inside (or an unencodable object: raised below)
    return _encode_separating_binary(items, codec)


def _encode_separating_binary(items: list, codec: JsonCodec) -> Encoded:
    """The payload of ``items`` with its binary taken out as attachments: bytes if there is
    none, else its parts (count, then each attachment's length and bytes, then the JSON)."""
    attachments: list[bytes] = []
    items = _deconstruct(items, attachments)
    text = codec.dumps(items)
    if not attachments:
        return _NO_ATTACHMENTS + text.encode()
    parts = [_varint(len(attachments))]
    for blob in attachments:
        parts.append(_varint(len(blob)))
        parts.append(blob)
    parts.append(text.encode())
    return tuple(parts)


#: The most of a failure reason a reply carries.
MAX_FAILURE_REASON = 200


def encode_failure(reason: str) -> bytes:
    """A reply that says the request failed at the peer instead of answering it: a JSON object
    ``{"failed": reason}`` where a reply's arguments (a JSON list) would be."""
    return _NO_ATTACHMENTS + _stdlib_json.dumps({"failed": reason[:MAX_FAILURE_REASON]}).encode()


def decode_reply(payload: bytes | ResponseReceived,
                 codec: JsonCodec = DEFAULT_CODEC) -> list | str:
    """Decode a reply: its arguments, or (a str) why the peer could not answer
    (:func:`encode_failure`). ``payload`` may be the engine's event carrying it (see
    :func:`decode_received`).

    :raises RemoteProtocolError: the payload is neither.
    """
    data: bytes = payload if payload.__class__ is bytes else payload.payload  # type: ignore
    if data[:2] == b'\x00{':
        try:
            failure = _stdlib_json.loads(data[1:])
        except ValueError:
            failure = None
        if isinstance(failure, dict) and len(failure) == 1 \
                and isinstance(failure.get("failed"), str):
            return failure["failed"][:MAX_FAILURE_REASON]
        raise RemoteProtocolError("invalid application payload: not a list")
    del data                # decode_received needs an event to hold its payload alone
    return decode(payload, codec)


def decode(payload: bytes | MessageReceived | ResponseReceived,
           codec: JsonCodec = DEFAULT_CODEC) -> list:
    """Decode a payload made by :func:`encode`, or the one an engine event carries (see
    :func:`decode_received`).

    :raises RemoteProtocolError: the payload is not a valid relio application payload.
    """
    fast = codec.decode_event_fast      # the common case in one compiled call, else None
    if fast is not None:
        items = fast(payload)
        if items is not None:
            return items
    data: bytes = payload if payload.__class__ is bytes else payload.payload  # type: ignore
    try:
        if data and data[0] == 0:                 # no attachments (the common case)
            items = codec.loads_after_tag(data)
        elif data is not payload:
            del data            # decode_received needs the event to hold the payload alone
            return decode_received(payload, codec)            # type: ignore[arg-type]
        else:
            view = memoryview(data)
            count, pos = _read_varint(view, 0)
            attachments = []
            for _ in range(count):
                size, pos = _read_varint(view, pos)
                if pos + size > len(view):
                    raise ValueError("attachment runs past the end")
                attachments.append(bytes(view[pos:pos + size]))
                pos += size
            items = _reconstruct(codec.loads(bytes(view[pos:])), attachments)
    except RemoteProtocolError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, RecursionError,
            UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"invalid application payload: {exc}") from None
    if not isinstance(items, list):
        raise RemoteProtocolError("invalid application payload: not a list")
    return items


def decode_received(event: MessageReceived | ResponseReceived,
                    codec: JsonCodec = DEFAULT_CODEC) -> list:
    """:func:`decode` of the payload of the engine's event ``event``, taking its biggest binary
    attachment out of the payload in place (:func:`relio.engine._chunks.take_range`): a big upload
    is then held in one buffer, the one its chunks were reassembled in, instead of being copied
    to a second one (for 50 MiB that copy was ~30 ms of page faults, a tenth of the server's time
    receiving it). The other attachments and the JSON text are copied out first; the event's
    payload may be None afterwards.

    :raises RemoteProtocolError: the payload is not a valid relio application payload.
    """
    # event.payload is never bound to a name here: take_range works in place only while the
    # event holds the payload's only reference (each slice below is a copy of a few bytes).
    if event.payload[:1] == _NO_ATTACHMENTS:
        return decode(event.payload, codec)
    try:
        size = len(event.payload)
        count, pos = _read_varint(event.payload[:_VARINT_MAX], 0)
        spans = []
        for _ in range(count):
            length, used = _read_varint(event.payload[pos:pos + _VARINT_MAX], 0)
            pos += used
            if pos + length > size:
                raise ValueError("attachment runs past the end")
            spans.append((pos, pos + length))
            pos += length
        text = event.payload[pos:]
        attachments: list[bytes] = []
        if spans:
            biggest = max(spans, key=lambda span: span[1] - span[0])
            attachments = [b"" if span is biggest else event.payload[span[0]:span[1]]
                           for span in spans]
            attachments[spans.index(biggest)] = take_range(event, *biggest)
        items = _reconstruct(codec.loads(text), attachments)
    except RemoteProtocolError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, RecursionError,
            UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"invalid application payload: {exc}") from None
    if not isinstance(items, list):
        raise RemoteProtocolError("invalid application payload: not a list")
    return items


def as_args(data: Any) -> list:
    """python-socketio's argument rule: a tuple is several arguments, None none, anything else
    one."""
    if isinstance(data, tuple):
        return list(data)
    if data is None:
        return []
    return [data]


def _deconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        attachments.append(bytes(data))
        return {_PLACEHOLDER: True, "num": len(attachments) - 1}
    if isinstance(data, (list, tuple)):
        return [_deconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, attachments) for key, value in data.items()}
    return data


def _reconstruct(data: Any, attachments: list[bytes]) -> Any:
    if isinstance(data, list):
        return [_reconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        if data.get(_PLACEHOLDER) is True and len(data) == 2:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(attachments):
                raise RemoteProtocolError("invalid application payload: bad attachment number")
            return attachments[num]
        return {key: _reconstruct(value, attachments) for key, value in data.items()}
    return data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(view: memoryview | bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(view) or shift > 56:
            raise ValueError("truncated or oversized varint")
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
