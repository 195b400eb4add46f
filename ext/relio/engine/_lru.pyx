"""The responder's cache of handler responses, so that a retried request never runs its handler
twice.

A requester retries a request until the response arrives, and a resumed session may replay a
request whose response was lost with the old link. The receiver's id set recognises the retry as a
duplicate, so the handler does not run again; instead the engine re-sends the response it cached
here, keyed by the request id, when the handler replied. The entry is released as soon as the
requester acknowledges the response, so the cache only holds responses still in doubt. It is
bounded all the same, since a requester may vanish without acknowledging: by entry count and bytes
(``Config.response_cache_*``), least recently used first, and by age: a response stored more than
``ttl`` before ``now`` is dropped, as the requester has given up by then. Times are the caller's
``now``; the cache reads no clock.

The shape is uvloop's LRU (``uvloop/lru.pyx``), with the OrderedDict it relies on written out: a
dict from key to a small entry object linked into a circular doubly linked list in recency order, so
that a hit, a store and an eviction are O(1) pointer updates with no Python call. Expiry needs a
second order, because a hit makes an entry recent without making it younger: each entry is also
linked into a list ordered by ``stored_at``, so ``expire`` pops exactly the expired entries off its
old end, O(expired), and ``next_expiry`` reads its first entry. The caller's clock never goes back,
so a store links at the young end at once; an older time (a session restored from a snapshot, whose
entries come back in recency order) walks back to its place.
"""

cimport cython
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.dict cimport PyDict_DelItem, PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport PyObject, Py_INCREF
from libc.math cimport isfinite, isinf

from relio.engine._build cimport RELIO_DEBUG_BUILD

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD


@cython.final
@cython.no_gc
@cython.auto_pickle(False)
@cython.freelist(256)
cdef class _Entry:
    # One cached response; the cache's sentinel is an _Entry too, with neither key nor value.
    cdef bytes key
    cdef bytes value
    cdef double stored_at
    # Neighbours in the recency list and in the stored_at list. Borrowed references: the cache's
    # dict owns every entry, and an entry leaves both lists before it leaves the dict. (Owned links
    # would cost reference counting on every move and make every pair of neighbours a reference
    # cycle.)
    cdef PyObject* less_recent
    cdef PyObject* more_recent
    cdef PyObject* older
    cdef PyObject* newer


cdef inline void _unlink_recency(_Entry entry) noexcept:
    (<_Entry>entry.less_recent).more_recent = entry.more_recent
    (<_Entry>entry.more_recent).less_recent = entry.less_recent


cdef inline void _unlink_age(_Entry entry) noexcept:
    (<_Entry>entry.older).newer = entry.newer
    (<_Entry>entry.newer).older = entry.older


cdef inline void _link_most_recent(_Entry root, _Entry entry) noexcept:
    # The recency list runs root -> least recent -> ... -> most recent -> root.
    entry.more_recent = <PyObject*>root
    entry.less_recent = root.less_recent
    (<_Entry>root.less_recent).more_recent = <PyObject*>entry
    root.less_recent = <PyObject*>entry


cdef inline void _link_by_age(_Entry root, _Entry entry) noexcept:
    # The stored_at list runs root -> oldest -> ... -> youngest -> root. The entry goes after the
    # youngest entry stored no later than it, so equal times keep their arrival order.
    cdef PyObject* before = root.older
    while before != <PyObject*>root and (<_Entry>before).stored_at > entry.stored_at:
        before = (<_Entry>before).older
    entry.older = before
    entry.newer = (<_Entry>before).newer
    (<_Entry>entry.newer).older = <PyObject*>entry
    (<_Entry>before).newer = <PyObject*>entry


cdef inline bint _is_expired(ResponseCache cache, _Entry entry, double now) noexcept:
    # Written as a comparison with stored_at + ttl (rather than now - stored_at > ttl) so that it
    # agrees exactly with next_expiry(), whatever the rounding.
    return entry.stored_at + cache.ttl < now


cdef int _drop(ResponseCache cache, _Entry entry) except -1:
    # The caller holds a reference to entry: the dict's may be the last other one.
    _unlink_recency(entry)
    _unlink_age(entry)
    cache.nbytes -= PyBytes_GET_SIZE(entry.value)
    PyDict_DelItem(cache._map, entry.key)
    return 0


@cython.no_gc  # it holds only its own entries, which hold only bytes: no cycle can pass through it
@cython.auto_pickle(False)
cdef class ResponseCache:
    """A bounded cache of encoded responses keyed by request id, least recently used out first.

    :param max_entries: most entries held (at least 1).
    :param max_bytes: most bytes of values held; a value bigger than this alone is not stored.
    :param ttl: seconds after which an entry expires, counted from when it was stored (``inf``:
        never).
    """

    def __cinit__(self, Py_ssize_t max_entries=10_000, Py_ssize_t max_bytes=16 * 1024 * 1024,
                  double ttl=120.0):
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        if not ttl >= 0.0:
            raise ValueError(f"ttl must be a non-negative number of seconds, got {ttl}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._map = {}
        cdef _Entry root = _Entry.__new__(_Entry)
        root.less_recent = root.more_recent = root.older = root.newer = <PyObject*>root
        self._root = root

    cdef object get_c(self, bytes key, double now):
        cdef PyObject* found = PyDict_GetItem(self._map, key)
        if found == NULL:
            return None
        cdef _Entry entry = <_Entry>found
        if _is_expired(self, entry, now):
            _drop(self, entry)
            return None
        _unlink_recency(entry)
        _link_most_recent(<_Entry>self._root, entry)
        return entry.value

    cdef int put_c(self, bytes key, bytes value, double now) except -1:
        if not isfinite(now):
            # A NaN or infinite time would sit in the stored_at list out of any order.
            raise ValueError(f"now must be a finite time, got {now}")
        cdef _Entry root = <_Entry>self._root
        cdef Py_ssize_t size = PyBytes_GET_SIZE(value)
        cdef PyObject* found = PyDict_GetItem(self._map, key)
        cdef _Entry entry
        if found != NULL:
            entry = <_Entry>found
            if size > self.max_bytes:
                # The old response is superseded: re-sending it would answer with stale data.
                _drop(self, entry)
                return 0
            _unlink_recency(entry)
            _unlink_age(entry)
            self.nbytes -= PyBytes_GET_SIZE(entry.value)
        elif size > self.max_bytes:
            return 0
        else:
            entry = _Entry.__new__(_Entry)
            entry.key = key
            PyDict_SetItem(self._map, key, entry)
        entry.value = value
        entry.stored_at = now
        self.nbytes += size
        _link_most_recent(root, entry)
        _link_by_age(root, entry)
        # The new entry is the most recent and fits alone, so it is never evicted here.
        cdef _Entry least_recent
        while len(self._map) > self.max_entries or self.nbytes > self.max_bytes:
            least_recent = <_Entry>root.more_recent
            _drop(self, least_recent)
        return 1

    cdef bint pop_c(self, bytes key) except -1:
        cdef PyObject* found = PyDict_GetItem(self._map, key)
        if found == NULL:
            return False
        cdef _Entry entry = <_Entry>found  # a reference of our own: _drop releases the dict's
        _drop(self, entry)
        return True

    cdef Py_ssize_t expire_c(self, double now) except -1:
        cdef _Entry root = <_Entry>self._root
        cdef _Entry oldest
        cdef Py_ssize_t dropped = 0
        while root.newer != <PyObject*>root:
            oldest = <_Entry>root.newer
            if not _is_expired(self, oldest, now):
                break
            _drop(self, oldest)
            dropped += 1
        return dropped

    # --- Python API (tests, benchmarks, session snapshots) ---

    def get(self, bytes key not None, double now):
        """The value stored under key, now the most recently used; None if absent or expired (an
        expired entry is dropped)."""
        return self.get_c(key, now)

    def put(self, bytes key not None, bytes value not None, double now):
        """Store value under key at time now, replacing any old value, evicting least recently used
        entries until the bounds hold. False (and any old value dropped) if the value alone is
        bigger than max_bytes."""
        return self.put_c(key, value, now) == 1

    def pop(self, bytes key not None):
        """Remove key; True if it was held."""
        return self.pop_c(key)

    def expire(self, double now):
        """Drop every entry stored more than ttl before now; returns how many were dropped."""
        return self.expire_c(now)

    def next_expiry(self):
        """The time after which the oldest entry expires (its stored_at + ttl), or None if nothing
        ever will: the cache is empty or ttl is infinite."""
        cdef _Entry root = <_Entry>self._root
        if root.newer == <PyObject*>root or isinf(self.ttl):
            return None
        return (<_Entry>root.newer).stored_at + self.ttl

    def items(self):
        """The entries as (key, value, stored_at), least recently used first: putting them back in
        this order into an empty cache restores it."""
        cdef _Entry root = <_Entry>self._root
        cdef list entries = PyList_New(len(self._map))
        cdef PyObject* position = root.more_recent
        cdef Py_ssize_t i = 0
        cdef _Entry entry
        cdef tuple item
        while position != <PyObject*>root:
            entry = <_Entry>position
            item = (entry.key, entry.value, entry.stored_at)
            Py_INCREF(item)
            PyList_SET_ITEM(entries, i, item)
            i += 1
            position = entry.more_recent
        return entries

    def clear(self):
        """Drop every entry."""
        cdef _Entry root = <_Entry>self._root
        root.less_recent = root.more_recent = root.older = root.newer = <PyObject*>root
        self._map.clear()
        self.nbytes = 0

    def __len__(self):
        return len(self._map)

    def __contains__(self, bytes key not None):
        """Whether key is held (expired or not), without making it more recent."""
        return key in self._map
