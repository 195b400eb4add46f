"""relio's binding to Socket.IO, free of I/O: what the asyncio (and any other) shell shares.

:mod:`~relio.binding.wire` (the handshake keys, the carrier envelope, reserved event names,
credential redaction), :mod:`~relio.binding.payload` (the application payload codec: JSON plus
binary attachments) and :mod:`~relio.binding.sessions` (the server's table of resumable sessions:
credentials, parking, expiry; the caller passes ``now``); :mod:`~relio.binding.server_shell` and
:mod:`~relio.binding.client_shell` (the await-free halves of the servers and clients, mixed into
both shells' classes, on the common base in :mod:`~relio.binding.shell`).
"""
