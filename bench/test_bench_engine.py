"""The engine's whole per-message path: send, frame, receive, deliver, acknowledge, report delivered.

Measured over batches of 10,000 small (100-byte) messages between two engines, no I/O, against an
idiomatic pure-Python equivalent of the same bookkeeping (dict outbox, struct-packed frames, set of
seen ids, cumulative acks). The goal (issue 2) is under 1 µs per message for the compiled engine;
``extra_info["ns_per_message"]`` records it.
"""

import itertools
import struct

import pytest

from relio.engine._engine import Engine
from relio.config import Config

N = 10_000
PAYLOAD = b"x" * 100


def compiled_pair():
    config = Config(max_outbox_messages=N, max_inflight_messages=N + 1, receive_window=16384)
    a, b = Engine(config), Engine(config)

    def round_trip(now):
        send = a.send
        for _ in range(N):
            send(PAYLOAD, now)
        delivered = 0
        while a.outbox_messages:
            for batch in a.data_to_send(now):
                b.receive(batch, now)
            b.events()
            b.handle_timer(now + 1.0)          # the delayed ack is due
            for batch in b.data_to_send(now + 1.0):
                a.receive(batch, now + 1.0)
            delivered += sum(len(e.msg_ids) for e in a.events())
        return delivered

    return round_trip


class PurePythonPath:
    """The same bookkeeping written as idiomatic Python: the baseline."""

    HEADER = struct.Struct(">Q16sI")

    def __init__(self):
        self.counter = itertools.count()
        self.prefix = b"P" * 8
        self.next_seq = 0
        self.unacked = {}            # seq -> (msg_id, payload)
        self.queue = []
        self.rcv_next = 0
        self.seen = set()
        self.delivered = []

    def send(self, payload):
        msg_id = self.prefix + next(self.counter).to_bytes(8, "big")
        self.queue.append((msg_id, payload))
        return msg_id

    def data_to_send(self):
        parts = []
        for msg_id, payload in self.queue:
            seq = self.next_seq
            self.next_seq += 1
            self.unacked[seq] = (msg_id, payload)
            parts.append(self.HEADER.pack(seq, msg_id, len(payload)))
            parts.append(payload)
        self.queue.clear()
        return b"".join(parts)

    def receive(self, batch):
        pos, size = 0, self.HEADER.size
        while pos < len(batch):
            seq, msg_id, n = self.HEADER.unpack_from(batch, pos)
            pos += size
            payload = batch[pos:pos + n]
            pos += n
            if seq == self.rcv_next and msg_id not in self.seen:
                self.seen.add(msg_id)
                self.rcv_next += 1
                self.delivered.append((msg_id, payload))
        return struct.pack(">Q", self.rcv_next)

    def on_ack(self, ack):
        (cumulative,) = struct.unpack(">Q", ack)
        acked = [self.unacked.pop(s)[0] for s in list(self.unacked) if s < cumulative]
        return acked


def python_pair():
    a, b = PurePythonPath(), PurePythonPath()

    def round_trip(now):
        for _ in range(N):
            a.send(PAYLOAD)
        ack = b.receive(a.data_to_send())
        b.delivered.clear()
        return len(a.on_ack(ack))

    return round_trip


@pytest.mark.parametrize("implementation", ["compiled", "pure_python"])
def test_per_message_send_receive_ack(benchmark, implementation):
    round_trip = compiled_pair() if implementation == "compiled" else python_pair()
    clock = [0.0]

    def run():
        clock[0] += 2.0
        return round_trip(clock[0])

    benchmark.group = "engine per-message path"
    assert benchmark(run) == N
    benchmark.extra_info["messages_per_round"] = N
    benchmark.extra_info["ns_per_message"] = benchmark.stats.stats.mean / N * 1e9
