"""The orjson-backed ``json=`` module of the end-to-end benchmark (``bench/e2e/orjson_json.py``):
what python-socketio, python-engineio and relio get from it is what they get from the standard
library (compact text, the same values, the same errors), except the documented differences."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.e2e import orjson_json
from relio.binding import payload

ascii_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
    | st.text(st.characters(max_codepoint=126), max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(st.characters(max_codepoint=126), max_size=8), children,
                      max_size=4),
    max_leaves=20)

any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


def compact(obj, **kw) -> str:
    return json.dumps(obj, separators=(',', ':'), **kw)


@settings(max_examples=300, deadline=None)
@given(ascii_values)
def test_ascii_text_is_the_standard_librarys_compact_text(value):
    assert orjson_json.dumps(value, separators=(',', ':')) == compact(value)
    assert orjson_json.dumps(value) == compact(value)


@settings(max_examples=300, deadline=None)
@given(any_values)
def test_any_value_round_trips_to_what_the_standard_library_reads(value):
    text = orjson_json.dumps(value, separators=(',', ':'))
    assert isinstance(text, str)
    assert json.loads(text) == json.loads(compact(value))
    assert orjson_json.loads(text) == json.loads(compact(value))
    assert orjson_json.loads(text.encode()) == json.loads(compact(value))


def test_what_orjson_refuses_falls_back_to_the_standard_library():
    for value in ({1: 'a', 2: ['b']}, [2**70], {'k': (1, 2)}):
        assert orjson_json.dumps(value, separators=(',', ':')) == compact(value)
    for kw in ({'indent': 2}, {'ensure_ascii': True}, {'separators': (', ', ': ')}):
        value = {'é': [1, 2]}
        assert orjson_json.dumps(value, **kw) == json.dumps(value, **kw)
    assert orjson_json.dumps({'b': 1, 'a': 2}, sort_keys=True) == compact({'a': 2, 'b': 1})
    assert orjson_json.dumps({'t': object()}, default=lambda o: 'x') == '{"t":"x"}'


def test_bytes_and_unknown_types_raise_type_error_like_the_standard_library():
    with pytest.raises(TypeError):
        orjson_json.dumps(['up', b'\x00\x01'], separators=(',', ':'))
    with pytest.raises(TypeError):
        orjson_json.dumps({'t': object()})


def test_invalid_text_raises_value_error_as_engineio_expects():
    with pytest.raises(ValueError):
        orjson_json.loads('hello')
    with pytest.raises(json.JSONDecodeError):
        orjson_json.loads(b'[1,')


def test_socketio_and_engineio_packets_round_trip_with_it(monkeypatch):
    import engineio.packet
    import socketio.packet

    monkeypatch.setattr(socketio.packet.Packet, 'json', orjson_json)
    monkeypatch.setattr(engineio.packet.Packet, 'json', orjson_json)
    data = ['m', {'i': 7, 'tags': ['a', 'é'], 'f': 0.5}]
    pkt = socketio.packet.Packet(socketio.packet.EVENT, data=data, namespace='/', id=3)
    encoded = pkt.encode()
    assert encoded == '23' + orjson.dumps(data).decode()
    back = socketio.packet.Packet(encoded_packet=encoded)
    assert back.data == data and back.id == 3
    ep = engineio.packet.Packet(engineio.packet.MESSAGE, data={'sid': 'x', 'upgrades': []})
    assert engineio.packet.Packet(encoded_packet=ep.encode()).data == {'sid': 'x', 'upgrades': []}
    # a text message that is not JSON stays a string, as with the default module
    assert engineio.packet.Packet(encoded_packet='4hello').data == 'hello'


def test_relio_payloads_round_trip_with_it():
    codec = payload.JsonCodec(orjson_json)
    items = ['m', {'i': 1, 'blob': b'\x00\xff' * 10, 'name': 'é'}]
    encoded = payload.encode(items, codec)
    assert payload.decode(encoded, codec) == items
    # and a relio peer with the standard library reads what it wrote
    assert payload.decode(encoded) == items
    plain = ['m', {'i': 2}]
    assert payload.encode(plain, codec) == payload.encode(plain)
