"""Type stubs for the compiled :mod:`relio.engine._payload` (see
``ext/relio/engine/_payload.pyx``)."""

from typing import Any

#: True in a debug build (RELIO_DEBUG_BUILD=1 at build time; see setup.py).
DEBUG_BUILD: bool
#: Deepest nesting of lists and dicts the compiled writer follows; deeper data (and a cycle) is
#: encoded, or refused, by the standard library's encoder.
MAX_FAST_DEPTH: int

class EventEncoder:
    """``encode(event, data)``: the payload of an emit of ``data`` under ``event``;
    ``encode_list(items)``: the payload of a list. Written by the compiled writer (exact built-in
    JSON types: the same text as ``json.dumps(value, separators=(",", ":"))``), or None for a value
    it does not take (the caller encodes it the general way)."""

    def encode(self, event: str, data: Any) -> bytes | None:
        """The payload: the byte 0 (no attachments), then the JSON text of ``[event, *args]``.

        :raises TypeError: binary data (the payload needs attachments)."""
    def encode_list(self, items: list) -> bytes | None:
        """The payload: the byte 0 (no attachments), then the JSON text of ``items``.

        :raises TypeError: binary data (the payload needs attachments)."""


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
