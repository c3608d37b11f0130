"""Reading JSON that came over the network: one place, stricter than :func:`json.loads`.

Every request body and agent-link frame goes through :func:`loads`, which raises
:class:`~mesonb.protocol.errors.BadRequest` (400) for:

* text that is not JSON, or bytes that are not UTF-8/16/32;
* arrays and objects nested deeper than :data:`MAX_DEPTH` (100) levels. Mesos's JSON
  parser (picojson, with the depth check Mesos backported) refuses the same. Python's
  parser would fail with ``RecursionError`` on deeper text, or accept nesting that later
  breaks when the value is encoded again (``/master/state``, a RUN_TASK frame). The
  depth is read off the text with bytes operations (:func:`nesting_within`), a few
  percent of the parse, where walking the parsed value would cost a quarter of it;
* ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON, and numbers beyond a double's
  range (``1e400``), which Python reads as infinity: written back they are not JSON either,
  and a non-finite deadline or resource never compares as meant.

Text is parsed by orjson, several times faster than :mod:`json`. Where orjson refuses the
text, or might read it differently (an integer of 19 digits or more, which orjson reads
as a float beyond 64 bits), :mod:`json` parses it as before, so that results and error
messages are exactly those of :mod:`json`.

:func:`dumps` and :func:`dumpb` write compact JSON (``json.dumps(obj, separators=(",",
":"))``) with orjson, byte for byte the same but for the notation of a few small floats
(``0.00001`` for ``1e-05``, the same number); what orjson writes differently (non-ASCII
text, which :mod:`json` escapes, ``NaN``, DEL) or cannot write (integers beyond 64 bits,
non-string keys, other types) is written by :mod:`json`, as before.

Example::

    >>> loads(b'{"type": "REVIVE"}', "Failed to parse body into Call")
    {'type': 'REVIVE'}
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from .errors import BadRequest

MAX_DEPTH = 100
"""The deepest nesting of arrays and objects accepted (Mesos's picojson allows 100)."""


class _NotANumber(Exception):
    """A number JSON cannot carry; raised from inside the decoder's hooks."""


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotANumber(f"number {text} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise _NotANumber(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_float=_parse_float, parse_constant=_parse_constant)


_parse = orjson.loads
_FAST_ERROR = orjson.JSONDecodeError
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_NUMBER = b"0" * 19
"""orjson reads an integer beyond 64 bits as a float, json as an int: text holding 19
digits in a row (in a number or, harmlessly, in a string) goes to json."""
_DIGITS_AS_ZERO_OPENERS_AS_SQUARE = bytes.maketrans(b"123456789{", b"0" * 9 + b"[")
"""One pass for both checks of :func:`loads`: its digit runs, and its opening brackets
(strings' too), which bound its depth: no more of them than levels allowed, no deeper."""


def loads(text: str | bytes | bytearray, what: str = "Failed to parse JSON") -> Any:
    """Parse ``text``; BadRequest with ``what`` and the problem when it is not acceptable."""
    try:
        raw = text.encode() if isinstance(text, str) else text
        marks = raw.translate(_DIGITS_AS_ZERO_OPENERS_AS_SQUARE)
        if _LONG_NUMBER not in marks:
            data = _parse(raw)
            if marks.count(b"[") > MAX_DEPTH and not nesting_within(raw, MAX_DEPTH):
                raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
            return data
    except (_FAST_ERROR, UnicodeEncodeError, AttributeError):  # (a memoryview: no translate)
        pass  # json says why (or, for UTF-16/32 and lone surrogates, reads it)
    return _loads_slowly(text, what)


def _loads_slowly(text: str | bytes | bytearray, what: str) -> Any:
    """:func:`loads` with :mod:`json` (its messages, its reading of everything)."""
    try:
        if isinstance(text, str):
            raw = text.encode("utf-8", "surrogatepass")
        else:
            raw = bytes(text)
            encoding = json.detect_encoding(raw)
            text = raw.decode(encoding, "surrogatepass")
            if not encoding.startswith("utf-8"):  # UTF-16/32 units may hold bracket bytes
                raw = text.encode("utf-8", "surrogatepass")
        data = _DECODER.decode(text)
    except _NotANumber as exc:
        raise BadRequest(f"{what}: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what}: invalid JSON ({exc})") from None
    if not nesting_within(raw, MAX_DEPTH):
        raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
    return data


def loads_lenient(text: str | bytes | bytearray) -> Any:
    """``json.loads(text)`` (NaN and all, any depth it manages, its exceptions), faster."""
    try:
        raw = text.encode() if isinstance(text, str) else text
        if _LONG_NUMBER not in raw.translate(_DIGITS_AS_ZERO):
            return _parse(raw)
    except (_FAST_ERROR, UnicodeEncodeError, AttributeError):
        pass
    return json.loads(text)


_write = orjson.dumps
_WRITE_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_write_slowly = _COMPACT.encode


def dumpb(obj: Any) -> bytes:
    """``json.dumps(obj, separators=(",", ":")).encode()``, several times faster."""
    try:
        out = _write(obj, option=_WRITE_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a type or a number orjson does not write
        return _write_slowly(obj).encode()
    if b"null" in out or b"\x7f" in out or not out.isascii():  # maybe NaN; escapes
        return _write_slowly(obj).encode()
    return out


def dumps(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"))``, several times faster."""
    try:
        out = _write(obj, option=_WRITE_OPTIONS)
    except TypeError:
        return _write_slowly(obj)
    if b"null" in out or b"\x7f" in out or not out.isascii():
        return _write_slowly(obj)
    return out.decode()


_PLAIN_OPTIONS = _WRITE_OPTIONS | orjson.OPT_PASSTHROUGH_SUBCLASS


def reads_back(obj: Any) -> bool:
    """Whether ``loads(dumpb(obj))`` accepts ``obj`` and gives back an equal value of the
    same types, so that a caller in this process may hand ``obj`` over in place of its
    text: dicts with string keys, lists, strings, integers within 64 bits, booleans and
    finite floats (no ``None``: NaN writes the same ``null``), nested at most
    :data:`MAX_DEPTH` levels. Subclasses of those types do not pass; a tuple does (it
    reads back as a list: callers hand over lists)."""
    try:
        out = _write(obj, option=_PLAIN_OPTIONS)
    except TypeError:
        return False
    if b"null" in out:
        return False
    return (out.translate(_OPENERS_AS_SQUARE).count(b"[") <= MAX_DEPTH
            or nesting_within(out, MAX_DEPTH))


_OPENERS_AS_SQUARE = bytes.maketrans(b"{", b"[")


_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_within(text: bytes | bytearray, limit: int) -> bool:
    """True when arrays and objects in ``text`` (valid JSON, UTF-8) nest at most ``limit``
    levels deep.

    Escaped backslashes and quotes go first; then everything but brackets and quotes.
    Removing two adjacent quotes does not change what is inside a string, so the quotes
    left delimit the rare strings holding brackets, which are cut out. Each pass that
    removes the ``[]`` pairs present (the innermost containers) takes off one level.
    """
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = text.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    if b'"' in text:
        text = b"".join(text.split(b'"')[::2])
    if len(text) <= 2 * limit:  # no more containers than levels allowed
        return True
    text = text.translate(_SQUARE)
    for _ in range(limit):
        if not text:
            return True
        text = text.replace(b"[]", b"")
    return not text
