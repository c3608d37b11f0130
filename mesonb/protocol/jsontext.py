"""Reading JSON that came over the network: one place, stricter than :func:`json.loads`.

Every request body and agent-link frame goes through :func:`loads`, which raises
:class:`~mesonb.protocol.errors.BadRequest` (400) for:

* text that is not JSON, or bytes that are not UTF-8/16/32;
* arrays and objects nested deeper than :data:`MAX_DEPTH` (100) levels. Mesos's JSON
  parser (picojson, with the depth check Mesos backported) refuses the same. Python's
  parser would fail with ``RecursionError`` on deeper text, or accept nesting that later
  breaks when the value is encoded again (``/master/state``, a RUN_TASK frame);
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
        if not isinstance(text, str):
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        data = _DECODER.decode(text)
    except _NotANumber as exc:
        raise BadRequest(f"{what}: {exc}") from None
    except RecursionError:
        raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what}: invalid JSON ({exc})") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and not nesting_within(data, MAX_DEPTH):
        raise BadRequest(f"{what}: JSON nested deeper than {MAX_DEPTH} levels")
    return data


def nesting_within(data: Any, limit: int) -> bool:
    """True when arrays and objects in ``data`` nest at most ``limit`` levels deep."""
    stack = [(data, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > limit:
            return False
        kind = type(value)
        if kind is not dict and kind is not list:
            continue
        depth += 1
        for item in value.values() if kind is dict else value:
            if type(item) is dict or type(item) is list:
                push((item, depth))
    return True
