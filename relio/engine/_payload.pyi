"""Type stubs for the compiled :mod:`relio.engine._payload` (see
``ext/relio/engine/_payload.pyx``)."""

from collections.abc import Callable, Iterable
from typing import Any

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool

class EventEncoder:
    """``encode(event, data)``: the payload of an emit of ``data`` under ``event``, with a JSON
    encoder made by ``json.encoder.c_make_encoder``."""

    def __init__(self, encoder: Callable[[Any, int], Iterable[str]]) -> None: ...
    def encode(self, event: str, data: Any) -> bytes:
        """The payload: the byte 0 (no attachments), then the JSON text of ``[event, *args]``.

        :raises TypeError: binary data or an object the encoder cannot take.
        :raises RecursionError: a cyclic or too deeply nested structure."""
