"""Application payloads (relio.binding.payload) and the socket.io carrier/handshake helpers (relio.binding.wire)."""

from __future__ import annotations

import collections
import enum
import json
import types

import engineio.json
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relio.binding import payload, wire
from relio.config import Config
from relio.engine._events import MessageReceived, ResponseReceived
from relio.engine._payload import MAX_FAST_DEPTH
from relio.engine.errors import RemoteProtocolError
from tests.support.delivery import engine_delivery

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=5))
def test_round_trip_with_and_without_binary(items):
    encoded = payload.encode(items)
    assert payload.decode(encoded) == items


plain_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.text(max_size=20)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(plain_json)
def test_the_bound_standard_library_codec_matches_the_standard_library(value):
    """The default codec's encoder (built once) and decoder (scanner called directly) give
    exactly what ``json.dumps(separators=(",", ":"))`` and engineio's ``loads`` give."""
    codec = payload.JsonCodec()
    text = json.dumps(value, separators=(",", ":"))
    assert codec.dumps(value) == text
    assert json.dumps(codec.loads(text.encode())) == json.dumps(engineio.json.loads(text))


@pytest.mark.parametrize("text", [" [1]", "[1] ", "\n{}\t", "[1]x", "", "nope", "[1,", "{\"a\":}",
                                  "[" + "1" * 101 + "]", "\"\\ud800\"", "NaN", "[1] [2]"])
def test_the_bound_standard_library_decoder_keeps_its_results_and_errors(text):
    codec = payload.JsonCodec()
    try:
        expected = engineio.json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)) as raised:
            codec.loads(text.encode())
        assert str(raised.value) == str(exc)
    else:
        assert json.dumps(codec.loads(text.encode())) == json.dumps(expected)


def test_the_bound_standard_library_encoder_reports_cycles_as_the_standard_library_does():
    codec = payload.JsonCodec()
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        codec.dumps(["m", loop])
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        codec.dumps(deep)
    assert codec.dumps(["m", {"ok": [1, 2.5, None]}]) == '["m",{"ok":[1,2.5,null]}]'


def test_plain_json_costs_one_byte():
    items = ["tick", {"n": 1, "p": "x"}]
    assert payload.encode(items) == b"\x00" + json.dumps(items, separators=(",", ":")).encode()


def test_binary_travels_as_attachments_not_in_json():
    blob = bytes(range(256)) * 4
    encoded = payload.encode(["up", {"blob": blob, "name": "a"}, [blob]])
    assert encoded.count(blob) == 2 and b'"_placeholder":true' in encoded
    assert payload.decode(encoded) == ["up", {"blob": blob, "name": "a"}, [blob]]


def test_unserialisable_data_raises_like_json():
    with pytest.raises(TypeError):
        payload.encode(["x", object()])


@pytest.mark.parametrize("bad", [
    b"", b"\x00not json", b"\x00{}", b"\x02\x05abc", b"\x01\x03abc[{\"_placeholder\":true,\"num\":4}]",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x00\xff\xfe",
])
def test_malformed_payloads_raise_remote_protocol_error(bad):
    with pytest.raises(RemoteProtocolError):
        payload.decode(bad)


def test_huge_integers_are_refused_as_python_socketio_does():
    # engineio.json caps integers at 100 digits (CPU exhaustion in int parsing)
    codec = payload.JsonCodec(engineio.json)
    with pytest.raises(RemoteProtocolError):
        payload.decode(b"\x00[" + b"9" * 200 + b"]", codec)
    assert payload.decode(b"\x00[" + b"9" * 50 + b"]", codec) == [int("9" * 50)]


def test_custom_json_module_is_used():
    calls = []

    class Tracing:
        @staticmethod
        def dumps(obj, **kw):
            calls.append(("dumps", kw))
            return json.dumps(obj, **kw)

        @staticmethod
        def loads(data):
            calls.append(("loads", None))
            return json.loads(data)

    codec = payload.JsonCodec(Tracing)
    calls.clear()               # the codec tried dumps once with each binary type
    assert payload.decode(payload.encode(["e", 1], codec), codec) == ["e", 1]
    assert calls == [("dumps", {"separators": (",", ":")}), ("loads", None)]


def test_binary_is_separated_before_a_lenient_custom_json_module_sees_it():
    """A custom ``dumps`` with ``default=str`` (how apps encode datetimes) must not turn bytes into
    the text "b'...'": binary is taken out first, as python-socketio does."""
    import datetime

    class Lenient:
        @staticmethod
        def dumps(obj, **kw):
            return json.dumps(obj, default=str, **kw)

        loads = staticmethod(json.loads)

    codec = payload.JsonCodec(Lenient)
    when = datetime.datetime(2026, 12, 2, 10, 0)
    items = ["e", {"blob": b"\x00\x01", "at": when, "nested": [b"\xff"]}]
    decoded = payload.decode(payload.encode(items, codec), codec)
    assert decoded == ["e", {"blob": b"\x00\x01", "at": str(when), "nested": [b"\xff"]}]


def test_a_custom_module_that_refuses_binary_gets_the_fast_path():
    """A ``dumps`` that raises TypeError for bytes, bytearray and memoryview (the standard library's
    with keyword arguments, an orjson-backed module) is tried first, without a walk over the
    data; binary inside is still separated. A lenient one is never given binary."""
    seen = []

    class Strict:
        @staticmethod
        def dumps(obj, **kw):
            seen.append(obj)
            return json.dumps(obj, **kw)

        loads = staticmethod(json.loads)

    class Lenient:
        dumps = staticmethod(lambda obj, **kw: json.dumps(obj, default=str, **kw))
        loads = staticmethod(json.loads)

    strict = payload.JsonCodec(Strict)
    assert strict.refuses_bytes and not payload.JsonCodec(Lenient).refuses_bytes
    seen.clear()
    items = ["e", {"a": [1, 2]}]
    assert payload.encode(items, strict) == payload.encode(items)
    assert seen == [items] and seen[0] is items          # the caller's list, not a copy
    blob = ["up", {"b": bytearray(b"\x01"), "m": memoryview(b"\x02")}, b"\x03"]
    assert payload.decode(payload.encode(blob, strict), strict) == \
        ["up", {"b": b"\x01", "m": b"\x02"}, b"\x03"]


def test_as_args_and_tuple_rule():
    assert payload.as_args(None) == [] and payload.as_args((1, 2)) == [1, 2]
    assert payload.as_args([1, 2]) == [[1, 2]] and payload.as_args("x") == ["x"]


@pytest.mark.parametrize("namespace", ["/", "/chat", "/ünï", "/" + "n" * 126])
def test_carrier_round_trip(namespace):
    batch = b"\x01\x02\x03"
    assert wire.split_carrier(wire.carrier_prefix(namespace) + batch) == (namespace, batch)


def test_carrier_rejects_garbage_and_long_namespaces():
    for bad in (b"", b"\x80abc", b"\x05ab", b"\x02\xff\xfe"):
        with pytest.raises(RemoteProtocolError):
            wire.split_carrier(bad)
    with pytest.raises(ValueError):
        wire.carrier_prefix("/" + "n" * 200)


def test_resume_state_codec_is_bounded():
    state = bytes(range(40))
    assert wire.decode_state(wire.encode_state(state)) == state
    for bad in (None, 5, "not base64!", "A" * 5000):
        with pytest.raises(RemoteProtocolError):
            wire.decode_state(bad)


def test_failure_replies_are_told_apart_from_any_reply():
    assert payload.decode_reply(payload.encode_failure("too big")) == "too big"
    assert payload.decode_reply(payload.encode_failure("x" * 1000)) == "x" * 200
    for args in ([], [{"failed": "not a failure"}], [None], [{"a": 1}, b"\x00"]):
        assert payload.decode_reply(payload.encode(args)) == args
    for bad in (b'\x00{"failed": 1}', b'\x00{"failed": "x", "more": 1}', b"\x00{", b"\x00{}"):
        with pytest.raises(RemoteProtocolError):
            payload.decode_reply(bad)


def test_fit_config_sizes_batches_for_the_connection_limit():
    from relio.config import DEFAULT_CONFIG as cfg
    assert wire.fit_config(cfg, None, "/", False) is cfg
    assert wire.fit_config(cfg, "1000000", "/", False) is cfg
    assert wire.fit_config(cfg, 100, "/", False) is cfg                  # too small to fit
    assert wire.fit_config(cfg, 1_000_000, "/", False) == cfg            # websocket: fits already
    ws = wire.fit_config(cfg, 10_000, "/chat", False)
    assert ws.max_batch_size + len(wire.carrier_prefix("/chat")) <= 10_000
    assert ws.largest_single_frame_batch <= ws.max_batch_size
    polling = wire.fit_config(cfg, 1_000_000, "/", True)
    # what may be in flight (max_inflight_bytes + one chunk + a header per message), base64
    in_flight = polling.max_inflight_bytes + polling.chunk_size \
        + polling.max_inflight_messages * wire.DATA_HEADER_BYTES
    assert in_flight * 4 // 3 + wire.POLLING_SLACK <= 1_000_000
    assert polling.max_batch_size * 4 // 3 < 1_000_000


def _received(items):
    """``payload.encode(items)`` delivered by an engine to another, as the event the asyncio shell
    decodes (chunked when big)."""
    return engine_delivery(payload.encode(items))


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=5))
def test_decoding_the_engine_event_gives_what_decoding_its_bytes_gives(items):
    event = _received(items)
    assert payload.decode(bytes(event.payload)) == items
    assert payload.decode(event) == items


def test_the_biggest_attachment_of_a_received_payload_is_taken_without_a_copy():
    big = bytes(range(256)) * 1000
    items = ["upload", {"file": big, "thumb": b"small", "none": b""}, [big[:300]]]
    event = _received(items)
    assert payload.decode(event) == items
    assert event.payload is None          # the payload's buffer became the biggest attachment
    reply = ResponseReceived(b"i" * 16, b"r" * 16, payload.encode([big, 2]))
    assert payload.decode_reply(reply) == [big, 2] and reply.payload is None


def test_an_event_payload_held_elsewhere_is_decoded_by_copy():
    encoded = payload.encode(["e", b"\x00" * 5000, b"x"])
    event = MessageReceived(b"i" * 16, encoded)
    assert payload.decode(event) == ["e", b"\x00" * 5000, b"x"]
    assert event.payload is encoded
    failure = ResponseReceived(b"i" * 16, b"r" * 16, payload.encode_failure("no handler"))
    assert payload.decode_reply(failure) == "no handler"


@pytest.mark.parametrize("bad", [b"\x01\x05ab", b"\x01", b"\x02\x01a\x01", b"\x01\x01a[1",
                                 b"\x01\x01a{}", b"\x01\x01a\xff"])
def test_malformed_event_payloads_raise_remote_protocol_error(bad):
    with pytest.raises(RemoteProtocolError):
        payload.decode(MessageReceived(b"i" * 16, bad))
    with pytest.raises(RemoteProtocolError):
        payload.decode(bad)


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=5))
def test_encode_parts_are_the_encoded_payload_in_parts(items):
    parts = payload.encode_parts(items)
    joined = parts if isinstance(parts, bytes) else b"".join(parts)
    assert joined == payload.encode(items)
    assert isinstance(parts, bytes) == (b"\x00" == joined[:1])   # in parts only with binary


def test_encode_parts_keep_an_attachment_as_it_is():
    blob = bytes(range(256)) * 100
    parts = payload.encode_parts(["up", {"file": blob}])
    assert any(part is blob for part in parts)


def test_a_client_grows_its_chunks_to_what_a_relio_server_takes():
    config = Config()
    assert config.chunk_size == 64 * 1024 and config.upload_chunk_size == 256 * 1024
    reply = wire.connect_reply("sid", "cred", config, 100 * 2**20)["__relio"]
    assert reply["max_batch"] == config.max_batch_size
    fitted = wire.fit_config(config, reply["max_payload"], "/", False, reply["max_batch"])
    assert fitted.chunk_size == config.upload_chunk_size
    assert fitted.largest_single_frame_batch <= reply["max_batch"]
    # a server that does not say (relio before, or another implementation): chunks as before
    assert wire.fit_config(config, 100 * 2**20, "/", False, None).chunk_size == 64 * 1024
    # a server that takes less than upload_chunk_size: as big as it takes
    small = wire.fit_config(config, 100 * 2**20, "/", False, 131072)
    assert 64 * 1024 < small.chunk_size and small.largest_single_frame_batch <= 131072
    # the connection's own limit still comes first
    tight = wire.fit_config(config, 200_000, "/", False, reply["max_batch"])
    assert tight.max_batch_size <= 200_000


emit_data = st.none() | json_values | st.tuples(json_values, json_values) | st.tuples() \
    | plain_json


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=10), emit_data)
def test_an_emits_payload_in_one_compiled_call_is_the_general_ways(event, data):
    """``encode_event`` (the compiled encoder of relio.engine._payload, with the general way
    behind it for binary) gives byte for byte what the general way gives, and decodes back."""
    codec = payload.JsonCodec()
    assert codec.encode_event_fast is not None
    general = payload.encode_parts([event, *payload.as_args(data)], codec)
    assert payload.encode_event(event, data, codec) == general
    if isinstance(general, bytes):
        assert payload.decode(general, codec) == [event, *payload.as_args(data)] \
            or general.count(b"NaN")           # NaN != NaN: compared by bytes above


def test_an_emits_arguments_follow_python_socketios_tuple_rule():
    codec = payload.JsonCodec()
    point = collections.namedtuple("Point", "x y")(1, 2)
    for data in (point, (1, 2), [1, 2], None, 5, ()):
        assert payload.encode_event("e", data, codec) == \
            payload.encode(["e", *payload.as_args(data)], codec)
    assert payload.decode(payload.encode_event("e", point, codec)) == ["e", 1, 2]


def test_an_emits_errors_are_the_general_ways():
    codec = payload.JsonCodec()
    with pytest.raises(TypeError, match="not JSON serializable"):
        payload.encode_event("x", {"when": object()}, codec)
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        payload.encode_event("x", loop, codec)
    # a module without the compiled path (any custom json=) goes the general way
    assert payload.JsonCodec(json).encode_event_fast is not None       # the stdlib is bound too
    custom = payload.JsonCodec(types.SimpleNamespace(dumps=json.dumps, loads=json.loads))
    assert custom.encode_event_fast is None
    assert payload.encode_event("x", (1, b"\x00"), custom) == \
        payload.encode_parts(["x", 1, b"\x00"], custom)


@settings(max_examples=500, deadline=None)
@given(st.lists(json_values, max_size=5), st.sampled_from(["bytes", "message", "response"]))
def test_a_received_list_in_one_compiled_call_is_what_decoding_gives(items, held_in):
    """The compiled decoder gives what :func:`payload.decode` gives, or None (binary
    attachments): never a different value."""
    codec = payload.JsonCodec()
    encoded = payload.encode(items, codec)
    message = {"bytes": encoded, "message": MessageReceived(b"\x01" * 16, encoded, False),
               "response": ResponseReceived(b"\x01" * 16, b"\x02" * 16, encoded, False)}[held_in]
    fast = codec.decode_event_fast(message)
    if b"_placeholder" in encoded and encoded[0] != 0:
        assert fast is None
    else:
        assert fast == payload.decode(encoded, codec) == items


@pytest.mark.parametrize("bad", [
    b"", b"\x00", b"\x00[", b"\x00[1", b"\x00[1] ", b"\x00 [1]", b"\x00{}", b"\x00\"x\"",
    b"\x00[\xff]", b"\x00[1][2]", b"\x01\x00[]", b"\x00[" + b"1" * 101 + b"]",
    b"\x00" + b"[" * 100_000, b"\x00[NaN]x",
])
def test_the_compiled_decoder_leaves_anything_unusual_to_the_general_way(bad):
    codec = payload.JsonCodec()
    assert codec.decode_event_fast(bad) is None
    assert codec.decode_event_fast(MessageReceived(b"\x01" * 16, bad, False)) is None
    assert codec.decode_event_fast(bytearray(b"\x00[1]")) is None      # not bytes: general way
    try:
        payload.decode(bad, codec)
    except RemoteProtocolError:
        pass                                        # the general way says what is wrong


@pytest.mark.parametrize("digits", [1, 98, 99, 100, 101, 4000])
@pytest.mark.parametrize("sign", ["", "-"])
@pytest.mark.parametrize("where", ["int", "float", "string"])
def test_the_compiled_decoder_keeps_python_socketios_integer_cap(digits, sign, where):
    """engineio's decoder refuses integers of more than 100 characters (sign included); the
    compiled decoder, which has no per-integer hook, must give the same value or error."""
    number = sign + "7" * digits
    literal = {"int": number, "float": number + ".5", "string": json.dumps(number)}[where]
    text = '["m",{"n":' + literal + "}]"
    codec = payload.JsonCodec()
    encoded = b"\x00" + text.encode()
    try:
        expected = engineio.json.loads(text)
    except ValueError:
        with pytest.raises(RemoteProtocolError):
            payload.decode(encoded, codec)
        assert codec.decode_event_fast(encoded) is None
        return
    assert payload.decode(encoded, codec) == expected
    assert codec.decode_event_fast(encoded) in (None, expected)
    if digits < 99:
        assert codec.decode_event_fast(encoded) == expected     # the common case stays fast
    # the plain standard library module has no cap: nothing is left to the general way for it
    assert payload.JsonCodec(json).decode_event_fast(encoded) in (expected, None)


class _Colour(enum.IntEnum):
    RED = 1


class _Text(str):
    pass


class _Real(float):
    pass


_any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=24)
#: Values for the compiled writer: what it writes itself (exact built-in types, every code point
#: including lone surrogates, integers past 64 bits, NaN and infinities) and what it hands to the
#: standard library's encoder (subclasses, non-str keys, tuples inside).
writer_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**64, 2**64)
    | st.floats(allow_nan=True, allow_infinity=True) | _any_text
    | st.sampled_from([_Colour.RED, _Text("sub"), _Real(2.5), -0.0, 5e-324, 1e300]),
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(_any_text, children, max_size=4)
    | st.dictionaries(st.integers() | st.booleans() | st.none() | st.floats(), children,
                      max_size=2)
    | st.lists(st.tuples(_any_text, children), max_size=3).map(collections.OrderedDict),
    max_leaves=24)


def _standard_library_payload(items: list) -> bytes:
    return b"\x00" + json.dumps(items, separators=(",", ":")).encode()


def _writable(value, depth: int = 0) -> bool:
    """Whether the compiled writer writes ``value`` itself (at ``depth`` of nesting) rather than
    leave it to the standard library's encoder."""
    kind = type(value)
    if value is None or kind in (bool, str, float):
        return True
    if kind is int:
        return -2**63 <= value < 2**63
    if kind in (list, tuple):
        return depth < MAX_FAST_DEPTH and all(_writable(v, depth + 1) for v in value)
    if kind is dict:
        return depth < MAX_FAST_DEPTH and all(
            type(k) is str and _writable(v, depth + 1) for k, v in value.items())
    return False


@settings(max_examples=1500, deadline=None)
@given(_any_text, st.none() | writer_values | st.tuples(writer_values, writer_values))
def test_the_compiled_writer_writes_what_the_standard_library_writes(event, data):
    """Byte for byte ``json.dumps(separators=(",", ":"))`` behind the tag, whether the compiled
    writer wrote the payload or left it (None) to the standard library's encoder; it leaves
    exactly the values it does not take."""
    codec = payload.JsonCodec()
    items = [event, *payload.as_args(data)]
    expected = _standard_library_payload(items)
    written = expected if _writable(items) else None
    assert codec.encode_event_fast(event, data) == written
    assert codec.encode_list_fast(items) == written
    assert payload.encode_event(event, data, codec) == expected
    assert payload.encode_parts(items, codec) == expected


@pytest.mark.parametrize("size", [1, 1000, 1023, 1024, 5000, 100_000])
@pytest.mark.parametrize("text", ["x", "\"", "\n", "\x01", "é", "\u2028", "😀", "\udc00"])
def test_the_compiled_writer_grows_past_its_stack_buffer(size, text):
    codec = payload.JsonCodec()
    data = {"s": text * size, "n": [text] * 3}
    assert codec.encode_event_fast("e", data) == _standard_library_payload(["e", data])


@pytest.mark.parametrize("depth", [MAX_FAST_DEPTH - 2, MAX_FAST_DEPTH - 1,
                                   MAX_FAST_DEPTH, MAX_FAST_DEPTH + 1, 300])
def test_nesting_deeper_than_the_writer_follows_is_the_standard_librarys(depth):
    codec = payload.JsonCodec()
    nested: object = 1
    for level in range(depth):
        nested = [nested] if level % 2 else {"k": nested}
    assert payload.encode_event("e", nested, codec) == _standard_library_payload(["e", nested])
    assert payload.encode_parts([nested], codec) == _standard_library_payload([nested])
    written = codec.encode_list_fast([nested])
    assert written == (_standard_library_payload([nested]) if _writable([nested]) else None)
    assert (written is None) == (depth >= MAX_FAST_DEPTH)   # (the list around it is a level)


@pytest.mark.parametrize("blob", [b"\x01", bytearray(b"\x01"), memoryview(b"\x01")])
def test_the_compiled_writer_refuses_binary_for_the_attachments_way(blob):
    codec = payload.JsonCodec()
    with pytest.raises(TypeError):
        codec.encode_event_fast("e", {"a": ["x" * 2000, blob]})
    with pytest.raises(TypeError):
        codec.encode_list_fast([1, blob])
    encoded = payload.encode_event("e", {"a": ["x", blob]}, codec)
    assert payload.decode(b"".join(encoded), codec) == ["e", {"a": ["x", b"\x01"]}]


def test_the_compiled_writers_refusals_give_the_standard_librarys_errors():
    codec = payload.JsonCodec()
    assert codec.encode_list_fast(["ok", {"a": 1, "when": object()}]) is None
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        payload.encode_parts(["ok", {"a": 1, "when": object()}], codec)
    assert codec.encode_event_fast("e", {("a",): 1}) is None
    with pytest.raises(TypeError, match="keys must be str"):
        payload.encode_event("e", {("a",): 1}, codec)
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular reference detected"):
        payload.encode_parts(["e", loop], codec)


readable_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2**64, 2**64)
    | st.floats(allow_nan=False, allow_infinity=False) | _any_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_any_text, children, max_size=4),
    max_leaves=24)


@settings(max_examples=1500, deadline=None)
@given(st.lists(readable_values, max_size=5), st.booleans(),
       st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", "\n:\r ")]))
def test_the_compiled_reader_reads_what_the_standard_library_reads(items, ascii, separators):
    """Whatever the encoder (escaped or raw UTF-8, whitespace between tokens), the compiled
    reader builds what ``json.loads`` builds: same types, values and key order."""
    text = json.dumps(items, ensure_ascii=ascii, separators=separators)
    raw = text.encode("utf-8", "surrogatepass")  # a raw lone surrogate: not UTF-8
    codec = payload.JsonCodec(json)               # the plain module: no integer cap
    fast = codec.decode_event_fast(b"\x00" + raw)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        assert fast is None                       # the general way's UTF-8 error
    else:
        assert repr(fast) == repr(json.loads(text))


_escape_piece = st.one_of(
    _any_text.filter(lambda t: '"' not in t and "\\" not in t),
    st.integers(0, 0xFFFF).map(lambda u: f"\\u{u:04x}"),
    st.integers(0, 0xFFFF).map(lambda u: f"\\u{u:04X}"),
    st.integers(0xD800, 0xDBFF).map(lambda u: f"\\u{u:04x}"),
    st.integers(0xDC00, 0xDFFF).map(lambda u: f"\\u{u:04x}"),
    st.sampled_from(['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\x", "\\u12",
                     "\\ud800\\u", "\\ud800\\uzzzz", "\\", "\x00", "\x1f", "\x7f", "é", "😀"]))


@settings(max_examples=2000, deadline=None)
@given(st.lists(_escape_piece, max_size=8), st.binary(max_size=3))
def test_the_compiled_reader_decodes_strings_as_the_standard_library_does(pieces, raw):
    """Escapes (pairs, lone and reversed surrogates, bad ones), raw UTF-8 and raw bytes inside a
    string: the reader's string is the standard library's, or it leaves the payload to the
    general way where the standard library refuses it."""
    body = "".join(pieces).encode("utf-8", "surrogatepass") + raw
    encoded = b'\x00["m","' + body + b'"]'
    codec = payload.JsonCodec()
    try:
        expected = json.loads(encoded[1:].decode("utf-8"))
    except ValueError:                                 # invalid UTF-8 or JSON
        assert codec.decode_event_fast(encoded) is None
        with pytest.raises(RemoteProtocolError):
            payload.decode(encoded, codec)
        return
    assert codec.decode_event_fast(encoded) == expected


@settings(max_examples=1000, deadline=None)
@given(st.lists(readable_values, min_size=1, max_size=3), st.data())
def test_the_compiled_reader_never_reads_a_broken_payload(items, data):
    """A valid payload with bytes changed, cut or added: the reader gives what the standard
    library gives, or None (never another value, never an exception)."""
    text = bytearray(json.dumps(items, separators=(",", ":")).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(text)))
        change = data.draw(st.sampled_from(["cut", "put", "flip"]))
        if change == "cut":
            del text[where:]
        elif change == "put":
            text[where:where] = data.draw(st.sampled_from(
                [b",", b"]", b"[", b"{", b"}", b":", b'"', b"\\", b"-", b".", b"e", b"0", b"9",
                 b" ", b"\xc3", b"\xff", b"NaN", b"tru", b"null"]))
        elif where < len(text):
            text[where] ^= data.draw(st.integers(1, 255))
    encoded = b"\x00" + bytes(text)
    codec = payload.JsonCodec()
    fast = codec.decode_event_fast(encoded)
    try:
        expected = engineio.json.loads(bytes(text).decode("utf-8"))
    except ValueError:
        assert fast is None
        return
    assert fast is None or repr(fast) == repr(expected)


@pytest.mark.parametrize("literal", ["0", "-0", "-0.0", "1e5", "1E+5", "1e-5", "2.5e", "1.5E-",
                                     "9" * 18, "-" + "9" * 18, "9" * 19, "-" + "9" * 19,
                                     str(2**63), str(-2**63), str(-2**63 - 1), "1e400",
                                     "-1e400", "1e-400", "0.1", "123.456e-7",
                                     "3.141592653589793238462643383279"])
def test_the_compiled_reader_reads_numbers_as_the_standard_library_does(literal):
    encoded = b'\x00["m",' + literal.encode() + b"]"
    codec = payload.JsonCodec()
    try:
        expected = json.loads(encoded[1:])
    except ValueError:
        assert codec.decode_event_fast(encoded) is None
        return
    assert repr(codec.decode_event_fast(encoded)) == repr(expected)


_SHARED_CODEC = payload.JsonCodec()        # one decoder, its key cache kept across examples
_keys = st.text(st.sampled_from("abcé_\"\\\n"), max_size=34) | st.sampled_from(["i", "user", "x" * 32])


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.dictionaries(_keys, st.integers(0, 9), max_size=6), min_size=1, max_size=4))
def test_the_compiled_readers_key_cache_never_gives_another_key(objects):
    """One decoder over many payloads: keys found in its cache, replaced in it (a few slots for
    every key), too long for it, or escaped: every object is what ``json.loads`` gives."""
    text = json.dumps(["m", *objects], separators=(",", ":"))
    assert repr(_SHARED_CODEC.decode_event_fast(b"\x00" + text.encode())) == repr(json.loads(text))


def test_the_compiled_reader_shares_a_key_between_messages():
    codec = payload.JsonCodec()
    first = codec.decode_event_fast(b'\x00["m",{"price":1}]')[1]
    second = codec.decode_event_fast(b'\x00["m",{"price":2},{"price":3}]')
    (key_1,), (key_2,), (key_3,) = first, second[1], second[2]
    assert key_1 == key_2 == "price" and key_1 is key_2 is key_3
