"""What an engine hands its caller for a message another engine sent: ``engine_delivery(payload)``
gives the ``MessageReceived`` event, made exactly as the asyncio shell gets it (nothing else holds
its payload; chunked and reassembled when bigger than a chunk)."""
from __future__ import annotations

from relio.engine._engine import Engine
from relio.engine._events import MessageReceived


def engine_delivery(payload: bytes | tuple[bytes, ...]) -> MessageReceived:
    """The event a receiving engine makes for ``payload`` sent by another engine."""
    sender, receiver = Engine(now=0.0), Engine(now=0.0)
    sender.send(payload, 0.0)
    for _ in range(10_000):
        for batch in sender.data_to_send(0.0):
            receiver.receive(batch, 0.0)
        for batch in receiver.data_to_send(0.0):
            sender.receive(batch, 0.0)
        event = receiver.next_event()
        while event is not None:
            if type(event) is MessageReceived:
                return event
            event = receiver.next_event()
    raise AssertionError("not delivered")
