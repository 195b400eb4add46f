"""Engines of one process share the scratch buffer their batches are built in
(``ext/relio/engine/_engine.pyx``): what one builds is never overwritten by another.

The GIL alone does not make the sharing safe. Building a batch may allocate (the in-flight slot
table grows while the window widens), an allocation may start a garbage collection, and a
collection runs Python code (finalizers, weakref and ``gc.callbacks`` callbacks) where another
engine can run: the same thread's code, or, since the GIL can pass there, another thread's (the
thread-based relio runs a server's and a client's sessions in one process, in many threads).
Here a ``gc.callbacks`` callback plays that other engine, and the collector is tuned so that a
collection lands while engine A's first batch is half built.
"""
from __future__ import annotations

import gc

from relio.config import Config
from relio.engine import _frames
from relio.engine._engine import Engine

MESSAGES = 300      # more than the slot table's first 64 entries: it grows while A builds


def _payloads(batches: list[bytes]) -> list[bytes]:
    return [frame.payload for batch in batches
            for frame in _frames.decode_batch(batch, max_batch_size=1 << 20)
            if isinstance(frame, _frames.DataFrame)]


def _send_with_collections(threshold: int) -> tuple[list[int], list[bytes], list[bytes], bytes]:
    """A builds its batches with the collector at ``threshold`` while B runs in every
    collection; returns how many frames A had built at each collection, and the output."""
    a, b = Engine(Config(), now=0.0), Engine(Config(), now=0.0)
    for k in range(MESSAGES):
        a.send(b'A%05d' % k + b'a' * 200, 0.0)
    b.send(b'B', 0.0)
    at: list[int] = []
    b_batches: list[bytes] = []
    b_states: list[bytes] = []

    def other_engine(phase: str, info: dict) -> None:
        if phase == 'start':
            at.append(a.stats['frames_sent'])
            b_states.append(b.resume_state())
            b_batches.extend(b.data_to_send(0.0))

    send = a.data_to_send
    previous = gc.get_threshold()
    gc.disable()
    try:
        gc.collect()
        spare = [[] for _ in range(200)]     # lists from the free list would not count
        gc.set_threshold(threshold)
        gc.collect()                          # the allocation counts start from zero
        gc.callbacks.append(other_engine)
        try:
            gc.enable()
            batches = send(0.0)
            gc.disable()
        finally:
            gc.callbacks.remove(other_engine)
        del spare
    finally:
        gc.set_threshold(*previous)
        gc.enable()
    return at, batches, b_batches, b_states[0] if b_states else b''


def test_a_batch_being_built_survives_another_engine_running_in_a_collection():
    mid_batch = 0
    for threshold in (1, 2, 3, 4):
        at, batches, b_batches, b_state = _send_with_collections(threshold)
        if not any(at):
            continue                          # no collection while A's batch was half built
        mid_batch += 1
        assert _payloads(batches) == [b'A%05d' % k + b'a' * 200 for k in range(MESSAGES)], at
        assert _payloads(b_batches) == [b'B']
        assert b_state == Engine(Config(), now=0.0).resume_state()
    assert mid_batch, 'no collection landed while a batch was being built'
