"""Two engines over a link that drops, duplicates, reorders, delays and gets cut, driven by
Hypothesis-generated schedules (which shrink to a replayable case when something fails).

Whatever the schedule, once the link heals: every message and every response arrives exactly once and
in order, every request handler ran once, every sender was told its message was delivered, and no
bound was ever exceeded on the way.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relio.engine.errors import QueueFull
from tests.support.link import SMALL, Faults, LinkedPair, check_bounds, check_guarantees

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
