"""relio frames written field by field, with no validation at all: what ``relio.engine._frames``'
encoders refuse to write (unknown flags, lengths that lie, zero ACK gaps, non-minimal varints...).

Fields follow docs/PROTOCOL.md (sections 3-5): a DATA frame carries ``reply_to`` when its flags say
RESPONSE and ``total``/``offset`` when they say CHUNK, whatever the values.
"""
from __future__ import annotations

from relio.engine import _frames as F

__all__ = ['varint', 'raw_data', 'raw_ack', 'raw_close']


def varint(value: int, size: int | None = None) -> bytes:
    """A QUIC varint (RFC 9000 section 16), minimal unless ``size`` (1, 2, 4 or 8) forces a longer
    form (non-minimal encodings are valid too)."""
    if size is None:
        size = 1 if value < 1 << 6 else 2 if value < 1 << 14 else 4 if value < 1 << 30 else 8
    if not 0 <= value < 1 << (8 * size - 2):
        raise ValueError(f'{value} does not fit a {size}-byte varint')
    prefix = {1: 0, 2: 1, 4: 2, 8: 3}[size]
    return ((prefix << (8 * size - 2)) | value).to_bytes(size, 'big')


def raw_data(seq: int, msg_id: bytes, payload: bytes, *, flags: int = 0,
             reply_to: bytes | None = None, total: int = 0, offset: int = 0,
             length: int | None = None, sizes: dict[str, int] | None = None) -> bytes:
    """A DATA frame: any ``flags``, a ``length`` that need not be the payload's, and ``sizes``
    ({'seq'|'total'|'offset'|'length': varint size}) for non-minimal varints."""
    sizes = sizes or {}
    out = [bytes((F.DATA, flags)), varint(seq, sizes.get('seq')), msg_id]
    if flags & F.RESPONSE:
        out.append(reply_to if reply_to is not None else b'\0' * 16)
    if flags & F.CHUNK:
        out += [varint(total, sizes.get('total')), varint(offset, sizes.get('offset'))]
    out += [varint(len(payload) if length is None else length, sizes.get('length')), payload]
    return b''.join(out)


def raw_ack(cumulative: int, pairs: list[tuple[int, int]], delay: int = 0, *,
            count: int | None = None) -> bytes:
    """An ACK frame from raw (gap, length) pairs (zero gaps and overflows allowed); ``count``
    overrides the range count written."""
    out = [bytes((F.ACK,)), varint(cumulative), varint(delay),
           varint(len(pairs) if count is None else count)]
    for gap, length in pairs:
        out += [varint(gap), varint(length)]
    return b''.join(out)


def raw_close(code: int, reason: bytes, length: int | None = None) -> bytes:
    """A CLOSE frame whose reason ``length`` need not be the reason's."""
    return (bytes((F.CLOSE,)) + varint(code) + varint(len(reason) if length is None else length)
            + reason)
