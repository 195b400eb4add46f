# Contract of relio.engine._lru used by the engine (cimport). Implementation: _lru.pyx.
# The implementer may add private cdef attributes; the cdef method signatures below are fixed.

cdef class ResponseCache:
    cdef readonly Py_ssize_t max_entries
    cdef readonly Py_ssize_t max_bytes
    cdef readonly double ttl
    # Sum of len(value) over the entries held.
    cdef readonly Py_ssize_t nbytes
    # --- private implementation state (owned by _lru.pyx) ---
    # key -> its entry (an _Entry, private to _lru.pyx); the dict owns every entry.
    cdef dict _map
    # The sentinel _Entry that closes both circular lists of entries: by recency (least recently
    # used first, the eviction order) and by stored_at (oldest first, the expiry order).
    cdef object _root

    # The value stored under key, refreshed as most recently used; None if absent or older than ttl
    # (an expired entry found this way is dropped).
    cdef object get_c(self, bytes key, double now)
    # Store value under key (replacing any old value), evicting least recently used entries until the
    # bounds hold. Returns 1 if stored, 0 if the value alone is bigger than max_bytes (not stored).
    cdef int put_c(self, bytes key, bytes value, double now) except -1
    # Remove key; True if it was present.
    cdef bint pop_c(self, bytes key) except -1
    # Drop every entry stored more than ttl before now; returns how many were dropped.
    cdef Py_ssize_t expire_c(self, double now) except -1
