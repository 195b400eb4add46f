"""Session snapshots: a session moved to bytes and restored into a fresh engine carries on as if
nothing happened; a damaged snapshot is refused like bad peer input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relio.engine._engine import Engine
from relio.engine.errors import LocalProtocolError, QueueFull, RemoteProtocolError
from tests.support.link import SMALL, Faults, LinkedPair, check_guarantees


def busy_pair(seed: int) -> LinkedPair:
    link = LinkedPair(SMALL, seed=seed, faults=Faults(drop=0.2, duplicate=0.1, delay=0.01,
                                                      jitter=0.03))
    for i in range(60):
        for peer in link.peers():
            try:
                size = 900 if i % 7 == 0 else 20
                peer.send(b"%d:" % i + b"z" * size, link.now, request=i % 4 == 0)
            except QueueFull:
                pass
        link.step(0.003)
    return link


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from("ab"))
def test_restored_session_carries_on_exactly_once(seed, side):
    link = busy_pair(seed)
    link.cut()
    peer = link.a if side == "a" else link.b
    before = peer.engine.stats
    data = peer.engine.snapshot(link.now)
    # Another process, another clock: times are stored relative to the snapshot's `now`.
    restored = Engine.restore(data, SMALL, now=link.now)
    assert not restored.connected
    after = restored.stats
    for key in ("outbox_messages", "outbox_bytes", "in_flight_frames", "held_frames",
                "held_bytes", "cached_responses", "messages_sent", "messages_received"):
        assert after[key] == before[key], key
    assert restored.snapshot(link.now) == data
    peer.engine = restored
    link.resume()
    link.settle()
    check_guarantees(link)


def test_closed_session_cannot_be_snapshotted():
    e = Engine()
    e.close("bye")
    with pytest.raises(LocalProtocolError):
        e.snapshot(0.0)


def test_snapshot_size_is_bounded_by_the_limits():
    e = Engine(SMALL)
    for _ in range(SMALL.max_outbox_messages):
        e.send(b"p" * 100, 0.0)
    assert len(e.snapshot(0.0)) < SMALL.max_outbox_messages * (100 + 64) + 1024


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_snapshot_raises_only_remote_protocol_error(data):
    link = busy_pair(data.draw(st.integers(min_value=0, max_value=50)))
    blob = bytearray(link.a.engine.snapshot(link.now))
    mode = data.draw(st.sampled_from(["truncate", "flip"]))
    if mode == "truncate":
        blob = blob[: data.draw(st.integers(min_value=0, max_value=len(blob) - 1))]
    else:
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            i = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
            blob[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    try:
        Engine.restore(bytes(blob), SMALL, now=link.now)
    except RemoteProtocolError as exc:
        assert exc.reason.startswith("snapshot")


def test_snapshot_max_ids_keeps_the_newest_ids_and_still_drops_their_duplicates():
    """``snapshot(now, max_ids)`` (durable saves): the id set shrinks to its newest ``max_ids``
    ids; the restored engine still drops a re-sent copy of a recent message by id."""
    from relio import Config
    a, b = Engine(Config(), now=0.0), Engine(Config(), now=0.0)
    ids = []
    t = 0.0
    while len(ids) < 3000:
        ids += [a.send(b"\x00[1]", t) for _ in range(250)]
        for batch in a.data_to_send(t):
            b.receive(batch, t)
        b.events()
        for batch in b.data_to_send(t):
            a.receive(batch, t)
        a.events()
        t += 0.01
    full, tail = b.snapshot(t), b.snapshot(t, 100)
    assert len(full) - len(tail) == (3000 - 100) * 16
    restored = Engine.restore(tail, Config(), now=t)
    assert Engine.restore(restored.snapshot(t), Config(), now=t).snapshot(t) == \
        restored.snapshot(t)
    # The sender resumes and re-sends the newest message under its own id: dropped.
    a.disconnect(t)
    restored.resume(a.resume_state(), t)
    a.resume(restored.resume_state(), t)
    a.send(b"\x00[1]", t, msg_id=ids[-1])
    for batch in a.data_to_send(t):
        restored.receive(batch, t)
    assert [e for e in restored.events() if type(e).__name__ == "MessageReceived"] == []
    assert restored.duplicates_dropped >= 1


def unpack_records(packed: bytes) -> dict[bytes, bytes]:
    """``snapshot_apart``'s packed records by id (each: 16-byte id, 4-byte big-endian length,
    record), checking that they fill the buffer exactly."""
    records, pos = {}, 0
    while pos < len(packed):
        msg_id, length = packed[pos:pos + 16], int.from_bytes(packed[pos + 16:pos + 20], "big")
        records[msg_id] = packed[pos + 20:pos + 20 + length]
        pos += 20 + length
        assert len(records[msg_id]) == length
    assert pos == len(packed)
    return records


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from("ab"),
       st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=8))
def test_snapshot_apart_with_its_records_restores_what_snapshot_does(seed, side, rounds):
    """Durable saves keep each queued message's record apart and write it once
    (``snapshot_apart``). The caller's store is modelled by a dict that takes each save's added
    records and drops its ``gone``: at every save, the data with that store restores the same
    session as the whole snapshot, and the store holds exactly the pending messages' records."""
    link = busy_pair(seed)
    peer = link.a if side == "a" else link.b
    store: dict[bytes, bytes] = {}
    for i, sends in enumerate(rounds):
        for j in range(sends):
            try:
                peer.send(b"r%d.%d:" % (i, j) + b"q" * (700 if j == 3 else 15), link.now,
                          request=j == 1)
            except QueueFull:
                pass
        link.step(0.004)
        data, added, packed, gone = peer.engine.snapshot_apart(link.now, -1, set(store))
        records = unpack_records(packed)
        assert list(records) == added
        assert not set(added) & set(store) and set(gone) <= set(store)
        store.update(records)
        for msg_id in gone:
            del store[msg_id]
        whole = peer.engine.snapshot(link.now)
        assert set(peer.engine.snapshot_apart(link.now, -1, set())[1]) == set(store)
        assert Engine.restore(data, SMALL, now=link.now, records=dict(store)).snapshot(
            link.now) == whole
        assert len(data) <= len(whole)
    # Carries on exactly once from the last save, like a whole snapshot does.
    link.cut()
    data, _, packed, _ = peer.engine.snapshot_apart(link.now, -1, set())
    peer.engine = Engine.restore(data, SMALL, now=link.now, records=unpack_records(packed))
    link.resume()
    link.settle()
    check_guarantees(link)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_or_missing_message_records_raise_only_remote_protocol_error(data):
    link = busy_pair(data.draw(st.integers(min_value=0, max_value=50)))
    snap, _, packed, _ = link.a.engine.snapshot_apart(link.now, -1, set())
    records = unpack_records(packed)
    if not records:
        return
    msg_id = data.draw(st.sampled_from(sorted(records)))
    mode = data.draw(st.sampled_from(["missing", "truncate", "flip", "extend", "not-bytes"]))
    record = bytearray(records[msg_id])
    if mode == "missing":
        del records[msg_id]
    elif mode == "truncate":
        records[msg_id] = bytes(record[:data.draw(st.integers(0, len(record) - 1))])
    elif mode == "flip":
        i = data.draw(st.integers(min_value=0, max_value=len(record) - 1))
        record[i] ^= data.draw(st.integers(min_value=1, max_value=255))
        records[msg_id] = bytes(record)
    elif mode == "extend":
        records[msg_id] = bytes(record) + b"\0"
    else:
        records[msg_id] = "text"  # type: ignore[assignment]
    try:
        restored = Engine.restore(snap, SMALL, now=link.now, records=records)
    except RemoteProtocolError as exc:
        assert exc.reason.startswith("snapshot")
    else:
        # A flip can make another valid record (a payload byte): it is that message then.
        assert mode == "flip"
        assert restored.outbox_messages == link.a.engine.outbox_messages
