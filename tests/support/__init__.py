"""Helpers shared by the test modules (and by bench/): nothing here is collected as a test.

* :mod:`tests.support.waiting`: ``until`` / ``poll``, bounded polling instead of fixed sleeps.
* :mod:`tests.support.processes`: :class:`ManagedProcess` (launch, readiness, signals, reaping) and
  ``free_port``; :mod:`tests.support.redis_server` (a real redis-server) and
  :mod:`tests.support.nodes` (Socket.IO server nodes running :mod:`tests.support.multinode_app`)
  build on it.
* :mod:`tests.support.balancer`: a round-robin TCP balancer for multi-node tests.
* :mod:`tests.support.servers`: uvicorn ASGI servers inside the test's event loop.
* :mod:`tests.support.link`: two engines over a scripted faulty link with a fake clock.
* :mod:`tests.support.frames`: relio frames written field by field (any flags, any lengths).
* :mod:`tests.support.delivery`: the event an engine makes for a message another engine sent.
* :mod:`tests.support.hostile`: a hand-driven engine.io/socket.io/relio peer.
* :mod:`tests.support.baseline`: python-socketio baselines: what it lost is recorded as
  information (printed, attached to the report), never asserted.

The TCP fault proxy the fault tests use is the package's own, :mod:`relio.demo.faultproxy` (the
demo runs on it too).
"""
