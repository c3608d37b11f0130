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

Example::

    >>> loads(b'{"type": "REVIVE"}', "Failed to parse body into Call")
    {'type': 'REVIVE'}
"""

from __future__ import annotations

import json
import math
from typing import Any

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


def loads(text: str | bytes | bytearray, what: str = "Failed to parse JSON") -> Any:
    """Parse ``text``; BadRequest with ``what`` and the problem when it is not acceptable."""
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


_STRUCTURE = b'[]{}"'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in _STRUCTURE)
_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_within(text: bytes, limit: int) -> bool:
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
