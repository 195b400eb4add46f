"""What relio's shell mixins for servers and clients have in common: :class:`Shell`.

:class:`~relio.binding.server_shell.ServerShell` and
:class:`~relio.binding.client_shell.ClientShell` derive from it. It owns relio's part of the
constructor of any python-socketio server or client (the config, the application payload codec,
whether the serializer is binary, the reserved event names, credential redaction) and names the
python-socketio attributes the mixins read.
"""

from __future__ import annotations

import contextlib
from typing import Any

from relio.binding import payload as payload_codec
from relio.binding import wire
from relio.config import DEFAULT_CONFIG, Config


class Shell:
    """The base of relio's await-free mixins; mixed in before a python-socketio server or
    client class."""

    # python-socketio's (the server or client class this is mixed into)
    eio: Any
    logger: Any
    packet_class: Any
    reserved_events: list[str]
    handlers: Any
    namespace_handlers: Any
    namespaces: Any
    reason: Any
    _binary_packet: Any
    # relio's
    relio_config: Config
    #: what guards relio's tables: nothing in the asyncio shells (one thread); the thread-based
    #: shells set their lock
    _relio_lock: contextlib.AbstractContextManager = contextlib.nullcontext()

    def _relio_setup_shell(self, relio_config: Config | None) -> None:
        """relio's part of the constructor, once python-socketio's has run."""
        self.relio_config = relio_config or DEFAULT_CONFIG
        #: the application payload codec (python-socketio's ``json`` module, bound once)
        self.relio_codec = payload_codec.JsonCodec(self.packet_class.json)
        # msgpack or another binary serializer: its packets are binary engine.io messages too
        self._relio_binary_serializer = wire.binary_serializer(self.packet_class)
        self.reserved_events = list(self.reserved_events) + [
            e for e in sorted(wire.LIFECYCLE_EVENTS) if e not in self.reserved_events]
        wire.redact_credentials(self.logger, self.eio.logger)   # credentials are never logged
