"""The receiver's memory of message ids it has already delivered, for exactly-once delivery.

A sender retransmits a message until it is acknowledged, and a resumed session may replay messages
whose acknowledgement was lost, so the same message id can arrive more than once. The engine asks an
:class:`IdSet` whether an id is new before delivering; a duplicate is acknowledged and dropped. The set
is bounded (``Config.id_set_capacity``): once full, each new id evicts the oldest one. That is safe
while the capacity stays well above how many messages a sender may hold unacknowledged
(``Config.max_outbox_messages``), since only those are ever sent again.

The ids arrive from the peer at message rate, so the set is a flat C structure with no Python object
per id: a ring holds the ids in insertion order (its oldest entry is the next to evict), and an
open-addressing hash table (linear probing, load factor at most 1/2) of ring positions finds an id.
Both grow as ids arrive, up to their size at ``capacity``, so an idle session costs a few hundred
bytes rather than megabytes; a full set of 100,000 ids takes 3.7 MB.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Realloc
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memset

from relio.engine._build cimport RELIO_DEBUG_BUILD
from relio.engine._frames cimport ID_SIZE, read_u64, write_u64

import os

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

cdef enum:
    # Smallest hash table allocated, in slots; it doubles as ids arrive.
    INITIAL_TABLE_SLOTS = 16

# Table slots hold a 32-bit hash and a 32-bit ring position, so the table has at most 2**32 slots.
MAX_CAPACITY = 1 << 31

# Ids come from the peer, so an unkeyed hash would let a peer choose ids that all land in one probe
# chain and make every lookup walk the whole table. A per-process random key (as Python's own string
# hashing has) keeps the peer from knowing where any id lands.
cdef uint64_t _hash_key_hi = int.from_bytes(os.urandom(8), "big")
cdef uint64_t _hash_key_lo = int.from_bytes(os.urandom(8), "big")


cdef inline uint32_t _hash(uint64_t hi, uint64_t lo) noexcept nogil:
    # relio's ids are a random session prefix plus a counter, so the low word is sequential: only a
    # full avalanche spreads consecutive ids over the table. The high word goes through an odd
    # multiplier (a bijection: ids that differ in one word only still differ going into the mix), then
    # the splitmix64 finalizer makes every input bit flip every output bit with probability about 1/2.
    cdef uint64_t x = ((hi ^ _hash_key_hi) * 0x9E3779B97F4A7C15ULL) ^ lo ^ _hash_key_lo
    x ^= x >> 30
    x *= 0xBF58476D1CE4E5B9ULL
    x ^= x >> 27
    x *= 0x94D049BB133111EBULL
    x ^= x >> 31
    return <uint32_t>x


cdef inline size_t _find_slot(IdSet ids, uint64_t hi, uint64_t lo, uint32_t hash) noexcept:
    # The slot holding (hi, lo), or the empty slot where its walk ends. The table is never more than
    # half full, so an empty slot always ends the walk; comparing hashes first means the ring is only
    # read for a probable match.
    cdef size_t mask = ids._table_mask
    cdef size_t slot = hash & mask
    cdef const IdSlot* entry
    cdef const MessageId* held
    while True:
        entry = &ids._table[slot]
        if entry.position == 0:
            return slot
        if entry.hash == hash:
            held = &ids._ring[entry.position - 1]
            if held.hi == hi and held.lo == lo:
                return slot
        slot = (slot + 1) & mask


cdef void _remove_from_table(IdSlot* table, size_t mask, uint32_t position, uint32_t hash) noexcept nogil:
    # Remove the slot of the id at ring[position - 1], whose hash is given. Linear probing finds an id
    # by walking from its home slot to the first empty slot, so a plain hole would cut the walks passing
    # through it. Instead each later entry of the cluster whose walk crosses the hole moves back into it
    # (backward-shift deletion): the table ends exactly as if the id had never been added, with no
    # tombstones.
    cdef size_t hole = hash & mask
    while table[hole].position != position:
        hole = (hole + 1) & mask
    cdef size_t slot = hole
    cdef size_t home
    while True:
        slot = (slot + 1) & mask
        if table[slot].position == 0:
            break
        home = table[slot].hash & mask
        # The entry's walk covers home..slot (cyclically); the hole is on it unless it lies between
        # home and the entry.
        if ((slot - home) & mask) >= ((slot - hole) & mask):
            table[hole] = table[slot]
            hole = slot
    table[hole].position = 0


cdef size_t _full_table_slots(Py_ssize_t capacity) noexcept:
    # The power of two at least twice the capacity: the load factor stays at most 1/2 when full.
    cdef size_t slots = 2
    while slots < 2 * <size_t>capacity:
        slots <<= 1
    return slots


cdef int _resize(IdSet ids, size_t table_slots) except -1:
    # Move to a table of table_slots slots and size the ring to match: it holds at most half the
    # table (the load factor bound), never more than the capacity. Only called while the set is not
    # full, when nothing has been evicted yet and ring[0:_count] holds every id in order, so the ring
    # grows in place and ring positions stay valid.
    cdef IdSlot* table = <IdSlot*>PyMem_Calloc(table_slots, sizeof(IdSlot))
    if table == NULL:
        raise MemoryError()
    cdef Py_ssize_t ring_size = min(<Py_ssize_t>(table_slots // 2), ids.capacity)
    cdef MessageId* ring = <MessageId*>PyMem_Realloc(ids._ring, ring_size * sizeof(MessageId))
    if ring == NULL:
        PyMem_Free(table)
        raise MemoryError()
    cdef size_t mask = table_slots - 1
    cdef size_t old_slot, slot
    if ids._table != NULL:
        for old_slot in range(ids._table_mask + 1):
            if ids._table[old_slot].position:
                slot = ids._table[old_slot].hash & mask
                while table[slot].position:
                    slot = (slot + 1) & mask
                table[slot] = ids._table[old_slot]
        PyMem_Free(ids._table)
    ids._table = table
    ids._table_mask = mask
    ids._ring = ring
    ids._ring_size = ring_size
    return 0


cdef inline const unsigned char* _id_bytes(bytes message_id) except NULL:
    if PyBytes_GET_SIZE(message_id) != ID_SIZE:
        raise ValueError(f"a message id is {ID_SIZE} bytes, got {PyBytes_GET_SIZE(message_id)}")
    return <const unsigned char*>PyBytes_AS_STRING(message_id)


cdef int _get_id_buffer(object ids, Py_buffer* view) except -1:
    PyObject_GetBuffer(ids, view, PyBUF_SIMPLE)
    if view.len % ID_SIZE:
        PyBuffer_Release(view)
        raise ValueError(f"ids must be concatenated {ID_SIZE}-byte ids, got {view.len} bytes")
    return 0


def _hashes(ids, /):
    """The table hashes of concatenated 16-byte ids (for tests: ids with equal hashes are rare
    but do occur in a full set, and must still be told apart)."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t offset
    _get_id_buffer(ids, &view)
    try:
        p = <const unsigned char*>view.buf
        return [_hash(read_u64(p + offset), read_u64(p + offset + 8))
                for offset in range(0, view.len, ID_SIZE)]
    finally:
        PyBuffer_Release(&view)


cdef class IdSet:
    """A bounded set of 16-byte message ids that forgets the oldest id first.

    :param capacity: how many ids are remembered; adding one more evicts the oldest.
    """

    def __cinit__(self, Py_ssize_t capacity=100_000):
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CAPACITY}, got {capacity}")
        self.capacity = capacity
        _resize(self, min(<size_t>INITIAL_TABLE_SLOTS, _full_table_slots(capacity)))

    def __dealloc__(self):
        PyMem_Free(self._table)
        PyMem_Free(self._ring)

    cdef bint contains_c(self, uint64_t hi, uint64_t lo) noexcept:
        return self._table[_find_slot(self, hi, lo, _hash(hi, lo))].position != 0

    cdef int add_c(self, uint64_t hi, uint64_t lo) except -1:
        cdef uint32_t hash = _hash(hi, lo)
        cdef size_t slot = _find_slot(self, hi, lo, hash)
        if self._table[slot].position:
            return 0
        cdef Py_ssize_t position
        cdef const MessageId* evicted
        if self._count == self.capacity:
            # Full: the new id takes the oldest one's place in the ring, and the next one becomes the
            # oldest. (Insertion order, not use: seeing a duplicate again does not make it younger.)
            position = self._oldest
            evicted = &self._ring[position]
            _remove_from_table(self._table, self._table_mask, <uint32_t>(position + 1),
                               _hash(evicted.hi, evicted.lo))
            self._oldest += 1
            if self._oldest == self.capacity:
                self._oldest = 0
            # Walk again: the removal may have shifted entries into this id's walk.
            slot = _find_slot(self, hi, lo, hash)
        else:
            if self._count == self._ring_size:
                _resize(self, 2 * (self._table_mask + 1))
                slot = _find_slot(self, hi, lo, hash)
            position = self._count
            self._count += 1
        self._ring[position].hi = hi
        self._ring[position].lo = lo
        self._table[slot].position = <uint32_t>(position + 1)
        self._table[slot].hash = hash
        return 1

    # --- Python API (tests, benchmarks, session snapshots) ---

    def add(self, bytes message_id not None, /):
        """Add a 16-byte id; True if it was new (evicting the oldest id when full)."""
        cdef const unsigned char* p = _id_bytes(message_id)
        return self.add_c(read_u64(p), read_u64(p + 8)) == 1

    def __contains__(self, bytes message_id not None):
        cdef const unsigned char* p = _id_bytes(message_id)
        return self.contains_c(read_u64(p), read_u64(p + 8))

    def add_many(self, ids, /):
        """Add concatenated 16-byte ids in order, as many add() calls; returns how many were new."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t offset
        cdef Py_ssize_t added = 0
        _get_id_buffer(ids, &view)
        try:
            p = <const unsigned char*>view.buf
            for offset in range(0, view.len, ID_SIZE):
                added += self.add_c(read_u64(p + offset), read_u64(p + offset + 8))
        finally:
            PyBuffer_Release(&view)
        return added

    def contains_many(self, ids, /):
        """For concatenated 16-byte ids, one byte per id: 1 if it is in the set, else 0."""
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef unsigned char* out
        cdef Py_ssize_t i
        cdef bytes result
        _get_id_buffer(ids, &view)
        try:
            p = <const unsigned char*>view.buf
            result = PyBytes_FromStringAndSize(NULL, view.len // ID_SIZE)
            out = <unsigned char*>PyBytes_AS_STRING(result)
            for i in range(view.len // ID_SIZE):
                out[i] = self.contains_c(read_u64(p + i * ID_SIZE), read_u64(p + i * ID_SIZE + 8))
        finally:
            PyBuffer_Release(&view)
        return result

    def to_list(self, Py_ssize_t newest=-1):
        """The ids held, oldest first (the order in which they will be evicted); with ``newest``
        >= 0, only the ``newest`` most recently added ones."""
        cdef Py_ssize_t skip = 0
        if 0 <= newest < self._count:
            skip = self._count - newest
        cdef list ids = PyList_New(self._count - skip)
        cdef unsigned char buf[ID_SIZE]
        cdef Py_ssize_t i, position
        cdef bytes message_id
        for i in range(self._count - skip):
            # Before the set is full _oldest is 0 and this is ring[i]; once full, _count is the ring size.
            position = self._oldest + skip + i
            if position >= self._count:
                position -= self._count
            write_u64(buf, self._ring[position].hi)
            write_u64(buf + 8, self._ring[position].lo)
            message_id = PyBytes_FromStringAndSize(<char*>buf, ID_SIZE)
            Py_INCREF(message_id)
            PyList_SET_ITEM(ids, i, message_id)
        return ids

    def clear(self):
        """Forget every id (the memory already allocated is kept for the ids to come)."""
        memset(self._table, 0, (self._table_mask + 1) * sizeof(IdSlot))
        self._count = 0
        self._oldest = 0

    def __len__(self):
        return self._count

    def __sizeof__(self):
        return (object.__sizeof__(self) + (self._table_mask + 1) * sizeof(IdSlot)
                + <size_t>self._ring_size * sizeof(MessageId))
