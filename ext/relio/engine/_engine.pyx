"""The relio engine: one session's reliability protocol, sans I/O.

An :class:`Engine` is one side of one session. It numbers every message it sends, keeps it until the
peer acknowledges it, retransmits what was lost, splits big messages into chunks, and on the receive
side drops duplicates and delivers every message exactly once and in order. It owns no socket, reads no
clock and knows nothing of asyncio or socket.io (the aioquic / h11 shape):

* the caller hands it messages (:meth:`Engine.send`, :meth:`Engine.reply`) and received batches
  (:meth:`Engine.receive`), always with ``now``;
* it hands back batches to transmit (:meth:`Engine.data_to_send`), events
  (:meth:`Engine.next_event`) and the time it next wants to be woken (:meth:`Engine.get_timer`,
  :meth:`Engine.handle_timer`);
* :meth:`Engine.disconnect` / :meth:`Engine.resume` bracket a broken link: all state is kept, and on
  resume exactly what the peer lacks is sent again;
* :meth:`Engine.snapshot` / :meth:`Engine.restore` move a whole session to bytes and back.

Sequence numbers are per session and per direction, one per frame (a chunk is a frame), starting at 0.
Message ids are 128-bit: a random 64-bit session prefix and a 64-bit counter.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.set cimport PySet_GET_SIZE
from libc.math cimport INFINITY, fabs, nextafter
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from relio.engine._ackwindow cimport AckWindow
from relio.engine._build cimport RELIO_DEBUG_BUILD
from relio.engine._chunks cimport Reassembler
from relio.engine._events cimport (MessageExpired, MessagesDelivered, SessionClosed,
                            new_message_received, new_response_received)
from relio.engine._frames cimport *
from relio.engine._idset cimport IdSet
from relio.engine._lru cimport ResponseCache

import os
import struct
from collections import deque

from relio.config import DEFAULT_CONFIG, Config
from relio.engine._frames import encode_close
from relio.engine.errors import LocalProtocolError, QueueFull, RemoteProtocolError

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

#: Close codes carried by CLOSE frames.
CLOSE_NORMAL = 0
CLOSE_PROTOCOL_ERROR = 1
CLOSE_DELIVERY_TIMEOUT = 2
CLOSE_EXPIRED = 3

# RFC 6298 clock granularity G (seconds): the smallest RTTVAR term of the RTO.
cdef double CLOCK_GRANULARITY = 0.001
# Backoff doublings after which the RTO stays at max_rto.
cdef int MAX_BACKOFF = 16
# Initial size of the in-flight slot table (grows by doubling up to max_inflight_messages).
cdef Py_ssize_t INITIAL_SLOTS = 64
# Size of a response-cache value's header: the response's id and its flags.
cdef Py_ssize_t CACHED_HEADER = ID_SIZE + 1
cdef uint64_t U64_MAX = 0xFFFFFFFFFFFFFFFF
# _OutMessage.first_seq of a message not framed yet.
cdef uint64_t NOT_FRAMED = U64_MAX
# In a snapshot's message flags (never on the wire): the message's record is stored apart
# (Engine.snapshot_apart); an engine that predates it refuses the snapshot ("unknown flags").
cdef uint64_t SNAPSHOT_APART = 0x80
_F64 = struct.Struct(">d")


cdef inline Py_ssize_t _pow2_at_least(Py_ssize_t n) noexcept:
    cdef Py_ssize_t p = 1
    while p < n:
        p <<= 1
    return p


cdef inline void _id_words(bytes msg_id, uint64_t* hi, uint64_t* lo) noexcept:
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(msg_id)
    hi[0] = read_u64(p)
    lo[0] = read_u64(p + 8)


cdef bytes _check_id(object msg_id, str what):
    if type(msg_id) is not bytes or PyBytes_GET_SIZE(msg_id) != ID_SIZE:
        raise LocalProtocolError(f"{what} must be {ID_SIZE} bytes")
    return <bytes>msg_id


# ------------------------------------------------------------------------------------------------
# Scratch buffer shared by every engine in the process: batches are built here and copied out once,
# so an idle session costs no encoding memory. The GIL alone does not make one buffer enough:
# building a batch may allocate (the slot table grows), an allocation may start a garbage
# collection, and a collection runs Python code (finalizers, callbacks) where another engine can
# build its own batch, in this thread or in another one the GIL passes to. So a build takes the
# buffer for its duration (_buffer_take / _buffer_give), and one that finds it taken builds in a
# buffer of its own (a rare, short allocation) instead of overwriting the half-built batch.

cdef unsigned char* _scratch = NULL
cdef Py_ssize_t _scratch_cap = 0
cdef bint _scratch_taken = False


cdef unsigned char* _scratch_reserve(Py_ssize_t needed) except NULL:
    global _scratch, _scratch_cap
    cdef Py_ssize_t cap
    cdef unsigned char* p
    if needed > _scratch_cap:
        cap = _pow2_at_least(needed if needed > 65536 else 65536)
        p = <unsigned char*>PyMem_Realloc(_scratch, cap)
        if p == NULL:
            raise MemoryError()
        _scratch = p
        _scratch_cap = cap
    return _scratch


cdef unsigned char* _buffer_take(Py_ssize_t needed, unsigned char** own) except NULL:
    """A buffer of ``needed`` bytes to build in: the shared scratch buffer, or, while another build
    holds it, a new one (``*own``, freed by _buffer_give)."""
    global _scratch_taken
    cdef unsigned char* p
    if _scratch_taken:
        p = <unsigned char*>PyMem_Malloc(needed)
        if p == NULL:
            raise MemoryError()
        own[0] = p
        return p
    p = _scratch_reserve(needed)
    _scratch_taken = True
    own[0] = NULL
    return p


cdef inline void _buffer_give(unsigned char* own) noexcept:
    global _scratch_taken
    if own != NULL:
        PyMem_Free(own)
    else:
        _scratch_taken = False


# ------------------------------------------------------------------------------------------------


cdef inline bint _starts_request(uint8_t flags, uint64_t offset) noexcept:
    """A REQUEST frame that starts a message (unchunked, or its first chunk): what
    ``max_pending_requests`` counts."""
    return (flags & FLAG_REQUEST) != 0 and not ((flags & FLAG_CHUNK) and offset != 0)


@cython.final
@cython.no_gc  # it holds bytes and a tuple of bytes only: no reference cycle can pass through it
cdef class _OutMessage:
    """A message accepted by send/reply and not yet acknowledged or expired. An outbox holds at
    most one message per id (``Engine._pending_ids``).

    Not tracked by the garbage collector: an outbox holds up to ``max_outbox_messages`` of them
    for as long as their acknowledgements take, and each tracked one counted towards the
    collector's next run and was traversed again by every collection of its generation."""
    cdef bytes msg_id
    cdef uint64_t hi, lo
    cdef bytes reply_to            # the request this answers, or None
    cdef uint64_t reply_hi, reply_lo
    cdef uint8_t flags             # FLAG_REQUEST / FLAG_RESPONSE; FLAG_CHUNK when split
    cdef bytes payload             # the message, or None while it is held as parts
    # A payload given as consecutive parts (send's tuple): framed straight from them, joined only
    # if the message's bytes are needed whole (a cached reply, a snapshot). None otherwise.
    cdef tuple parts
    cdef Py_ssize_t size
    cdef Py_ssize_t framed         # bytes of payload already given a sequence number
    cdef Py_ssize_t unacked        # frames sent and not yet acknowledged
    cdef uint64_t first_seq        # seq of its first frame (its frames take consecutive seqs)
    cdef double accepted_at
    cdef uint64_t snap_mark        # the snapshot that last numbered it (Engine._snap_marks)
    cdef Py_ssize_t snap_index     # its number in that snapshot


cdef tuple _payload_parts(tuple payload):
    # send's tuple of parts as bytes objects (a mutable buffer is copied, as a whole payload is),
    # empty ones left out.
    cdef list parts = []
    for part in payload:
        if type(part) is not bytes:
            part = bytes(part)
        if PyBytes_GET_SIZE(part):
            parts.append(part)
    return tuple(parts)


cdef Py_ssize_t _parts_size(tuple parts):
    cdef Py_ssize_t size = 0
    for part in parts:
        size += PyBytes_GET_SIZE(part)
    return size


cdef void _gather(unsigned char* out, tuple parts, Py_ssize_t offset, Py_ssize_t length) noexcept:
    # Copy bytes [offset, offset + length) of the message made of parts to out.
    cdef Py_ssize_t part_size, n
    for part in parts:
        if length == 0:
            return
        part_size = PyBytes_GET_SIZE(part)
        if offset >= part_size:
            offset -= part_size
            continue
        n = part_size - offset
        if n > length:
            n = length
        memcpy(out, PyBytes_AS_STRING(part) + offset, n)
        out += n
        length -= n
        offset = 0


cdef bytes _whole_payload(_OutMessage m):
    # The message's bytes in one object (its parts joined once, when first needed).
    if m.parts is not None:
        m.payload = b"".join(m.parts)
        m.parts = None
    return m.payload


cdef class _HeldFrame:
    """A frame that arrived ahead of a gap, kept until the gap fills (chunk data lives in the
    Reassembler; payload is None then)."""
    cdef uint8_t flags
    cdef uint64_t hi, lo, reply_hi, reply_lo
    cdef uint64_t total, offset
    cdef Py_ssize_t length
    cdef bytes payload


ctypedef struct _Slot:
    double sent_at           # last transmission
    uint64_t offset          # chunk offset within the message
    uint32_t length          # payload bytes in this frame
    uint32_t transmissions
    bint queued              # waiting in the retransmission queue


cdef class Engine:
    """One side of one relio session (sans I/O).

    :param config: a :class:`relio.Config` (limits and timers); both peers should use compatible
                   values.
    :param now: the current time in seconds (any monotonic clock; the engine never reads one).
    :param id_prefix: 8 bytes that start every message id this engine makes; random if omitted.
    """

    # --- configuration ---
    cdef readonly object config
    cdef Py_ssize_t _chunk_size, _max_message, _max_batch, _max_frames, _coalesce
    cdef Py_ssize_t _max_outbox, _max_outbox_bytes, _max_inflight, _max_inflight_bytes
    cdef Py_ssize_t _max_reorder, _ack_every, _max_ranges, _fast_threshold, _max_pending_requests
    cdef double _max_ack_delay, _min_rto, _max_rto, _delivery_timeout

    # --- session ---
    cdef uint64_t _prefix
    cdef uint64_t _counter
    cdef readonly bint connected
    cdef readonly bint closed
    cdef readonly str close_reason
    cdef object _events                 # deque of Event
    cdef bytes _close_frame             # CLOSE to send once, or None

    # --- send side ---
    cdef object _queue                  # deque of _OutMessage not fully framed
    # msg_id -> _OutMessage for every message of the outbox; made on first need (a send with an
    # explicit msg_id, a retried request) and kept from then on, so that sessions that never
    # reuse an id pay nothing per message.
    cdef dict _pending
    cdef uint64_t _snap_marks      # snapshots taken (numbers the messages of each, no dict)
    cdef Py_ssize_t _outbox_count, _outbox_bytes
    cdef uint64_t _snd_next
    cdef AckWindow _acked               # base == oldest unacknowledged seq
    cdef _Slot* _slots
    cdef list _slot_msgs
    cdef Py_ssize_t _slot_mask
    cdef Py_ssize_t _inflight_count, _inflight_bytes
    cdef object _rtx                    # deque of seqs to retransmit
    cdef double _srtt, _rttvar, _rto
    cdef bint _has_rtt
    cdef int _backoff
    cdef double _rto_deadline

    # --- receive side ---
    cdef AckWindow _rcv
    cdef dict _held
    cdef Py_ssize_t _held_bytes
    cdef Reassembler _reasm
    cdef bytes _rx_chunk_id             # message whose chunks are being delivered in order
    cdef uint64_t _rx_chunk_next, _rx_chunk_total
    cdef IdSet _ids
    cdef set _awaiting_reply
    cdef ResponseCache _cache
    cdef Py_ssize_t _ack_pending
    cdef Py_ssize_t _ack_pending_bytes, _ack_every_bytes
    cdef Py_ssize_t _held_requests        # held (ahead of a gap) requests, not yet delivered
    cdef double _ack_pending_since
    cdef bint _ack_now
    cdef uint64_t* _range_buf

    # --- counters ---
    cdef public uint64_t messages_sent, messages_delivered, messages_expired, messages_received
    cdef public uint64_t frames_sent, frames_retransmitted, frames_received
    cdef public uint64_t duplicates_dropped, frames_refused, responses_resent, acks_sent

    def __cinit__(self):
        self._slots = NULL
        self._range_buf = NULL

    def __dealloc__(self):
        PyMem_Free(self._slots)
        PyMem_Free(self._range_buf)

    def __init__(self, config=None, *, double now=0.0, bytes id_prefix=None):
        if config is None:
            config = DEFAULT_CONFIG
        if not isinstance(config, Config):
            raise TypeError("config must be a relio.Config")
        self.config = config
        self._chunk_size = config.chunk_size
        self._max_message = config.max_message_size
        self._max_batch = config.max_batch_size
        self._max_frames = config.max_frames_per_batch
        self._coalesce = config.coalesce_bytes
        self._max_outbox = config.max_outbox_messages
        self._max_outbox_bytes = config.max_outbox_bytes
        self._max_inflight = config.max_inflight_messages
        self._max_inflight_bytes = config.max_inflight_bytes
        self._max_reorder = config.max_reorder_bytes
        self._max_pending_requests = config.max_pending_requests
        self._ack_every_bytes = config.ack_every_bytes
        self._ack_every = config.ack_every
        self._max_ranges = config.max_ack_ranges
        self._fast_threshold = config.fast_retransmit_threshold
        self._max_ack_delay = config.max_ack_delay
        self._min_rto = config.min_rto
        self._max_rto = config.max_rto
        self._delivery_timeout = (INFINITY if config.delivery_timeout is None
                                  else config.delivery_timeout)

        if id_prefix is None:
            id_prefix = os.urandom(8)
        if len(id_prefix) != 8:
            raise ValueError("id_prefix must be 8 bytes")
        self._prefix = read_u64(<const unsigned char*>PyBytes_AS_STRING(id_prefix))
        self._counter = 0
        self.connected = True
        self.closed = False
        self.close_reason = None
        self._events = deque()
        self._close_frame = None

        self._queue = deque()
        self._pending = None
        self._outbox_count = self._outbox_bytes = 0
        self._snd_next = 0
        self._acked = AckWindow(_pow2_at_least(self._max_inflight), 0)
        self._slot_msgs = []
        self._grow_slots(INITIAL_SLOTS if INITIAL_SLOTS < self._max_inflight
                         else _pow2_at_least(self._max_inflight))
        self._inflight_count = self._inflight_bytes = 0
        self._rtx = deque()
        self._srtt = 0.0
        self._rttvar = 0.0
        self._rto = config.initial_rto
        self._has_rtt = False
        self._backoff = 0
        self._rto_deadline = INFINITY

        self._rcv = AckWindow(config.receive_window, 0)
        self._held = {}
        self._held_bytes = 0
        self._reasm = Reassembler(config.max_message_size, config.max_reassemblies,
                                  config.max_reassembly_bytes)
        self._rx_chunk_id = None
        self._ids = IdSet(config.id_set_capacity)
        self._awaiting_reply = set()
        self._cache = ResponseCache(config.response_cache_entries, config.response_cache_bytes,
                                    config.response_cache_ttl)
        self._ack_pending = 0
        self._ack_pending_bytes = 0
        self._held_requests = 0
        self._ack_now = False
        self._range_buf = <uint64_t*>PyMem_Malloc(2 * self._max_ranges * sizeof(uint64_t))
        if self._range_buf == NULL:
            raise MemoryError()

    # ============================================================================================
    # Application side

    def send(self, payload, double now, *, bint request=False, msg_id=None):
        """Queue a message for reliable delivery and return its 16-byte id.

        :param payload: the message (bytes); any size up to ``max_message_size``. A tuple of bytes
                        objects is the message made of these consecutive parts: its chunks are
                        copied from them, so a big part (a binary attachment) is never copied
                        into one buffer with the others first.
        :param request: the peer must answer it (the answer arrives as ``ResponseReceived``).
        :param msg_id: reuse an id (to re-send a message of an earlier session so the peer can drop
                       it if it already has it); a new one is made if omitted. If a message with
                       this id is still pending (accepted, not yet acknowledged), the call queues
                       nothing and returns the id: the pending message is on its way and stands
                       (its payload and kind), exactly as a receiver keeps the first copy of an id.
        :raises QueueFull: the outbox is at its message or byte limit; nothing was queued.
        """
        cdef _OutMessage m = self._new_message(payload, now, FLAG_REQUEST if request else 0, msg_id)
        if m is None:
            return msg_id              # already pending under this id
        self._enqueue(m)
        return m.msg_id

    def reply(self, request_id, payload, double now, *, bint request=False):
        """Answer the peer's request ``request_id`` (delivered with ``request=True``); return the
        response's id. The answer is cached so that a retried request gets it again without being
        delivered twice. With ``request=True`` the answer itself asks for an answer (chained reply).
        """
        cdef bytes rid = _check_id(request_id, "request_id")
        if rid not in self._awaiting_reply:
            raise LocalProtocolError("no request with this id is waiting for a reply")
        cdef _OutMessage m = self._new_message(payload, now,
                                               FLAG_RESPONSE | (FLAG_REQUEST if request else 0),
                                               None)
        m.reply_to = rid
        _id_words(rid, &m.reply_hi, &m.reply_lo)
        self._enqueue(m)
        self._awaiting_reply.discard(rid)
        self._cache.put_c(rid, m.msg_id + bytes((m.flags,)) + _whole_payload(m), now)
        return m.msg_id

    def decline(self, request_id):
        """Let the peer's request ``request_id`` go unanswered (python-socketio's behaviour when no
        handler takes an event, or the handler raised): it stops counting against
        ``max_pending_requests``. The requester's call times out, as with python-socketio."""
        self._awaiting_reply.discard(_check_id(request_id, "request_id"))

    cdef _OutMessage _new_message(self, object payload, double now, uint8_t flags, object msg_id):
        # A new message, or None if ``msg_id`` is given and a message with that id is pending (an
        # outbox never holds two messages with one id: their frames would be indistinguishable to
        # the peer's reassembly, and to snapshots).
        if self.closed:
            raise LocalProtocolError(f"session is closed ({self.close_reason})")
        cdef tuple parts = None
        cdef Py_ssize_t size
        if type(payload) is tuple:
            parts = _payload_parts(<tuple>payload)
            size = _parts_size(parts)
            payload = None
            if len(parts) < 2:
                payload = parts[0] if parts else b""
                parts = None
        elif type(payload) is not bytes:
            payload = bytes(payload)
        if parts is None:
            size = PyBytes_GET_SIZE(payload)
        if size > self._max_message:
            raise LocalProtocolError(
                f"message of {size} bytes exceeds max_message_size ({self._max_message})")
        if msg_id is not None:
            msg_id = _check_id(msg_id, "msg_id")
            if PyDict_GetItem(self._pending_ids(), msg_id) != NULL:
                return None
        if (self._outbox_count >= self._max_outbox
                or (self._outbox_count and self._outbox_bytes + size > self._max_outbox_bytes)):
            raise QueueFull(f"outbox full ({self._outbox_count} messages, "
                            f"{self._outbox_bytes} bytes)")
        cdef _OutMessage m = _OutMessage.__new__(_OutMessage)
        if msg_id is None:
            m.hi = self._prefix
            m.lo = self._counter
            self._counter += 1
            m.msg_id = id_bytes(m.hi, m.lo)
        else:
            m.msg_id = <bytes>msg_id
            _id_words(m.msg_id, &m.hi, &m.lo)
            if m.hi == self._prefix and m.lo >= self._counter and m.lo != U64_MAX:
                # An id this engine would make later: never make it while this one may be pending.
                self._counter = m.lo + 1
        m.flags = flags | (FLAG_CHUNK if size > self._chunk_size else 0)
        m.payload = <bytes>payload
        m.parts = parts
        m.size = size
        m.framed = 0
        m.unacked = 0
        m.first_seq = NOT_FRAMED
        m.accepted_at = now
        return m

    cdef dict _pending_ids(self):
        # The outbox by id, made once (O(outbox)) and maintained by _enqueue / _on_frame_acked.
        cdef _OutMessage m
        cdef uint64_t seq
        cdef dict pending
        if self._pending is None:
            pending = {}
            seq = self._acked.base
            while seq < self._snd_next:
                if not self._acked.is_marked_c(seq):
                    m = <_OutMessage>self._slot_msgs[seq & self._slot_mask]
                    pending[m.msg_id] = m
                seq += 1
            for m in self._queue:
                pending[m.msg_id] = m
            self._pending = pending
        return self._pending

    cdef inline int _enqueue(self, _OutMessage m) except -1:
        if self._pending is not None:
            PyDict_SetItem(self._pending, m.msg_id, m)
        self._queue.append(m)
        self._outbox_count += 1
        self._outbox_bytes += m.size
        self.messages_sent += 1

    def next_event(self):
        """The oldest event not yet taken, or None."""
        if self._events:
            return self._events.popleft()
        return None

    @property
    def events_pending(self):
        """How many events :meth:`next_event` has still to give."""
        return len(self._events)

    def events(self):
        """Take every pending event, oldest first, as a list."""
        cdef list out = list(self._events)
        self._events.clear()
        return out

    # ============================================================================================
    # Link side

    def receive(self, bytes data not None, double now):
        """Process one batch from the peer.

        :raises RemoteProtocolError: the batch was invalid; the session is closed (a CLOSE frame
                                     with the reason is queued for the peer, and every pending
                                     message is reported expired).
        """
        if self.closed:
            return
        try:
            self._receive(data, now)
        except RemoteProtocolError as exc:
            self._close(f"protocol error: {exc.reason}", CLOSE_PROTOCOL_ERROR, True, False)
            raise

    cdef int _receive(self, bytes data, double now) except -1:
        cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t pos = 1
        cdef Py_ssize_t frames = 0
        cdef FrameView f
        cdef list delivered = None
        check_batch(p, end, self._max_batch)
        while pos < end:
            frames += 1
            if frames > self._max_frames:
                raise RemoteProtocolError(f"batch holds more than {self._max_frames} frames")
            parse_frame(p, end, &pos, &f, <uint64_t>self._max_ranges)
            if f.type == FRAME_DATA:
                self._on_data(&f, now)
            elif f.type == FRAME_ACK:
                if delivered is None:
                    delivered = []
                self._on_ack(&f, now, delivered)
            else:
                if delivered:     # the peer's last ACK precedes its CLOSE: report it first
                    self._events.append(MessagesDelivered(delivered))
                    delivered = None
                reason = PyBytes_FromStringAndSize(<const char*>f.payload, f.length).decode(
                    "utf-8", "replace")
                self._close(f"closed by peer: {reason}", <int>f.code, False, True)
                break
        if delivered:
            self._events.append(MessagesDelivered(delivered))
        return 0

    def data_to_send(self, double now):
        """Batches to transmit now, as a list of bytes (each one transport message)."""
        cdef list out = []
        if self._close_frame is not None and self.connected:
            # A last ACK rides with the CLOSE so the peer learns what we received before we left
            # (otherwise its final messages would be reported undelivered).
            out.append(bytes((PROTOCOL_VERSION,)) + self.resume_state() + self._close_frame)
            self._close_frame = None
        if self.closed or not self.connected:
            return out
        self._fill_batches(now, out)
        return out

    def get_timer(self):
        """When the engine next wants :meth:`handle_timer` called (same clock as ``now``), or None."""
        cdef double t = self._timer()
        return None if t == INFINITY else t

    cdef double _timer(self):
        cdef double t = INFINITY
        cdef double c
        if self.closed:
            return t
        if self.connected:
            if self._ack_pending:
                t = self._ack_pending_since + self._max_ack_delay
            if self._inflight_count and self._rto_deadline < t:
                t = self._rto_deadline
        if self._delivery_timeout != INFINITY and self._outbox_count:
            c = self._oldest_accepted() + self._delivery_timeout
            if c < t:
                t = c
        nxt = self._cache.next_expiry()
        if nxt is not None and nxt < t:
            t = nxt
        return t

    def handle_timer(self, double now):
        """Run whatever timers are due at ``now`` (retransmission, delayed ack, delivery timeout,
        response-cache expiry)."""
        if self.closed:
            return
        if (self._delivery_timeout != INFINITY and self._outbox_count
                and now >= self._oldest_accepted() + self._delivery_timeout):
            self._close("delivery timeout", CLOSE_DELIVERY_TIMEOUT, True, False)
            return
        # The cache drops entries strictly after their deadline; expire those due exactly now too, so
        # that a timer set to next_expiry() makes progress.
        self._cache.expire_c(nextafter(now, INFINITY))
        if not self.connected:
            return
        if self._ack_pending and now >= self._ack_pending_since + self._max_ack_delay:
            self._ack_now = True
        if self._inflight_count and now >= self._rto_deadline:
            # Retransmission timeout: probe with the oldest unacknowledged frame and back off. On a
            # stream transport a lost frame means a dead link, which the caller detects (heartbeat)
            # and repairs with resume(); the probe covers silent drops inside a live link.
            self._queue_rtx(self._acked.base)
            if self._backoff < MAX_BACKOFF:
                self._backoff += 1
            self._rto_deadline = now + self._current_rto()

    cdef double _oldest_accepted(self):
        cdef _OutMessage m
        if self._inflight_count:
            m = self._slot_msgs[self._acked.base & self._slot_mask]
            return m.accepted_at
        if self._queue:
            m = self._queue[0]
            return m.accepted_at
        return INFINITY

    def disconnect(self, double now):
        """The link is gone: stop sending, keep everything (messages, windows, ids, responses)."""
        self.connected = False
        self._ack_pending = 0
        self._ack_pending_bytes = 0
        self._ack_now = False
        cdef uint64_t seq
        for seq in self._rtx:
            self._slots[seq & self._slot_mask].queued = False
        self._rtx.clear()

    def resume_state(self):
        """Our receive state (an ACK frame): hand it to the peer's :meth:`resume` on reconnect."""
        cdef unsigned char* own
        cdef unsigned char* buf = _buffer_take(ACK_HEADER_MAX + 2 * VARINT_MAX * self._max_ranges,
                                               &own)
        try:
            return PyBytes_FromStringAndSize(<char*>buf, self._write_ack(buf, 0.0, 0.0))
        finally:
            _buffer_give(own)

    def resume(self, bytes peer_state not None, double now):
        """The link is back: apply the peer's receive state (its :meth:`resume_state`) and queue for
        retransmission exactly the frames it lacks.

        :raises RemoteProtocolError: the state is invalid, or the peer lost frames it had
                                     acknowledged (it cannot be resumed; the session is closed).
        """
        if self.closed:
            raise LocalProtocolError(f"session is closed ({self.close_reason})")
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(peer_state)
        cdef Py_ssize_t pos = 0
        cdef FrameView f
        cdef list delivered = []
        cdef uint64_t seq
        try:
            parse_frame(p, PyBytes_GET_SIZE(peer_state), &pos, &f, <uint64_t>self._max_ranges)
            if f.type != FRAME_ACK or pos != PyBytes_GET_SIZE(peer_state):
                raise RemoteProtocolError("resume state must be exactly one ACK frame")
            if f.cumulative < self._acked.base:
                raise RemoteProtocolError(
                    f"peer lost acknowledged frames {f.cumulative}..{self._acked.base - 1}: "
                    "its session state is older than ours")
            self._on_ack(&f, now, delivered)
        except RemoteProtocolError as exc:
            self._close(f"protocol error: {exc.reason}", CLOSE_PROTOCOL_ERROR, True, False)
            raise
        if delivered:
            self._events.append(MessagesDelivered(delivered))
        self.connected = True
        self._rtx.clear()
        seq = self._acked.base
        while seq < self._snd_next:
            self._slots[seq & self._slot_mask].queued = False
            if not self._acked.is_marked_c(seq):
                self._queue_rtx(seq)
            seq += 1
        self._backoff = 0
        self._rto_deadline = now + self._current_rto()
        if self._rcv.count_above_c() or self._held:
            self._ack_now = True

    def close(self, str reason="session closed", double now=0.0):
        """End the session: every pending message is reported expired with ``reason``; a CLOSE frame
        tells the peer (sent by the next :meth:`data_to_send` if the link is up)."""
        if not self.closed:
            self._close(reason, CLOSE_NORMAL, True, False)

    cdef void _close(self, str reason, int code, bint tell_peer, bint by_peer):
        cdef _OutMessage m
        cdef set seen = set()
        cdef uint64_t seq
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if tell_peer:
            self._close_frame = encode_close(code, reason)
        seq = self._acked.base
        while seq < self._snd_next:
            if not self._acked.is_marked_c(seq):
                m = self._slot_msgs[seq & self._slot_mask]
                if m.msg_id not in seen:
                    seen.add(m.msg_id)
                    self._events.append(MessageExpired(m.msg_id, reason))
            self._slot_msgs[seq & self._slot_mask] = None
            seq += 1
        for m in self._queue:
            if m.msg_id not in seen:
                seen.add(m.msg_id)
                self._events.append(MessageExpired(m.msg_id, reason))
        self.messages_expired += len(seen)
        self._queue.clear()
        self._pending = None
        self._rtx.clear()
        self._outbox_count = self._outbox_bytes = 0
        self._inflight_count = self._inflight_bytes = 0
        self._held.clear()
        self._held_bytes = 0
        for mid in self._reasm.message_ids():
            self._reasm.discard_c(mid)
        self._events.append(SessionClosed(reason, by_peer))

    # ============================================================================================
    # Receive path

    cdef int _on_data(self, FrameView* f, double now) except -1:
        cdef uint64_t seq = f.seq
        cdef uint64_t base = self._rcv.base
        cdef int marked
        cdef _HeldFrame h
        cdef bytes payload
        self.frames_received += 1
        if seq < base or self._rcv.is_marked_c(seq):
            # Already have it: the peer retransmitted, so it may have missed our ACK. Answer soon.
            self.duplicates_dropped += 1
            self._ack_now = True
            return 0
        if seq >= base + <uint64_t>self._rcv.size:
            raise RemoteProtocolError(
                f"sequence number {seq} is beyond the receive window [{base}, "
                f"{base + <uint64_t>self._rcv.size})")
        if not (f.flags & FLAG_CHUNK) and f.length > self._max_message:
            raise RemoteProtocolError(f"message of {f.length} bytes exceeds max_message_size")
        if seq == base:
            if (_starts_request(f.flags, f.offset)
                    and PySet_GET_SIZE(self._awaiting_reply) >= self._max_pending_requests):
                # Flow control: as many of the peer's requests as the application may have
                # unanswered at once. Not acknowledged: the sender keeps it and sends it later
                # (an ACK goes at once so it sees where we stand).
                self.frames_refused += 1
                self._ack_now = True
                return 0
            # In order: deliver straight from the batch, then whatever the gap was holding back.
            if f.flags & FLAG_CHUNK:
                if not self._reasm.add_c(id_bytes(f.id_hi, f.id_lo), <Py_ssize_t>f.total,
                                         <Py_ssize_t>f.offset, f.payload, f.length, True):
                    self.frames_refused += 1
                    return 0
                self._deliver_chunk(f.flags, f.id_hi, f.id_lo, f.reply_hi, f.reply_lo,
                                    f.total, f.offset, f.length, now)
            else:
                self._deliver(f.flags, f.id_hi, f.id_lo, f.reply_hi, f.reply_lo,
                              PyBytes_FromStringAndSize(<const char*>f.payload, f.length), now)
            self._rcv.mark_c(seq)
            if self._held:
                self._drain_held(base + 1, now)
        else:
            # Ahead of a gap: hold it (bounded), and tell the sender about the gap at once.
            if (_starts_request(f.flags, f.offset)
                    and PySet_GET_SIZE(self._awaiting_reply) + self._held_requests + 1
                    >= self._max_pending_requests):
                # Held requests are delivered when the gap fills: count them against the limit
                # now, keeping one slot for the in-order frame that fills the gap.
                self.frames_refused += 1
                self._ack_now = True
                return 0
            h = _HeldFrame.__new__(_HeldFrame)
            h.flags = f.flags
            h.hi = f.id_hi
            h.lo = f.id_lo
            h.reply_hi = f.reply_hi
            h.reply_lo = f.reply_lo
            h.total = f.total
            h.offset = f.offset
            h.length = f.length
            if f.flags & FLAG_CHUNK:
                chunk_id = id_bytes(f.id_hi, f.id_lo)
                if (chunk_id in self._reasm._parts
                        and self._reasm.received(chunk_id) >= f.total):
                    # A chunk of a message already complete here, held behind the gap: the sender
                    # sent the message again under its id (a retry) once we had acknowledged all
                    # of it. Its bytes must not go into the first copy's buffer, so it is refused
                    # (not acknowledged): resent after the first copy is delivered, it is then
                    # reassembled on its own and dropped by id.
                    self.frames_refused += 1
                    return 0
                if not self._reasm.add_c(chunk_id, <Py_ssize_t>f.total,
                                         <Py_ssize_t>f.offset, f.payload, f.length, False):
                    self.frames_refused += 1
                    return 0
                h.payload = None
            else:
                if self._held_bytes + f.length > self._max_reorder:
                    # Not acknowledged, so the sender keeps it and sends it again later.
                    self.frames_refused += 1
                    return 0
                h.payload = PyBytes_FromStringAndSize(<const char*>f.payload, f.length)
                self._held_bytes += f.length
            self._held[seq] = h
            if _starts_request(f.flags, f.offset):
                self._held_requests += 1
            self._rcv.mark_c(seq)
            self._ack_now = True
        if self._ack_pending == 0:
            self._ack_pending_since = now
        self._ack_pending += 1
        self._ack_pending_bytes += f.length
        if self._ack_pending >= self._ack_every or self._ack_pending_bytes >= self._ack_every_bytes:
            # Big frames are acknowledged sooner: a sender with a byte-limited window (chunks of a
            # big payload) would otherwise stall for max_ack_delay on every window.
            self._ack_now = True
        return 0

    cdef int _drain_held(self, uint64_t seq, double now) except -1:
        cdef uint64_t stop = self._rcv.base
        cdef _HeldFrame h
        while seq < stop:
            h = self._held.pop(seq)
            if _starts_request(h.flags, h.offset):
                self._held_requests -= 1
            if h.flags & FLAG_CHUNK:
                self._deliver_chunk(h.flags, h.hi, h.lo, h.reply_hi, h.reply_lo, h.total,
                                    h.offset, h.length, now)
            else:
                self._held_bytes -= h.length
                self._deliver(h.flags, h.hi, h.lo, h.reply_hi, h.reply_lo, h.payload, now)
            seq += 1
        return 0

    cdef int _deliver_chunk(self, uint8_t flags, uint64_t hi, uint64_t lo, uint64_t reply_hi,
                            uint64_t reply_lo, uint64_t total, uint64_t offset, Py_ssize_t length,
                            double now) except -1:
        # Chunks of one message occupy consecutive sequence numbers, so in-order delivery sees them
        # back to back from offset 0; anything else is a broken (or hostile) sender.
        cdef bytes msg_id = id_bytes(hi, lo)
        if self._rx_chunk_id is None:
            if offset != 0:
                raise RemoteProtocolError(f"message starts with a chunk at offset {offset}")
            self._rx_chunk_id = msg_id
            self._rx_chunk_next = 0
            self._rx_chunk_total = total
        elif msg_id != self._rx_chunk_id:
            raise RemoteProtocolError("chunks of two messages are interleaved")
        if total != self._rx_chunk_total or offset != self._rx_chunk_next:
            raise RemoteProtocolError(
                f"chunk at offset {offset} of {total} does not follow {self._rx_chunk_next} of "
                f"{self._rx_chunk_total}")
        self._rx_chunk_next += <uint64_t>length
        if self._rx_chunk_next == total:
            self._rx_chunk_id = None
            if msg_id not in self._reasm._parts:
                # Its chunks were already reassembled and delivered: a peer re-sending a whole
                # message under new sequence numbers (found by fuzzing). Never a local error.
                raise RemoteProtocolError("the chunks of a message arrived twice")
            self._deliver(flags & ~FLAG_CHUNK, hi, lo, reply_hi, reply_lo,
                          self._reasm.finish_c(msg_id), now)
        return 0

    cdef int _deliver(self, uint8_t flags, uint64_t hi, uint64_t lo, uint64_t reply_hi,
                      uint64_t reply_lo, bytes payload, double now) except -1:
        cdef bytes msg_id = id_bytes(hi, lo)
        cdef object cached
        if self._rx_chunk_id is not None:
            raise RemoteProtocolError("a message interrupts the chunks of another")
        if not self._ids.add_c(hi, lo):
            # Seen before under another sequence number (a retry across sessions). A retried
            # request gets its cached response again; its handler does not run twice.
            self.duplicates_dropped += 1
            if flags & FLAG_REQUEST:
                cached = self._cache.get_c(msg_id, now)
                if cached is not None:
                    self._resend_cached(msg_id, <bytes>cached, now)
            return 0
        self.messages_received += 1
        if flags & FLAG_REQUEST:
            self._awaiting_reply.add(msg_id)
        if flags & FLAG_RESPONSE:
            self._events.append(new_response_received(
                msg_id, id_bytes(reply_hi, reply_lo), payload, flags & FLAG_REQUEST))
        else:
            self._events.append(new_message_received(msg_id, payload, flags & FLAG_REQUEST))
        return 0

    cdef int _resend_cached(self, bytes request_id, bytes cached, double now) except -1:
        cdef _OutMessage m
        cdef bytes response_id = cached[:ID_SIZE]
        cdef PyObject* pending
        if self.closed:
            return 0
        pending = PyDict_GetItem(self._pending_ids(), response_id)
        if pending != NULL:
            # The response is still in the outbox (not acknowledged): a second copy under the same
            # id would only race the first one at the peer's reassembly. Send the first one's
            # unacknowledged frames again instead (at most once per round trip).
            self._retransmit_message(<_OutMessage>pending, now)
            self.responses_resent += 1
            return 0
        try:
            m = self._new_message(cached[CACHED_HEADER:], now, cached[ID_SIZE] & ~FLAG_CHUNK,
                                  response_id)
        except QueueFull:
            return 0  # the requester retries again later
        m.flags |= FLAG_RESPONSE
        m.reply_to = request_id
        _id_words(request_id, &m.reply_hi, &m.reply_lo)
        self._enqueue(m)
        self.responses_resent += 1
        return 0

    cdef int _retransmit_message(self, _OutMessage m, double now) except -1:
        # Queue for retransmission the frames of m sent and not acknowledged, unless sent less than
        # a round trip ago (as fast retransmit). Nothing framed yet: it goes out anyway; not
        # connected: resume() sends every unacknowledged frame.
        cdef uint64_t seq, stop
        cdef double rtt = self._srtt if self._has_rtt else self._rto
        cdef _Slot* slot
        if not self.connected or m.first_seq == NOT_FRAMED or m.unacked == 0:
            return 0
        if m.flags & FLAG_CHUNK:
            stop = m.first_seq + <uint64_t>((m.framed + self._chunk_size - 1) // self._chunk_size)
        else:
            stop = m.first_seq + 1
        seq = m.first_seq if m.first_seq > self._acked.base else self._acked.base
        while seq < stop:
            slot = &self._slots[seq & self._slot_mask]
            if not self._acked.is_marked_c(seq) and now - slot.sent_at >= rtt:
                self._queue_rtx(seq)
            seq += 1
        return 0

    # ============================================================================================
    # Acknowledgements (send side)

    cdef int _on_ack(self, FrameView* f, double now, list delivered) except -1:
        cdef uint64_t cumulative = f.cumulative
        cdef uint64_t seq, start, stop, prev, newest = 0
        cdef uint64_t base = self._acked.base
        cdef Py_ssize_t rpos = 0
        cdef uint64_t i
        cdef bint any_new = False
        cdef _Slot* slot
        cdef double sample
        if cumulative > self._snd_next:
            raise RemoteProtocolError(
                f"ACK for sequence number {cumulative - 1}, never sent (next is {self._snd_next})")
        seq = base
        while seq < cumulative:
            if not self._acked.is_marked_c(seq):
                self._on_frame_acked(seq, delivered)
                newest = seq
                any_new = True
            seq += 1
        self._acked.advance_to_c(cumulative)
        prev = cumulative
        for i in range(f.range_count):
            next_range(f.ranges, &rpos, &prev, &start, &stop)
            if stop > self._snd_next:
                raise RemoteProtocolError(
                    f"ACK range up to {stop - 1}, never sent (next is {self._snd_next})")
            if start < self._acked.base:
                start = self._acked.base
            seq = start
            while seq < stop:
                if self._acked.mark_c(seq) == 1:
                    self._on_frame_acked(seq, delivered)
                    newest = seq
                    any_new = True
                seq += 1
        if not any_new:
            return 0
        # RTT sample from the newest frame this ACK covered, unless it was retransmitted (Karn).
        slot = &self._slots[newest & self._slot_mask]
        if slot.transmissions == 1:
            sample = now - slot.sent_at - f.ack_delay_us * 1e-6
            if sample < now - slot.sent_at - self._max_ack_delay:
                sample = now - slot.sent_at - self._max_ack_delay
            if sample > 0:
                self._rtt_sample(sample)
        self._backoff = 0
        self._rto_deadline = now + self._current_rto() if self._inflight_count else INFINITY
        if self._acked.highest > self._acked.base:
            self._fast_retransmit(now)
        return 0

    cdef inline int _on_frame_acked(self, uint64_t seq, list delivered) except -1:
        cdef Py_ssize_t idx = seq & self._slot_mask
        cdef _OutMessage m = <_OutMessage>self._slot_msgs[idx]
        self._slot_msgs[idx] = None
        self._inflight_count -= 1
        self._inflight_bytes -= self._slots[idx].length
        m.unacked -= 1
        if m.unacked == 0 and m.framed == m.size:
            # Every frame of the message is acknowledged: the peer has it.
            self._outbox_count -= 1
            self._outbox_bytes -= m.size
            if self._pending is not None:
                self._pending.pop(m.msg_id, None)
            self.messages_delivered += 1
            delivered.append(m.msg_id)
            if m.reply_to is not None:
                # The requester has our response: the cache no longer needs it (the request id stays
                # in the requester's id set, and ours, so nothing runs twice).
                self._cache.pop_c(m.reply_to)
        return 0

    cdef void _rtt_sample(self, double r) noexcept:
        # RFC 6298 section 2.
        if not self._has_rtt:
            self._srtt = r
            self._rttvar = r / 2
            self._has_rtt = True
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * fabs(self._srtt - r)
            self._srtt = 0.875 * self._srtt + 0.125 * r
        cdef double var = 4 * self._rttvar
        if var < CLOCK_GRANULARITY:
            var = CLOCK_GRANULARITY
        self._rto = self._srtt + var + self._max_ack_delay
        if self._rto < self._min_rto:
            self._rto = self._min_rto
        if self._rto > self._max_rto:
            self._rto = self._max_rto

    cdef double _current_rto(self) noexcept:
        cdef double rto = self._rto * (1 << self._backoff)
        return rto if rto < self._max_rto else self._max_rto

    cdef int _fast_retransmit(self, double now) except -1:
        # A hole with fast_retransmit_threshold later frames acknowledged is taken as lost (QUIC's
        # packet threshold); it is sent again once per round trip at most.
        cdef Py_ssize_t n = self._acked.holes_c(self._range_buf, self._max_ranges)
        cdef Py_ssize_t i
        cdef uint64_t seq, stop
        cdef uint64_t highest = self._acked.highest
        cdef double rtt = self._srtt if self._has_rtt else self._rto
        cdef _Slot* slot
        for i in range(n):
            seq = self._range_buf[2 * i]
            stop = self._range_buf[2 * i + 1]
            while seq < stop and highest - seq > <uint64_t>self._fast_threshold:
                slot = &self._slots[seq & self._slot_mask]
                if not slot.queued and now - slot.sent_at >= rtt:
                    self._queue_rtx(seq)
                seq += 1
        return 0

    cdef inline void _queue_rtx(self, uint64_t seq):
        cdef _Slot* slot = &self._slots[seq & self._slot_mask]
        if seq < self._snd_next and not slot.queued and not self._acked.is_marked_c(seq):
            slot.queued = True
            self._rtx.append(seq)

    # ============================================================================================
    # Send path

    cdef int _grow_slots(self, Py_ssize_t capacity) except -1:
        cdef _Slot* slots = <_Slot*>PyMem_Malloc(capacity * sizeof(_Slot))
        cdef list msgs = [None] * capacity
        cdef uint64_t seq
        cdef Py_ssize_t mask = capacity - 1
        if slots == NULL:
            raise MemoryError()
        memset(slots, 0, capacity * sizeof(_Slot))
        if self._slots != NULL:
            seq = self._acked.base
            while seq < self._snd_next:
                slots[seq & mask] = self._slots[seq & self._slot_mask]
                msgs[seq & mask] = self._slot_msgs[seq & self._slot_mask]
                seq += 1
            PyMem_Free(self._slots)
        self._slots = slots
        self._slot_msgs = msgs
        self._slot_mask = mask
        return 0

    cdef Py_ssize_t _write_ack(self, unsigned char* p, double now, double since) noexcept:
        cdef Py_ssize_t n = self._rcv.ranges_c(self._range_buf, self._max_ranges)
        cdef Py_ssize_t w = 1, i
        cdef uint64_t previous_end = self._rcv.base
        cdef double delay = (now - since) * 1e6 if now > since else 0.0
        p[0] = FRAME_ACK
        w += write_varint(p + w, self._rcv.base)
        w += write_varint(p + w, <uint64_t>delay if delay < 1e15 else 0)
        w += write_varint(p + w, <uint64_t>n)
        for i in range(n):
            w += write_varint(p + w, self._range_buf[2 * i] - previous_end)
            w += write_varint(p + w, self._range_buf[2 * i + 1] - self._range_buf[2 * i])
            previous_end = self._range_buf[2 * i + 1]
        return w

    cdef int _fill_batches(self, double now, list out) except -1:
        cdef Py_ssize_t ack_max = ACK_HEADER_MAX + 2 * VARINT_MAX * self._max_ranges
        cdef unsigned char* own
        cdef unsigned char* buf = _buffer_take(ack_max + self._coalesce + self._chunk_size + 256,
                                               &own)
        try:
            self._fill_batches_in(buf, now, out)
        finally:
            _buffer_give(own)
        return 0

    cdef int _fill_batches_in(self, unsigned char* buf, double now, list out) except -1:
        cdef Py_ssize_t used = 1
        cdef Py_ssize_t frames = 0
        cdef bint has_data = False
        cdef uint64_t seq
        cdef _OutMessage m
        cdef _Slot* slot
        cdef Py_ssize_t length
        cdef bint window_open = (self._queue and self._window_open())
        buf[0] = PROTOCOL_VERSION
        if self._ack_pending or self._ack_now:
            if self._ack_now or self._rtx or window_open:
                used += self._write_ack(buf + used, now, self._ack_pending_since)
                frames += 1
                self._ack_pending = 0
                self._ack_pending_bytes = 0
                self._ack_now = False
                self.acks_sent += 1
        # Retransmissions first: they fill the gaps the peer is waiting on.
        while self._rtx:
            seq = self._rtx.popleft()
            slot = &self._slots[seq & self._slot_mask]
            slot.queued = False
            if self._acked.is_marked_c(seq) or seq < self._acked.base:
                continue
            m = <_OutMessage>self._slot_msgs[seq & self._slot_mask]
            used = self._put_frame(buf, used, &frames, &has_data, out, m, seq, slot.offset,
                                   slot.length)
            slot.sent_at = now
            slot.transmissions += 1
            self.frames_retransmitted += 1
            self.frames_sent += 1
        # New frames while the in-flight window has room.
        while self._queue and self._window_open():
            m = <_OutMessage>self._queue[0]
            length = m.size - m.framed
            if length > self._chunk_size:
                length = self._chunk_size
            seq = self._snd_next
            if <Py_ssize_t>(seq - self._acked.base) >= self._slot_mask + 1:
                self._grow_slots(2 * (self._slot_mask + 1))
            slot = &self._slots[seq & self._slot_mask]
            slot.sent_at = now
            slot.offset = <uint64_t>m.framed
            slot.length = <uint32_t>length
            slot.transmissions = 1
            slot.queued = False
            self._slot_msgs[seq & self._slot_mask] = m
            if m.framed == 0:
                m.first_seq = seq
            used = self._put_frame(buf, used, &frames, &has_data, out, m, seq, m.framed, length)
            m.framed += length
            m.unacked += 1
            if m.framed == m.size:
                self._queue.popleft()
            if self._inflight_count == 0:
                self._rto_deadline = now + self._current_rto()
            self._snd_next = seq + 1
            self._inflight_count += 1
            self._inflight_bytes += length
            self.frames_sent += 1
        if frames:
            out.append(PyBytes_FromStringAndSize(<char*>buf, used))
        return 0

    cdef inline Py_ssize_t _put_frame(self, unsigned char* buf, Py_ssize_t used,
                                      Py_ssize_t* frames, bint* has_data, list out, _OutMessage m,
                                      uint64_t seq, uint64_t offset, Py_ssize_t length) except -1:
        # Append one DATA frame to the batch in buf, first closing the batch if the frame would take
        # it past coalesce_bytes (a batch's first data frame always goes in, whatever its size).
        cdef Py_ssize_t h = data_header_size(m.flags, seq, m.size, offset, length)
        if has_data[0] and (used + h + length > self._coalesce or frames[0] >= self._max_frames):
            out.append(PyBytes_FromStringAndSize(<char*>buf, used))
            used = 1
            frames[0] = 0
        used += write_data_header(buf + used, m.flags, seq, m.hi, m.lo, m.reply_hi, m.reply_lo,
                                  m.size, offset, length)
        if m.parts is None:
            memcpy(buf + used, PyBytes_AS_STRING(m.payload) + offset, length)
        else:
            _gather(buf + used, m.parts, offset, length)
        frames[0] += 1
        has_data[0] = True
        return used + length

    cdef inline bint _window_open(self) noexcept:
        return (<Py_ssize_t>(self._snd_next - self._acked.base) < self._max_inflight
                and self._inflight_bytes < self._max_inflight_bytes)

    # ============================================================================================
    # Snapshots: the whole session as bytes, to move it to another process (see docs/PROTOCOL.md).

    def snapshot(self, double now, Py_ssize_t max_ids=-1):
        """The whole state of this session as bytes (a versioned format, validated on restore like
        any peer input). Times are stored relative to ``now``. The engine itself is unchanged.

        ``max_ids`` >= 0 keeps only that many of the most recently delivered message ids (the id
        set is 16 bytes per id up to ``id_set_capacity``; a snapshot taken on every batch keeps
        the ids that can still be retried, not the whole history)."""
        return self._snapshot(now, max_ids, None, None, None, None)

    def snapshot_apart(self, double now, Py_ssize_t max_ids, set stored not None):
        """:meth:`snapshot` with the outbox's messages stored apart: ``(data, added, records,
        gone)``.

        A message is written once and never changes while it waits for its acknowledgement (only
        its framing progress does), so a caller that saves the session often keeps each message's
        record (flags, what it answers, payload) apart, keyed by its id, and writes it once.
        ``data`` names every unacknowledged message by id with its framing progress (no
        payload); ``added`` lists the ids of the messages not in ``stored`` (the ids whose record
        the caller holds) and ``records`` packs their records, in that order, each as its id, its
        length (4 bytes, big-endian) and the record (one buffer: a caller writes it as one
        argument); ``gone`` lists the ids in ``stored`` no longer in the outbox (acknowledged,
        expired: their records can go). :meth:`restore` takes ``data`` with ``records`` holding
        the record of every message it names, by id."""
        cdef list added = []
        cdef list gone = []
        cdef _SnapshotWriter packed = _SnapshotWriter()
        data = self._snapshot(now, max_ids, stored, added, packed, gone)
        return data, added, packed.getvalue(), gone

    cdef bytes _snapshot(self, double now, Py_ssize_t max_ids, set stored, list added,
                         _SnapshotWriter packed, list gone):
        # stored is None: every message inline (snapshot); else each message is a reference
        # (SNAPSHOT_APART), the ids of those not in stored go to added and their records to
        # packed, and the ids in stored that are no longer pending go to gone.
        if self.closed:
            raise LocalProtocolError(f"session is closed ({self.close_reason})")
        cdef _SnapshotWriter w = _SnapshotWriter()
        cdef Py_ssize_t start
        cdef _OutMessage m
        cdef _HeldFrame h
        cdef _Slot* slot
        cdef uint64_t seq
        cdef dict index
        cdef list messages = []
        w.raw(SNAPSHOT_MAGIC)
        w.varint(SNAPSHOT_VERSION)
        w.varint(self._prefix >> 32)
        w.varint(self._prefix & 0xFFFFFFFF)
        w.varint(self._counter)
        w.f64(self._srtt)
        w.f64(self._rttvar)
        w.f64(self._rto)
        w.varint(self._has_rtt)
        # Send side: every message not yet acknowledged, once, then the frames in flight.
        self._snap_marks += 1
        cdef uint64_t mark = self._snap_marks
        seq = self._acked.base
        while seq < self._snd_next:
            if not self._acked.is_marked_c(seq):
                m = <_OutMessage>self._slot_msgs[seq & self._slot_mask]
                if m.snap_mark != mark:
                    m.snap_mark = mark
                    m.snap_index = len(messages)
                    messages.append(m)
            seq += 1
        for m in self._queue:
            if m.snap_mark != mark:
                m.snap_mark = mark
                m.snap_index = len(messages)
                messages.append(m)
        w.varint(len(messages))
        if stored:
            # (the outbox by id is then kept up to date as messages come and go)
            index = self._pending_ids()
            for i in stored:
                if i not in index:
                    gone.append(i)
        for m in messages:
            w.raw(m.msg_id)
            if stored is None:
                _write_message(w, m)
            else:
                w.varint(m.flags | SNAPSHOT_APART)
                if m.msg_id not in stored:
                    added.append(m.msg_id)
                    packed.raw(m.msg_id)
                    start = packed.skip(4)
                    _write_message(packed, m)
                    packed.u32_at(start, <uint32_t>(packed.size() - start - 4))
            w.varint(m.framed)
            w.f64(now - m.accepted_at)
        w.varint(self._acked.base)
        w.varint(self._snd_next)
        w.varint(self._inflight_count)
        seq = self._acked.base
        while seq < self._snd_next:
            if not self._acked.is_marked_c(seq):
                slot = &self._slots[seq & self._slot_mask]
                m = <_OutMessage>self._slot_msgs[seq & self._slot_mask]
                w.varint(seq)
                w.varint(m.snap_index)
                w.varint(slot.offset)
                w.varint(slot.length)
                w.varint(slot.transmissions)
            seq += 1
        w.varint(len(self._queue))
        for m in self._queue:
            w.varint(m.snap_index)
        # Receive side: the cumulative point, the in-order chunk stream, the held frames.
        w.varint(self._rcv.base)
        if self._rx_chunk_id is None:
            w.varint(0)
        else:
            w.varint(1)
            w.raw(self._rx_chunk_id)
            w.varint(self._rx_chunk_total)
            w.blob(self._reasm.buffer_c(self._rx_chunk_id)[:self._rx_chunk_next])
        w.varint(len(self._held))
        for seq in sorted(self._held):
            h = self._held[seq]
            w.varint(seq)
            w.varint(h.flags)
            w.raw(id_bytes(h.hi, h.lo))
            if h.flags & FLAG_RESPONSE:
                w.raw(id_bytes(h.reply_hi, h.reply_lo))
            if h.flags & FLAG_CHUNK:
                w.varint(h.total)
                w.varint(h.offset)
                w.blob(self._reasm.buffer_c(id_bytes(h.hi, h.lo))[h.offset:h.offset + h.length])
            else:
                w.blob(h.payload)
        ids = self._ids.to_list(max_ids)
        w.varint(len(ids))
        for i in ids:
            w.raw(i)
        w.varint(len(self._awaiting_reply))
        for i in sorted(self._awaiting_reply):
            w.raw(i)
        items = self._cache.items()
        w.varint(len(items))
        for key, value, stored_at in items:
            w.raw(key)
            w.blob(value)
            w.f64(now - stored_at)
        for name in COUNTERS:
            w.varint(getattr(self, name))
        return w.getvalue()

    @staticmethod
    def restore(bytes data not None, config=None, *, double now=0.0, dict records=None):
        """A new engine carrying on the session in ``data`` (from :meth:`snapshot`), disconnected:
        call :meth:`resume` with the peer's state once a link is up. ``records``: the message
        records of a :meth:`snapshot_apart` (id -> record; records ``data`` does not name are
        ignored).

        :raises RemoteProtocolError: the snapshot is malformed, of an unknown version, or does not
                                     fit this ``config``'s limits.
        """
        cdef Engine e = Engine(config, now=now, id_prefix=b"\0" * 8)
        cdef _SnapshotReader r = _SnapshotReader(data)
        try:
            e._load(r, now, records)
        except (ValueError, OverflowError, KeyError, IndexError) as exc:
            raise RemoteProtocolError(f"snapshot: invalid ({exc})") from None
        except RemoteProtocolError as exc:
            if exc.reason.startswith("snapshot:"):
                raise
            # A component (the reassembler, say) found the inconsistency: still the snapshot's.
            raise RemoteProtocolError(f"snapshot: {exc.reason}") from None
        if r.pos != len(data):
            raise RemoteProtocolError("snapshot: trailing bytes")
        return e

    cdef int _read_message(self, _SnapshotReader r, _OutMessage m, uint64_t flags) except -1:
        # The rest of a message's record after its flags (see _write_message), inline in a
        # snapshot or stored apart.
        if flags & ~(FLAG_REQUEST | FLAG_RESPONSE | FLAG_CHUNK):
            raise RemoteProtocolError("snapshot: unknown message flags")
        m.flags = <uint8_t>flags
        if m.flags & FLAG_RESPONSE:
            m.reply_to = r.raw(ID_SIZE)
            _id_words(m.reply_to, &m.reply_hi, &m.reply_lo)
        m.payload = r.blob(self._max_message)
        return 0

    cdef int _load(self, _SnapshotReader r, double now, dict records) except -1:
        cdef _OutMessage m
        cdef _HeldFrame h
        cdef _Slot* slot
        cdef uint64_t seq, base, n, i, count
        cdef Py_ssize_t idx
        cdef bytes chunk
        cdef list messages = []
        cdef dict by_id = {}
        cdef uint64_t framed, offset, length, transmissions, k, full, flags
        cdef object record
        cdef _SnapshotReader apart
        cdef Py_ssize_t nframes
        cdef bint framed_all
        if r.raw(len(SNAPSHOT_MAGIC)) != SNAPSHOT_MAGIC:
            raise RemoteProtocolError("snapshot: not a relio session snapshot")
        version = r.varint()
        if version != SNAPSHOT_VERSION:
            raise RemoteProtocolError(f"snapshot: unsupported version {version}")
        self._prefix = (r.varint() << 32) | r.varint()
        self._counter = r.varint()
        self._srtt = r.f64()
        self._rttvar = r.f64()
        self._rto = r.f64()
        self._has_rtt = r.varint() != 0
        if not (self._min_rto <= self._rto <= self._max_rto) or self._srtt < 0 or self._rttvar < 0:
            raise RemoteProtocolError("snapshot: RTT state out of range")
        n = r.count(self._max_outbox, "messages")
        for i in range(n):
            m = _OutMessage.__new__(_OutMessage)
            m.msg_id = r.raw(ID_SIZE)
            _id_words(m.msg_id, &m.hi, &m.lo)
            flags = r.varint()
            if flags & SNAPSHOT_APART:
                record = records.get(m.msg_id) if records is not None else None
                if type(record) is not bytes:
                    raise RemoteProtocolError("snapshot: the record of a message is missing")
                apart = _SnapshotReader(record)
                if apart.varint() != flags & ~SNAPSHOT_APART:
                    raise RemoteProtocolError("snapshot: a message record does not match")
                self._read_message(apart, m, flags & ~SNAPSHOT_APART)
                if apart.pos != len(record):
                    raise RemoteProtocolError("snapshot: trailing bytes in a message record")
            else:
                self._read_message(r, m, flags)
            m.size = len(m.payload)
            if bool(m.flags & FLAG_CHUNK) != (m.size > self._chunk_size):
                raise RemoteProtocolError("snapshot: message chunking does not match chunk_size")
            framed = r.varint()
            if framed > <uint64_t>m.size:
                raise RemoteProtocolError("snapshot: message framed beyond its size")
            m.framed = <Py_ssize_t>framed
            # Framing cuts a message at chunk boundaries only (an unchunked one is one frame).
            if m.framed != m.size and m.framed % self._chunk_size:
                raise RemoteProtocolError("snapshot: message framed up to the middle of a frame")
            m.accepted_at = now - r.f64()
            m.unacked = 0
            m.first_seq = NOT_FRAMED
            if PyDict_GetItem(by_id, m.msg_id) != NULL:
                raise RemoteProtocolError("snapshot: two messages with the same id")
            if m.hi == self._prefix and m.lo >= self._counter and m.lo != U64_MAX:
                # The restored engine would make this id again while it is pending.
                raise RemoteProtocolError("snapshot: a message id is ahead of the id counter")
            PyDict_SetItem(by_id, m.msg_id, m)
            self._outbox_bytes += m.size
            messages.append(m)
        self._outbox_count = len(messages)
        if self._outbox_bytes > self._max_outbox_bytes and self._outbox_count > 1:
            raise RemoteProtocolError("snapshot: outbox exceeds max_outbox_bytes")
        base = r.varint()
        self._snd_next = r.varint()
        if self._snd_next < base or self._snd_next - base > <uint64_t>self._max_inflight:
            raise RemoteProtocolError("snapshot: in-flight window exceeds max_inflight_messages")
        self._acked = AckWindow(self._acked.size, base)
        self._grow_slots(_pow2_at_least(self._snd_next - base + 1))
        count = r.count(self._max_inflight, "frames in flight")
        seq = base
        for i in range(count):
            s = r.varint()
            if s < seq or s >= self._snd_next:
                raise RemoteProtocolError("snapshot: in-flight frames out of order")
            while seq < s:
                self._acked.mark_c(seq)  # acknowledged selectively before the snapshot
                seq += 1
            m = messages[r.index(len(messages))]
            offset = r.varint()
            length = r.varint()
            transmissions = r.varint()
            if (length > <uint64_t>self._chunk_size or offset + length > <uint64_t>m.framed
                    or transmissions == 0 or transmissions > 0xFFFFFFFF):
                raise RemoteProtocolError("snapshot: in-flight frame does not match its message")
            # It must be one of the message's frames as the engine cuts them: the whole of an
            # unchunked message, or chunk k at offset k * chunk_size, and chunk k of a message
            # takes the sequence number of its chunk 0 plus k (the chunks of a message take
            # consecutive sequence numbers, so no frame is claimed by two messages or twice).
            if m.flags & FLAG_CHUNK:
                k = offset // <uint64_t>self._chunk_size
                full = <uint64_t>m.size - offset
                if full > <uint64_t>self._chunk_size:
                    full = <uint64_t>self._chunk_size
                if offset % <uint64_t>self._chunk_size or length != full:
                    raise RemoteProtocolError(
                        "snapshot: in-flight frame does not match its message")
            else:
                k = 0
                if offset != 0 or length != <uint64_t>m.size:
                    raise RemoteProtocolError(
                        "snapshot: in-flight frame does not match its message")
            if k > <uint64_t>s:
                raise RemoteProtocolError("snapshot: in-flight frame does not match its message")
            if m.first_seq == NOT_FRAMED:
                m.first_seq = <uint64_t>s - k
            elif m.first_seq != <uint64_t>s - k:
                raise RemoteProtocolError(
                    "snapshot: the frames of a message are not on consecutive sequence numbers")
            slot = &self._slots[s & self._slot_mask]
            slot.offset = offset
            slot.length = <uint32_t>length
            slot.transmissions = <uint32_t>transmissions
            slot.sent_at = now
            slot.queued = False
            self._slot_msgs[s & self._slot_mask] = m
            m.unacked += 1
            self._inflight_count += 1
            self._inflight_bytes += <Py_ssize_t>length
            seq = s + 1
        while seq < self._snd_next:
            self._acked.mark_c(seq)
            seq += 1
        if self._inflight_bytes > self._max_inflight_bytes + self._chunk_size:
            raise RemoteProtocolError("snapshot: in-flight bytes exceed max_inflight_bytes")
        count = r.count(len(messages), "queued messages")
        cdef set queued = set()
        for i in range(count):
            idx = r.index(len(messages))
            if idx in queued:
                raise RemoteProtocolError("snapshot: a message is queued twice")
            queued.add(idx)
            m = messages[idx]
            if i and (m.framed or m.unacked):
                # Only the head of the queue can have been framed in part.
                raise RemoteProtocolError("snapshot: a queued message behind the head is framed")
            self._queue.append(m)
        cdef list spans = []
        for idx in range(len(messages)):
            m = messages[idx]
            # Wholly framed: every byte given a frame (an empty message: its one frame sent).
            framed_all = m.framed == m.size and (m.size or m.unacked)
            if idx not in queued:
                if m.unacked == 0:
                    raise RemoteProtocolError("snapshot: a message is neither in flight nor queued")
                if not framed_all:
                    raise RemoteProtocolError("snapshot: a message framed in part is not queued")
            elif framed_all:
                raise RemoteProtocolError("snapshot: a queued message is already framed")
            elif m.framed:
                # The head of the queue, framed in part: its frames are the last ones sent.
                nframes = (m.framed + self._chunk_size - 1) // self._chunk_size
                if m.first_seq == NOT_FRAMED:       # all of them acknowledged already
                    if <uint64_t>nframes > self._snd_next:
                        raise RemoteProtocolError("snapshot: framed message beyond the frames sent")
                    m.first_seq = self._snd_next - <uint64_t>nframes
                elif m.first_seq + <uint64_t>nframes != self._snd_next:
                    raise RemoteProtocolError(
                        "snapshot: a message framed in part is not the last one framed")
            if m.first_seq != NOT_FRAMED:
                if m.flags & FLAG_CHUNK:
                    nframes = (m.framed + self._chunk_size - 1) // self._chunk_size
                else:
                    nframes = 1
                spans.append((m.first_seq, m.first_seq + <uint64_t>nframes))
        spans.sort()
        for idx in range(len(spans)):
            if spans[idx][1] > self._snd_next or (idx and spans[idx][0] < spans[idx - 1][1]):
                raise RemoteProtocolError(
                    "snapshot: the frames of two messages overlap or go beyond the frames sent")
        # Receive side.
        base = r.varint()
        self._rcv = AckWindow(self._rcv.size, base)
        if r.varint():
            self._rx_chunk_id = r.raw(ID_SIZE)
            self._rx_chunk_total = r.varint()
            chunk = r.blob(self._max_message)
            self._rx_chunk_next = len(chunk)
            if self._rx_chunk_next == 0 or self._rx_chunk_next >= self._rx_chunk_total:
                raise RemoteProtocolError("snapshot: in-order chunk stream out of range")
            self._reasm.add_c(self._rx_chunk_id, <Py_ssize_t>self._rx_chunk_total, 0,
                              <const unsigned char*>PyBytes_AS_STRING(chunk), len(chunk), True)
        count = r.count(self._rcv.size, "held frames")
        for i in range(count):
            seq = r.varint()
            h = _HeldFrame.__new__(_HeldFrame)
            h.flags = r.varint()
            if h.flags & ~(FLAG_REQUEST | FLAG_RESPONSE | FLAG_CHUNK):
                raise RemoteProtocolError("snapshot: unknown held frame flags")
            _id_words(r.raw(ID_SIZE), &h.hi, &h.lo)
            if h.flags & FLAG_RESPONSE:
                _id_words(r.raw(ID_SIZE), &h.reply_hi, &h.reply_lo)
            if h.flags & FLAG_CHUNK:
                h.total = r.varint()
                h.offset = r.varint()
                chunk = r.blob(self._chunk_size)
                h.length = len(chunk)
                if (h.length == 0 or h.total > <uint64_t>self._max_message
                        or h.offset + h.length > h.total):
                    raise RemoteProtocolError("snapshot: held chunk out of range")
                if not self._reasm.add_c(id_bytes(h.hi, h.lo), <Py_ssize_t>h.total,
                                         <Py_ssize_t>h.offset,
                                         <const unsigned char*>PyBytes_AS_STRING(chunk),
                                         h.length, False):
                    raise RemoteProtocolError("snapshot: held chunks exceed reassembly limits")
            else:
                h.payload = r.blob(self._max_message)
                h.length = len(h.payload)
                self._held_bytes += h.length
                if self._held_bytes > self._max_reorder:
                    raise RemoteProtocolError("snapshot: held frames exceed max_reorder_bytes")
            if seq <= base or self._rcv.mark_c(seq) != 1:
                raise RemoteProtocolError("snapshot: held frame outside the receive window")
            self._held[seq] = h
            if _starts_request(h.flags, h.offset):
                self._held_requests += 1
        cdef uint64_t hi, lo
        count = r.count(self._ids.capacity, "ids")
        for i in range(count):
            _id_words(r.raw(ID_SIZE), &hi, &lo)
            self._ids.add_c(hi, lo)
        count = r.count(self._ids.capacity, "awaited replies")
        for i in range(count):
            self._awaiting_reply.add(r.raw(ID_SIZE))
        count = r.count(self._cache.max_entries, "cached responses")
        for i in range(count):
            key = r.raw(ID_SIZE)
            value = r.blob(self._cache.max_bytes)
            if len(value) < CACHED_HEADER:
                raise RemoteProtocolError("snapshot: cached response too short")
            self._cache.put_c(key, value, now - r.f64())
        for name in COUNTERS:
            setattr(self, name, r.varint())
        self.connected = False
        return 0

    # ============================================================================================
    # Introspection

    @property
    def stats(self):
        """Counters and gauges of this session (a new dict each time)."""
        return {
            "messages_sent": self.messages_sent,
            "messages_delivered": self.messages_delivered,
            "messages_expired": self.messages_expired,
            "messages_received": self.messages_received,
            "frames_sent": self.frames_sent,
            "frames_retransmitted": self.frames_retransmitted,
            "frames_received": self.frames_received,
            "duplicates_dropped": self.duplicates_dropped,
            "frames_refused": self.frames_refused,
            "responses_resent": self.responses_resent,
            "acks_sent": self.acks_sent,
            "outbox_messages": self._outbox_count,
            "outbox_bytes": self._outbox_bytes,
            "in_flight_frames": self._inflight_count,
            "in_flight_bytes": self._inflight_bytes,
            "held_frames": len(self._held),
            "held_bytes": self._held_bytes,
            "reassembly_bytes": self._reasm.nbytes,
            "cached_responses": len(self._cache),
            "peer_requests_pending": PySet_GET_SIZE(self._awaiting_reply),
            "srtt": self._srtt if self._has_rtt else None,
            "rto": self._current_rto(),
        }

    @property
    def outbox_messages(self):
        """Messages accepted and not yet acknowledged or expired."""
        return self._outbox_count

    @property
    def outbox_bytes(self):
        return self._outbox_bytes

    @property
    def has_room(self):
        """Whether a small message would be accepted now (for backpressure waits)."""
        return not self.closed and self._outbox_count < self._max_outbox

    @property
    def awaiting_reply(self):
        """Ids of the peer's requests delivered and not yet answered."""
        return frozenset(self._awaiting_reply)


SNAPSHOT_MAGIC = b"relio-session\0"
SNAPSHOT_VERSION = 1
COUNTERS = ("messages_sent", "messages_delivered", "messages_expired", "messages_received",
            "frames_sent", "frames_retransmitted", "frames_received", "duplicates_dropped",
            "frames_refused", "responses_resent", "acks_sent")


cdef class _SnapshotWriter:
    """Appends to one growing C buffer (a snapshot is taken at every durable save: one bytes
    object per field, as before, cost ~0.5 µs per queued message per save)."""
    cdef unsigned char* _buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap

    def __cinit__(self):
        self._cap = 4096
        self._len = 0
        self._buf = <unsigned char*>PyMem_Malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._buf)

    cdef int _reserve(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap = self._cap
        cdef unsigned char* grown
        if self._len + n <= cap:
            return 0
        while self._len + n > cap:
            cap *= 2
        grown = <unsigned char*>PyMem_Realloc(self._buf, cap)
        if grown == NULL:
            raise MemoryError()
        self._buf, self._cap = grown, cap
        return 0

    cdef int raw(self, bytes b) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        self._reserve(n)
        memcpy(self._buf + self._len, PyBytes_AS_STRING(b), n)
        self._len += n
        return 0

    cdef int varint(self, uint64_t v) except -1:
        self._reserve(8)
        self._len += write_varint(self._buf + self._len, v)
        return 0

    cdef int f64(self, double v) except -1:
        cdef uint64_t bits
        memcpy(&bits, &v, 8)
        self._reserve(8)
        write_u64(self._buf + self._len, bits)   # big-endian IEEE 754, as struct's ">d"
        self._len += 8
        return 0

    cdef int blob(self, bytes b) except -1:
        self.varint(PyBytes_GET_SIZE(b))
        return self.raw(b)

    cdef bytes getvalue(self):
        return PyBytes_FromStringAndSize(<char*>self._buf, self._len)

    cdef Py_ssize_t size(self) noexcept:
        return self._len

    cdef Py_ssize_t skip(self, Py_ssize_t n) except -1:
        # Leave n bytes to fill in later (u32_at); returns where they are.
        self._reserve(n)
        self._len += n
        return self._len - n

    cdef void u32_at(self, Py_ssize_t pos, uint32_t v) noexcept:
        self._buf[pos] = <unsigned char>(v >> 24)
        self._buf[pos + 1] = <unsigned char>((v >> 16) & 0xFF)
        self._buf[pos + 2] = <unsigned char>((v >> 8) & 0xFF)
        self._buf[pos + 3] = <unsigned char>(v & 0xFF)


cdef int _write_message(_SnapshotWriter w, _OutMessage m) except -1:
    # What never changes of a queued message: its flags, what it answers, its payload.
    w.varint(m.flags)
    if m.flags & FLAG_RESPONSE:
        w.raw(m.reply_to)
    w.blob(_whole_payload(m))
    return 0


cdef class _SnapshotReader:
    """Bounds-checked reads; every failure is a RemoteProtocolError (a snapshot is peer input)."""
    cdef bytes data
    cdef Py_ssize_t pos

    def __cinit__(self, bytes data):
        self.data = data
        self.pos = 0

    cdef bytes raw(self, Py_ssize_t n):
        if self.pos + n > PyBytes_GET_SIZE(self.data):
            raise RemoteProtocolError("snapshot: truncated")
        cdef bytes b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    cdef uint64_t varint(self) except? 0xFFFFFFFFFFFFFFFF:
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(self.data)
        cdef Py_ssize_t end = PyBytes_GET_SIZE(self.data)
        cdef Py_ssize_t n, i
        cdef uint64_t v
        if self.pos >= end:
            raise RemoteProtocolError("snapshot: truncated")
        n = 1 << (p[self.pos] >> 6)
        if self.pos + n > end:
            raise RemoteProtocolError("snapshot: truncated")
        v = p[self.pos] & 0x3F
        for i in range(1, n):
            v = (v << 8) | p[self.pos + i]
        self.pos += n
        return v

    cdef double f64(self) except? -1.0:
        cdef double v = _F64.unpack(self.raw(8))[0]
        if v != v or v in (INFINITY, -INFINITY):
            raise RemoteProtocolError("snapshot: time is not finite")
        return v

    cdef bytes blob(self, Py_ssize_t limit):
        cdef uint64_t n = self.varint()
        if n > <uint64_t>limit:
            raise RemoteProtocolError(f"snapshot: a field of {n} bytes exceeds its limit {limit}")
        return self.raw(<Py_ssize_t>n)

    cdef uint64_t count(self, Py_ssize_t limit, str what) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t n = self.varint()
        if n > <uint64_t>limit:
            raise RemoteProtocolError(f"snapshot: {n} {what} exceed the limit of {limit}")
        return n

    cdef Py_ssize_t index(self, Py_ssize_t size) except -1:
        cdef uint64_t i = self.varint()
        if i >= <uint64_t>size:
            raise RemoteProtocolError("snapshot: message index out of range")
        return <Py_ssize_t>i
