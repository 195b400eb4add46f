"""The asyncio shell: relio sessions driven by an asyncio loop under python-socketio's API.

:mod:`~relio.asyncio.channel` drives one engine (clock, timer, coalescing flush, futures);
:mod:`~relio.asyncio.dispatch` decides how a handler runs; :mod:`~relio.asyncio.server` and
:mod:`~relio.asyncio.client` are ``relio.AsyncServer`` and ``relio.AsyncClient``.
"""
