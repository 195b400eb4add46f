"""Selective-acknowledgement window over 64-bit sequence numbers.

This module owns :class:`AckWindow`, the record of which sequence numbers have arrived (receive side)
or have been acknowledged by the peer (send side). Reliable delivery needs more than a cumulative
"everything below N" counter: after a reconnect or a lost frame, messages arrive out of order, and
the receiver must both drop duplicates and tell the sender exactly which seqs it still lacks so that
only those are resent. The window keeps the cumulative point (``base``: every seq below it is done)
plus a bitmap of the seqs done above it, and encodes that bitmap as compact ranges for ack frames and
session snapshots.

The bitmap is a ring of uint64 words indexed by ``seq & (ring bits - 1)``. As ``base`` advances its
bits are cleared, so the same words serve seqs ``size`` apart forever without shifting memory. All the
scans (advancing over a contiguous run, finding ranges and holes) work a word at a time with
count-trailing-zeros, so a run of thousands of seqs costs tens of instructions, not thousands.
"""

from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.buffer cimport PyObject_CheckBuffer
from libc.stdint cimport uint64_t
from libc.string cimport memset

from relio.engine._build cimport RELIO_DEBUG_BUILD

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD


cdef extern from *:
    # Count trailing zeros and population count of a 64-bit word: GCC/Clang builtins (one instruction,
    # or libgcc's routine for popcount), MSVC's intrinsic for ctz on 64-bit targets, plain C anywhere
    # else (defining RELIO_PORTABLE_BITOPS forces the plain C, to test it). ctz is undefined for 0, so
    # every call site below guarantees a non-zero argument.
    """
    #if (defined(__GNUC__) || defined(__clang__)) && !defined(RELIO_PORTABLE_BITOPS)
      #define relio_ctz64(x) __builtin_ctzll(x)
      #define relio_popcount64(x) __builtin_popcountll(x)
    #else
      #if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_ARM64)) && !defined(RELIO_PORTABLE_BITOPS)
        #include <intrin.h>
        #pragma intrinsic(_BitScanForward64)
        static __inline int relio_ctz64(unsigned long long x) {
            unsigned long index;
            _BitScanForward64(&index, (unsigned __int64)x);
            return (int)index;
        }
      #else
        static CYTHON_INLINE int relio_ctz64(unsigned long long x) {
            int n = 0;
            while (!(x & 0xFFu)) { x >>= 8; n += 8; }
            while (!(x & 1u)) { x >>= 1; n += 1; }
            return n;
        }
      #endif
      /* Plain C popcount (MSVC's __popcnt64 needs the POPCNT instruction, which old CPUs lack). */
      static CYTHON_INLINE int relio_popcount64(unsigned long long x) {
          x = x - ((x >> 1) & 0x5555555555555555ULL);
          x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
          x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
          return (int)((x * 0x0101010101010101ULL) >> 56);
      }
    #endif
    """
    int ctz64 "relio_ctz64"(unsigned long long x) nogil
    int popcount64 "relio_popcount64"(unsigned long long x) nogil


# The ring never holds fewer than one word, so small windows (tests use 8 seqs) still run the
# word-level code; the window limit itself stays at `size`.
cdef enum:
    WORD_BITS = 64
    MIN_RING_BITS = 64

# 2**32 seqs is a 512 MiB bitmap: anything larger is a configuration mistake, not a window.
cdef Py_ssize_t MAX_SIZE = (<Py_ssize_t>1) << 32
cdef uint64_t UINT64_MAX = 0xFFFFFFFFFFFFFFFF


cdef inline uint64_t _low_bits(uint64_t count) noexcept nogil:
    """A word with the lowest `count` bits set (count <= 64; shifting by 64 is undefined in C)."""
    return UINT64_MAX if count >= WORD_BITS else ((<uint64_t>1) << count) - 1


cdef uint64_t _find_bit(const uint64_t* bits, uint64_t ring_mask, uint64_t pos, uint64_t end,
                        bint want_set) noexcept nogil:
    """The first seq in [pos, end) whose bit equals want_set, or end if there is none.

    Callers keep end <= base + ring bits, so no slot is read twice and none aliases a seq below pos.
    """
    # XOR with flip turns "find a clear bit" into "find a set bit" without a branch per word.
    cdef uint64_t flip = 0 if want_set else UINT64_MAX
    cdef uint64_t slot, word, span
    while pos < end:
        slot = pos & ring_mask
        word = (bits[slot >> 6] ^ flip) >> (slot & 63)
        # Only the bits from pos to the end of this word (after the first word pos is word-aligned),
        # and not past end.
        span = WORD_BITS - (slot & 63)
        if end - pos < span:
            span = end - pos
            word &= _low_bits(span)
        if word:
            return pos + <uint64_t>ctz64(word)
        pos += span
    return end


cdef Py_ssize_t _clear_span(uint64_t* bits, uint64_t ring_mask, uint64_t start,
                            uint64_t count) noexcept nogil:
    """Clear the bits of seqs [start, start + count) (count <= ring bits); returns how many were set."""
    cdef uint64_t slot, span, mask
    cdef Py_ssize_t cleared = 0
    while count:
        slot = start & ring_mask
        span = WORD_BITS - (slot & 63)
        if count < span:
            span = count
        mask = _low_bits(span) << (slot & 63)
        cleared += popcount64(bits[slot >> 6] & mask)
        bits[slot >> 6] &= ~mask
        start += span
        count -= span
    return cleared


cdef void _set_span(uint64_t* bits, uint64_t ring_mask, uint64_t start, uint64_t count) noexcept nogil:
    """Set the bits of seqs [start, start + count) (count <= ring bits)."""
    cdef uint64_t slot, span
    while count:
        slot = start & ring_mask
        span = WORD_BITS - (slot & 63)
        if count < span:
            span = count
        bits[slot >> 6] |= _low_bits(span) << (slot & 63)
        start += span
        count -= span


cdef inline void _slide_base(AckWindow window) noexcept:
    """Advance base over the marked seqs starting at it, clearing their bits for reuse by the ring.

    Each step swallows the run of trailing ones from base's bit to the end of its word. It stops at
    the first unmarked seq, which exists within `size` steps because no seq at or beyond the old
    base + size is ever marked.
    """
    cdef uint64_t slot, word, run
    while True:
        slot = window.base & window._ring_mask
        word = window._bits[slot >> 6] >> (slot & 63)
        if not (word & 1):
            break
        # Shifting brought zeros in at the top, so ~word is zero only when all 64 bits were marked.
        run = WORD_BITS if ~word == 0 else <uint64_t>ctz64(~word)
        window._bits[slot >> 6] &= ~(_low_bits(run) << (slot & 63))
        window.base += run
        window._count_above -= <Py_ssize_t>run
    if window.highest < window.base:
        window.highest = window.base


cdef Py_ssize_t _runs(AckWindow window, uint64_t* out, Py_ssize_t max_runs, bint marked) noexcept:
    """Write up to max_runs (start, end) runs of seqs in [base, highest) whose bit equals marked."""
    cdef Py_ssize_t n = 0
    cdef uint64_t pos = window.base
    cdef uint64_t start
    while n < max_runs:
        start = _find_bit(window._bits, window._ring_mask, pos, window.highest, marked)
        if start >= window.highest:
            break
        pos = _find_bit(window._bits, window._ring_mask, start, window.highest, not marked)
        out[2 * n] = start
        out[2 * n + 1] = pos
        n += 1
    return n


cdef list _collect_runs(AckWindow window, Py_ssize_t max_runs, bint marked):
    """ranges() / holes(): the runs from ranges_c / holes_c as a list of (start, end) tuples."""
    cdef uint64_t* pairs
    cdef Py_ssize_t n, i
    cdef list result
    if max_runs < 0:
        raise ValueError(f"the maximum number of runs must be >= 0, got {max_runs}")
    # Every marked run holds a marked seq, and so does the end of every hole (highest - 1 is
    # marked), so count_above bounds both and sizes the buffer however large max_runs is.
    if max_runs > window._count_above:
        max_runs = window._count_above
    if max_runs == 0:
        return []
    pairs = <uint64_t*>PyMem_Malloc(2 * max_runs * sizeof(uint64_t))
    if pairs is NULL:
        raise MemoryError()
    try:
        n = window.ranges_c(pairs, max_runs) if marked else window.holes_c(pairs, max_runs)
        result = [None] * n
        for i in range(n):
            result[i] = (pairs[2 * i], pairs[2 * i + 1])
        return result
    finally:
        PyMem_Free(pairs)


cdef Py_ssize_t _mark_each(AckWindow window, object seqs) except -1:
    """mark_many() for any iterable of ints: each item converted to a uint64 and marked in order."""
    cdef Py_ssize_t newly = 0
    cdef uint64_t seq
    for item in seqs:
        seq = item
        if window.mark_c(seq) == 1:
            newly += 1
    return newly


cdef class AckWindow:
    """Which seqs are done: all below ``base``, plus a bitmap of ``size`` seqs from ``base`` up.

    ``size`` must be a power of two; it bounds how far ahead of ``base`` a seq may be marked (further
    ones are refused, which is the receiver's flow-control limit). Seqs are 64-bit counters that
    start near zero and never approach 2**64 (at a billion per second that takes 584 years).
    """

    def __cinit__(self, size=65536, base=0):
        # Checked as Python ints so that a negative or oversized value is a ValueError, not an
        # OverflowError from the C conversion (from_ranges feeds these from snapshots).
        if not 1 <= size <= MAX_SIZE or size & (size - 1):
            raise ValueError(f"AckWindow size must be a power of two in [1, {MAX_SIZE}], got {size}")
        if not 0 <= base <= UINT64_MAX:
            raise ValueError(f"AckWindow base must be in [0, 2**64), got {base}")
        cdef Py_ssize_t ring_bits = size if size > MIN_RING_BITS else MIN_RING_BITS
        self._nwords = ring_bits // WORD_BITS
        self._bits = <uint64_t*>PyMem_Calloc(self._nwords, sizeof(uint64_t))
        if self._bits is NULL:
            raise MemoryError()
        self._ring_mask = <uint64_t>ring_bits - 1
        self.size = size
        self.base = base
        self.highest = base
        self._count_above = 0

    def __dealloc__(self):
        PyMem_Free(self._bits)

    # --- C API (see _ackwindow.pxd) ---

    cdef int mark_c(self, uint64_t seq) except -2:
        cdef uint64_t slot
        if seq < self.base:
            return 0
        if seq - self.base >= <uint64_t>self.size:
            return -1
        slot = seq & self._ring_mask
        if self._bits[slot >> 6] & ((<uint64_t>1) << (slot & 63)):
            return 0
        if seq == self.base:
            # The in-order case: base's own bit is never set, so just move past it.
            self.base += 1
            _slide_base(self)
        else:
            self._bits[slot >> 6] |= (<uint64_t>1) << (slot & 63)
            self._count_above += 1
            if seq >= self.highest:
                self.highest = seq + 1
        return 1

    cdef bint is_marked_c(self, uint64_t seq) noexcept:
        cdef uint64_t slot
        if seq < self.base:
            return True
        if seq - self.base >= <uint64_t>self.size:
            return False
        slot = seq & self._ring_mask
        return (self._bits[slot >> 6] >> (slot & 63)) & 1

    cdef void advance_to_c(self, uint64_t new_base) noexcept:
        cdef uint64_t passed
        if new_base <= self.base:
            return
        passed = new_base - self.base
        if passed >= <uint64_t>self.size:
            # Every marked seq lies below base + size <= new_base: the whole ring is now behind us.
            memset(self._bits, 0, self._nwords * sizeof(uint64_t))
            self._count_above = 0
        else:
            self._count_above -= _clear_span(self._bits, self._ring_mask, self.base, passed)
        self.base = new_base
        _slide_base(self)

    cdef Py_ssize_t ranges_c(self, uint64_t* out, Py_ssize_t max_ranges) noexcept:
        return _runs(self, out, max_ranges, True)

    cdef Py_ssize_t holes_c(self, uint64_t* out, Py_ssize_t max_holes) noexcept:
        return _runs(self, out, max_holes, False)

    cdef Py_ssize_t count_above_c(self) noexcept:
        return self._count_above

    # --- Python API (tests, benchmarks, session snapshots) ---

    def mark(self, uint64_t seq):
        """1 if seq is newly marked, 0 if it already was (or is below base), -1 if beyond the window."""
        return self.mark_c(seq)

    def is_marked(self, uint64_t seq):
        return self.is_marked_c(seq)

    def advance_to(self, uint64_t new_base):
        self.advance_to_c(new_base)

    def mark_many(self, seqs):
        """Mark each seq in order, as mark() would; returns how many were newly marked.

        A buffer of uint64 (a numpy uint64 array, ``array('Q')``) is read directly; anything else is
        iterated and each item converted to a uint64.
        """
        cdef const uint64_t[:] view
        cdef Py_ssize_t i, newly = 0
        if PyObject_CheckBuffer(seqs):
            try:
                view = seqs
            except ValueError:
                # A buffer of another item type (say int64 from numpy.arange): convert item by item.
                return _mark_each(self, seqs)
            for i in range(view.shape[0]):
                if self.mark_c(view[i]) == 1:
                    newly += 1
            return newly
        return _mark_each(self, seqs)

    def ranges(self, Py_ssize_t max_ranges=32):
        """The marked runs above base as (start, end_exclusive) pairs, lowest first, at most max_ranges."""
        return _collect_runs(self, max_ranges, True)

    def holes(self, Py_ssize_t max_holes=32):
        """The unmarked runs in [base, highest) as (start, end_exclusive) pairs, lowest first."""
        return _collect_runs(self, max_holes, False)

    def count_above(self):
        """How many seqs above base are marked."""
        return self.count_above_c()

    @classmethod
    def from_ranges(cls, size, base, ranges):
        """Rebuild a window (from a session snapshot) holding base and the marked runs ``ranges``.

        The runs must be non-empty (start, end_exclusive) pairs, ascending and non-overlapping
        (touching is allowed), strictly above base and ending within base + size; ValueError if not.
        """
        cdef AckWindow window = cls(size, base)
        # Python ints, so that no comparison below can wrap around.
        cdef object lowest_start = base + 1
        cdef object limit = base + size
        for pair in ranges:
            start, end = pair
            if not lowest_start <= start < end <= limit:
                raise ValueError(
                    f"run {pair!r} of an AckWindow(size={size}, base={base}) snapshot is empty,"
                    f" out of order, overlapping, at or below base, or beyond base + size"
                )
            _set_span(window._bits, window._ring_mask, start, end - start)
            window._count_above += <Py_ssize_t>(end - start)
            window.highest = end
            lowest_start = end
        return window

    def __repr__(self):
        return (
            f"<{type(self).__name__} size={self.size} base={self.base} highest={self.highest}"
            f" marked_above={self._count_above}>"
        )
