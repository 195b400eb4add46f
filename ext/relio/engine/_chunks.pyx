"""Chunking of big payloads and their reassembly under memory caps.

This module owns both ends of relio's chunking. A payload bigger than ``Config.chunk_size``
travels as several DATA frames so that a heartbeat never waits behind more than one chunk on the
transport.

* :func:`split` cuts a payload into zero-copy ``memoryview`` slices: the sender keeps the payload
  alive until it is acknowledged anyway, so copying it into chunks would only cost bandwidth.
* :class:`Reassembler` rebuilds messages on the receiving side. A message's buffer is allocated
  once, at its first chunk, with the size the peer announced, and every chunk is copied straight
  to its offset: no list of parts and no final join, so a message costs one copy of its bytes.
  Chunks may arrive in any order, twice, or overlapping (a retransmission cut differently), so the
  bytes received are counted as merged ranges, as QUIC stream reassembly does (aioquic's
  ``RangeSet``), and a message is complete only when every byte of it is covered.
* Memory is the peer's to spend only within caps: a new message is admitted only while fewer than
  ``max_reassemblies`` are in progress and their buffers fit in ``max_bytes``. A refused chunk is
  not acknowledged, so the sender retransmits it later; nothing is lost. The head-of-line message
  (the one the ordered stream waits for) is always admitted so that the stream can always make
  progress; the engine marks only one message at a time as head-of-line, which keeps memory below
  ``max_bytes + max_message_size``.
* :func:`reassemble_into` is the same copy-and-count into memory the caller owns and reuses.
* :func:`take_range` hands one part of a received message's payload (a big binary attachment) over
  as a bytes object of its own without a second buffer: the payload's own buffer is moved and
  shrunk in place when nobody but the engine's event holds it.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.string cimport memmove, memset

from relio.engine._build cimport RELIO_DEBUG_BUILD
from relio.engine._events cimport MessageReceived, ResponseReceived


cdef extern from *:
    """
    /* Fault in the pages of [start, start + length) of a fresh buffer with one system call
       (Linux >= 5.14, MADV_POPULATE_WRITE) instead of one page fault per 4 KiB as it is written:
       returns 0 if done, -1 if not available (other systems, older kernels: nothing happens). */
    #if defined(__linux__)
    #include <sys/mman.h>
    #include <unistd.h>
    #ifndef MADV_POPULATE_WRITE
    #define MADV_POPULATE_WRITE 23
    #endif
    static int relio_populate_off = 0;
    static int relio_populate(unsigned char* start, size_t length) {
        static size_t page = 0;
        uintptr_t first, last;
        if (relio_populate_off) return -1;
        if (page == 0) {
            long size = sysconf(_SC_PAGESIZE);
            page = size > 0 ? (size_t)size : 4096;
        }
        first = ((uintptr_t)start + page - 1) & ~(uintptr_t)(page - 1);
        last = ((uintptr_t)start + length) & ~(uintptr_t)(page - 1);
        if (last <= first) return 0;
        if (madvise((void*)first, last - first, MADV_POPULATE_WRITE) != 0) {
            relio_populate_off = 1;
            return -1;
        }
        return 0;
    }
    #else
    static int relio_populate(unsigned char* start, size_t length) {
        (void)start; (void)length; return -1;
    }
    #endif
    """
    int relio_populate(unsigned char* start, size_t length) nogil


cdef extern from "Python.h":
    Py_ssize_t _refcount "Py_REFCNT"(PyObject* o)
    # Resizes a bytes object only one reference holds (it may move: *o is updated); on failure the
    # object is freed, *o set to NULL and -1 returned with an exception set.
    int _PyBytes_Resize(PyObject** o, Py_ssize_t newsize) except -1

from relio.engine.errors import LocalProtocolError, RemoteProtocolError

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

DEFAULT_CHUNK_SIZE = 65536

# Room for this many received ranges is allocated with a message's first chunk; in-order delivery,
# the normal case, never needs more than one.
cdef enum:
    _INITIAL_RANGE_CAPACITY = 4

# A message buffer this big or bigger has its pages faulted in ahead of the chunks being written, this
# many bytes at a time (relio_populate): writing a fresh 50 MiB buffer chunk by chunk cost ~57 ms
# on the development machine (a page fault per 4 KiB, ~4.5 us each in its VM), ~46 ms with
# its pages populated in blocks first. Smaller buffers are left to ordinary page faults.
cdef enum:
    _POPULATE_FROM = 1024 * 1024
    _POPULATE_STEP = 2 * 1024 * 1024


def split(payload, Py_ssize_t chunk_size=DEFAULT_CHUNK_SIZE):
    """Cut payload into consecutive slices of at most chunk_size bytes, without copying.

    Every slice is a ``memoryview`` of payload itself; an empty payload gives no slices.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    cdef object view = memoryview(payload)
    # Slicing a memoryview counts items, so look at a wider or multi-dimensional buffer as bytes.
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    cdef Py_ssize_t size = len(view)
    cdef Py_ssize_t start = 0
    cdef Py_ssize_t stop
    cdef list chunks = []
    while start < size:
        # Written so that start + chunk_size cannot overflow when chunk_size is huge.
        stop = size if chunk_size >= size - start else start + chunk_size
        chunks.append(view[start:stop])
        start = stop
    return chunks


cdef inline int _check_chunk(Py_ssize_t total, Py_ssize_t offset, Py_ssize_t n) except -1:
    """Raise unless the n bytes at offset lie inside a message of total bytes."""
    if n < 0:
        raise ValueError(f"chunk length must not be negative, not {n}")
    if n == 0:
        raise RemoteProtocolError("empty chunk")
    if offset < 0:
        raise RemoteProtocolError(f"chunk offset {offset} is negative")
    # Compared this way round so that offset + n cannot overflow.
    if offset > total - n:
        raise RemoteProtocolError(
            f"chunk of {n} bytes at offset {offset} overruns the message's {total} bytes"
        )
    return 0


cdef class _Reassembly:
    """One message being rebuilt: where its bytes go and which of them have arrived."""

    # What finish hands over: a bytes object allocated for the message (or the caller's buffer in
    # reassemble_into). Nobody else sees a Reassembler's bytes before finish, so writing into it
    # does not break the immutability of bytes.
    cdef object buffer
    cdef unsigned char* data
    cdef Py_ssize_t total
    # Distinct bytes covered by the ranges: the message is complete when this reaches total.
    cdef Py_ssize_t received
    # Received byte ranges as [start0, stop0, start1, stop1, ...]: sorted, disjoint and never
    # touching (adjacent ranges are merged). Each range costs 16 bytes and needs a chunk of its own
    # with a gap before the next, so this never outgrows the frames the peer had to send.
    cdef Py_ssize_t* ranges
    cdef Py_ssize_t nranges
    cdef Py_ssize_t capacity
    # Bytes of a big fresh buffer whose pages are faulted in already (see _POPULATE_FROM); total
    # when nothing is to be done (small buffers, the caller's buffer in reassemble_into).
    cdef Py_ssize_t populated

    def __dealloc__(self):
        PyMem_Free(self.ranges)

    cdef int store(self, Py_ssize_t offset, const unsigned char* chunk, Py_ssize_t n) except -1:
        """Copy a chunk already checked against total to its place and count its new bytes."""
        cdef Py_ssize_t upto
        if offset + n > self.populated:
            upto = offset + n + _POPULATE_STEP
            if upto > self.total:
                upto = self.total
            if relio_populate(self.data + self.populated, <size_t>(upto - self.populated)) == 0:
                self.populated = upto
            else:
                self.populated = self.total          # not available here: plain page faults
        # memmove, not memcpy: in reassemble_into the chunk may be a view of the destination itself.
        memmove(self.data + offset, chunk, <size_t>n)
        self.cover(offset, offset + n)
        return 0

    cdef int cover(self, Py_ssize_t start, Py_ssize_t stop) except -1:
        """Add [start, stop) to the received ranges, merging it with those it touches."""
        cdef Py_ssize_t* ranges = self.ranges
        cdef Py_ssize_t count = self.nranges
        cdef Py_ssize_t low = 0
        cdef Py_ssize_t high = count
        cdef Py_ssize_t middle
        # The first range ending at or after start: it and the ranges after it that begin at or
        # before stop touch [start, stop) and merge with it.
        while low < high:
            middle = (low + high) >> 1
            if ranges[2 * middle + 1] < start:
                low = middle + 1
            else:
                high = middle
        cdef Py_ssize_t first = low
        cdef Py_ssize_t last = first
        cdef Py_ssize_t already_received = 0
        while last < count and ranges[2 * last] <= stop:
            already_received += ranges[2 * last + 1] - ranges[2 * last]
            last += 1

        if first == last:
            if count == self.capacity:
                self.grow()
                ranges = self.ranges
            memmove(ranges + 2 * first + 2, ranges + 2 * first,
                    <size_t>(count - first) * 2 * sizeof(Py_ssize_t))
            ranges[2 * first] = start
            ranges[2 * first + 1] = stop
            self.nranges = count + 1
            self.received += stop - start
            return 0

        # Merge ranges first..last-1 and [start, stop) into ranges[first].
        if ranges[2 * first] < start:
            start = ranges[2 * first]
        if ranges[2 * last - 1] > stop:
            stop = ranges[2 * last - 1]
        ranges[2 * first] = start
        ranges[2 * first + 1] = stop
        if last - first > 1:
            memmove(ranges + 2 * first + 2, ranges + 2 * last,
                    <size_t>(count - last) * 2 * sizeof(Py_ssize_t))
            self.nranges = count - (last - first - 1)
        self.received += (stop - start) - already_received
        return 0

    cdef int grow(self) except -1:
        cdef Py_ssize_t capacity = 2 * self.capacity if self.capacity else _INITIAL_RANGE_CAPACITY
        cdef Py_ssize_t* ranges = <Py_ssize_t*>PyMem_Realloc(
            self.ranges, <size_t>capacity * 2 * sizeof(Py_ssize_t)
        )
        if ranges is NULL:
            raise MemoryError()
        self.ranges = ranges
        self.capacity = capacity
        return 0

    cdef bytes snapshot(self):
        """A copy of the buffer with the bytes not received yet zeroed."""
        cdef bytes copy = PyBytes_FromStringAndSize(<char*>self.data, self.total)
        cdef unsigned char* out = <unsigned char*>PyBytes_AS_STRING(copy)
        # The buffer was allocated uninitialised: its holes hold whatever the heap held before,
        # possibly another session's data, which must not leak out.
        cdef Py_ssize_t hole_start = 0
        cdef Py_ssize_t i
        for i in range(self.nranges):
            memset(out + hole_start, 0, <size_t>(self.ranges[2 * i] - hole_start))
            hole_start = self.ranges[2 * i + 1]
        memset(out + hole_start, 0, <size_t>(self.total - hole_start))
        return copy


cdef class Reassembler:
    """The messages being rebuilt from chunks on one session, under count and memory caps."""

    def __cinit__(self, Py_ssize_t max_message_size=64 * 1024 * 1024,
                  Py_ssize_t max_reassemblies=64, Py_ssize_t max_bytes=128 * 1024 * 1024):
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be at least 1, not {max_message_size}")
        if max_reassemblies < 0:
            raise ValueError(f"max_reassemblies must not be negative, not {max_reassemblies}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, not {max_bytes}")
        self.max_message_size = max_message_size
        self.max_reassemblies = max_reassemblies
        self.max_bytes = max_bytes
        self.nbytes = 0
        # msg_id -> _Reassembly, in admission order.
        self._parts = {}

    cdef int add_c(self, bytes msg_id, Py_ssize_t total, Py_ssize_t offset,
                   const unsigned char* data, Py_ssize_t n, bint head_of_line) except -1:
        cdef PyObject* found = PyDict_GetItem(self._parts, msg_id)
        cdef _Reassembly message
        if found is not NULL:
            message = <_Reassembly>found
            if total != message.total:
                raise RemoteProtocolError(
                    f"chunk says the message has {total} bytes, an earlier chunk said "
                    f"{message.total}"
                )
            _check_chunk(total, offset, n)
            message.store(offset, data, n)
            return 1

        # A new message: a frame that breaks the rules is an error even when memory is short.
        if total > self.max_message_size:
            raise RemoteProtocolError(
                f"message of {total} bytes exceeds max_message_size ({self.max_message_size})"
            )
        if total < 1:
            raise RemoteProtocolError(f"message size {total} is not positive")
        _check_chunk(total, offset, n)
        if not head_of_line and (
            len(self._parts) >= self.max_reassemblies or total > self.max_bytes - self.nbytes
        ):
            return 0
        message = _Reassembly.__new__(_Reassembly)
        message.buffer = PyBytes_FromStringAndSize(NULL, total)
        message.data = <unsigned char*>PyBytes_AS_STRING(message.buffer)
        message.total = total
        message.populated = 0 if total >= _POPULATE_FROM else total
        message.store(offset, data, n)
        self._parts[msg_id] = message
        self.nbytes += total
        return 1

    cdef object buffer_c(self, bytes msg_id):
        cdef PyObject* found = PyDict_GetItem(self._parts, msg_id)
        if found is NULL:
            return None
        # A copy: the live buffer is still being written, and a bytes object must never change
        # once someone holds it (its cached hash, for one, would go stale).
        return (<_Reassembly>found).snapshot()

    cdef object finish_c(self, bytes msg_id):
        cdef PyObject* found = PyDict_GetItem(self._parts, msg_id)
        if found is NULL:
            raise LocalProtocolError(f"no reassembly in progress for message {msg_id!r}")
        cdef _Reassembly message = <_Reassembly>found
        if message.received < message.total:
            raise RemoteProtocolError(
                f"message ended with {message.received} of its {message.total} bytes received"
            )
        del self._parts[msg_id]
        self.nbytes -= message.total
        return message.buffer

    cdef void discard_c(self, bytes msg_id) noexcept:
        cdef PyObject* found = PyDict_GetItem(self._parts, msg_id)
        if found is NULL:
            return
        self.nbytes -= (<_Reassembly>found).total
        # Cannot fail: the key is present and hashing bytes does not raise.
        del self._parts[msg_id]

    # --- Python API (tests, benchmarks, snapshots) -----------------------------------------------

    def add(self, bytes msg_id not None, Py_ssize_t total, Py_ssize_t offset, data,
            bint head_of_line=False):
        """Store the chunk data at offset of message msg_id of total bytes; see add_c."""
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self.add_c(msg_id, total, offset, <const unsigned char*>view.buf, view.len,
                              head_of_line) == 1
        finally:
            PyBuffer_Release(&view)

    def buffer(self, bytes msg_id not None):
        """A copy of the message's buffer, bytes not received yet zeroed; None if unknown."""
        return self.buffer_c(msg_id)

    def finish(self, bytes msg_id not None):
        """Hand over the complete message and forget it."""
        return self.finish_c(msg_id)

    def discard(self, bytes msg_id not None):
        """Forget msg_id's reassembly (no-op if unknown)."""
        self.discard_c(msg_id)

    def received(self, bytes msg_id not None):
        """Distinct bytes of msg_id received so far (0 if unknown)."""
        cdef PyObject* found = PyDict_GetItem(self._parts, msg_id)
        return 0 if found is NULL else (<_Reassembly>found).received

    def message_ids(self):
        """The ids of the messages in progress, in admission order."""
        return list(self._parts)

    def __len__(self):
        return len(self._parts)

    def __contains__(self, msg_id):
        return msg_id in self._parts

    def __repr__(self):
        return (
            f"<Reassembler {len(self._parts)}/{self.max_reassemblies} messages, "
            f"{self.nbytes}/{self.max_bytes} bytes>"
        )


def reassemble_into(out, chunks):
    """Copy (offset, data) chunks into the writable buffer out, which holds the whole message.

    The chunks are checked as a Reassembler checks them (RemoteProtocolError); overlapping chunks
    are fine. Returns the number of distinct bytes of out written: ``len(out)`` when complete.
    Nothing is allocated per message, so a caller that reuses out reassembles without allocating.
    """
    cdef Py_buffer destination
    cdef Py_buffer chunk
    cdef Py_ssize_t offset
    cdef _Reassembly message = _Reassembly.__new__(_Reassembly)
    PyObject_GetBuffer(out, &destination, PyBUF_WRITABLE)
    try:
        message.data = <unsigned char*>destination.buf
        message.total = destination.len
        message.populated = destination.len
        for offset, data in chunks:
            PyObject_GetBuffer(data, &chunk, PyBUF_SIMPLE)
            try:
                _check_chunk(message.total, offset, chunk.len)
                message.store(offset, <const unsigned char*>chunk.buf, chunk.len)
            finally:
                PyBuffer_Release(&chunk)
        return message.received
    finally:
        PyBuffer_Release(&destination)


def take_range(event, Py_ssize_t start, Py_ssize_t stop):
    """Bytes ``[start, stop)`` of a received message's payload, taken from its engine event (a
    ``MessageReceived`` or ``ResponseReceived``) without a copy when possible.

    When the event holds the only reference to its payload (the engine's events do until someone
    reads ``event.payload`` into a variable), the payload object itself becomes those bytes: they
    are moved to the front of its buffer and the buffer is shrunk (``_PyBytes_Resize``: a
    ``realloc``, which gives a big buffer's tail back to the system without copying). For a big
    binary attachment this saves a second buffer of its size: a fresh 50 MiB buffer cost ~30 ms of
    page faults on the development machine, the move ~3 ms. The event's payload is None afterwards:
    read everything else you need from it first. A payload also held elsewhere is copied and the
    event keeps it, so the result is the same either way: a new bytes object nobody else holds.
    """
    cdef PyObject* raw
    cdef MessageReceived message = None
    cdef ResponseReceived response = None
    if type(event) is MessageReceived:
        message = <MessageReceived>event
        raw = <PyObject*>message.payload
    elif type(event) is ResponseReceived:
        response = <ResponseReceived>event
        raw = <PyObject*>response.payload
    else:
        raise TypeError(f"take_range takes a MessageReceived or ResponseReceived event, "
                        f"not {type(event).__name__}")
    if raw == <PyObject*>None:
        raise ValueError("the event's payload was taken already")
    cdef Py_ssize_t size = PyBytes_GET_SIZE(<object>raw)
    if start < 0 or stop > size or start > stop:
        raise ValueError(f"range [{start}, {stop}) is not inside the payload's {size} bytes")
    cdef Py_ssize_t length = stop - start
    if _refcount(raw) != 1 or length == 0 or length == size:
        # Held elsewhere too (it must not change under its holders), or nothing to cut.
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(<object>raw) + start, length)
    # Take the event's reference: from here on this function holds the only one.
    Py_INCREF(<object>raw)
    if message is not None:
        message.payload = None
    else:
        response.payload = None
    cdef char* data = PyBytes_AS_STRING(<object>raw)
    memmove(data, data + start, <size_t>length)
    # Also invalidates the cached hash (a bytes object's hash may have been computed already).
    _PyBytes_Resize(&raw, length)
    cdef object piece = <object>raw
    Py_DECREF(piece)
    return piece
