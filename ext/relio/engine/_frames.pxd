# The wire format of relio frames (see docs/PROTOCOL.md): one parser and one set of writers, shared by
# the engine (through these C-level declarations) and by the Python-visible codec in _frames.pyx.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t

cdef enum:
    PROTOCOL_VERSION = 1
    FRAME_DATA = 0x01
    FRAME_ACK = 0x02
    FRAME_CLOSE = 0x03
    # DATA frame flags
    FLAG_REQUEST = 0x01     # the sender waits for a response to this message
    FLAG_RESPONSE = 0x02    # this message answers the request named by reply_to
    FLAG_CHUNK = 0x04       # this frame carries part of a message: total and offset follow
    KNOWN_FLAGS = 0x07
    ID_SIZE = 16
    VARINT_MAX = 8
    MAX_CLOSE_REASON = 256
    # Largest ACK frame header before its ranges: type + 3 varints.
    ACK_HEADER_MAX = 1 + 3 * VARINT_MAX

cdef extern from *:
    """
    #define RELIO_VARINT_LIMIT (((unsigned long long)1) << 62)
    """
    unsigned long long VARINT_LIMIT "RELIO_VARINT_LIMIT"

ctypedef struct FrameView:
    uint8_t type
    uint8_t flags
    uint64_t seq
    uint64_t id_hi
    uint64_t id_lo
    uint64_t reply_hi
    uint64_t reply_lo
    uint64_t total          # chunk frames: size of the whole message
    uint64_t offset         # chunk frames: where this chunk's bytes go
    const unsigned char* payload
    Py_ssize_t length       # payload length (DATA), reason length (CLOSE)
    uint64_t code           # CLOSE: reason code
    # ACK frames
    uint64_t cumulative
    uint64_t ack_delay_us
    uint64_t range_count
    const unsigned char* ranges      # range_count (gap, length) varint pairs, already validated
    Py_ssize_t ranges_length

# Check a batch's envelope (length and version byte); raises RemoteProtocolError if it is wrong.
cdef int check_batch(const unsigned char* data, Py_ssize_t n, Py_ssize_t max_batch_size) except -1

# Parse the frame at data[pos:end]; on success fills out, advances pos and returns 0. Raises
# RemoteProtocolError for anything truncated, unknown or inconsistent. max_ranges bounds ACK frames.
cdef int parse_frame(const unsigned char* data, Py_ssize_t end, Py_ssize_t* pos, FrameView* out,
                     uint64_t max_ranges) except -1

# Read the i-th step of a validated range list: call with p pointing at the list and *pos = 0, and
# previous_end = cumulative before the first call. Returns the (start, end) of each range in turn.
cdef void next_range(const unsigned char* p, Py_ssize_t* pos, uint64_t* previous_end,
                     uint64_t* start, uint64_t* end) noexcept

cdef inline Py_ssize_t varint_size(uint64_t v) noexcept:
    if v < 64:
        return 1
    if v < 16384:
        return 2
    if v < 1073741824:
        return 4
    return 8

# Write v (< 2**62) at p as a QUIC variable-length integer; returns the bytes written.
cdef inline Py_ssize_t write_varint(unsigned char* p, uint64_t v) noexcept:
    if v < 64:
        p[0] = <unsigned char>v
        return 1
    if v < 16384:
        p[0] = <unsigned char>(0x40 | (v >> 8))
        p[1] = <unsigned char>(v & 0xFF)
        return 2
    if v < 1073741824:
        p[0] = <unsigned char>(0x80 | (v >> 24))
        p[1] = <unsigned char>((v >> 16) & 0xFF)
        p[2] = <unsigned char>((v >> 8) & 0xFF)
        p[3] = <unsigned char>(v & 0xFF)
        return 4
    p[0] = <unsigned char>(0xC0 | (v >> 56))
    p[1] = <unsigned char>((v >> 48) & 0xFF)
    p[2] = <unsigned char>((v >> 40) & 0xFF)
    p[3] = <unsigned char>((v >> 32) & 0xFF)
    p[4] = <unsigned char>((v >> 24) & 0xFF)
    p[5] = <unsigned char>((v >> 16) & 0xFF)
    p[6] = <unsigned char>((v >> 8) & 0xFF)
    p[7] = <unsigned char>(v & 0xFF)
    return 8

cdef inline void write_u64(unsigned char* p, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        p[i] = <unsigned char>((v >> (56 - 8 * i)) & 0xFF)

# A 16-byte id as bytes, from its two big-endian halves.
cdef inline bytes id_bytes(uint64_t hi, uint64_t lo):
    cdef bytes b = PyBytes_FromStringAndSize(NULL, ID_SIZE)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(b)
    write_u64(p, hi)
    write_u64(p + 8, lo)
    return b

cdef inline uint64_t read_u64(const unsigned char* p) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v = (v << 8) | p[i]
    return v

# Size of a DATA frame's header (everything before the payload).
cdef inline Py_ssize_t data_header_size(uint8_t flags, uint64_t seq, uint64_t total, uint64_t offset,
                                        Py_ssize_t length) noexcept:
    cdef Py_ssize_t n = 2 + varint_size(seq) + ID_SIZE + varint_size(<uint64_t>length)
    if flags & FLAG_RESPONSE:
        n += ID_SIZE
    if flags & FLAG_CHUNK:
        n += varint_size(total) + varint_size(offset)
    return n

# Write a DATA frame header at p (the caller copies the payload right after); returns bytes written.
cdef inline Py_ssize_t write_data_header(unsigned char* p, uint8_t flags, uint64_t seq,
                                         uint64_t id_hi, uint64_t id_lo, uint64_t reply_hi,
                                         uint64_t reply_lo, uint64_t total, uint64_t offset,
                                         Py_ssize_t length) noexcept:
    cdef Py_ssize_t n = 2
    p[0] = FRAME_DATA
    p[1] = flags
    n += write_varint(p + n, seq)
    write_u64(p + n, id_hi)
    write_u64(p + n + 8, id_lo)
    n += ID_SIZE
    if flags & FLAG_RESPONSE:
        write_u64(p + n, reply_hi)
        write_u64(p + n + 8, reply_lo)
        n += ID_SIZE
    if flags & FLAG_CHUNK:
        n += write_varint(p + n, total)
        n += write_varint(p + n, offset)
    n += write_varint(p + n, <uint64_t>length)
    return n
