"""Type stubs for the compiled :mod:`relio.engine._payload` (see
``ext/relio/engine/_payload.pyx``)."""

from collections.abc import Callable, Iterable
from typing import Any

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool
#: Deepest nesting of lists and dicts the compiled writer follows; deeper data (and a cycle) is
#: encoded, or refused, by the standard library's encoder.
MAX_FAST_DEPTH: int

class EventEncoder:
    """``encode(event, data)``: the payload of an emit of ``data`` under ``event``;
    ``encode_list(items)``: the payload of a list. Written by the compiled writer (exact built-in
    JSON types), else with ``encoder``, a JSON encoder made by ``json.encoder.c_make_encoder`` with
    compact separators: the same text as ``json.dumps(value, separators=(",", ":"))``."""

    def __init__(self, encoder: Callable[[Any, int], Iterable[str]]) -> None: ...
    def encode(self, event: str, data: Any) -> bytes:
        """The payload: the byte 0 (no attachments), then the JSON text of ``[event, *args]``.

        :raises TypeError: binary data or an object the encoder cannot take.
        :raises RecursionError: a cyclic or too deeply nested structure."""
    def encode_list(self, items: list) -> bytes:
        """The payload: the byte 0 (no attachments), then the JSON text of ``items``.

        :raises TypeError: binary data or an object the encoder cannot take.
        :raises RecursionError: a cyclic or too deeply nested structure."""


class EventDecoder:
    """``decode(message)``: the list a payload without attachments holds, read by the compiled
    reader (what ``json.loads`` of the text gives), or None where the general way must decode
    it."""

    def __init__(self, max_int_digits: int = 0) -> None:
        """``max_int_digits`` (0: none): an integer of that many characters or more is left to
        the general way (python-socketio's integer cap, applied there by its decoder's hook)."""
    def decode(self, message: Any) -> list | None:
        """The list in ``message`` (a payload, or the engine's ``MessageReceived`` or
        ``ResponseReceived`` holding one) if its tag says no attachments and the rest is exactly
        one JSON list; None otherwise."""
