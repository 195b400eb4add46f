# Contract of relio.engine._ackwindow used by the engine (cimport). Implementation: _ackwindow.pyx.
# The implementer may add private cdef attributes; the cdef method signatures below are fixed.
from libc.stdint cimport uint64_t

cdef class AckWindow:
    # Every seq < base is marked (the cumulative point). Always: base <= highest <= base + size.
    cdef readonly uint64_t base
    # Number of sequence numbers tracked at and above base (a power of two).
    cdef readonly Py_ssize_t size
    # One past the highest marked seq; == base when nothing above base is marked.
    cdef readonly uint64_t highest
    # --- private implementation state (owned by _ackwindow.pyx) ---
    # Ring bitmap of max(size, 64) bits in uint64 words; the slot of seq is seq & _ring_mask. Holds
    # exactly the marked seqs in (base, base + size): bits are cleared as base passes them.
    cdef uint64_t* _bits
    cdef uint64_t _ring_mask
    cdef Py_ssize_t _nwords
    # Number of set bits in _bits, so count_above_c is O(1).
    cdef Py_ssize_t _count_above

    # Mark seq. Returns 1 if newly marked, 0 if already marked (or seq < base), -1 if
    # seq >= base + size (outside the window: nothing changed). When seq == base the base advances
    # over every contiguous marked seq.
    cdef int mark_c(self, uint64_t seq) except -2
    cdef bint is_marked_c(self, uint64_t seq) noexcept
    # Move base forward to new_base (marking everything below it); no-op if new_base <= base.
    # After this, base may be further still if seqs at new_base.. were already marked.
    cdef void advance_to_c(self, uint64_t new_base) noexcept
    # Marked runs above base as (start, end_exclusive) pairs, ascending: writes out[0..2n), returns
    # n <= max_ranges (the lowest runs are kept when there are more).
    cdef Py_ssize_t ranges_c(self, uint64_t* out, Py_ssize_t max_ranges) noexcept
    # Unmarked runs in [base, highest) as (start, end_exclusive) pairs, ascending; as ranges_c.
    cdef Py_ssize_t holes_c(self, uint64_t* out, Py_ssize_t max_holes) noexcept
    # Number of marked seqs above base.
    cdef Py_ssize_t count_above_c(self) noexcept
