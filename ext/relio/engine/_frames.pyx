"""relio's wire format: parsing and writing frames and batches (see docs/PROTOCOL.md).

A *batch* is what travels in one transport message (one socket.io packet): a version byte followed by
one or more *frames*. Frames are DATA (a message, a chunk of one, a response), ACK (cumulative point
plus selective ranges) and CLOSE (the session ends, with a reason). Integers are QUIC variable-length
integers (RFC 9000 section 16) so that a JavaScript peer can decode them with a few lines of code;
message ids are 16 raw bytes.

Everything a peer sends is hostile until checked: the parser never reads past ``end``, rejects every
inconsistency with :class:`relio.engine.errors.RemoteProtocolError` carrying a reason, and allocates nothing
(it returns pointers into the caller's buffer). The engine calls :func:`parse_frame` directly; the
Python-level :func:`decode_batch` and the ``encode_*`` functions exist for tests, fuzzing, tools and
other implementations to check themselves against.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from relio.engine._build cimport RELIO_DEBUG_BUILD

from relio.engine.errors import RemoteProtocolError

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

# Python-visible copies of the wire constants (the C enum lives in _frames.pxd).
VERSION = PROTOCOL_VERSION
DATA = FRAME_DATA
ACK = FRAME_ACK
CLOSE = FRAME_CLOSE
REQUEST = FLAG_REQUEST
RESPONSE = FLAG_RESPONSE
CHUNK = FLAG_CHUNK


cdef int _fail(str reason) except -1:
    raise RemoteProtocolError(reason)


cdef inline int read_varint(const unsigned char* data, Py_ssize_t end, Py_ssize_t* pos,
                            uint64_t* out, str what) except -1:
    cdef Py_ssize_t p = pos[0]
    cdef Py_ssize_t n, i
    cdef uint64_t v
    if p >= end:
        _fail(f"truncated frame: missing {what}")
    n = 1 << (data[p] >> 6)
    if p + n > end:
        _fail(f"truncated frame: {what} needs {n} bytes")
    v = data[p] & 0x3F
    for i in range(1, n):
        v = (v << 8) | data[p + i]
    pos[0] = p + n
    out[0] = v
    return 0


cdef inline int read_id(const unsigned char* data, Py_ssize_t end, Py_ssize_t* pos,
                        uint64_t* hi, uint64_t* lo, str what) except -1:
    cdef Py_ssize_t p = pos[0]
    if p + ID_SIZE > end:
        _fail(f"truncated frame: {what} needs {ID_SIZE} bytes")
    hi[0] = read_u64(data + p)
    lo[0] = read_u64(data + p + 8)
    pos[0] = p + ID_SIZE
    return 0


cdef int parse_frame(const unsigned char* data, Py_ssize_t end, Py_ssize_t* pos, FrameView* out,
                     uint64_t max_ranges) except -1:
    cdef Py_ssize_t p = pos[0]
    cdef uint64_t length, gap, count, i, previous_end
    cdef Py_ssize_t ranges_start
    if p >= end:
        _fail("truncated batch: expected a frame")
    out.type = data[p]
    p += 1
    if out.type == FRAME_DATA:
        if p >= end:
            _fail("truncated frame: missing flags")
        out.flags = data[p]
        p += 1
        if out.flags & ~KNOWN_FLAGS:
            _fail(f"unknown DATA flags 0x{out.flags:02x}")
        read_varint(data, end, &p, &out.seq, "sequence number")
        read_id(data, end, &p, &out.id_hi, &out.id_lo, "message id")
        if out.flags & FLAG_RESPONSE:
            read_id(data, end, &p, &out.reply_hi, &out.reply_lo, "reply-to id")
        else:
            out.reply_hi = out.reply_lo = 0
        if out.flags & FLAG_CHUNK:
            read_varint(data, end, &p, &out.total, "chunk total")
            read_varint(data, end, &p, &out.offset, "chunk offset")
        else:
            out.total = out.offset = 0
        read_varint(data, end, &p, &length, "payload length")
        if length > <uint64_t>(end - p):
            _fail(f"truncated frame: payload length {length} exceeds the {end - p} bytes left")
        if out.flags & FLAG_CHUNK:
            if out.total == 0:
                _fail("chunk of an empty message")
            if length == 0:
                _fail("empty chunk")
            if out.offset >= out.total or length > out.total - out.offset:
                _fail(f"chunk [{out.offset}, +{length}) overruns its message of {out.total} bytes")
        out.payload = data + p
        out.length = <Py_ssize_t>length
        p += <Py_ssize_t>length
    elif out.type == FRAME_ACK:
        read_varint(data, end, &p, &out.cumulative, "cumulative ack")
        read_varint(data, end, &p, &out.ack_delay_us, "ack delay")
        read_varint(data, end, &p, &count, "ack range count")
        if count > max_ranges:
            _fail(f"ACK carries {count} ranges, more than the {max_ranges} allowed")
        out.range_count = count
        ranges_start = p
        previous_end = out.cumulative
        for i in range(count):
            read_varint(data, end, &p, &gap, "ack range gap")
            read_varint(data, end, &p, &length, "ack range length")
            # A gap of 0 would merge with the previous range (or the cumulative point): the encoding
            # is canonical so that every ACK has exactly one form.
            if gap == 0 or length == 0:
                _fail("ACK range with zero gap or zero length")
            if previous_end + gap + length >= VARINT_LIMIT:
                _fail("ACK range beyond the sequence number space")
            previous_end = previous_end + gap + length
        out.ranges = data + ranges_start
        out.ranges_length = p - ranges_start
    elif out.type == FRAME_CLOSE:
        read_varint(data, end, &p, &out.code, "close code")
        read_varint(data, end, &p, &length, "close reason length")
        if length > MAX_CLOSE_REASON:
            _fail(f"CLOSE reason of {length} bytes exceeds {MAX_CLOSE_REASON}")
        if length > <uint64_t>(end - p):
            _fail("truncated frame: CLOSE reason")
        out.payload = data + p
        out.length = <Py_ssize_t>length
        p += <Py_ssize_t>length
    else:
        _fail(f"unknown frame type 0x{out.type:02x}")
    pos[0] = p
    return 0


cdef void next_range(const unsigned char* p, Py_ssize_t* pos, uint64_t* previous_end,
                     uint64_t* start, uint64_t* end) noexcept:
    # The list was validated by parse_frame, so this reads without bounds checks.
    cdef uint64_t gap, length
    cdef Py_ssize_t i = pos[0]
    cdef Py_ssize_t n, k
    n = 1 << (p[i] >> 6)
    gap = p[i] & 0x3F
    for k in range(1, n):
        gap = (gap << 8) | p[i + k]
    i += n
    n = 1 << (p[i] >> 6)
    length = p[i] & 0x3F
    for k in range(1, n):
        length = (length << 8) | p[i + k]
    i += n
    pos[0] = i
    start[0] = previous_end[0] + gap
    end[0] = start[0] + length
    previous_end[0] = end[0]


# ----------------------------------------------------------------------------------------------
# Python-visible codec (tests, fuzzing, tools). The engine does not go through these objects.


class DataFrame:
    """A decoded DATA frame."""

    __slots__ = ("flags", "seq", "msg_id", "reply_to", "total", "offset", "payload")

    def __init__(self, flags, seq, msg_id, reply_to, total, offset, payload):
        self.flags = flags
        self.seq = seq
        self.msg_id = msg_id
        self.reply_to = reply_to
        self.total = total
        self.offset = offset
        self.payload = payload

    def __eq__(self, other):
        return isinstance(other, DataFrame) and all(
            getattr(self, k) == getattr(other, k) for k in DataFrame.__slots__)

    def __repr__(self):
        return (f"DataFrame(flags={self.flags}, seq={self.seq}, msg_id={self.msg_id.hex()}, "
                f"reply_to={self.reply_to.hex() if self.reply_to else None}, total={self.total}, "
                f"offset={self.offset}, payload=<{len(self.payload)} bytes>)")


class AckFrame:
    """A decoded ACK frame: everything below ``cumulative`` plus ``ranges`` (start, end) arrived."""

    __slots__ = ("cumulative", "ack_delay_us", "ranges")

    def __init__(self, cumulative, ack_delay_us, ranges):
        self.cumulative = cumulative
        self.ack_delay_us = ack_delay_us
        self.ranges = ranges

    def __eq__(self, other):
        return isinstance(other, AckFrame) and (
            self.cumulative, self.ack_delay_us, self.ranges) == (
            other.cumulative, other.ack_delay_us, other.ranges)

    def __repr__(self):
        return (f"AckFrame(cumulative={self.cumulative}, ack_delay_us={self.ack_delay_us}, "
                f"ranges={self.ranges})")


class CloseFrame:
    """A decoded CLOSE frame."""

    __slots__ = ("code", "reason")

    def __init__(self, code, reason):
        self.code = code
        self.reason = reason

    def __eq__(self, other):
        return isinstance(other, CloseFrame) and (self.code, self.reason) == (
            other.code, other.reason)

    def __repr__(self):
        return f"CloseFrame(code={self.code}, reason={self.reason!r})"


cdef int check_batch(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_batch_size) except -1:
    if n < 2:
        _fail("truncated batch: shorter than a version byte and one frame")
    if n > max_batch_size:
        _fail(f"batch of {n} bytes exceeds the {max_batch_size} allowed")
    if data[0] != PROTOCOL_VERSION:
        _fail(f"unsupported protocol version {data[0]}")
    return 0


def check_batch_header(bytes data not None, Py_ssize_t max_batch_size):
    """Validate a batch's envelope (size, version); raise RemoteProtocolError if it is wrong."""
    check_batch(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                max_batch_size)


def decode_batch(bytes data not None, *, Py_ssize_t max_batch_size=131072,
                 Py_ssize_t max_frames=4096, uint64_t max_ranges=32):
    """Decode a whole batch into frame objects; raise RemoteProtocolError if anything is wrong."""
    check_batch_header(data, max_batch_size)
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t pos = 1, rpos
    cdef FrameView f
    cdef uint64_t prev, start, stop, i
    frames = []
    while pos < end:
        if len(frames) >= max_frames:
            raise RemoteProtocolError(f"batch holds more than {max_frames} frames")
        parse_frame(p, end, &pos, &f, max_ranges)
        if f.type == FRAME_DATA:
            frames.append(DataFrame(
                f.flags, f.seq, id_bytes(f.id_hi, f.id_lo),
                id_bytes(f.reply_hi, f.reply_lo) if f.flags & FLAG_RESPONSE else None,
                f.total, f.offset, PyBytes_FromStringAndSize(<const char*>f.payload, f.length)))
        elif f.type == FRAME_ACK:
            ranges = []
            rpos = 0
            prev = f.cumulative
            for i in range(f.range_count):
                next_range(f.ranges, &rpos, &prev, &start, &stop)
                ranges.append((start, stop))
            frames.append(AckFrame(f.cumulative, f.ack_delay_us, ranges))
        else:
            frames.append(CloseFrame(
                f.code, PyBytes_FromStringAndSize(<const char*>f.payload, f.length).decode(
                    "utf-8", "replace")))
    return frames


cdef inline void _check_varint(uint64_t v, str what) except *:
    if v >= VARINT_LIMIT:
        raise ValueError(f"{what} {v} does not fit a 62-bit varint")


def _id_words(object msg_id, str what):
    if not isinstance(msg_id, bytes) or len(msg_id) != ID_SIZE:
        raise ValueError(f"{what} must be {ID_SIZE} bytes")
    return (int.from_bytes(msg_id[:8], "big"), int.from_bytes(msg_id[8:], "big"))


def encode_data(uint64_t seq, bytes msg_id not None, bytes payload not None, *, int flags=0,
                bytes reply_to=None, uint64_t total=0, uint64_t offset=0):
    """Encode one DATA frame (without the batch's version byte)."""
    if flags & ~KNOWN_FLAGS:
        raise ValueError("unknown flags")
    if (reply_to is not None) != bool(flags & FLAG_RESPONSE):
        raise ValueError("reply_to is given exactly when flags has RESPONSE")
    _check_varint(seq, "seq")
    _check_varint(total, "total")
    _check_varint(offset, "offset")
    hi, lo = _id_words(msg_id, "msg_id")
    rhi, rlo = _id_words(reply_to, "reply_to") if reply_to is not None else (0, 0)
    cdef Py_ssize_t n = len(payload)
    cdef Py_ssize_t h = data_header_size(flags, seq, total, offset, n)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, h + n)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(out)
    write_data_header(p, flags, seq, hi, lo, rhi, rlo, total, offset, n)
    memcpy(p + h, PyBytes_AS_STRING(payload), n)
    return out


def encode_ack(uint64_t cumulative, ranges=(), uint64_t ack_delay_us=0):
    """Encode one ACK frame; ``ranges`` are ascending (start, end) pairs above ``cumulative``."""
    cdef unsigned char buf[32]
    parts = [bytes([FRAME_ACK])]
    _check_varint(cumulative, "cumulative")
    _check_varint(ack_delay_us, "ack_delay_us")
    previous_end = cumulative
    body = []
    for start, stop in ranges:
        if start <= previous_end or stop <= start:
            raise ValueError("ranges must be ascending, non-empty and separated by gaps")
        body.append((start - previous_end, stop - start))
        previous_end = stop
    for v in (cumulative, ack_delay_us, len(body)):
        parts.append(PyBytes_FromStringAndSize(<char*>buf, write_varint(buf, v)))
    for gap, length in body:
        parts.append(PyBytes_FromStringAndSize(<char*>buf, write_varint(buf, gap)))
        parts.append(PyBytes_FromStringAndSize(<char*>buf, write_varint(buf, length)))
    return b"".join(parts)


def encode_close(uint64_t code, str reason not None):
    """Encode one CLOSE frame (the reason is cut to 256 bytes of UTF-8)."""
    cdef unsigned char buf[16]
    raw = reason.encode("utf-8")[:MAX_CLOSE_REASON]
    return b"".join([
        bytes([FRAME_CLOSE]),
        PyBytes_FromStringAndSize(<char*>buf, write_varint(buf, code)),
        PyBytes_FromStringAndSize(<char*>buf, write_varint(buf, len(raw))),
        raw,
    ])


def encode_batch(frames):
    """Join encoded frames into one batch (prefixing the version byte)."""
    return bytes([PROTOCOL_VERSION]) + b"".join(frames)
