"""Tests of relio.engine._chunks: split, Reassembler and reassemble_into, each edge case on its own, then
the compiled module against the pure-Python model under random chunkings (any order, duplicates,
overlapping retransmits) of several messages at once, with small caps."""

from __future__ import annotations

import array
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from relio.engine._chunks import Reassembler, reassemble_into, split
from relio.engine.errors import LocalProtocolError, RemoteProtocolError
from tests.models import chunks_model as model
from tests.support.delivery import engine_delivery

PAYLOAD = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable modulo 256


def chunked(payload, chunk_size):
    """(offset, chunk) pairs of payload split into chunk_size pieces."""
    return [(i * chunk_size, chunk) for i, chunk in enumerate(split(payload, chunk_size))]


# --- split ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 100, 1023, 1024, 1025, 65536])
def test_split_covers_payload_in_order(chunk_size):
    chunks = split(PAYLOAD, chunk_size)
    assert all(1 <= len(chunk) <= chunk_size for chunk in chunks)
    assert b"".join(chunks) == PAYLOAD
    assert [bytes(c) for c in chunks] == model.split(PAYLOAD, chunk_size)


def test_split_default_chunk_size_is_64_kib():
    payload = bytes(3 * 65536 + 1)
    assert [len(c) for c in split(payload)] == [65536, 65536, 65536, 1]


def test_split_copies_nothing():
    payload = bytearray(PAYLOAD)
    chunks = split(payload, 100)
    assert all(isinstance(c, memoryview) and c.obj is payload for c in chunks)
    payload[250] = 0xAA  # writes to the payload show through the chunks
    assert chunks[2][50] == 0xAA


def test_split_immutable_payload_chunks_are_views_of_it():
    chunks = split(PAYLOAD, 256)
    assert all(c.obj is PAYLOAD and c.readonly for c in chunks)


def test_split_wide_items_are_cut_in_bytes():
    payload = array.array("i", range(10))  # 40 bytes
    chunks = split(payload, 16)
    assert [len(c) for c in chunks] == [16, 16, 8]
    assert all(c.obj is payload for c in chunks)
    assert b"".join(chunks) == payload.tobytes()


def test_split_empty_payload():
    assert split(b"") == []
    assert split(memoryview(b""), 1) == []


def test_split_huge_chunk_size_gives_one_chunk():
    assert [len(c) for c in split(PAYLOAD, 2**63 - 1)] == [len(PAYLOAD)]


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_split_rejects_chunk_size_below_one(chunk_size):
    with pytest.raises(ValueError):
        split(PAYLOAD, chunk_size)
    with pytest.raises(ValueError):
        model.split(PAYLOAD, chunk_size)


def test_split_rejects_non_buffer():
    with pytest.raises(TypeError):
        split("text")


# --- Reassembler: construction and the happy path ---------------------------------------------


def test_defaults():
    r = Reassembler()
    assert (r.max_message_size, r.max_reassemblies, r.max_bytes) == (64 << 20, 64, 128 << 20)
    assert (len(r), r.nbytes, r.message_ids()) == (0, 0, [])


@pytest.mark.parametrize(
    "kwargs",
    [{"max_message_size": 0}, {"max_reassemblies": -1}, {"max_bytes": -1}],
)
def test_constructor_rejects_bad_caps(kwargs):
    with pytest.raises(ValueError):
        Reassembler(**kwargs)
    with pytest.raises(ValueError):
        model.Reassembler(**kwargs)


def test_in_order_reassembly_returns_the_buffer_itself():
    r = Reassembler()
    for offset, chunk in chunked(PAYLOAD, 100):
        assert r.add(b"m", len(PAYLOAD), offset, chunk)
    assert r.received(b"m") == len(PAYLOAD)
    result = r.finish(b"m")
    assert type(result) is bytes and result == PAYLOAD
    assert (len(r), r.nbytes, b"m" in r, r.received(b"m")) == (0, 0, False, 0)


def test_out_of_order_duplicate_and_overlapping_chunks():
    r = Reassembler()
    total = len(PAYLOAD)
    r.add(b"m", total, 500, PAYLOAD[500:600])
    r.add(b"m", total, 500, PAYLOAD[500:600])  # duplicate
    assert r.received(b"m") == 100
    r.add(b"m", total, 550, PAYLOAD[550:700])  # overlaps the end
    assert r.received(b"m") == 200
    r.add(b"m", total, 0, PAYLOAD[0:10])
    r.add(b"m", total, 20, PAYLOAD[20:30])
    assert r.received(b"m") == 220
    r.add(b"m", total, 5, PAYLOAD[5:800])  # swallows every range so far
    assert r.received(b"m") == 800
    r.add(b"m", total, 800, PAYLOAD[800:])  # adjacent: merges
    assert r.finish(b"m") == PAYLOAD


def test_single_byte_message():
    r = Reassembler()
    assert r.add(b"m", 1, 0, b"x")
    assert r.finish(b"m") == b"x"


def test_accepts_any_contiguous_bytes_like():
    r = Reassembler()
    r.add(b"m", 6, 0, bytearray(b"ab"))
    r.add(b"m", 6, 2, memoryview(b"cd"))
    r.add(b"m", 6, 4, array.array("B", b"ef"))
    assert r.finish(b"m") == b"abcdef"


def test_rejects_non_buffer_data():
    with pytest.raises(TypeError):
        Reassembler().add(b"m", 3, 0, "abc")


def test_buffer_is_a_zero_filled_copy():
    r = Reassembler()
    assert r.buffer(b"m") is None
    r.add(b"m", 10, 3, b"abc")
    r.add(b"m", 10, 8, b"yz")
    snapshot = r.buffer(b"m")
    assert snapshot == b"\0\0\0abc\0\0yz"
    r.add(b"m", 10, 0, b"012")
    assert snapshot == b"\0\0\0abc\0\0yz"  # not changed by later chunks
    assert r.buffer(b"m") == b"012abc\0\0yz"


def test_discard_frees_the_reservation():
    r = Reassembler(max_reassemblies=1)
    r.add(b"m", 10, 0, b"abc")
    r.discard(b"m")
    r.discard(b"m")  # unknown: no-op
    assert (len(r), r.nbytes) == (0, 0)
    assert r.add(b"n", 10, 0, b"abc")


def test_message_ids_in_admission_order():
    r = Reassembler()
    for msg_id in (b"c", b"a", b"b"):
        r.add(msg_id, 4, 0, b"x")
    r.add(b"a", 4, 1, b"y")
    assert r.message_ids() == [b"c", b"a", b"b"]
    assert b"a" in r and b"z" not in r


# --- admission --------------------------------------------------------------------------------


def test_refused_when_too_many_reassemblies():
    r = Reassembler(max_reassemblies=2)
    assert r.add(b"a", 10, 0, b"x") and r.add(b"b", 10, 0, b"x")
    assert not r.add(b"c", 10, 0, b"x")
    assert (r.message_ids(), r.nbytes) == ([b"a", b"b"], 20)
    assert r.add(b"a", 10, 1, b"y")  # chunks of admitted messages still go in


def test_refused_when_bytes_would_exceed_max_bytes():
    r = Reassembler(max_bytes=100)
    assert r.add(b"a", 60, 0, b"x")
    assert r.add(b"b", 40, 0, b"x")  # exactly at the cap
    assert not r.add(b"c", 1, 0, b"x")
    assert (len(r), r.nbytes, r.received(b"c")) == (2, 100, 0)


def test_head_of_line_is_always_admitted():
    r = Reassembler(max_reassemblies=0, max_bytes=0)
    assert not r.add(b"a", 10, 0, b"x")
    assert r.add(b"a", 10, 0, b"x", head_of_line=True)
    assert (len(r), r.nbytes) == (1, 10)
    assert r.add(b"a", 10, 1, b"y")  # later chunks need no flag


def test_refused_chunk_is_accepted_once_room_is_freed():
    r = Reassembler(max_reassemblies=1)
    r.add(b"a", 2, 0, b"x")
    assert not r.add(b"b", 2, 0, b"y")
    r.add(b"a", 2, 1, b"x")
    r.finish(b"a")
    assert r.add(b"b", 2, 0, b"y")


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "offset", "data", "match"),
    [
        (101, 0, b"x", "exceeds max_message_size"),
        (0, 0, b"x", "not positive"),
        (-5, 0, b"x", "not positive"),
        (10, 0, b"", "empty chunk"),
        (10, -1, b"x", "negative"),
        (10, 9, b"xy", "overruns"),
        (10, 10, b"x", "overruns"),
        (10, 2**62, b"x", "overruns"),
    ],
)
def test_invalid_first_chunk(total, offset, data, match):
    for r in (Reassembler(max_message_size=100), model.Reassembler(max_message_size=100)):
        with pytest.raises(RemoteProtocolError, match=match):
            r.add(b"m", total, offset, data)
        assert (len(r), r.nbytes) == (0, 0)


def test_invalid_chunk_is_an_error_even_when_it_would_be_refused():
    r = Reassembler(max_reassemblies=0)
    with pytest.raises(RemoteProtocolError):
        r.add(b"m", 10, 5, b"x" * 6)


@pytest.mark.parametrize(
    ("total", "offset", "data", "match"),
    [
        (11, 0, b"x", "earlier chunk said 10"),
        (10, 0, b"", "empty chunk"),
        (10, -3, b"x", "negative"),
        (10, 8, b"xyz", "overruns"),
    ],
)
def test_invalid_later_chunk(total, offset, data, match):
    r = Reassembler()
    r.add(b"m", 10, 0, b"abc")
    with pytest.raises(RemoteProtocolError, match=match) as raised:
        r.add(b"m", total, offset, data)
    assert raised.value.reason
    assert r.received(b"m") == 3


def test_finish_incomplete_message():
    r = Reassembler()
    r.add(b"m", 10, 0, b"abc")
    r.add(b"m", 10, 1, b"bcd")  # overlap is not counted twice
    with pytest.raises(RemoteProtocolError, match="4 of its 10 bytes"):
        r.finish(b"m")
    assert b"m" in r  # still there: the caller decides (the session is closed anyway)


def test_finish_unknown_message_is_local_misuse():
    with pytest.raises(LocalProtocolError):
        Reassembler().finish(b"m")


def test_msg_id_must_be_bytes():
    r = Reassembler()
    with pytest.raises(TypeError):
        r.add(None, 1, 0, b"x")
    with pytest.raises(TypeError):
        r.add("m", 1, 0, b"x")


# --- reassemble_into --------------------------------------------------------------------------


def test_reassemble_into_reused_buffer():
    out = bytearray(len(PAYLOAD))
    pieces = chunked(PAYLOAD, 100)
    assert reassemble_into(out, reversed(pieces)) == len(PAYLOAD)
    assert out == PAYLOAD
    out[:] = bytes(len(out))
    assert reassemble_into(out, pieces[:3] + pieces[1:2]) == 300


def test_reassemble_into_numpy_array():
    import numpy as np
    out = np.zeros(len(PAYLOAD), dtype=np.uint8)
    assert reassemble_into(out, chunked(PAYLOAD, 300)) == len(PAYLOAD)
    assert out.tobytes() == PAYLOAD


def test_reassemble_into_chunk_aliasing_the_destination():
    out = bytearray(b"abcdef")
    assert reassemble_into(out, [(1, memoryview(out)[0:4])]) == 4
    assert out == b"aabcdf"


@pytest.mark.parametrize(
    ("offset", "data"), [(0, b""), (-1, b"x"), (5, b"xy"), (6, b"x")]
)
def test_reassemble_into_rejects_bad_chunks(offset, data):
    for function in (reassemble_into, model.reassemble_into):
        with pytest.raises(RemoteProtocolError):
            function(bytearray(6), [(offset, data)])


def test_reassemble_into_needs_writable_buffer():
    with pytest.raises(BufferError):
        reassemble_into(b"abc", [(0, b"x")])


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=200),
    cuts=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 64)), max_size=30),
)
def test_reassemble_into_agrees_with_model(payload, cuts):
    pieces = [(o, payload[o : o + n]) for o, n in cuts if o < len(payload)]
    out, expected = bytearray(len(payload)), bytearray(len(payload))
    assert reassemble_into(out, pieces) == model.reassemble_into(expected, pieces)
    assert out == expected


# --- the compiled Reassembler against the model -----------------------------------------------

MSG_IDS = [b"m%d" % i for i in range(5)]


def outcome(call):
    """What a call did: ("ok", value) or ("raised", exception type, reason)."""
    try:
        return ("ok", call())
    except (ValueError, TypeError, LocalProtocolError, RemoteProtocolError) as exc:
        return ("raised", type(exc), str(exc))


class ReassemblerMachine(RuleBasedStateMachine):
    """Random chunks of a few payloads, several messages at once, against the model."""

    @initialize(
        max_message_size=st.integers(1, 300),
        max_reassemblies=st.integers(0, 3),
        max_bytes=st.integers(0, 600),
        payloads=st.lists(st.binary(min_size=1, max_size=300), min_size=5, max_size=5),
    )
    def start(self, max_message_size, max_reassemblies, max_bytes, payloads):
        self.real = Reassembler(max_message_size, max_reassemblies, max_bytes)
        self.model = model.Reassembler(max_message_size, max_reassemblies, max_bytes)
        self.payloads = dict(zip(MSG_IDS, payloads))

    def both(self, method, *args):
        real = outcome(lambda: getattr(self.real, method)(*args))
        expected = outcome(lambda: getattr(self.model, method)(*args))
        assert real == expected
        return real

    @rule(msg_id=st.sampled_from(MSG_IDS), data=st.data(), head_of_line=st.booleans())
    def add_random_chunk(self, msg_id, data, head_of_line):
        """Any piece of the payload: random size and place, so duplicates and overlaps."""
        payload = self.payloads[msg_id]
        offset = data.draw(st.integers(0, len(payload) - 1))
        n = data.draw(st.integers(1, len(payload) - offset))
        chunk = data.draw(st.sampled_from([bytes, bytearray, memoryview]))(
            payload[offset : offset + n]
        )
        self.both("add", msg_id, len(payload), offset, chunk, head_of_line)

    @rule(
        msg_id=st.sampled_from(MSG_IDS),
        chunk_size=st.integers(1, 128),
        seed=st.integers(0, 2**32),
        head_of_line=st.booleans(),
    )
    def add_whole_message_shuffled(self, msg_id, chunk_size, seed, head_of_line):
        """The payload as split() cuts it, in random order: the message is complete after."""
        payload = self.payloads[msg_id]
        pieces = chunked(payload, chunk_size)
        random.Random(seed).shuffle(pieces)
        for offset, chunk in pieces:
            self.both("add", msg_id, len(payload), offset, chunk, head_of_line)

    @rule(
        msg_id=st.sampled_from(MSG_IDS),
        total_delta=st.sampled_from([0, 0, -1, 1]) | st.integers(-400, 400),
        offset=st.integers(-3, 400),
        n=st.integers(0, 400),
        head_of_line=st.booleans(),
    )
    def add_any_chunk(self, msg_id, total_delta, offset, n, head_of_line):
        """Chunks that break the rules: wrong total, bad offset, empty, overrunning."""
        payload = self.payloads[msg_id]
        total = len(payload) + total_delta
        # Bytes of the payload (zero-padded past its end) wherever the chunk lands.
        padded = payload + bytes(800)
        chunk = padded[offset : offset + n] if offset >= 0 else bytes(n)
        is_new = msg_id not in self.model
        result = self.both("add", msg_id, total, offset, chunk, head_of_line)
        if is_new and result == ("ok", True):
            # A new message of another size: from now on that is the payload being sent.
            self.payloads[msg_id] = padded[:total]

    @rule(msg_id=st.sampled_from(MSG_IDS))
    def finish(self, msg_id):
        result = self.both("finish", msg_id)
        if result[0] == "ok":
            assert result[1] == self.payloads[msg_id]

    @rule(msg_id=st.sampled_from(MSG_IDS))
    def buffer(self, msg_id):
        self.both("buffer", msg_id)

    @rule(msg_id=st.sampled_from(MSG_IDS))
    def discard(self, msg_id):
        self.both("discard", msg_id)

    @rule(data=st.data())
    def new_payload(self, data):
        """A finished or discarded id comes back with another payload (ids are reused)."""
        free = [m for m in MSG_IDS if m not in self.model]
        if free:
            msg_id = data.draw(st.sampled_from(free))
            self.payloads[msg_id] = data.draw(st.binary(min_size=1, max_size=300))

    @invariant()
    def agree(self):
        assert self.real.message_ids() == self.model.message_ids()
        assert len(self.real) == len(self.model)
        assert self.real.nbytes == self.model.nbytes
        for msg_id in MSG_IDS:
            assert (msg_id in self.real) == (msg_id in self.model)
            assert self.real.received(msg_id) == self.model.received(msg_id)
            assert 0 <= self.real.received(msg_id) <= self.real.max_message_size


ReassemblerMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_reassembler_agrees_with_model = ReassemblerMachine.TestCase


# --- take_range: one part of a received payload handed over without a second buffer ---------------

@pytest.mark.parametrize("size", [100, 65536 * 3 + 7])
def test_take_range_moves_a_payload_only_the_event_holds_in_place(size):
    from relio.engine._chunks import take_range
    payload_bytes = bytes(random.Random(size).randbytes(size))
    event = engine_delivery(payload_bytes)
    piece = take_range(event, 5, size - 3)
    assert piece == payload_bytes[5:-3]
    assert type(piece) is bytes
    assert event.payload is None              # taken: the payload object became the piece
    assert hash(piece) == hash(payload_bytes[5:-3])
    with pytest.raises(ValueError, match="taken already"):
        take_range(event, 0, 1)


def test_take_range_copies_a_payload_someone_else_holds_too():
    from relio.engine._chunks import take_range
    from relio.engine._events import MessageReceived, ResponseReceived
    held = bytes(random.Random(1).randbytes(1000))
    hash(held)
    for event in (MessageReceived(b"i" * 16, held), ResponseReceived(b"i" * 16, b"r" * 16, held)):
        assert take_range(event, 10, 20) == held[10:20]
        assert event.payload is held and held == bytes(random.Random(1).randbytes(1000))
        assert hash(held) == hash(bytes(held))
        assert take_range(event, 0, 1000) == held and take_range(event, 7, 7) == b""


@pytest.mark.parametrize("start, stop", [(-1, 3), (3, 2), (0, 1001), (1001, 1002)])
def test_take_range_refuses_ranges_outside_the_payload(start, stop):
    from relio.engine._chunks import take_range
    from relio.engine._events import MessageReceived
    with pytest.raises(ValueError, match="not inside"):
        take_range(MessageReceived(b"i" * 16, bytes(1000)), start, stop)
    with pytest.raises(TypeError):
        take_range(b"not an event", 0, 1)


@pytest.mark.parametrize("order", ["in order", "shuffled", "reversed"])
def test_a_big_message_is_reassembled_whatever_the_chunk_order(order):
    # 5 MiB: its buffer's pages are faulted in ahead of the chunks (in blocks, where the system
    # can), which must not change what ends up in it.
    payload = random.Random(5).randbytes(5 * 1024 * 1024 + 3)
    pieces = chunked(payload, 65536)
    if order == "shuffled":
        random.Random(6).shuffle(pieces)
    elif order == "reversed":
        pieces.reverse()
    r = Reassembler()
    for offset, piece in pieces:
        assert r.add(b"m" * 16, len(payload), offset, piece, head_of_line=True)
    assert r.finish(b"m" * 16) == payload
