"""The wire format: round trips, canonical encodings, and a decoder that only ever says
RemoteProtocolError, whatever it is fed (every prefix, random corruption, garbage)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relio.engine import _frames as F
from relio.engine.errors import RemoteProtocolError

ids = st.binary(min_size=16, max_size=16)
seqs = st.integers(min_value=0, max_value=2**62 - 1)


@st.composite
def data_frames(draw):
    flags = draw(st.sampled_from([0, F.REQUEST, F.RESPONSE, F.RESPONSE | F.REQUEST]))
    payload = draw(st.binary(max_size=64))
    chunk = draw(st.booleans()) and payload
    total = offset = 0
    if chunk:
        flags |= F.CHUNK
        offset = draw(st.integers(min_value=0, max_value=2**40))
        total = offset + len(payload) + draw(st.integers(min_value=0, max_value=2**20))
    reply_to = draw(ids) if flags & F.RESPONSE else None
    return F.DataFrame(flags, draw(seqs), draw(ids), reply_to, total, offset, payload)


@st.composite
def ack_frames(draw):
    cumulative = draw(st.integers(min_value=0, max_value=2**40))
    ranges = []
    end = cumulative
    for _ in range(draw(st.integers(min_value=0, max_value=32))):
        start = end + draw(st.integers(min_value=1, max_value=2**20))
        end = start + draw(st.integers(min_value=1, max_value=2**20))
        ranges.append((start, end))
    return F.AckFrame(cumulative, draw(st.integers(min_value=0, max_value=2**30)), ranges)


close_frames = st.builds(F.CloseFrame, st.integers(min_value=0, max_value=2**20),
                         st.text(max_size=40))
frames = st.one_of(data_frames(), ack_frames(), close_frames)


def encode(frame):
    if isinstance(frame, F.DataFrame):
        return F.encode_data(frame.seq, frame.msg_id, frame.payload, flags=frame.flags,
                             reply_to=frame.reply_to, total=frame.total, offset=frame.offset)
    if isinstance(frame, F.AckFrame):
        return F.encode_ack(frame.cumulative, frame.ranges, frame.ack_delay_us)
    return F.encode_close(frame.code, frame.reason)


def decode(batch, **limits):
    limits.setdefault("max_batch_size", 1 << 20)
    return F.decode_batch(batch, **limits)


@settings(max_examples=300)
@given(st.lists(frames, min_size=1, max_size=6))
def test_round_trip(fs):
    assert decode(F.encode_batch([encode(f) for f in fs])) == fs


@settings(max_examples=150)
@given(st.lists(frames, min_size=1, max_size=4))
def test_every_prefix_decodes_to_whole_frames_or_raises(fs):
    encoded = [encode(f) for f in fs]
    batch = F.encode_batch(encoded)
    boundaries = {1}
    for e in encoded:
        boundaries.add(max(boundaries) + len(e))
    for cut in range(len(batch)):
        if cut in boundaries and cut > 1:
            # A cut between frames is a shorter, valid batch.
            assert decode(batch[:cut]) == fs[: sorted(boundaries).index(cut)]
        else:
            with pytest.raises(RemoteProtocolError):
                decode(batch[:cut])


@settings(max_examples=400)
@given(st.lists(frames, min_size=1, max_size=4), st.data())
def test_random_corruption_raises_only_remote_protocol_error(fs, data):
    batch = bytearray(F.encode_batch([encode(f) for f in fs]))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(batch) - 1))
        batch[i] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        decode(bytes(batch))
    except RemoteProtocolError as exc:
        assert exc.reason


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_raises_only_remote_protocol_error(blob):
    try:
        decode(b"\x01" + blob)
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize("value, size", [(0, 1), (63, 1), (64, 2), (16383, 2), (16384, 4),
                                         (2**30 - 1, 4), (2**30, 8), (2**62 - 1, 8)])
def test_varint_boundaries(value, size):
    frame = F.encode_ack(value)
    assert len(frame) == 1 + size + 1 + 1
    assert decode(F.encode_batch([frame])) == [F.AckFrame(value, 0, [])]


def test_encoder_refuses_out_of_range_values():
    with pytest.raises(ValueError):
        F.encode_ack(2**62)
    with pytest.raises(ValueError):
        F.encode_data(0, b"short", b"")
    with pytest.raises(ValueError):
        F.encode_data(0, b"x" * 16, b"", flags=F.RESPONSE)  # reply_to missing
    with pytest.raises(ValueError):
        F.encode_ack(10, [(10, 12)])  # a range must start above the cumulative point


MSG = b"m" * 16


@pytest.mark.parametrize("batch, reason", [
    (b"", "truncated batch"),
    (b"\x01", "truncated batch"),
    (b"\x02" + F.encode_ack(0), "unsupported protocol version 2"),
    (b"\x01\x7f", "unknown frame type 0x7f"),
    (b"\x01\x01\x80", "unknown DATA flags 0x80"),
    (b"\x01\x01\x00\x00" + MSG + b"\x05abc", "payload length 5 exceeds"),
    (F.encode_batch([b"\x02\x00\x00\x01\x00\x01"]), "zero gap or zero length"),
    (F.encode_batch([b"\x02\x00\x00\x01\x01\x00"]), "zero gap or zero length"),
    (F.encode_batch([b"\x02\x00\x00\x21" + b"\x01\x01" * 33]), "ACK carries 33 ranges"),
    (F.encode_batch([b"\x01\x04\x00" + MSG + b"\x04\x03\x02ab"]), "overruns its message"),
    (F.encode_batch([b"\x01\x04\x00" + MSG + b"\x00\x00\x01a"]), "chunk of an empty message"),
    (F.encode_batch([b"\x01\x04\x00" + MSG + b"\x04\x00\x00"]), "empty chunk"),
    (F.encode_batch([F.encode_close(0, "xy")[:-1]]), "truncated frame: CLOSE reason"),
    (F.encode_batch([b"\x03\x00\x41\x01" + b"r" * 257]), "CLOSE reason of 257 bytes"),
])
def test_specific_errors_have_reasons(batch, reason):
    with pytest.raises(RemoteProtocolError, match=reason):
        decode(batch)


def test_limits_on_batch_size_and_frame_count():
    batch = F.encode_batch([F.encode_ack(0)] * 10)
    with pytest.raises(RemoteProtocolError, match="exceeds the 20 allowed"):
        decode(batch, max_batch_size=20)
    with pytest.raises(RemoteProtocolError, match="more than 9 frames"):
        decode(batch, max_frames=9)
    assert len(decode(batch, max_frames=10)) == 10
