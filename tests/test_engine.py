"""The engine, one behaviour at a time, with batches moved by hand between two engines."""

import pytest

from relio.engine import _frames as F
from relio.engine._engine import Engine
from relio.engine._events import (MessageExpired, MessageReceived, MessagesDelivered, ResponseReceived,
                           SessionClosed)
from relio.config import Config
from relio.engine.errors import LocalProtocolError, QueueFull, RemoteProtocolError


def pair(**overrides):
    config = Config(**overrides) if overrides else None
    return (Engine(config, id_prefix=b"A" * 8), Engine(config, id_prefix=b"B" * 8))


def pump(src, dst, now=0.0):
    """Move every batch src wants to send into dst; return how many batches moved."""
    batches = src.data_to_send(now)
    for b in batches:
        dst.receive(b, now)
    return len(batches)


def settle(a, b, now=0.0, rounds=50):
    for _ in range(rounds):
        # Delayed acks go out when their timer fires.
        for e in (a, b):
            t = e.get_timer()
            if t is not None and t <= now + 1:
                e.handle_timer(now + 1)
        if not (pump(a, b, now) + pump(b, a, now)):
            return
    raise AssertionError("did not settle")


def received(engine):
    return [e for e in engine.events() if isinstance(e, (MessageReceived, ResponseReceived))]


def delivered_ids(events):
    return [m for e in events if isinstance(e, MessagesDelivered) for m in e.msg_ids]


def test_messages_arrive_in_order_and_are_acknowledged():
    a, b = pair()
    ids = [a.send(b"m%d" % i, 0.0) for i in range(5)]
    assert len(set(ids)) == 5 and all(len(i) == 16 for i in ids)
    assert pump(a, b) == 1  # five small messages coalesce into one batch
    got = b.events()
    assert [e.payload for e in got] == [b"m%d" % i for i in range(5)]
    assert [e.msg_id for e in got] == ids
    assert a.outbox_messages == 5
    settle(a, b)
    assert sorted(delivered_ids(a.events())) == sorted(ids)
    assert a.outbox_messages == 0 and a.stats["in_flight_frames"] == 0


def test_ack_is_delayed_then_piggybacked_on_data():
    a, b = pair()
    a.send(b"x", 0.0)
    pump(a, b)
    assert b.data_to_send(0.0) == []          # nothing to say yet: the ack may wait
    assert b.get_timer() == pytest.approx(Config().max_ack_delay)
    b.send(b"y", 0.001)
    [batch] = b.data_to_send(0.001)           # the ack rides along with b's data
    frames = F.decode_batch(batch)
    assert isinstance(frames[0], F.AckFrame) and frames[0].cumulative == 1
    assert isinstance(frames[1], F.DataFrame)


def test_request_reply_and_chained_reply():
    a, b = pair()
    rid = a.send(b"question", 0.0, request=True)
    pump(a, b)
    [req] = received(b)
    assert req.request and req.msg_id == rid
    # b's answer asks a question back (a chained reply).
    resp_id = b.reply(rid, b"answer?", 0.0, request=True)
    pump(b, a)
    [resp] = received(a)
    assert isinstance(resp, ResponseReceived)
    assert (resp.reply_to, resp.payload, resp.request) == (rid, b"answer?", True)
    a.reply(resp_id, b"final", 0.0)
    pump(a, b)
    [last] = received(b)
    assert (last.reply_to, last.payload, last.request) == (resp_id, b"final", False)
    settle(a, b)
    assert a.outbox_messages == b.outbox_messages == 0
    assert a.stats["cached_responses"] == b.stats["cached_responses"] == 0


def test_reply_misuse_is_a_local_error():
    a, b = pair()
    rid = a.send(b"q", 0.0, request=True)
    with pytest.raises(LocalProtocolError):
        b.reply(rid, b"not delivered yet", 0.0)
    pump(a, b)
    b.reply(rid, b"once", 0.0)
    with pytest.raises(LocalProtocolError):
        b.reply(rid, b"twice", 0.0)
    mid = a.send(b"plain", 0.0)
    pump(a, b)
    with pytest.raises(LocalProtocolError):
        b.reply(mid, b"not a request", 0.0)


def test_big_message_travels_in_chunks():
    a, b = pair(chunk_size=1000, coalesce_bytes=2048, max_batch_size=4096)
    payload = bytes(range(256)) * 40 + b"tail"          # 10,244 bytes: 11 chunks
    mid = a.send(payload, 0.0)
    a.send(b"after", 0.0)
    batches = a.data_to_send(0.0)
    assert len(batches) >= 6 and all(len(x) <= 4096 for x in batches)
    for x in batches:
        b.receive(x, 0.0)
    got = received(b)
    assert [(e.msg_id, e.payload) for e in got][0] == (mid, payload)
    assert got[1].payload == b"after"
    settle(a, b)
    assert delivered_ids(a.events()) and a.outbox_messages == 0


def test_outbox_is_bounded_and_says_so():
    a, _ = pair(max_outbox_messages=3, max_outbox_bytes=100)
    for i in range(3):
        a.send(b"x", 0.0)
    assert not a.has_room
    with pytest.raises(QueueFull):
        a.send(b"x", 0.0)
    a2, _ = pair(max_outbox_bytes=100)
    a2.send(b"x" * 60, 0.0)
    with pytest.raises(QueueFull):
        a2.send(b"x" * 60, 0.0)
    assert a2.outbox_messages == 1


def test_too_big_message_is_refused_locally():
    a, _ = pair(max_message_size=10)
    with pytest.raises(LocalProtocolError, match="exceeds max_message_size"):
        a.send(b"x" * 11, 0.0)


def test_duplicated_batches_are_dropped():
    a, b = pair()
    a.send(b"once", 0.0)
    [batch] = a.data_to_send(0.0)
    b.receive(batch, 0.0)
    b.receive(batch, 0.0)
    assert [e.payload for e in received(b)] == [b"once"]
    assert b.stats["duplicates_dropped"] == 1


def test_reordered_batches_are_held_then_delivered_in_order():
    a, b = pair(coalesce_bytes=64)
    for i in range(4):
        a.send(b"%d" % i + b"." * 40, 0.0)
    batches = a.data_to_send(0.0)
    assert len(batches) == 4
    for x in reversed(batches):
        b.receive(x, 0.0)
    assert [e.payload[:1] for e in received(b)] == [b"0", b"1", b"2", b"3"]
    assert b.stats["held_frames"] == 0


def test_lost_batch_is_retransmitted_on_timeout():
    a, b = pair()
    a.send(b"lost", 0.0)
    assert len(a.data_to_send(0.0)) == 1       # dropped on the floor
    t = a.get_timer()
    assert t == pytest.approx(Config().initial_rto)
    a.handle_timer(t)
    pump(a, b, t)
    assert [e.payload for e in received(b)] == [b"lost"]
    assert a.stats["frames_retransmitted"] == 1
    # The next timeout backs off.
    a.send(b"lost again", t)
    a.data_to_send(t)


def test_gap_triggers_fast_retransmit_before_timeout():
    a, b = pair(coalesce_bytes=64)
    for i in range(6):
        a.send(b"%d" % i + b"." * 40, 0.0)
    batches = a.data_to_send(0.0)
    for x in batches[:1] + batches[2:]:        # batch 1 lost
        b.receive(x, 0.0)
    pump(b, a, 0.5)                            # b acks at once: it saw a gap
    [rtx] = a.data_to_send(0.5)                # well before the 1 s RTO
    frames = [f for f in F.decode_batch(rtx) if isinstance(f, F.DataFrame)]
    assert [f.seq for f in frames] == [1]
    b.receive(rtx, 0.5)
    assert [e.payload[:1] for e in received(b)] == [b"%d" % i for i in range(6)]


def test_disconnect_keeps_everything_and_resume_sends_exactly_what_is_missing():
    a, b = pair(coalesce_bytes=64)
    for i in range(4):
        a.send(b"%d" % i + b"." * 40, 0.0)
    batches = a.data_to_send(0.0)
    b.receive(batches[0], 0.0)
    b.receive(batches[2], 0.0)                 # 1 and 3 lost with the link
    a.disconnect(0.1)
    b.disconnect(0.1)
    a.send(b"while down", 0.2)                 # queued, not refused
    assert a.data_to_send(0.2) == []
    a.resume(b.resume_state(), 0.3)
    b.resume(a.resume_state(), 0.3)
    out = a.data_to_send(0.3)
    seqs = [f.seq for x in out for f in F.decode_batch(x) if isinstance(f, F.DataFrame)]
    assert seqs == [1, 3, 4]                   # the two gaps, then the new message
    for x in out:
        b.receive(x, 0.3)
    payloads = [e.payload[:2] for e in received(b)]
    assert payloads == [b"0.", b"1.", b"2.", b"3.", b"wh"]


def test_retried_request_runs_once_and_gets_the_cached_response():
    a, b = pair()
    rid = a.send(b"charge card", 0.0, request=True)
    pump(a, b)
    assert len(received(b)) == 1
    b.handle_timer(0.5)
    pump(b, a, 0.5)                            # b's delayed ACK: a has its request delivered
    assert delivered_ids(a.events()) == [rid]
    b.reply(rid, b"charged", 0.5)
    b.data_to_send(0.5)                        # the response is lost in a dying link
    # a retries the request under a new sequence number with the same id (its caller timed out).
    a.send(b"charge card", 2.0, request=True, msg_id=rid)
    pump(a, b, 2.0)
    assert received(b) == []                   # the handler does not run again
    assert b.stats["responses_resent"] == 1
    # The response is still pending: it is retransmitted at once (under its own seq), not queued
    # a second time under the same id.
    assert b.outbox_messages == 1
    assert pump(b, a, 2.0) == 1
    responses = [e for e in received(a) if isinstance(e, ResponseReceived)]
    assert [(r.reply_to, r.payload) for r in responses] == [(rid, b"charged")]
    assert b.stats["frames_retransmitted"] == 1
    settle(a, b, 2.0)
    assert received(a) == [] and a.outbox_messages == b.outbox_messages == 0


def test_send_with_an_id_still_pending_queues_nothing():
    a, b = pair(chunk_size=64)
    payload = b"x" * 150                       # three chunks
    rid = a.send(payload, 0.0, request=True)
    assert a.send(payload, 0.0, request=True, msg_id=rid) == rid
    assert a.send(b"other payload", 0.0, msg_id=rid) == rid     # the pending message stands
    assert a.outbox_messages == 1 and a.stats["messages_sent"] == 1
    pump(a, b)
    assert a.send(payload, 0.0, request=True, msg_id=rid) == rid  # in flight: still a no-op
    settle(a, b)
    assert [(e.msg_id, e.payload) for e in received(b)] == [(rid, payload)]
    assert delivered_ids(a.events()) == [rid]
    # Delivered, so no longer pending: a new copy goes out, and the peer drops it by id.
    assert a.send(payload, 1.0, request=True, msg_id=rid) == rid
    assert a.outbox_messages == 1
    settle(a, b, 1.0)
    assert received(b) == [] and b.stats["duplicates_dropped"] >= 1
    assert delivered_ids(a.events()) == [rid]
    # An id made by this engine later never collides with one given explicitly.
    ahead = b"A" * 8 + (1000).to_bytes(8, "big")
    assert a.send(b"explicit", 2.0, msg_id=ahead) == ahead
    assert a.send(b"made", 2.0) == b"A" * 8 + (1001).to_bytes(8, "big")


def test_pending_ids_are_found_whatever_their_state():
    # The id index is made on the first send with an explicit id: from messages in flight (some
    # acknowledged selectively), the one being framed, and those queued.
    a, b = pair(chunk_size=64, max_inflight_messages=6)
    ids = [a.send(b"%d" % i * 10, 0.0) for i in range(3)]          # one frame each
    big = a.send(b"b" * 200, 0.0)                                  # four chunks
    queued = a.send(b"q", 0.0)
    batches = a.data_to_send(0.0)                                  # seqs 0-5: big framed in part
    frames = [f for x in batches for f in F.decode_batch(x)]
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4, 5]
    a.receive(F.encode_batch([F.encode_ack(0, [(1, 2)])]), 0.1)    # ids[1] delivered
    assert delivered_ids(a.events()) == [ids[1]]
    for msg_id in (ids[0], ids[2], big, queued):
        assert a.send(b"again", 0.2, msg_id=msg_id) == msg_id
    assert a.outbox_messages == 4
    assert a.send(b"again", 0.2, msg_id=ids[1]) == ids[1]          # delivered: a new copy
    assert a.outbox_messages == 5
    for x in batches:
        b.receive(x, 0.3)
    settle(a, b, 0.3)
    assert sorted(delivered_ids(a.events())) == sorted([ids[0], ids[2], big, queued, ids[1]])
    assert [e.msg_id for e in received(b)] == ids + [big, queued]  # the copy dropped by id
    assert a.outbox_messages == 0
    assert a.send(b"x", 1.0, msg_id=big) == big and a.outbox_messages == 1


def test_send_with_an_id_still_pending_is_not_refused_when_the_outbox_is_full():
    a, _ = pair(max_outbox_messages=2)
    first = a.send(b"1", 0.0)
    a.send(b"2", 0.0)
    with pytest.raises(QueueFull):
        a.send(b"3", 0.0)
    assert a.send(b"1", 0.0, msg_id=first) == first
    with pytest.raises(LocalProtocolError):
        a.send(b"1", 0.0, msg_id=b"short")


def test_response_cache_entry_is_released_when_acknowledged():
    a, b = pair()
    rid = a.send(b"q", 0.0, request=True)
    pump(a, b)
    assert len(received(b)) == 1
    b.reply(rid, b"r", 0.0)
    assert b.stats["cached_responses"] == 1
    settle(a, b)
    assert b.stats["cached_responses"] == 0
    # Its id is still remembered: a late retry is dropped, not re-run.
    a.send(b"q", 1.0, request=True, msg_id=rid)
    settle(a, b, 1.0)
    assert received(b) == []


def test_close_expires_everything_and_tells_the_peer():
    a, b = pair()
    ids = [a.send(b"x", 0.0) for _ in range(3)]
    a.close("shutting down")
    ev = a.events()
    assert [e.msg_id for e in ev if isinstance(e, MessageExpired)] == ids
    assert isinstance(ev[-1], SessionClosed) and ev[-1].reason == "shutting down"
    pump(a, b)
    [closed] = b.events()
    assert closed == SessionClosed("closed by peer: shutting down", True)
    with pytest.raises(LocalProtocolError):
        a.send(b"late", 0.0)


def test_delivery_timeout_closes_the_session_with_expiry():
    a, _ = pair(delivery_timeout=5.0)
    mid = a.send(b"never acked", 0.0)
    a.data_to_send(0.0)
    assert a.get_timer() <= 5.0
    a.handle_timer(1.0)
    a.handle_timer(5.0)
    ev = a.events()
    assert MessageExpired(mid, "delivery timeout") in ev
    assert a.closed and a.close_reason == "delivery timeout"


def test_ack_for_unsent_frames_closes_the_session():
    a, b = pair()
    a.send(b"x", 0.0)
    with pytest.raises(RemoteProtocolError, match="never sent"):
        a.receive(F.encode_batch([F.encode_ack(5)]), 0.0)
    assert a.closed
    ev = a.events()
    assert any(isinstance(e, MessageExpired) for e in ev)
    assert isinstance(ev[-1], SessionClosed) and "protocol error" in ev[-1].reason
    [close] = a.data_to_send(0.0)              # the peer is told why
    frames = F.decode_batch(close)
    assert [type(f) for f in frames] == [F.AckFrame, F.CloseFrame]   # a last ACK, then CLOSE


def test_sequence_beyond_window_is_a_protocol_error():
    _, b = pair(receive_window=64, max_inflight_messages=64)
    bad = F.encode_batch([F.encode_data(64, b"i" * 16, b"x")])
    with pytest.raises(RemoteProtocolError, match="beyond the receive window"):
        b.receive(bad, 0.0)


def test_resume_from_a_peer_that_lost_acknowledged_state_is_refused():
    a, b = pair()
    a.send(b"x", 0.0)
    settle(a, b)
    stale = Engine(None, id_prefix=b"C" * 8).resume_state()   # a peer that knows nothing
    a.disconnect(1.0)
    with pytest.raises(RemoteProtocolError, match="peer lost acknowledged frames"):
        a.resume(stale, 1.0)
    assert a.closed


def test_reorder_buffer_is_bounded_and_refused_frames_are_not_acknowledged():
    a, b = pair(coalesce_bytes=64, max_reorder_bytes=100)
    for i in range(5):
        a.send(b"%d" % i + b"." * 59, 0.0)
    batches = a.data_to_send(0.0)
    for x in batches[1:]:
        b.receive(x, 0.0)                       # 0 missing: 1 is held, 2..4 exceed the cap
    assert b.stats["held_frames"] == 1 and b.stats["frames_refused"] == 3
    assert F.decode_batch(F.encode_batch([b.resume_state()]))[0].ranges == [(1, 2)]


def test_message_between_chunks_of_another_is_a_protocol_error():
    _, b = pair(chunk_size=4, coalesce_bytes=2048, max_batch_size=4096)
    first = F.encode_data(0, b"c" * 16, b"abcd", flags=F.CHUNK, total=8, offset=0)
    intruder = F.encode_data(1, b"i" * 16, b"x")
    with pytest.raises(RemoteProtocolError, match="interrupts the chunks"):
        b.receive(F.encode_batch([first, intruder]), 0.0)


def test_resume_sends_again_only_the_chunks_the_peer_lacks():
    a, b = pair(chunk_size=100, coalesce_bytes=64, max_batch_size=4096)  # a batch per chunk
    payload = bytes(range(250)) * 4                      # 1,000 bytes: 10 chunks
    a.send(payload, 0.0)
    batches = a.data_to_send(0.0)
    assert len(batches) == 10
    for x in batches[:6]:
        b.receive(x, 0.0)                               # the link dies after chunk 5
    assert received(b) == []
    a.disconnect(0.1)
    b.disconnect(0.1)
    a.resume(b.resume_state(), 0.2)
    b.resume(a.resume_state(), 0.2)
    again = a.data_to_send(0.2)
    chunks = [f for x in again for f in F.decode_batch(x) if isinstance(f, F.DataFrame)]
    assert [(f.seq, f.offset) for f in chunks] == [(s, s * 100) for s in range(6, 10)]
    for x in again:
        b.receive(x, 0.2)
    [msg] = received(b)
    assert msg.payload == payload


def test_unanswered_requests_are_flow_controlled_and_declining_frees_them():
    a, b = pair(max_pending_requests=3)
    ids = [a.send(b"q%d" % i, 0.0, request=True) for i in range(5)]
    pump(a, b)
    got = [e for e in b.events() if isinstance(e, MessageReceived)]
    assert [e.msg_id for e in got] == ids[:3]              # the 4th is refused, not acknowledged
    assert b.stats["frames_refused"] >= 1 and b.awaiting_reply == frozenset(ids[:3])
    b.reply(ids[0], b"r0", 0.1)
    b.decline(ids[1])                                      # no handler: left unanswered
    assert b.awaiting_reply == frozenset({ids[2]})
    now = 0.1
    for _ in range(40):                                    # the sender retransmits the rest
        now += 0.5
        for e in (a, b):
            e.handle_timer(now)
        pump(a, b, now)
        pump(b, a, now)
        if len(b.awaiting_reply) == 3:
            break
    later = [e.msg_id for e in b.events() if isinstance(e, MessageReceived)]
    assert later == ids[3:]                                # in order, once each
    assert b.awaiting_reply == frozenset({ids[2], *ids[3:]})
    with pytest.raises(LocalProtocolError):
        b.reply(ids[1], b"too late", now)                  # declined: cannot be answered now


def test_a_payload_given_in_parts_travels_as_the_parts_joined():
    a, b = pair(chunk_size=100, coalesce_bytes=64, max_batch_size=4096)  # a batch per chunk
    parts = (b"\x02", b"head", bytearray(b"mutable"), b"", bytes(range(250)) * 3, b"tail")
    whole = b"".join(parts)
    a.send(parts, 0.0)
    parts[2][0:1] = b"M"                 # a mutable part is copied at send, as a payload is
    a.send((b"one part",), 0.0)
    a.send((), 0.0)
    batches = a.data_to_send(0.0)
    for x in batches[:4]:                # chunks cut across the parts' boundaries; some lost
        b.receive(x, 0.0)
    for x in batches[6:]:
        b.receive(x, 0.0)
    settle(a, b, now=2.0)
    assert [e.payload for e in received(b)] == [whole, b"one part", b""]
    assert a.outbox_messages == 0 and a.stats["frames_retransmitted"] >= 2


def test_a_reply_or_a_snapshot_of_a_payload_in_parts_holds_it_joined():
    a, b = pair(chunk_size=100, coalesce_bytes=64, max_batch_size=4096)
    request = a.send(b"question", 0.0, request=True)
    settle(a, b)
    [asked] = received(b)
    parts = (b"answer:", bytes(range(256)) * 2)
    b.reply(asked.msg_id, parts, 0.0)
    c = Engine.restore(b.snapshot(0.0), Config(chunk_size=100, coalesce_bytes=64,
                                                max_batch_size=4096))
    c.resume(a.resume_state(), 0.0)
    a.disconnect(0.0)
    a.resume(c.resume_state(), 0.0)
    settle(c, a)
    [reply] = received(a)
    assert reply.reply_to == request and reply.payload == b"".join(parts)
