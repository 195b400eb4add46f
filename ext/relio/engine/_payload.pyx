"""The compiled steps of an application payload's common case (no binary attachments): an emit's
``[event, *args]`` encoded, and a received message's list decoded, each in one call around the
standard library's C JSON encoder or scanner.

``relio.binding.payload`` defines the payload (a count of binary attachments, then the JSON text of
the list; the common case is the byte 0 and the text). For python-socketio's default JSON module it
encodes with the standard library's C encoder, built once. In Python an emit then costs four calls
around that encoder (the argument rule, the list, the join of the encoder's pieces, the text's
UTF-8 bytes, the tag byte put in front with a copy): ~0.25 µs of a small emit's ~1.6 µs of encoding.
Here the list is built, the pieces joined and the text copied once into the payload behind its tag.

Decoding is the mirror image: the payload's tag checked, the text after it decoded from UTF-8 in
place (no slice of the payload first) and handed to the C scanner, its end and type checked: one
call instead of three (~0.2 µs of a small message).

Nothing here decides anything: binary data and objects the encoder cannot take raise its
``TypeError``, a cyclic structure its ``RecursionError``; a payload the decoder does not take as it
is (attachments, whitespace around the value, invalid JSON or UTF-8, not a list) gives None. The
caller then encodes or decodes the general way (binary attachments, the standard library's own
errors, ``RemoteProtocolError`` for a peer's bad payload).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from cpython.unicode cimport PyUnicode_Join
from libc.string cimport memcpy

from relio.engine._build cimport RELIO_DEBUG_BUILD
from relio.engine._events cimport MessageReceived, ResponseReceived

#: True when this module was compiled as a debug build (RELIO_DEBUG_BUILD=1; see setup.py).
DEBUG_BUILD = RELIO_DEBUG_BUILD

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL


cdef class EventEncoder:
    """``encode(event, data)``: the payload of an emit of ``data`` (python-socketio's argument
    rule: a tuple is several arguments, None none, anything else one) under ``event``, with a JSON
    encoder made by ``json.encoder.c_make_encoder`` (called as ``encoder(obj, 0)``, giving the
    text's pieces)."""

    cdef object _encoder

    def __init__(self, encoder):
        self._encoder = encoder

    def encode(self, event, data):
        """The payload: the byte 0 (no attachments), then the JSON text of ``[event, *args]``."""
        cdef list items
        if isinstance(data, tuple):             # subclasses too (a namedtuple), as python-socketio
            items = [event]
            items.extend(<tuple>data)
        elif data is None:
            items = [event]
        else:
            items = [event, data]
        cdef object text = PyUnicode_Join("", self._encoder(items, 0))
        cdef Py_ssize_t size
        cdef const char* utf8 = PyUnicode_AsUTF8AndSize(text, &size)
        cdef bytes payload = PyBytes_FromStringAndSize(NULL, size + 1)
        cdef char* out = PyBytes_AS_STRING(payload)
        out[0] = 0
        memcpy(out + 1, utf8, size)
        return payload


cdef class EventDecoder:
    """``decode(payload)``: the list a payload without attachments holds, with a JSON scanner made
    by ``json.scanner.c_make_scanner`` (called as ``scan_once(text, index)``, giving the value and
    where it ended), or None where the general way must decode it.

    ``max_int_digits`` (0: no limit) stands for python-socketio's integer cap: its JSON module
    (``engineio.json``) refuses integers of more than 100 digits (against the CPU cost of parsing
    huge ones) with a ``parse_int`` hook, a Python call for every integer of every message (~0.2 µs
    each). The scanner given here has no hook; instead a payload whose text holds a run of that
    many digits or more (an integer, its sign counted by the hook; or digits in a string: not told
    apart) is left to the general way, whose decoder has the hook and gives the same value or error
    as python-socketio.
    """

    cdef object _scan_once
    cdef Py_ssize_t _max_int_digits

    def __init__(self, scan_once, Py_ssize_t max_int_digits=0):
        self._scan_once = scan_once
        self._max_int_digits = max_int_digits

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
        cdef const char* data = PyBytes_AS_STRING(payload)
        if size < 2 or data[0] != 0 or data[1] != 91:       # the tag 0, then "["
            return None
        if self._max_int_digits and _longest_digit_run(data + 1, size - 1) >= self._max_int_digits:
            return None
        try:
            text = PyUnicode_DecodeUTF8(data + 1, size - 1, NULL)
            value, end = self._scan_once(text, 0)
        except (ValueError, StopIteration, RecursionError):
            return None          # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        if end != len(text) or type(value) is not list:
            return None
        return value


cdef Py_ssize_t _longest_digit_run(const char* text, Py_ssize_t size) noexcept:
    cdef Py_ssize_t i, run = 0, longest = 0
    for i in range(size):
        if 48 <= text[i] <= 57:                 # "0".."9"
            run += 1
            if run > longest:
                longest = run
        else:
            run = 0
    return longest
