"""Benchmarks of the compiled per-message steps around the application's code against the Python
they replaced, on the same data in the same run (ratios printed by bench/conftest.py):

* ``relio.engine._payload.EventEncoder``: an emit's payload (``[event, *args]`` as the tag byte and
  the JSON text) written by the compiled writer, against the Python way: the argument rule, the
  list, the bound standard-library C encoder, the text's bytes, the tag put in front;
* ``relio.engine._payload.EventDecoder``: a received message's list, against the Python way (the
  bound decoder with engineio's per-integer hook, as ``relio.binding.payload.decode`` runs it);
* ``relio.engine._step.run_in_context_copy``: an inline handler (a coroutine function without await
  points) run in a copy of the context, against ``Context.run`` twice and a caught
  ``StopIteration``.

Every round handles ``OPS`` messages (``extra_info``: ``ns_per_op``), keeping no result (kept, the
10,000 decoded lists made the garbage collector's passes the bulk of the time); the results are
checked once, outside the measurement. Nothing here asserts a time.
"""

from __future__ import annotations

import contextvars

import pytest

from relio.binding import payload as payload_codec
from relio.engine._events import MessageReceived
from relio.engine._step import run_in_context_copy

OPS = 10_000
CODEC = payload_codec.JsonCodec()           # python-socketio's default json: the stdlib bound
DATA = [{'i': i, 'user': 'bench-user-0001', 'kind': 'tick', 'tags': ['a', 'b', 'c'],
         'body': 'x' * 30} for i in range(OPS)]
TELEMETRY = [{'t': 1_700_000_000 + i, 'values': list(range(i, i + 10))} for i in range(OPS)]


def run(benchmark, group, function, inputs):
    """Benchmark ``function`` over every input (results dropped); return its results."""
    benchmark.group = group
    benchmark.extra_info["ops"] = OPS

    def each():
        for item in inputs:
            function(item)
    benchmark(each)
    benchmark.extra_info["ns_per_op"] = round(benchmark.stats.stats.mean / OPS * 1e9, 1)
    return [function(item) for item in inputs]


def python_encode_event(event, data):
    return b"\x00" + CODEC.dumps([event, *payload_codec.as_args(data)]).encode()


@pytest.mark.parametrize("payloads", ["small", "ten-integers"])
@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_encode_emit(benchmark, impl, payloads):
    encode = CODEC.encode_event_fast if impl == "compiled" else python_encode_event
    data = DATA if payloads == "small" else TELEMETRY
    out = run(benchmark, f"payload-encode-{payloads}", lambda d: encode('m', d), data)
    assert out == [python_encode_event('m', d) for d in data]


def _received(data):
    return [MessageReceived(i.to_bytes(16, 'big'), payload_codec.encode(['m', d], CODEC), False)
            for i, d in enumerate(data)]


@pytest.mark.parametrize("payloads", ["small", "ten-integers"])
@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_decode_received(benchmark, impl, payloads):
    events = _received(DATA if payloads == "small" else TELEMETRY)
    if impl == "compiled":
        decode = CODEC.decode_event_fast
    else:
        loads = CODEC.loads_after_tag           # the bound decoder, engineio's int hook in it

        def decode(event):
            return loads(event.payload)
    out = run(benchmark, f"payload-decode-{payloads}", decode, events)
    assert out == [payload_codec.decode(e.payload, CODEC) for e in events]


var = contextvars.ContextVar('var', default=0)


async def inline_handler(sid, data):
    var.set(data)
    return data


def python_step(fn, args):
    context = contextvars.copy_context()
    try:
        context.run(context.run(fn, *args).send, None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("suspended")


@pytest.mark.parametrize("impl", ["compiled", "python"])
def test_run_inline_handler(benchmark, impl):
    if impl == "compiled":
        def step(i):
            return run_in_context_copy(inline_handler, ('sid', i), True)
    else:
        def step(i):
            return python_step(inline_handler, ('sid', i))
    out = run(benchmark, "step-inline-handler", step, range(OPS))
    assert out == list(range(OPS)) and var.get() == 0
