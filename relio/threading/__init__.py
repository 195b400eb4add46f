"""The thread-based shell: ``relio.Server``, ``relio.Client``, ``relio.SimpleClient``,
``relio.Manager`` on python-socketio's thread-based classes (``async_mode='threading'``, or
gevent), driving the same engine, channel and session code as :mod:`relio.asyncio`."""
