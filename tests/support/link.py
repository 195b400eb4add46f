"""Two engines joined by a scripted, faulty link with a fake clock (h11's ConnectionPair,
aioquic's transfer/drop): the level at which most of relio's correctness is tested, with no sockets
at all.

:class:`Peer` is a small application on one engine: it sends numbered messages and requests,
answers every request it receives (chained requests ask for further answers), and records what it
delivered and what it was told about its own messages. :class:`LinkedPair` moves batches between two
peers through a :class:`Faults` policy (drop, duplicate, delay/reorder), can cut the link and resume
it, and runs every engine timer on time. :data:`SMALL` is a configuration whose limits short runs
reach; :func:`check_bounds` (at any moment) and :func:`check_guarantees` (once the link healed) are
what every run must satisfy.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from relio.config import Config
from relio.engine._engine import Engine
from relio.engine._events import (
    MessageExpired,
    MessageReceived,
    MessagesDelivered,
    ResponseReceived,
    SessionClosed,
)
from relio.engine.errors import QueueFull


@dataclass
class Faults:
    """What the link does to each batch while it is up."""

    drop: float = 0.0         # probability a batch is lost
    duplicate: float = 0.0    # probability a batch is delivered twice
    delay: float = 0.001      # base one-way delay (seconds)
    jitter: float = 0.0       # extra random delay, up to this much (reorders batches)


@dataclass
class Peer:
    name: str
    engine: Engine
    sent: list = field(default_factory=list)        # msg ids in the order they were sent
    delivered: list = field(default_factory=list)   # msg ids received, in delivery order
    payloads: dict = field(default_factory=dict)    # msg id -> payload we sent
    received_payloads: list = field(default_factory=list)
    acked: dict = field(default_factory=dict)       # our msg id -> times reported delivered
    expired: dict = field(default_factory=dict)     # our msg id -> reason
    handled: dict = field(default_factory=dict)     # request payload -> times our handler ran
    responses: dict = field(default_factory=dict)   # our request id -> response payload
    closed: list = field(default_factory=list)
    backlog: list = field(default_factory=list)     # replies waiting for outbox room

    def send(self, payload: bytes, now: float, request: bool = False) -> bytes:
        mid = self.engine.send(payload, now, request=request)
        self.sent.append(mid)
        self.payloads[mid] = payload
        return mid

    def _reply(self, request_id: bytes, payload: bytes, now: float, chained: bool) -> None:
        mid = self.engine.reply(request_id, payload, now, request=chained)
        self.sent.append(mid)
        self.payloads[mid] = payload

    def handle_events(self, now: float) -> None:
        while (ev := self.engine.next_event()) is not None:
            if isinstance(ev, MessageReceived | ResponseReceived):
                self.delivered.append(ev.msg_id)
                self.received_payloads.append(ev.payload)
                if isinstance(ev, ResponseReceived):
                    self.responses[ev.reply_to] = ev.payload
                if ev.request:
                    # The handler: count runs, answer; "chain:k" asks for k more answers.
                    self.handled[ev.msg_id] = self.handled.get(ev.msg_id, 0) + 1
                    hops = _chain_hops(ev.payload)
                    answer = b"chain:%d" % (hops - 1) if hops > 1 else b"re:" + ev.payload[:32]
                    self.backlog.append((ev.msg_id, answer, hops > 1))
            elif isinstance(ev, MessagesDelivered):
                for mid in ev.msg_ids:
                    self.acked[mid] = self.acked.get(mid, 0) + 1
            elif isinstance(ev, MessageExpired):
                self.expired[ev.msg_id] = ev.reason
            elif isinstance(ev, SessionClosed):
                self.closed.append(ev.reason)
        self._drain_backlog(now)

    def _drain_backlog(self, now: float) -> None:
        # Answers wait here while the outbox is full (the asyncio layer awaits room instead).
        while self.backlog and not self.engine.closed:
            request_id, payload, chained = self.backlog[0]
            try:
                self._reply(request_id, payload, now, chained)
            except QueueFull:
                return
            self.backlog.pop(0)


def _chain_hops(payload: bytes) -> int:
    if payload.startswith(b"chain:"):
        return int(payload[6:7])
    return 1


class LinkedPair:
    """Peers ``a`` and ``b`` on one session, a fake clock and a faulty link between them."""

    def __init__(self, config=None, config_b=None, faults: Faults | None = None, seed: int = 0):
        self.now = 0.0
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.a = Peer("a", Engine(config, now=0.0, id_prefix=b"\x0a" * 8))
        self.b = Peer("b", Engine(config_b or config, now=0.0, id_prefix=b"\x0b" * 8))
        self.up = True
        self._in_flight: list = []   # heap of (arrival, order, destination name, batch)
        self._order = 0
        self.batches_sent = 0
        self.batches_dropped = 0

    def peers(self):
        return (self.a, self.b)

    def other(self, peer: Peer) -> Peer:
        return self.b if peer is self.a else self.a

    # --- moving data -----------------------------------------------------------------------

    def flush(self) -> None:
        """Take every batch both engines want to send and put it on the link."""
        for peer in self.peers():
            for batch in peer.engine.data_to_send(self.now):
                self.batches_sent += 1
                if not self.up:
                    continue
                if self.rng.random() < self.faults.drop:
                    self.batches_dropped += 1
                    continue
                copies = 2 if self.rng.random() < self.faults.duplicate else 1
                for _ in range(copies):
                    arrival = self.now + self.faults.delay + self.rng.random() * self.faults.jitter
                    self._order += 1
                    heapq.heappush(self._in_flight,
                                   (arrival, self._order, self.other(peer).name, batch))

    def step(self, dt: float) -> None:
        """Advance the clock by up to ``dt``, delivering batches and firing timers on the way."""
        end = self.now + dt
        while True:
            self.flush()
            next_arrival = self._in_flight[0][0] if self._in_flight else float("inf")
            timers = [t for p in self.peers() if (t := p.engine.get_timer()) is not None]
            next_timer = min(timers, default=float("inf"))
            t = min(next_arrival, next_timer)
            if t > end:
                break
            self.now = max(self.now, t)
            while self._in_flight and self._in_flight[0][0] <= self.now:
                _, _, dest, batch = heapq.heappop(self._in_flight)
                peer = self.a if dest == "a" else self.b
                peer.engine.receive(batch, self.now)
                peer.handle_events(self.now)
            for peer in self.peers():
                t = peer.engine.get_timer()
                if t is not None and t <= self.now:
                    peer.engine.handle_timer(self.now)
                peer.handle_events(self.now)
        self.now = end
        for peer in self.peers():
            peer.handle_events(self.now)
        self.flush()

    def cut(self) -> None:
        """The link dies: batches on the wire are lost and both engines are told."""
        self.up = False
        self._in_flight.clear()
        for peer in self.peers():
            peer.engine.disconnect(self.now)

    def resume(self) -> None:
        """A new link: the peers exchange receive states and carry on."""
        state_a = self.a.engine.resume_state()
        state_b = self.b.engine.resume_state()
        self.up = True
        self.a.engine.resume(state_b, self.now)
        self.b.engine.resume(state_a, self.now)
        for peer in self.peers():
            peer.handle_events(self.now)

    def settle(self, max_time: float = 600.0) -> None:
        """Heal the link and run until nothing is pending (bounded by max_time of fake clock)."""
        self.faults = Faults(delay=self.faults.delay)
        if not self.up:
            self.resume()
        deadline = self.now + max_time
        while self.now < deadline:
            self.step(0.05)
            if self.quiet():
                return

    def quiet(self) -> bool:
        if self._in_flight:
            return False
        for peer in self.peers():
            st = peer.engine.stats
            if st["outbox_messages"] or peer.backlog or st["held_frames"]:
                return False
        return True


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


def check_bounds(link: LinkedPair) -> None:
    for peer in link.peers():
        st_ = peer.engine.stats
        assert st_["outbox_messages"] <= SMALL.max_outbox_messages
        assert st_["in_flight_frames"] <= SMALL.max_inflight_messages
        assert st_["held_bytes"] <= SMALL.max_reorder_bytes
        assert st_["reassembly_bytes"] <= SMALL.max_reassembly_bytes + SMALL.max_message_size
        assert st_["cached_responses"] <= SMALL.response_cache_entries


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
