"""End-to-end benchmark: relio vs plain python-socketio over real loopback websockets.

    python -m bench.e2e                 # full run (a few minutes): bench/results/e2e.{json,md,png}
    python -m bench.e2e --quick         # about a minute
    python -m bench.e2e --only call_seq,big_50MiB --scale 0.1 --out /tmp/e2e
    python -m bench.e2e --loop uvloop --json orjson   # optional speedups: e2e-uvloop-orjson.*

Every workload runs twice in the same invocation, once with ``socketio`` and once with ``relio``
(the same code, the module swapped; relio with its default guarantees), in alternating order.
For each run the orchestrator (:mod:`bench.e2e.__main__`) starts a server process
(:mod:`bench.e2e.server`: uvicorn ASGI on 127.0.0.1:<ephemeral>, wsproto, no per-message-deflate,
default asyncio loop) and one or more client processes (:mod:`bench.e2e.client`: ``AsyncClient``,
websocket transport). The processes report through JSON lines on stdout (prefixed with
:data:`LINE_PREFIX`); the server also answers ``stats`` / ``quit`` commands on stdin. Every wait
has a timeout and every subprocess is killed in a ``finally``.

Each throughput result also carries the CPU time both processes spent in the measured phase
(``server_cpu_us`` / ``client_cpu_us``: µs per message). The optional speedups ``--loop uvloop``
and ``--json orjson`` (:mod:`bench.e2e.orjson_json` as python-socketio's ``json=``) apply to both
libraries and are recorded in the results (``args.options``), which then go to separate files.
"""

#: Marks the machine-readable lines a benchmark subprocess prints on stdout.
LINE_PREFIX = '@@E2E '

#: Library keys as used in the JSON results, and how they are displayed.
LIBS = ('socketio', 'relio')
LIB_LABELS = {'socketio': 'python-socketio', 'relio': 'relio'}
