# Contract of relio.engine._chunks used by the engine (cimport). Implementation: _chunks.pyx.
# The implementer may add private cdef attributes; the cdef method signatures below are fixed.

cdef class Reassembler:
    cdef readonly Py_ssize_t max_message_size
    cdef readonly Py_ssize_t max_reassemblies
    cdef readonly Py_ssize_t max_bytes
    # Bytes currently preallocated for reassemblies.
    cdef readonly Py_ssize_t nbytes
    # --- private implementation state (owned by _chunks.pyx) ---
    # msg_id -> the message's _Reassembly (buffer and received ranges), in admission order.
    cdef dict _parts

    # Copy n bytes of data to offset in message msg_id's buffer of total bytes, preallocating it on
    # the message's first chunk. Returns 1 if stored, 0 if refused because admitting a new message
    # would exceed max_reassemblies or max_bytes (the caller drops the frame unacknowledged); a
    # head_of_line message is always admitted (so the stream can always make progress).
    # Raises RemoteProtocolError if total > max_message_size, total differs from the message's
    # earlier chunks, n == 0, or offset + n > total.
    cdef int add_c(self, bytes msg_id, Py_ssize_t total, Py_ssize_t offset,
                   const unsigned char* data, Py_ssize_t n, bint head_of_line) except -1
    # The message's buffer (a bytes object of length total, filled where chunks were added), or None.
    cdef object buffer_c(self, bytes msg_id)
    # Hand over the complete message's buffer and forget it; raises RemoteProtocolError if fewer than
    # total distinct bytes were added (counted by chunk, overlaps not double-counted).
    cdef object finish_c(self, bytes msg_id)
    # Forget msg_id's reassembly (no-op if unknown).
    cdef void discard_c(self, bytes msg_id) noexcept
