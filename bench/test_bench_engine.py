"""The engine's whole per-message path: send, frame, receive, deliver, acknowledge, report delivered.

Measured over batches of 10,000 small messages between two engines, no I/O. The goal (issue 2) is
under 1 µs of bookkeeping per message; ``extra_info["ns_per_message"]`` records it.
"""

from relio._engine import Engine
from relio.config import Config

N = 10_000
PAYLOAD = b"x" * 100


def _round_trip(a: Engine, b: Engine, now: float) -> int:
    send = a.send
    for _ in range(N):
        send(PAYLOAD, now)
    delivered = 0
    while a.outbox_messages:
        for batch in a.data_to_send(now):
            b.receive(batch, now)
        b.events()
        b.handle_timer(now + 1.0)             # the delayed ack is due
        for batch in b.data_to_send(now + 1.0):
            a.receive(batch, now + 1.0)
        delivered += sum(len(e.msg_ids) for e in a.events())
    return delivered


def test_per_message_send_receive_ack(benchmark):
    config = Config(max_outbox_messages=N, max_inflight_messages=N + 1, receive_window=16384)
    a, b = Engine(config), Engine(config)
    clock = [0.0]

    def run():
        clock[0] += 2.0
        return _round_trip(a, b, clock[0])

    benchmark.group = "engine"
    assert benchmark(run) == N
    benchmark.extra_info["messages_per_round"] = N
    benchmark.extra_info["ns_per_message"] = benchmark.stats.stats.mean / N * 1e9
