"""Where the units a 'drop' blackhole may discard begin in one direction of a proxied TCP stream.

The fault proxy's 'drop' blackhole models messages lost while the connection stays up. A real
link cannot lose bytes from the middle of a TCP stream and go on delivering the bytes after them;
a proxy that does so splices the stream, and a websocket peer then completes the frame it was
reading with bytes of later frames: it delivers a frame of the right length with the wrong
content, and only fails on the next (misaligned) header. No layer above can tell (relio, like
Socket.IO, leaves integrity to TCP and TLS), so such a splice corrupts a payload silently. It
happens when a blackhole starts or ends while a frame is half forwarded: a throttle forwards in
slices, and a slow reader makes the proxy's writer wait between two pieces of one frame.

:class:`DropUnits` follows the stream so that the proxy drops whole units only: after an HTTP
head that asks for (or grants) a websocket upgrade, each websocket frame (RFC 6455 section 5.2:
two bytes, an extended length of 2 or 8 bytes, a 4-byte mask key when masked, the payload);
before that (the HTTP head) and in any other stream (HTTP long-polling), each chunk as read from
the socket, as before: losing part of an HTTP message fails the request visibly.
"""

from __future__ import annotations

import re

__all__ = ['DropUnits']

#: The header line of an HTTP head that asks for (or grants) the upgrade, in lower case.
_UPGRADE = re.compile(rb'(?:^|\r\n)upgrade:[ \t]*websocket[ \t]*(?:\r\n|$)')

#: An HTTP head longer than this without its end is not followed (the stream is then unframed).
MAX_HTTP_HEAD = 65536


class DropUnits:
    """Splits one direction's bytes into pieces and says which piece starts a unit."""

    __slots__ = ('_head', '_framed', '_plain', '_header', '_left')

    def __init__(self) -> None:
        self._head = bytearray()     # the HTTP head read so far
        self._framed = False         # past the head of an upgrade: websocket frames follow
        self._plain = False          # not a websocket stream: each read chunk is a unit
        self._header = bytearray()   # the current frame's header, while incomplete
        self._left = 0               # payload bytes of the current frame still to come

    def split(self, data: bytes) -> list[tuple[memoryview, bool]]:
        """``data`` (the next bytes of the stream) as ``(piece, starts_unit)`` pairs, in order;
        the pieces joined are ``data``."""
        view = memoryview(data)
        if self._plain:
            return [(view, True)]
        if not self._framed:
            return self._split_head(view)
        return self._split_frames(view, [])

    def _split_head(self, view: memoryview) -> list[tuple[memoryview, bool]]:
        start = len(self._head)      # head bytes read before view
        self._head += view
        end = self._head.find(b'\r\n\r\n')
        if end < 0:
            if len(self._head) > MAX_HTTP_HEAD:
                self._plain = True
            return [(view, True)]
        head = bytes(self._head[:end + 4]).lower()
        self._head = bytearray()
        if not _UPGRADE.search(head):
            self._plain = True       # plain HTTP: keep-alive requests are not followed
            return [(view, True)]
        self._framed = True
        used = end + 4 - start       # bytes of view that end the head
        return self._split_frames(view[used:], [(view[:used], True)])

    def _split_frames(self, view: memoryview,
                      pieces: list[tuple[memoryview, bool]]) -> list[tuple[memoryview, bool]]:
        n = len(view)
        pos = start = 0
        starts = False
        while pos < n:
            if not self._left and not self._header:      # a frame begins here
                if pos > start:
                    pieces.append((view[start:pos], starts))
                start, starts = pos, True
            if not self._left:                           # in the header
                self._header.append(view[pos])
                pos += 1
                size = self._header_size()
                if size is not None and len(self._header) == size:
                    self._left = self._payload_length()
                    self._header.clear()
                continue
            take = min(self._left, n - pos)
            pos += take
            self._left -= take
        if n > start:
            pieces.append((view[start:], starts))
        return pieces

    def _header_size(self) -> int | None:
        header = self._header
        if len(header) < 2:
            return None
        length = header[1] & 0x7F
        extended = 2 if length == 126 else 8 if length == 127 else 0
        return 2 + extended + (4 if header[1] & 0x80 else 0)

    def _payload_length(self) -> int:
        header = self._header
        length = header[1] & 0x7F
        if length == 126:
            return int.from_bytes(header[2:4], 'big')
        if length == 127:
            return int.from_bytes(header[2:10], 'big')
        return length
