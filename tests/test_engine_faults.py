"""Two engines over a link that drops, duplicates, reorders, delays and gets cut, driven by
Hypothesis-generated schedules (which shrink to a replayable case when something fails).

Whatever the schedule, once the link heals: every message and every response arrives exactly once and
in order, every request handler ran once, every sender was told its message was delivered, and no
bound was ever exceeded on the way.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relio.config import Config
from relio.engine.errors import QueueFull
from tests.link import Faults, LinkedPair

# Small limits so that chunking, windows, backpressure and caps are all exercised.
SMALL = Config(
    chunk_size=256,
    max_batch_size=2048,
    coalesce_bytes=512,
    max_message_size=4096,
    receive_window=64,
    max_inflight_messages=32,
    max_inflight_bytes=4096,
    max_outbox_messages=40,
    max_outbox_bytes=64 * 1024,
    max_reorder_bytes=2048,
    max_reassemblies=3,
    max_reassembly_bytes=4096,
    ack_every=4,
    max_ack_ranges=4,
    initial_rto=0.2,
    min_rto=0.05,
    max_rto=2.0,
    response_cache_entries=8,
    id_set_capacity=1000,
)

sides = st.sampled_from("ab")
sends = st.tuples(
    st.just("send"), sides,
    st.one_of(st.integers(min_value=0, max_value=60), st.integers(min_value=257, max_value=3000)),
    st.sampled_from(["event", "event", "request", "chain"]),
)
steps = st.tuples(st.just("step"), st.floats(min_value=0.0005, max_value=1.5))
cuts = st.tuples(st.just("cut"), st.floats(min_value=0.0, max_value=3.0))
faults = st.tuples(
    st.just("faults"),
    st.builds(Faults, drop=st.sampled_from([0.0, 0.05, 0.3]),
              duplicate=st.sampled_from([0.0, 0.1, 0.5]),
              delay=st.sampled_from([0.0005, 0.01, 0.05]),
              jitter=st.sampled_from([0.0, 0.02, 0.2])),
)
schedules = st.lists(st.one_of(sends, sends, steps, steps, cuts, faults), max_size=60)


def check_bounds(link: LinkedPair) -> None:
    for peer in link.peers():
        st_ = peer.engine.stats
        assert st_["outbox_messages"] <= SMALL.max_outbox_messages
        assert st_["in_flight_frames"] <= SMALL.max_inflight_messages
        assert st_["held_bytes"] <= SMALL.max_reorder_bytes
        assert st_["reassembly_bytes"] <= SMALL.max_reassembly_bytes + SMALL.max_message_size
        assert st_["cached_responses"] <= SMALL.response_cache_entries


def run_schedule(schedule, seed):
    link = LinkedPair(SMALL, seed=seed)
    counter = 0
    for op in schedule:
        if op[0] == "send":
            _, side, size, kind = op
            peer = link.a if side == "a" else link.b
            counter += 1
            body = (b"chain:3" if kind == "chain" else b"%d:" % counter) + b"x" * size
            try:
                peer.send(body, link.now, request=kind != "event")
            except QueueFull:
                pass  # backpressure: the caller is told at once, nothing queued
        elif op[0] == "step":
            link.step(op[1])
        elif op[0] == "cut":
            link.cut()
            link.step(op[1])
            link.resume()
        else:
            link.faults = op[1]
        check_bounds(link)
    link.settle()
    return link


def check_guarantees(link: LinkedPair) -> None:
    assert link.quiet(), "the pair did not settle once the link healed"
    for peer in link.peers():
        other = link.other(peer)
        assert not peer.closed and not peer.expired
        # Exactly once, in order: the receiver's delivery sequence is the sender's send sequence.
        assert other.delivered == peer.sent
        assert other.received_payloads == [peer.payloads[m] for m in peer.sent]
        # Every sender told, once.
        assert set(peer.acked) == set(peer.sent) and set(peer.acked.values()) <= {1}
        # Every request handler ran once, and every request got its response.
        assert set(peer.handled.values()) <= {1}
        assert set(peer.handled) <= set(other.sent)
        assert not peer.backlog
        assert peer.engine.awaiting_reply == frozenset()
        # Nothing is left behind.
        st_ = peer.engine.stats
        assert st_["cached_responses"] == 0 and st_["held_frames"] == 0
        assert st_["reassembly_bytes"] == 0


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules, st.integers(min_value=0, max_value=2**32))
def test_exactly_once_in_order_under_faults(schedule, seed):
    check_guarantees(run_schedule(schedule, seed))


def test_heavy_fault_soak_with_a_fixed_seed():
    """A long deterministic schedule: many messages each way through a bad link with cuts."""
    link = LinkedPair(SMALL, seed=7, faults=Faults(drop=0.2, duplicate=0.2, delay=0.01,
                                                   jitter=0.05))
    sent = 0
    for round_ in range(200):
        for peer in link.peers():
            try:
                peer.send(b"%d" % round_ + b"y" * (600 if round_ % 17 == 0 else 10), link.now,
                          request=round_ % 5 == 0)
                sent += 1
            except QueueFull:
                pass
        link.step(0.02)
        if round_ % 40 == 39:
            link.cut()
            link.step(0.5)
            link.resume()
        check_bounds(link)
    link.settle()
    check_guarantees(link)
    assert sent > 300
    assert link.batches_dropped > 0
    assert sum(p.engine.stats["duplicates_dropped"] for p in link.peers()) > 0
    assert sum(p.engine.stats["frames_retransmitted"] for p in link.peers()) > 0
