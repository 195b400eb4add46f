# Contract of relio.engine._idset used by the engine (cimport). Implementation: _idset.pyx.
# The implementer may add private cdef attributes; the cdef method signatures below are fixed.
from libc.stdint cimport uint32_t, uint64_t

# A 128-bit message id split into its two big-endian 64-bit halves.
ctypedef struct MessageId:
    uint64_t hi
    uint64_t lo

# One hash-table slot: which ring entry holds the id (ring[position - 1]; 0 marks an empty slot) and
# the id's hash, kept so that moving or rehashing entries never reads the ring or hashes again.
ctypedef struct IdSlot:
    uint32_t position
    uint32_t hash

cdef class IdSet:
    cdef readonly Py_ssize_t capacity
    cdef Py_ssize_t _count
    # --- private implementation state (owned by _idset.pyx) ---
    # Open-addressing hash table (linear probing); its size is a power of two, _table_mask that size
    # minus one.
    cdef IdSlot* _table
    cdef size_t _table_mask
    # The ids in insertion order: ring[0:_count] until the set is full, then a ring of `capacity`
    # entries whose oldest entry is at _oldest.
    cdef MessageId* _ring
    cdef Py_ssize_t _ring_size
    cdef Py_ssize_t _oldest

    # 1 if (hi, lo) was added, 0 if it was already present. At capacity the oldest id is evicted first.
    cdef int add_c(self, uint64_t hi, uint64_t lo) except -1
    cdef bint contains_c(self, uint64_t hi, uint64_t lo) noexcept
