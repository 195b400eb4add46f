"""What relio's metrics cost on the per-message path: the same workload with metrics off and on.

One server session of a real ``relio.AsyncServer`` (its registry, channel, handler dispatch and
``emit``), driven in process by a client :class:`~relio.engine.Engine` with no sockets, so that the
measurement is the shell's CPU cost per message and nothing else. Each round: 2,048 small
messages up (decoded, dispatched to a plain handler) and 2,048 down (``sio.emit``), every one
acknowledged. ``metrics-on`` attaches :class:`relio.observe.RelioMetrics` with its defaults
(handler durations timed) and scrapes it once per round, as Prometheus would every few seconds
with a much larger number of messages in between; ``metrics-on-untimed`` is the same with
``time_handlers=False``.

The ratio of the means (on / off, same run) is printed at the end of the run (bench/conftest.py)
and stored in ``extra_info``; nothing here asserts a time.
"""

import asyncio
import gc
import random
import time

import pytest

import relio
from relio.asyncio.channel import Channel
from relio.binding import payload as payload_codec
from relio.config import Config
from relio.engine import Engine
from relio.observe import RelioMetrics

N = 2048          # a multiple of Config.ack_every: every message is acknowledged in the round
CONFIG = Config(max_outbox_messages=4 * N, max_inflight_messages=4 * N)


class Bench:
    """A server with one relio session and the client engine at the other end."""

    def __init__(self, loop: asyncio.AbstractEventLoop, metrics: str):
        self.loop = loop
        self.sio = sio = relio.AsyncServer(async_mode='asgi', relio_config=CONFIG)
        self.metrics = None if metrics == 'metrics-off' else RelioMetrics(
            sio, node='bench', time_handlers=metrics == 'metrics-on')
        self.received = 0

        @sio.on('up')
        def up(sid, n):
            self.received += 1

        self.out: list[bytes] = []
        now = loop.time()
        channel = Channel(Engine(CONFIG, now=now), sio, json=sio.relio_codec, sid='s1',
                          namespace='/')
        # what the server does for each session it makes
        channel.runner.on_duration = sio.relio_observer.handler_timer('/')
        self.session = sio.relio_registry.create('s1', '/', channel, 'e1')
        sio.manager.basic_enter_room('s1', '/', None, eio_sid='e1')
        sio.manager.basic_enter_room('s1', '/', 's1', eio_sid='e1')
        channel.attach(self.out.append)
        sio.relio_registry.bind(self.session)
        self.channel = channel
        self.client = Engine(CONFIG, now=now)
        self.payloads = [payload_codec.encode(['up', n], sio.relio_codec) for n in range(N)]

    def to_server(self) -> None:
        for batch in self.client.data_to_send(self.loop.time()):
            self.channel.receive(batch)

    def to_client(self) -> int:
        delivered = 0
        out = self.out[:]
        self.out.clear()
        now = self.loop.time()
        for batch in out:
            self.client.receive(batch, now)
        for _event in self.client.events():
            delivered += 1
        return delivered

    async def round(self) -> int:
        now = self.loop.time()
        for payload in self.payloads:                  # up
            self.client.send(payload, now)
        self.to_server()
        for n in range(N):                             # down
            await self.sio.emit('down', n, to='s1')
        await asyncio.sleep(0)                         # the coalesced flush
        self.to_client()
        self.to_server()                               # the client's acks
        await asyncio.sleep(0)
        self.to_client()                               # the server's acks
        if self.metrics is not None:
            self.metrics.collect()
        return self.received


@pytest.mark.parametrize('metrics', ['metrics-off', 'metrics-on', 'metrics-on-untimed'])
def test_per_message_path(benchmark, metrics):
    loop = asyncio.new_event_loop()
    try:
        bench = loop.run_until_complete(_make(loop, metrics))
        before = bench.received
        loop.run_until_complete(bench.round())
        # every message went through in the round, both ways (the setup is what it claims)
        assert bench.received - before == N
        assert bench.channel.engine.outbox_messages == 0
        assert bench.client.outbox_messages == 0
        benchmark(lambda: loop.run_until_complete(bench.round()))
        benchmark.extra_info['messages_per_round'] = 2 * N
        benchmark.extra_info['ns_per_message'] = benchmark.stats.stats.mean / (2 * N) * 1e9
    finally:
        loop.close()


async def _make(loop, metrics: str) -> Bench:
    return Bench(loop, metrics)


def test_interleaved_ratio(benchmark, capsys):
    """The three variants alternating round by round in one loop (shuffled, each after a full
    garbage collection), so that whatever else the machine does falls on all of them alike; the
    ratios of their minimums and medians go to ``extra_info`` and are printed."""
    loop = asyncio.new_event_loop()
    variants = ('metrics-off', 'metrics-on', 'metrics-on-untimed')
    try:
        benches = {v: loop.run_until_complete(_make(loop, v)) for v in variants}
        times: dict[str, list[float]] = {v: [] for v in variants}

        order = random.Random(2026)

        def one_of_each():
            # in a new order each time, each after a full collection: neither the position in
            # the round nor the garbage left by the variant before falls on one variant only
            for variant in order.sample(variants, len(variants)):
                gc.collect()
                start = time.perf_counter()
                loop.run_until_complete(benches[variant].round())
                times[variant].append(time.perf_counter() - start)

        benchmark.pedantic(one_of_each, rounds=100, warmup_rounds=3)
        off = sorted(times['metrics-off'])
        for variant in variants[1:]:
            t = sorted(times[variant])
            benchmark.extra_info[f'{variant}/off min'] = t[0] / off[0]
            benchmark.extra_info[f'{variant}/off median'] = t[len(t) // 2] / off[len(off) // 2]
        benchmark.extra_info['ns_per_message_off'] = off[0] / (2 * N) * 1e9
        with capsys.disabled():
            print('\ninterleaved, ratio to metrics-off:',
                  {k: round(v, 3) for k, v in benchmark.extra_info.items()})
    finally:
        loop.close()
