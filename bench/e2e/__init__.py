"""End-to-end benchmark: relio vs plain python-socketio over real loopback websockets.

    python -m bench.e2e                 # full run (a few minutes), writes bench/results/e2e.{json,png}
    python -m bench.e2e --quick         # about a minute
    python -m bench.e2e --only call_seq,big_50MiB --scale 0.1 --out /tmp/e2e

Every workload runs twice in the same invocation, once with ``socketio`` and once with ``relio``
(the same code, the module swapped; relio with its default guarantees), in alternating order.
For each run the orchestrator (:mod:`bench.e2e.__main__`) starts a server process
(:mod:`bench.e2e.server`: uvicorn ASGI on 127.0.0.1:<ephemeral>, wsproto, no per-message-deflate,
default asyncio loop) and one or more client processes (:mod:`bench.e2e.client`: ``AsyncClient``,
websocket transport). The processes report through JSON lines on stdout (prefixed with
:data:`LINE_PREFIX`); the server also answers ``stats`` / ``quit`` commands on stdin. Every wait
has a timeout and every subprocess is killed in a ``finally``.
"""

#: Marks the machine-readable lines a benchmark subprocess prints on stdout.
LINE_PREFIX = '@@E2E '

#: Library keys as used in the JSON results, and how they are displayed.
LIBS = ('socketio', 'relio')
LIB_LABELS = {'socketio': 'python-socketio', 'relio': 'relio'}
