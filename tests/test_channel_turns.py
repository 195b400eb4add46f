"""relio.asyncio.channel: a batch of requests is answered in pipelined turns, in order, each once.

A :class:`~relio.asyncio.channel.Channel` (a real engine at each end, an asyncio loop, no
sockets) receives one batch of 64 requests whose handler answers inline. With
``events_per_turn=16`` the first 16 answers are written before the channel returns to the loop
and the rest follow in later turns; with a budget larger than the batch everything is answered in
the one turn (the behaviour before pipelining). Either way every request gets exactly its answer.
"""

from __future__ import annotations

import asyncio

from relio.asyncio.channel import Channel
from relio.binding import payload as payload_codec
from relio.config import Config
from relio.engine import Engine, ResponseReceived

N = 64


class Echo:
    """The layer above the channel: answers each request with its argument, records order."""

    def __init__(self):
        self.handled: list[int] = []

    def on_message(self, channel, msg_id, items, request):
        value = items[1]
        self.handled.append(value)
        channel.run(lambda v: v, (value,), lambda result: channel.answer(msg_id, result), False,
                    msg_id)

    def on_reply(self, channel):
        pass

    def on_undelivered(self, channel, error, seen=False):
        raise AssertionError(error)

    def on_closed(self, channel, reason, by_peer):
        pass


async def _answered_per_turn(config: Config) -> tuple[list[int], list[int], list[int]]:
    """Send N requests in one batch; returns (answers written by the end of each loop turn,
    the order handlers ran in, the answers the requester got in order)."""
    loop = asyncio.get_running_loop()
    written: list[bytes] = []
    echo = Echo()
    server = Channel(Engine(config, now=loop.time()), echo, sid='s', namespace='/')
    server.attach(written.append)
    client = Engine(config, now=loop.time())
    ids = [client.send(payload_codec.encode(['echo', i], server.json), loop.time(), request=True)
           for i in range(N)]
    batches = client.data_to_send(loop.time())
    assert len(batches) == 1                       # one batch holding all the requests
    server.receive(batches[0])
    answers: dict[bytes, int] = {}
    per_turn = []
    for _turn in range(N + 4):                     # bounded: at most one event per turn
        for batch in written:
            client.receive(batch, loop.time())
        written.clear()
        for event in client.events():
            if type(event) is ResponseReceived:
                assert event.reply_to not in answers, 'answered twice'
                answers[event.reply_to] = payload_codec.decode_reply(event.payload, server.json)[0]
        per_turn.append(len(answers))
        if len(answers) == N:
            break
        await asyncio.sleep(0)
    return per_turn, echo.handled, [answers[i] for i in ids]


async def test_a_batch_of_requests_is_answered_in_turns_in_order():
    per_turn, handled, replies = await _answered_per_turn(Config(events_per_turn=16))
    # 16 written before the loop ran anything else, 16 more each turn; the last 16 leave with
    # the ordinary coalesced flush
    assert per_turn == [16, 32, 48, 48, N]
    assert handled == list(range(N))
    assert replies == list(range(N))


async def test_a_budget_larger_than_the_batch_answers_in_one_turn():
    per_turn, handled, replies = await _answered_per_turn(Config(events_per_turn=10_000))
    assert per_turn == [0, N]                      # all of them at the next flush
    assert handled == list(range(N)) and replies == list(range(N))


async def test_other_sessions_run_between_turns():
    """A session's long batch does not hold the loop: another session's handler runs before the
    first session has answered everything."""
    loop = asyncio.get_running_loop()
    config = Config(events_per_turn=16)
    order: list[str] = []

    class Recorder(Echo):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_message(self, channel, msg_id, items, request):
            order.append(self.name)
            super().on_message(channel, msg_id, items, request)

    channels = []
    for name in ('a', 'b'):
        channel = Channel(Engine(config, now=loop.time()), Recorder(name), sid=name)
        channel.attach(lambda batch: None)
        client = Engine(config, now=loop.time())
        for i in range(N):
            client.send(payload_codec.encode(['echo', i], channel.json), loop.time(),
                        request=True)
        channels.append((channel, client.data_to_send(loop.time())[0]))
    loop.call_soon(channels[0][0].receive, channels[0][1])
    loop.call_soon(channels[1][0].receive, channels[1][1])
    for _ in range(N):
        await asyncio.sleep(0)
        if len(order) == 2 * N:
            break
    assert order.count('a') == order.count('b') == N
    assert order.index('b') < N                    # b started before a had finished
