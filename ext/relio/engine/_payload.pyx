"""The compiled steps of an application payload's common case (no binary attachments): an emit's
``[event, *args]`` encoded, and a received message's list decoded, each in one call that
allocates only the result.

``relio.binding.payload`` defines the payload (a count of binary attachments, then the JSON text of
the list; the common case is the byte 0 and the text). For python-socketio's default JSON module
(the standard library's, compact separators) an emit's payload is written here straight into one
buffer, behind its tag, for the values JSON has: exact ``str``, ``int``, ``float``, ``bool``,
``None``, ``list``, ``tuple`` and ``dict`` with ``str`` keys. The text is byte for byte what
``json.dumps(value, separators=(",", ":"))`` gives (``ensure_ascii``: every character outside
printable ASCII as ``\\uXXXX``, a surrogate pair above the BMP; floats by ``float.__repr__``,
``NaN`` and ``Infinity`` as the standard library writes them); Hypothesis checks it
(tests/test_payload_wire.py). The standard library's C encoder makes a str per token, a list of
them, joins them and the caller then copies the text's UTF-8 behind the tag: about three times the
work (1.6 -> 0.25 µs for a 100-byte payload). Anything else (a subclass, a non-str key, a big
integer, nesting deeper than :data:`MAX_FAST_DEPTH`, which is also where a cycle ends up) gives
None: the caller encodes it with the standard library's encoder, as before (the same text, or its
errors); binary data (``bytes``, ``bytearray``, ``memoryview``) raises ``TypeError`` at once, as
that encoder would after walking the rest. Only exact built-in types are walked, so no Python code
runs while the buffer is written (nothing can change the containers under the borrowed
references).

Decoding is the mirror image: the payload's tag checked, then the UTF-8 text read where it is
by the compiled reader (no str of the whole text, no slice of the payload) into exactly what
``json.loads`` builds (see :class:`EventDecoder`). The standard library's scanner needs the text
decoded first and is called through Python: 1.0 -> 0.5 µs for a 100-byte payload, and no
Python call per integer for python-socketio's digit cap.

Nothing here decides anything: binary data raises ``TypeError``; a value the writer does not take,
or a payload the reader does not take as it is (attachments, whitespace around the value, invalid
JSON or UTF-8, not a list), gives None. The caller then encodes or decodes the general way (binary
attachments, the standard library's own errors, ``RemoteProtocolError`` for a peer's bad
payload).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.math cimport isfinite, isnan
from libc.string cimport memcmp, memcpy, memset, strlen

from relio.engine._build cimport RELIO_DEBUG_BUILD
from relio.engine._events cimport MessageReceived, ResponseReceived

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

cdef enum:
    # Deepest nesting of lists and dicts the compiled writer follows; deeper data (and a cycle,
    # which gets there) is the standard library encoder's to encode or refuse.
    _MAX_DEPTH = 64
    # Bytes of the writer's buffer on the C stack; a longer payload moves it to the heap.
    _STACK_BYTES = 1024
    # Slots of a decoder's cache of dict keys (a power of two), and the longest key it keeps.
    _KEY_CACHE_SLOTS = 512
    _KEY_CACHE_MAX_LENGTH = 32
    # What a writer function returns: written, or a value the writer does not take (the caller
    # then encodes the whole payload the standard library's way); -1 with an exception set
    # (MemoryError) is an error.
    _WRITTEN = 0
    _NOT_MINE = 1
    _BINARY = 2             # bytes, bytearray or memoryview: the payload needs attachments

#: Deepest nesting of lists and dicts the compiled writer follows (see the module's docstring).
MAX_FAST_DEPTH = _MAX_DEPTH

cdef extern from "Python.h":
    # The macros below on borrowed pointers (no reference counting in the writer's walk).
    int _unicode_ready "PyUnicode_READY"(PyObject* text) except -1
    bint _unicode_is_ascii "PyUnicode_IS_ASCII"(PyObject* text)
    Py_ssize_t _unicode_length "PyUnicode_GET_LENGTH"(PyObject* text)
    int _unicode_kind "PyUnicode_KIND"(PyObject* text)
    void* _unicode_data "PyUnicode_DATA"(PyObject* text)
    unsigned int _unicode_read "PyUnicode_READ"(int kind, void* data, Py_ssize_t index)
    Py_ssize_t _list_size "PyList_GET_SIZE"(PyObject* seq)
    PyObject* _list_item "PyList_GET_ITEM"(PyObject* seq, Py_ssize_t index)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE"(PyObject* seq)
    PyObject* _tuple_item "PyTuple_GET_ITEM"(PyObject* seq, Py_ssize_t index)
    int _dict_next "PyDict_Next"(PyObject* mapping, Py_ssize_t* pos, PyObject** key,
                                 PyObject** value)
    double _float_value "PyFloat_AS_DOUBLE"(PyObject* number)
    long long _long_value "PyLong_AsLongLongAndOverflow"(PyObject* number, int* overflow) except? -1
    char* PyOS_double_to_string(double value, char format_code, int precision, int flags,
                                int* kind) except NULL
    int Py_DTSF_ADD_DOT_0

cdef PyTypeObject* _STR = <PyTypeObject*>str
cdef PyTypeObject* _INT = <PyTypeObject*>int
cdef PyTypeObject* _FLOAT = <PyTypeObject*>float
cdef PyTypeObject* _LIST = <PyTypeObject*>list
cdef PyTypeObject* _TUPLE = <PyTypeObject*>tuple
cdef PyTypeObject* _DICT = <PyTypeObject*>dict
cdef PyTypeObject* _BYTES = <PyTypeObject*>bytes
cdef PyTypeObject* _BYTEARRAY = <PyTypeObject*>bytearray
cdef PyTypeObject* _MEMORYVIEW = <PyTypeObject*>memoryview
# (From the C macros: in Cython, <PyObject*>True would be the C integer 1 cast to a pointer.)
cdef extern from "Python.h":
    PyObject* _NONE "Py_None"
    PyObject* _TRUE "Py_True"
    PyObject* _FALSE "Py_False"

cdef const char* _HEX = b"0123456789abcdef"
#: Bytes each ASCII character takes in the text beyond itself (0: as it is; 1: a two-character
#: escape; 5: ``\\u00XX``), as the standard library's ``encode_basestring_ascii`` escapes it.
cdef unsigned char _ASCII_EXTRA[128]
cdef int _c
for _c in range(128):
    _ASCII_EXTRA[_c] = 0 if 32 <= _c <= 126 else 5
#: The letter of each two-character escape (``\b`` ...), 0 for the rest.
cdef char _SHORT_ESCAPE[128]
for _c in range(128):
    _SHORT_ESCAPE[_c] = 0
for _c, _letter in ((8, b"b"), (9, b"t"), (10, b"n"), (12, b"f"), (13, b"r"), (34, b'"'),
                    (92, b"\\")):
    _SHORT_ESCAPE[_c] = _letter[0]
    _ASCII_EXTRA[_c] = 1


cdef struct _Out:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity
    bint on_heap

cdef int _grow(_Out* out, Py_ssize_t extra) except -1:
    cdef Py_ssize_t capacity = out.capacity * 2
    if capacity < out.size + extra:
        capacity = out.size + extra
    cdef char* data
    if out.on_heap:
        data = <char*>PyMem_Realloc(out.data, capacity)
    else:
        data = <char*>PyMem_Malloc(capacity)
        if data != NULL:
            memcpy(data, out.data, out.size)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.capacity = capacity
    out.on_heap = True
    return 0


cdef inline int _reserve(_Out* out, Py_ssize_t extra) except -1:
    if out.size + extra > out.capacity:
        return _grow(out, extra)
    return 0


cdef inline int _put(_Out* out, const char* text, Py_ssize_t size) except -1:
    _reserve(out, size)
    memcpy(out.data + out.size, text, size)
    out.size += size
    return 0


cdef inline void _put_unit(char* at, unsigned int unit) noexcept:
    """``\\u`` and the four hex digits of the UTF-16 code unit ``unit``, at ``at``."""
    at[0] = 92                                  # "\\"
    at[1] = 117                                 # "u"
    at[2] = _HEX[(unit >> 12) & 15]
    at[3] = _HEX[(unit >> 8) & 15]
    at[4] = _HEX[(unit >> 4) & 15]
    at[5] = _HEX[unit & 15]


cdef inline Py_ssize_t _put_escape(char* at, unsigned int c) noexcept:
    """Write the escape of ``c`` (not a printable ASCII character, or one of ``"`` and ``\\``)
    at ``at``; its length."""
    if c < 128 and _SHORT_ESCAPE[c]:
        at[0] = 92
        at[1] = _SHORT_ESCAPE[c]
        return 2
    if c < 0x10000:
        _put_unit(at, c)
        return 6
    c -= 0x10000                                # a UTF-16 surrogate pair, as JSON has it
    _put_unit(at, 0xD800 | (c >> 10))
    _put_unit(at + 6, 0xDC00 | (c & 0x3FF))
    return 12


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _write_str(_Out* out, PyObject* text) except -1:
    """``text`` as a JSON string, escaped as the standard library's ``encode_basestring_ascii``."""
    _unicode_ready(text)
    cdef Py_ssize_t length = _unicode_length(text), extra = 0, i
    cdef int kind = _unicode_kind(text)
    cdef void* data = _unicode_data(text)
    cdef unsigned int c
    for i in range(length):
        c = _unicode_read(kind, data, i)
        extra += _ASCII_EXTRA[c] if c < 128 else (5 if c < 0x10000 else 11)
    _reserve(out, length + extra + 2)
    cdef char* at = out.data + out.size
    at[0] = 34                                  # '"'
    at += 1
    if extra == 0:                  # printable ASCII only (a 1-byte string): its bytes as they are
        memcpy(at, data, length)
        at += length
    else:
        for i in range(length):
            c = _unicode_read(kind, data, i)
            if c < 128 and not _ASCII_EXTRA[c]:
                at[0] = <char>c
                at += 1
            else:
                at += _put_escape(at, c)
    at[0] = 34
    out.size = (at + 1) - out.data
    return _WRITTEN


cdef int _write_int(_Out* out, PyObject* number) except -1:
    cdef int overflow = 0
    cdef long long value = _long_value(number, &overflow)
    if overflow:
        return _NOT_MINE                        # beyond 64 bits: the standard library's repr
    cdef char digits[24]
    cdef Py_ssize_t n = 24
    cdef unsigned long long magnitude = <unsigned long long>value
    if value < 0:
        magnitude = 0ULL - magnitude
    while True:
        n -= 1
        digits[n] = <char>(48 + magnitude % 10)
        magnitude //= 10
        if magnitude == 0:
            break
    if value < 0:
        n -= 1
        digits[n] = 45                          # "-"
    return _put(out, digits + n, 24 - n)


cdef int _write_float(_Out* out, PyObject* number) except -1:
    cdef double value = _float_value(number)
    cdef char* text
    if isfinite(value):
        text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)   # float.__repr__
        try:
            _put(out, text, strlen(text))
        finally:
            PyMem_Free(text)
        return _WRITTEN
    if isnan(value):
        return _put(out, b"NaN", 3)
    if value > 0:
        return _put(out, b"Infinity", 8)
    return _put(out, b"-Infinity", 9)


cdef int _write_items(_Out* out, PyObject* seq, bint is_list, int depth) except -1:
    cdef Py_ssize_t size = _list_size(seq) if is_list else _tuple_size(seq), i
    cdef int written
    _put(out, b"[", 1)
    for i in range(size):
        if i:
            _put(out, b",", 1)
        written = _write(out, _list_item(seq, i) if is_list else _tuple_item(seq, i), depth)
        if written != _WRITTEN:
            return written
    return _put(out, b"]", 1)


cdef int _write_dict(_Out* out, PyObject* mapping, int depth) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef bint first = True
    cdef int written
    _put(out, b"{", 1)
    while _dict_next(mapping, &pos, &key, &value):
        if key.ob_type != _STR:
            return _NOT_MINE                    # the standard library converts other keys
        if not first:
            _put(out, b",", 1)
        first = False
        _write_str(out, key)
        _put(out, b":", 1)
        written = _write(out, value, depth)
        if written != _WRITTEN:
            return written
    return _put(out, b"}", 1)


cdef int _write(_Out* out, PyObject* value, int depth) except -1:
    cdef PyTypeObject* kind = value.ob_type
    if kind == _STR:
        return _write_str(out, value)
    if kind == _INT:
        return _write_int(out, value)
    if kind == _DICT:
        if depth >= _MAX_DEPTH:
            return _NOT_MINE
        return _write_dict(out, value, depth + 1)
    if kind == _LIST or kind == _TUPLE:
        if depth >= _MAX_DEPTH:
            return _NOT_MINE
        return _write_items(out, value, kind == _LIST, depth + 1)
    if kind == _FLOAT:
        return _write_float(out, value)
    if value == _NONE:
        return _put(out, b"null", 4)
    if value == _TRUE:
        return _put(out, b"true", 4)
    if value == _FALSE:
        return _put(out, b"false", 5)
    if kind == _BYTES or kind == _BYTEARRAY or kind == _MEMORYVIEW:
        return _BINARY
    return _NOT_MINE


cdef inline void _start(_Out* out, char* stack) noexcept:
    out.data = stack
    out.size = 0
    out.capacity = _STACK_BYTES
    out.on_heap = False


cdef int _write_event(_Out* out, event, data) except -1:
    """The tag, then ``[event, *args]`` with python-socketio's argument rule."""
    _put(out, b"\x00[", 2)
    cdef int written = _write(out, <PyObject*>event, 0)
    cdef Py_ssize_t i = 0, count
    if isinstance(data, tuple):                 # subclasses too (a namedtuple), as python-socketio
        count = _tuple_size(<PyObject*>data)
        while written == _WRITTEN and i < count:
            _put(out, b",", 1)
            written = _write(out, _tuple_item(<PyObject*>data, i), 1)
            i += 1
    elif data is not None and written == _WRITTEN:
        _put(out, b",", 1)
        written = _write(out, <PyObject*>data, 1)
    if written == _WRITTEN:
        _put(out, b"]", 1)
    return written


cdef object _written(_Out* out, int written):
    """The payload the writer wrote, or None where the caller must encode it another way.

    :raises TypeError: binary data (the payload needs attachments)."""
    if written == _WRITTEN:
        return PyBytes_FromStringAndSize(out.data, out.size)
    if written == _BINARY:
        raise TypeError("binary data: a payload with attachments")
    return None


cdef class EventEncoder:
    """``encode(event, data)``: the payload of an emit of ``data`` (python-socketio's argument
    rule: a tuple is several arguments, None none, anything else one) under ``event``;
    ``encode_list(items)``: the payload of a list (a reply's arguments, a broadcast). Written by
    the compiled writer, or None for a value it does not take (the caller encodes those the
    general way); ``TypeError`` for binary data."""

    def encode(self, event, data):
        """The payload: the byte 0 (no attachments), then the JSON text of ``[event, *args]``."""
        cdef char stack[_STACK_BYTES]
        cdef _Out out
        _start(&out, stack)
        try:
            return _written(&out, _write_event(&out, event, data))
        finally:
            if out.on_heap:
                PyMem_Free(out.data)

    def encode_list(self, list items):
        """The payload: the byte 0 (no attachments), then the JSON text of ``items``."""
        cdef char stack[_STACK_BYTES]
        cdef _Out out
        _start(&out, stack)
        try:
            _put(&out, b"\x00", 1)
            return _written(&out, _write(&out, <PyObject*>items, 0))
        finally:
            if out.on_heap:
                PyMem_Free(out.data)


cdef class EventDecoder:
    """``decode(payload)``: the list a payload without attachments holds, read by the compiled
    reader, or None where the general way must decode it.

    The reader takes the UTF-8 text as it is in the payload (no str made of it first) and builds
    exactly what ``json.loads`` of that text builds (Hypothesis checks it, tests/test_payload_wire
    .py): strict UTF-8, JSON's escapes (a surrogate pair joined, a lone surrogate kept, as the
    standard library does), integers exact, floats by the interpreter's own conversion
    (``PyOS_string_to_double``, what ``float()`` uses), duplicate keys the last one winning. It
    leaves to the general way, by returning None, whatever it is not sure of: invalid UTF-8 or
    JSON, control characters inside strings, ``NaN`` and ``Infinity``, whitespace around the
    list, nesting deeper than :data:`MAX_FAST_DEPTH`, integers of ``max_int_digits`` characters
    or more. The general way then gives the standard library's value or error. Short keys come
    from a cache of the keys seen lately (one str for a key in every message, as the standard
    library shares one within a document; bounded, see :func:`_read_key`).

    ``max_int_digits`` (0: no limit) stands for python-socketio's integer cap: its JSON module
    (``engineio.json``) refuses integers of more than 100 characters (against the CPU cost of
    parsing huge ones) with a ``parse_int`` hook, a Python call for every integer of every message
    (~0.2 µs each). The reader has no hook; an integer that long is left to the general way, whose
    decoder has it and gives the same value or error as python-socketio.
    """

    cdef Py_ssize_t _max_int_digits
    # Keys seen lately (see _read_key): a str or NULL per slot, owned references.
    cdef PyObject* _keys[_KEY_CACHE_SLOTS]

    def __cinit__(self):
        memset(self._keys, 0, sizeof(self._keys))

    def __init__(self, Py_ssize_t max_int_digits=0):
        self._max_int_digits = max_int_digits

    def __dealloc__(self):
        cdef int i
        for i in range(_KEY_CACHE_SLOTS):
            Py_XDECREF(self._keys[i])

    def decode(self, message):
        """The list in ``message`` (a payload, or the engine's ``MessageReceived`` or
        ``ResponseReceived`` holding one) if its tag says no attachments and the rest is exactly
        one JSON list; None otherwise."""
        cdef bytes payload
        if type(message) is MessageReceived:
            payload = (<MessageReceived>message).payload
        elif type(message) is ResponseReceived:
            payload = (<ResponseReceived>message).payload
        elif type(message) is bytes:
            payload = <bytes>message
        else:
            return None
        cdef Py_ssize_t size = PyBytes_GET_SIZE(payload)
        cdef const unsigned char* data = <const unsigned char*>PyBytes_AS_STRING(payload)
        if size < 2 or data[0] != 0 or data[1] != 91:       # the tag 0, then "["
            return None
        cdef _In text
        text.at = data + 2
        text.end = data + size          # a bytes object's buffer has a NUL after it, too
        text.max_int_digits = self._max_int_digits
        text.keys = self._keys
        value = _read_list(&text, 1)
        if value is _LEFT or text.at != text.end:
            return None
        return value


# --- the reader ------------------------------------------------------------------------------
# Each function reads one value at ``text.at`` and leaves ``text.at`` after it, returning the value
# or _LEFT: not read, the whole payload is left to the general way.

cdef struct _In:
    const unsigned char* at
    const unsigned char* end
    Py_ssize_t max_int_digits
    PyObject** keys                 # the decoder's key cache (_KEY_CACHE_SLOTS slots)

cdef object _LEFT = object()

cdef extern from "Python.h":
    object PyUnicode_FromKindAndData(int kind, const void* buffer, Py_ssize_t size)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    double PyOS_string_to_double(const char* text, char** end, PyObject* overflow) except? -1.0
    int PyUnicode_4BYTE_KIND


cdef inline bint _is_digit(unsigned char c) noexcept:
    return 48 <= c <= 57


cdef inline void _skip_space(_In* text) noexcept:
    cdef unsigned char c
    while text.at < text.end:
        c = text.at[0]
        if c == 32 or c == 9 or c == 10 or c == 13:
            text.at += 1
        else:
            return


cdef object _read_value(_In* text, int depth):
    if text.at >= text.end:
        return _LEFT
    cdef unsigned char c = text.at[0]
    cdef Py_ssize_t left = text.end - text.at
    if c == 34:                                 # '"'
        text.at += 1
        return _read_str(text)
    if c == 123:                                # "{"
        text.at += 1
        return _read_dict(text, depth + 1)
    if c == 91:                                 # "["
        text.at += 1
        return _read_list(text, depth + 1)
    if c == 45 or _is_digit(c):                 # "-", digits
        return _read_number(text)
    if c == 116 and left >= 4 and memcmp(text.at, b"true", 4) == 0:
        text.at += 4
        return True
    if c == 102 and left >= 5 and memcmp(text.at, b"false", 5) == 0:
        text.at += 5
        return False
    if c == 110 and left >= 4 and memcmp(text.at, b"null", 4) == 0:
        text.at += 4
        return None
    return _LEFT                                # NaN, Infinity, or not JSON


cdef object _read_list(_In* text, int depth):
    """After "[": the list's items and "]"."""
    if depth > _MAX_DEPTH:
        return _LEFT
    cdef list items = []
    _skip_space(text)
    if text.at < text.end and text.at[0] == 93:         # "]"
        text.at += 1
        return items
    while True:
        _skip_space(text)
        item = _read_value(text, depth)
        if item is _LEFT:
            return _LEFT
        items.append(item)
        _skip_space(text)
        if text.at >= text.end:
            return _LEFT
        if text.at[0] == 44:                            # ","
            text.at += 1
        elif text.at[0] == 93:
            text.at += 1
            return items
        else:
            return _LEFT


cdef object _read_dict(_In* text, int depth):
    """After "{": the members and "}"."""
    if depth > _MAX_DEPTH:
        return _LEFT
    cdef dict mapping = {}
    _skip_space(text)
    if text.at < text.end and text.at[0] == 125:        # "}"
        text.at += 1
        return mapping
    while True:
        _skip_space(text)
        if text.at >= text.end or text.at[0] != 34:
            return _LEFT
        text.at += 1
        key = _read_key(text)
        if key is _LEFT:
            return _LEFT
        _skip_space(text)
        if text.at >= text.end or text.at[0] != 58:     # ":"
            return _LEFT
        text.at += 1
        _skip_space(text)
        value = _read_value(text, depth)
        if value is _LEFT:
            return _LEFT
        mapping[key] = value                            # a repeated key: the last one wins
        _skip_space(text)
        if text.at >= text.end:
            return _LEFT
        if text.at[0] == 44:
            text.at += 1
        elif text.at[0] == 125:
            text.at += 1
            return mapping
        else:
            return _LEFT


cdef object _read_number(_In* text):
    """A number as the standard library's scanner delimits it: an integer, or a float when a
    fraction or an exponent follows."""
    cdef const unsigned char* start = text.at
    cdef const unsigned char* at = start
    cdef const unsigned char* end = text.end
    cdef const unsigned char* exponent
    cdef bint is_float = False
    if at[0] == 45:
        at += 1
    if at >= end:
        return _LEFT
    if at[0] == 48:                                     # a leading 0 is the whole integer part
        at += 1
    elif _is_digit(at[0]):
        while at < end and _is_digit(at[0]):
            at += 1
    else:
        return _LEFT                                    # "-Infinity", or not a number
    if at + 1 < end and at[0] == 46 and _is_digit(at[1]):       # "." and a digit
        is_float = True
        at += 2
        while at < end and _is_digit(at[0]):
            at += 1
    if at < end and (at[0] == 101 or at[0] == 69):             # "e", "E"
        exponent = at + 1
        if exponent < end and (exponent[0] == 43 or exponent[0] == 45):
            exponent += 1
        if exponent < end and _is_digit(exponent[0]):
            is_float = True
            at = exponent
            while at < end and _is_digit(at[0]):
                at += 1
        # else: the "e" is not the number's (the caller finds it where a "," should be)
    text.at = at
    cdef Py_ssize_t length = at - start
    cdef char* parsed_to
    cdef double real
    if is_float:
        # What float() does with the same characters; the number is followed by a character
        # that cannot continue it (or by the NUL after the buffer).
        try:
            real = PyOS_string_to_double(<const char*>start, &parsed_to, NULL)
        except ValueError:
            return _LEFT
        if parsed_to != <char*>at:
            return _LEFT
        return real
    if text.max_int_digits and length >= text.max_int_digits:
        return _LEFT                                    # python-socketio's cap: its hook decides
    cdef long long value = 0
    cdef const unsigned char* digit
    if length <= 18:
        digit = start + 1 if start[0] == 45 else start
        while digit < at:
            value = value * 10 + (digit[0] - 48)
            digit += 1
        return -value if start[0] == 45 else value
    try:
        return int(PyBytes_FromStringAndSize(<const char*>start, length))
    except ValueError:                                  # past the interpreter's digit limit
        return _LEFT


cdef object _read_key(_In* text):
    """After a key's opening quote: the key, and its closing quote. A short ASCII key without
    escapes (nearly every key) is looked up in the decoder's cache first: the messages of one
    application repeat a few keys, and the standard library's scanner shares a key between the
    objects of one document; here it is shared across messages too, without a new str for each.
    A key that is not in the cache replaces what its slot held (the cache stays its size, whatever
    keys a peer sends)."""
    cdef const unsigned char* start = text.at
    cdef const unsigned char* at = start
    cdef const unsigned char* end = text.end
    cdef unsigned int slot = 0
    cdef unsigned char c
    while at < end:
        c = at[0]
        if c == 34 or c == 92 or c < 32 or c >= 128:
            break
        slot = slot * 31 + c
        at += 1
    cdef Py_ssize_t length = at - start
    if at >= end or at[0] != 34 or length > _KEY_CACHE_MAX_LENGTH:
        return _read_str(text)              # escapes, non-ASCII, long: read as any string
    text.at = at + 1
    slot = (slot ^ <unsigned int>length) & (_KEY_CACHE_SLOTS - 1)
    cdef PyObject* cached = text.keys[slot]
    if cached != NULL and _unicode_length(cached) == length \
            and memcmp(_unicode_data(cached), start, length) == 0:
        return <object>cached               # (cached keys are compact ASCII: their bytes are these)
    key = PyUnicode_New(length, 127)
    memcpy(_unicode_data(<PyObject*>key), start, length)
    Py_XDECREF(cached)
    Py_INCREF(key)
    text.keys[slot] = <PyObject*>key
    return key


cdef object _read_str(_In* text):
    """After the opening quote: the string and its closing quote."""
    cdef const unsigned char* start = text.at
    cdef const unsigned char* at = start
    cdef const unsigned char* end = text.end
    cdef unsigned char c
    cdef bint ascii = True
    while at < end:
        c = at[0]
        if c == 34 or c == 92 or c < 32:                # '"', "\\", a control character
            break
        if c >= 128:
            ascii = False
        at += 1
    if at >= end:
        return _LEFT
    cdef Py_ssize_t length = at - start
    if at[0] == 34:                                     # no escapes: the common case
        text.at = at + 1
        if ascii:
            value = PyUnicode_New(length, 127)
            memcpy(_unicode_data(<PyObject*>value), start, length)
            return value
        try:
            return PyUnicode_DecodeUTF8(<const char*>start, length, NULL)
        except UnicodeDecodeError:
            return _LEFT
    if at[0] != 92:
        return _LEFT                                    # a raw control character: strict JSON
    return _read_escaped_str(text)


cdef int _hex4(const unsigned char* at) noexcept:
    """The value of four hex digits at ``at``, or -1."""
    cdef int value = 0, i
    cdef unsigned char c
    for i in range(4):
        c = at[i]
        if 48 <= c <= 57:
            value = value * 16 + (c - 48)
        elif 97 <= c <= 102:
            value = value * 16 + (c - 87)
        elif 65 <= c <= 70:
            value = value * 16 + (c - 55)
        else:
            return -1
    return value


cdef Py_ssize_t _utf8_char(const unsigned char* at, const unsigned char* end,
                           unsigned int* out) noexcept:
    """The bytes of the well-formed UTF-8 sequence at ``at`` (its code point in ``out``), or 0:
    what Python's strict decoder refuses (overlong forms, surrogates, past U+10FFFF, cut)."""
    cdef unsigned char first = at[0]
    cdef Py_ssize_t size
    cdef unsigned int value, low = 0x80, high = 0xBF
    if 0xC2 <= first <= 0xDF:
        size, value = 2, first & 0x1F
    elif 0xE0 <= first <= 0xEF:
        size, value = 3, first & 0x0F
        if first == 0xE0:
            low = 0xA0
        elif first == 0xED:
            high = 0x9F                                 # no encoded surrogates
    elif 0xF0 <= first <= 0xF4:
        size, value = 4, first & 0x07
        if first == 0xF0:
            low = 0x90
        elif first == 0xF4:
            high = 0x8F
    else:
        return 0
    if end - at < size or not (low <= at[1] <= high):
        return 0
    value = (value << 6) | (at[1] & 0x3F)
    cdef Py_ssize_t i
    for i in range(2, size):
        if not (0x80 <= at[i] <= 0xBF):
            return 0
        value = (value << 6) | (at[i] & 0x3F)
    out[0] = value
    return size


cdef object _read_escaped_str(_In* text):
    """A string with escapes, from its first character: decoded into code points first (never
    more of them than bytes), as the standard library's scanner decodes it."""
    cdef const unsigned char* at = text.at
    cdef const unsigned char* end = text.end
    cdef const unsigned char* close = at
    while close < end and close[0] != 34:               # an upper bound of the length
        close += 2 if close[0] == 92 else 1
    if close >= end:
        return _LEFT
    cdef unsigned int* points = <unsigned int*>PyMem_Malloc((close - at + 1) * sizeof(unsigned int))
    if points == NULL:
        raise MemoryError()
    cdef Py_ssize_t count = 0, size
    cdef unsigned char c
    cdef int unit, low
    cdef unsigned int point
    try:
        while True:
            if at >= end:
                return _LEFT
            c = at[0]
            if c == 34:
                text.at = at + 1
                return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, points, count)
            if c < 32:
                return _LEFT
            if c < 128 and c != 92:
                points[count] = c
                count += 1
                at += 1
                continue
            if c >= 128:
                size = _utf8_char(at, end, &point)
                if size == 0:
                    return _LEFT
                points[count] = point
                count += 1
                at += size
                continue
            if end - at < 2:                            # a backslash
                return _LEFT
            c = at[1]
            at += 2
            if c == 34 or c == 92 or c == 47:           # '"' "\\" "/"
                points[count] = c
            elif c == 98:
                points[count] = 8
            elif c == 102:
                points[count] = 12
            elif c == 110:
                points[count] = 10
            elif c == 114:
                points[count] = 13
            elif c == 116:
                points[count] = 9
            elif c == 117:                              # "u" and four hex digits
                if end - at < 4:
                    return _LEFT
                unit = _hex4(at)
                if unit < 0:
                    return _LEFT
                at += 4
                if 0xD800 <= unit <= 0xDBFF and end - at >= 6 and at[0] == 92 and at[1] == 117:
                    low = _hex4(at + 2)
                    if low < 0:
                        return _LEFT                    # the standard library's error too
                    if 0xDC00 <= low <= 0xDFFF:         # a surrogate pair: one code point
                        unit = 0x10000 + (((unit - 0xD800) << 10) | (low - 0xDC00))
                        at += 6
                points[count] = unit
            else:
                return _LEFT
            count += 1
    finally:
        PyMem_Free(points)
