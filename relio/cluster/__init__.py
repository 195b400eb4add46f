"""Several server nodes: sessions and broadcasts shared through Redis (the ``redis`` extra).

:mod:`~relio.cluster.redis_manager` holds :class:`AsyncRedisManager`,
:mod:`~relio.cluster.thread_manager` the thread-based :class:`RedisManager` (its asyncio parts on
:mod:`~relio.cluster.loop`), :mod:`~relio.cluster.node` what both share;
:mod:`~relio.cluster.records` the session records' layout and the Lua scripts that fence their
writes. Nothing here is imported unless a server is given a Redis manager.
"""
