"""A ``json``-module stand-in backed by orjson, for python-socketio's (and relio's) ``json=``.

    import relio, orjson_json           # this file, copied into an application
    sio = relio.AsyncServer(json=orjson_json)       # or socketio.AsyncServer / AsyncClient

It speeds python-socketio up. relio's default codec writes and reads an application payload's JSON
in compiled code already (``relio.engine._payload``, as fast as orjson), and a custom module's calls
go through Python: with relio, pass a ``json=`` module for the types it encodes, not for speed.

What the libraries call, and what this module gives them:

* python-socketio (``socketio.packet.Packet.encode``) and python-engineio
  (``engineio.packet.Packet.encode``): ``dumps(data, separators=(',', ':'))`` and expect a ``str``;
  engineio's handshake calls ``dumps(obj)`` with no keyword. Both then call ``loads(str)`` and
  treat a ``ValueError`` as "not JSON" (engineio keeps the text as a string message).
* relio (``relio.binding.payload.JsonCodec`` for a custom module): ``dumps(items,
  separators=(',', ':'))`` -> ``str``, and ``loads(bytes)``.

:func:`dumps` returns orjson's output decoded to ``str``: compact JSON like the standard library's
with ``separators=(',', ':')``. For printable ASCII text, ``str`` keys, integers within 64 bits and
finite floats the text is the standard library's, except float exponents (``1e16`` and ``1e-7``
where the standard library writes ``1e+16`` and ``1e-07``); non-ASCII characters are written as
UTF-8 instead of ``\\uXXXX`` escapes, and NaN/Infinity become ``null`` (the standard library
writes ``NaN``, which is not JSON and which JavaScript's ``JSON.parse`` refuses). Any value orjson
refuses (integers over 64 bits, non-``str`` dict keys, ``bytes``, unknown types) and any keyword
orjson has no equivalent for (``indent``, ``ensure_ascii``, ``cls``, ...) falls back to the
standard library with the same arguments, so such calls behave as with the default module
(``bytes`` still raise ``TypeError``, as python-socketio relies on after separating binary).

:func:`loads` is ``orjson.loads`` (``str`` or ``bytes``). Its errors are ``orjson.JSONDecodeError``,
a subclass of ``json.JSONDecodeError`` and ``ValueError``. Difference: integers over 64 bits are
read as floats, where engineio's default reader keeps them as ``int`` up to 100 digits.
"""
from __future__ import annotations

import json as _stdlib_json
from typing import Any

import orjson

__all__ = ['dumps', 'loads', 'JSONDecodeError']

JSONDecodeError = orjson.JSONDecodeError
loads = orjson.loads

_COMPACT = (',', ':')
_orjson_dumps = orjson.dumps
_OPT_SORT_KEYS = orjson.OPT_SORT_KEYS


def dumps(obj: Any, *, separators: tuple[str, str] | None = None, default: Any = None,
          sort_keys: bool = False, **kwargs: Any) -> str:
    """Compact JSON text of ``obj`` (see the module docstring for the few differences)."""
    if kwargs or (separators is not None and tuple(separators) != _COMPACT):
        return _stdlib_dumps(obj, separators, default, sort_keys, kwargs)
    try:
        if sort_keys:
            return _orjson_dumps(obj, default, _OPT_SORT_KEYS).decode()
        return _orjson_dumps(obj, default).decode()
    except TypeError:                 # orjson.JSONEncodeError: let the standard library decide
        return _stdlib_dumps(obj, separators or _COMPACT, default, sort_keys, kwargs)


def _stdlib_dumps(obj: Any, separators: Any, default: Any, sort_keys: bool, kwargs: dict) -> str:
    return _stdlib_json.dumps(obj, separators=separators, default=default, sort_keys=sort_keys,
                              **kwargs)
