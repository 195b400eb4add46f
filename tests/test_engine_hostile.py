"""A hostile peer feeding an engine well-formed but malicious frames (and garbage): the engine only ever
raises RemoteProtocolError, closes that session with a reason, and stays within its memory bounds."""

from hypothesis import given, settings
from hypothesis import strategies as st

from relio.engine import _frames as F
from relio.engine._engine import Engine
from relio.engine._events import SessionClosed
from relio.config import Config
from relio.engine.errors import RemoteProtocolError

LIMITS = Config(chunk_size=64, coalesce_bytes=512, max_batch_size=4096, max_message_size=1024,
                receive_window=128, max_inflight_messages=64, max_reorder_bytes=512,
                max_reassemblies=2, max_reassembly_bytes=1024, max_ack_ranges=8,
                id_set_capacity=64, response_cache_entries=4)

small_ids = st.sampled_from([bytes([i]) * 16 for i in range(4)])
seqs = st.one_of(st.integers(min_value=0, max_value=140), st.integers(min_value=0, max_value=2**62 - 1))


@st.composite
def hostile_data(draw):
    flags = draw(st.sampled_from([0, F.REQUEST, F.RESPONSE, F.RESPONSE | F.REQUEST]))
    payload = draw(st.binary(min_size=1, max_size=80))
    total = offset = 0
    if draw(st.booleans()):
        flags |= F.CHUNK
        total = draw(st.integers(min_value=len(payload), max_value=2048))
        offset = draw(st.integers(min_value=0, max_value=total - len(payload)))
    reply_to = draw(small_ids) if flags & F.RESPONSE else None
    return F.encode_data(draw(seqs), draw(small_ids), payload, flags=flags, reply_to=reply_to,
                         total=total, offset=offset)


@st.composite
def hostile_ack(draw):
    cumulative = draw(st.integers(min_value=0, max_value=20))
    ranges, end = [], cumulative
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        start = end + draw(st.integers(min_value=1, max_value=10))
        end = start + draw(st.integers(min_value=1, max_value=10))
        ranges.append((start, end))
    return F.encode_ack(cumulative, ranges, draw(st.integers(min_value=0, max_value=2**40)))


frames = st.one_of(hostile_data(), hostile_data(), hostile_ack(),
                   st.builds(F.encode_close, st.integers(min_value=0, max_value=9), st.text(max_size=8)),
                   st.binary(min_size=1, max_size=20))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(frames, min_size=1, max_size=6), min_size=1, max_size=12))
def test_hostile_batches_end_only_that_session(batches):
    victim, bystander = Engine(LIMITS), Engine(LIMITS)
    for i in range(10):
        victim.send(b"m%d" % i, 0.0, request=i % 3 == 0)
        bystander.send(b"m%d" % i, 0.0)
    victim.data_to_send(0.0)
    bystander_before = bystander.stats
    for i, frames_ in enumerate(batches):
        try:
            victim.receive(F.encode_batch(frames_), float(i))
        except RemoteProtocolError as exc:
            assert exc.reason
            assert victim.closed and victim.close_reason.startswith("protocol error")
            assert isinstance(victim.events()[-1], SessionClosed)
            break
        victim.events()
        victim.handle_timer(float(i))
        victim.data_to_send(float(i))
        st_ = victim.stats
        assert st_["held_bytes"] <= LIMITS.max_reorder_bytes
        assert st_["held_frames"] <= LIMITS.receive_window
        assert st_["reassembly_bytes"] <= LIMITS.max_reassembly_bytes + LIMITS.max_message_size
    assert bystander.stats == bystander_before
