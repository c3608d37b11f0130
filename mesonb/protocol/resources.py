"""Resources: the arithmetic the master, allocator and agent share.

Mesos sends resources as a list of ``Resource`` messages
(``{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2.0}, "role": "*"}``). Inside
mesonb they are a :class:`Resources` value: scalars by name (rounded to Mesos's three
decimals), ranges by name (sorted, merged ``(begin, end)`` pairs, inclusive) and sets by
name. Values are immutable; ``+``, ``-`` and ``contains`` return new values.

The agent flag format is Mesos's: ``"cpus:2;mem:4096;disk:20000;ports:[31000-32000]"``,
sets as ``"{a,b}"``. ``mem`` and ``disk`` are in MB.

A scalar must be a finite number from 0 to :data:`MAX_SCALAR`: Mesos holds scalars as a
64-bit count of thousandths, and an infinite one would break every sum it enters. The
flag parser, :meth:`Resources.from_json` and the protocol's resource lists
(:func:`scalar_problem`, checked while a message is decoded) all refuse the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import BadRequest

Range = tuple[int, int]
SCALAR_NAMES = ("cpus", "mem", "disk", "gpus")
MAX_SCALAR = float((2**63 - 1) // 1000)
"""The largest scalar value (about 9.2e15): Mesos keeps scalars as int64 thousandths."""
_EPS = 0.0005
_NO_ITEMS: frozenset[str] = frozenset()


def _scalar_value_problem(number: float, given: Any = None) -> str | None:
    """Why ``number`` (read from ``given``) cannot be a scalar resource value, or None."""
    shown = repr(number if given is None else given)
    if not math.isfinite(number):
        return f"{shown} is not a finite number"
    if number < 0:
        return f"{shown} is negative"
    if number > MAX_SCALAR:
        return f"{shown} is more than the largest scalar, {MAX_SCALAR:.4g}"
    return None


def scalar_problem(items: Any) -> tuple[str, str] | None:
    """The first bad scalar value in a JSON list of Mesos ``Resource`` objects, as
    ``("[i].scalar.value", problem)``; None when there is none. Other malformations are
    left to :meth:`Resources.from_json` (a task with them fails with TASK_ERROR)."""
    if type(items) is not list:
        return None
    for i, item in enumerate(items):
        scalar = item.get("scalar") if type(item) is dict else None
        if type(scalar) is not dict or "value" not in scalar:
            continue
        value = scalar["value"]
        kind = type(value)
        if kind is float or kind is int:
            if 0 <= value <= MAX_SCALAR:  # the usual case (NaN fails every comparison)
                continue
        elif kind is not str:
            continue
        try:
            problem = _scalar_value_problem(float(value), value)
        except ValueError:
            continue
        except OverflowError:
            problem = "a number out of range"
        if problem is not None:
            return f"[{i}].scalar.value", f"invalid scalar resource {item.get('name')!r}: {problem}"
    return None


def _round(value: float) -> float:
    """Mesos keeps scalars as fixed point with three decimals."""
    return round(value * 1000) / 1000


def _rounded(scalars: Mapping[str, float]) -> dict[str, float]:
    """The scalars rounded as :func:`_round` does (inlined: a hot path), the zeros left out."""
    out: dict[str, float] = {}
    for name, value in scalars.items():
        value = round(value * 1000) / 1000
        if value > 0:
            out[name] = value
    return out


def _merge(ranges: Iterable[Range]) -> tuple[Range, ...]:
    out: list[list[int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1][1] = end
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def _subtract_ranges(have: tuple[Range, ...], take: tuple[Range, ...]) -> tuple[Range, ...]:
    result = list(have)
    for tb, te in take:
        nxt: list[Range] = []
        for b, e in result:
            if te < b or tb > e:
                nxt.append((b, e))
                continue
            if b < tb:
                nxt.append((b, tb - 1))
            if te < e:
                nxt.append((te + 1, e))
        result = nxt
    return tuple(result)


def _ranges_contain(have: tuple[Range, ...], want: tuple[Range, ...]) -> bool:
    return all(any(b <= wb and we <= e for b, e in have) for wb, we in want)


class Resources:
    """An immutable bag of scalar, range and set resources."""

    __slots__ = ("ranges", "scalars", "sets")

    def __init__(
        self,
        scalars: Mapping[str, float] | None = None,
        ranges: Mapping[str, Iterable[Range]] | None = None,
        sets: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.scalars: dict[str, float] = _rounded(scalars) if scalars else {}
        self.ranges: dict[str, tuple[Range, ...]] = {}
        if ranges:
            for name, rs in ranges.items():
                merged = _merge(rs)
                if merged:
                    self.ranges[name] = merged
        self.sets: dict[str, frozenset[str]] = (
            {k: frozenset(v) for k, v in sets.items() if v} if sets else {}
        )

    # -- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Resources:
        """Parse the agent flag form ``cpus:2;mem:4096;ports:[31000-32000];x:{a,b}``."""
        scalars: dict[str, float] = {}
        ranges: dict[str, list[Range]] = {}
        sets: dict[str, list[str]] = {}
        for part in filter(None, (p.strip() for p in text.split(";"))):
            name, sep, value = part.partition(":")
            name, value = name.strip(), value.strip()
            if "(" in name:  # cpus(role): static reservations come with the allocator work
                name = name.split("(", 1)[0]
            if not sep or not name or not value:
                raise ValueError(f"bad resource {part!r}: expected NAME:VALUE")
            if value.startswith("["):
                if not value.endswith("]"):
                    raise ValueError(f"bad range resource {part!r}")
                for chunk in filter(None, (c.strip() for c in value[1:-1].split(","))):
                    m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", chunk)
                    if not m or int(m[1]) > int(m[2]):
                        raise ValueError(f"bad range {chunk!r} in {part!r}")
                    ranges.setdefault(name, []).append((int(m[1]), int(m[2])))
            elif value.startswith("{"):
                if not value.endswith("}"):
                    raise ValueError(f"bad set resource {part!r}")
                items = [i.strip() for i in value[1:-1].split(",") if i.strip()]
                sets.setdefault(name, []).extend(items)
            else:
                try:
                    number = float(value)
                except ValueError:
                    raise ValueError(f"bad scalar {part!r}: {value!r} is not a number") from None
                problem = _scalar_value_problem(number, value)
                if problem is not None:
                    raise ValueError(f"bad scalar {part!r}: {problem}")
                scalars[name] = scalars.get(name, 0.0) + number
        return cls(scalars, ranges, sets)

    @classmethod
    def from_json(cls, items: Any, path: str = "resources") -> Resources:
        """Read a list of Mesos ``Resource`` objects; raise BadRequest when malformed."""
        if items is None:
            return EMPTY
        if not isinstance(items, list):
            raise BadRequest(f"{path}: expected an array of Resource objects")
        scalars: dict[str, float] = {}
        ranges: dict[str, list[Range]] = {}
        sets: dict[str, list[str]] = {}
        for i, item in enumerate(items):
            # The usual item, a plain scalar with a number in range, read without the checks
            # of the general case below (which reads it the same way).
            if type(item) is dict:
                name = item.get("name")
                scalar = item.get("scalar")
                if (type(name) is str and type(scalar) is dict
                        and item.get("type", "SCALAR") == "SCALAR"):
                    value: Any = scalar.get("value")
                    kind = type(value)
                    if (kind is float or kind is int) and 0 <= value <= MAX_SCALAR:
                        scalars[name] = scalars.get(name, 0.0) + value
                        continue
            where = f"{path}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise BadRequest(f"{where}: expected an object with a 'name'")
            name = item["name"]
            kind = item.get("type", "SCALAR")
            try:
                if kind == "SCALAR":
                    value = float(item["scalar"]["value"])
                    if _scalar_value_problem(value) is not None:
                        raise ValueError
                    scalars[name] = scalars.get(name, 0.0) + value
                elif kind == "RANGES":
                    for r in item["ranges"].get("range", []):
                        b, e = int(r["begin"]), int(r["end"])
                        if b > e:
                            raise ValueError
                        ranges.setdefault(name, []).append((b, e))
                elif kind == "SET":
                    sets.setdefault(name, []).extend(str(x) for x in item["set"].get("item", []))
                else:
                    raise BadRequest(f"{where}: unknown resource type {kind!r}")
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                raise BadRequest(
                    f"{where}: malformed {kind} resource {name!r}"
                    " (expected e.g. {\"scalar\": {\"value\": 1.0}} with a finite,"
                    " non-negative value)"
                ) from None
        if ranges or sets or cls is not Resources:
            return cls(scalars, ranges, sets)
        return Resources._make(_rounded(scalars), {}, {})

    def to_json(self, role: str | None = "*", allocation_role: str | None = None) -> list[dict]:
        """The ``Resource`` list Mesos sends; ``allocation_role`` adds allocation_info."""
        out: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        if role is not None:
            extra["role"] = role
        if allocation_role is not None:
            extra["allocation_info"] = {"role": allocation_role}
        for name, value in self.scalars.items():
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": value}, **extra})
        for name, rs in self.ranges.items():
            rng = [{"begin": b, "end": e} for b, e in rs]
            out.append({"name": name, "type": "RANGES", "ranges": {"range": rng}, **extra})
        for name, items in self.sets.items():
            out.append({"name": name, "type": "SET", "set": {"item": sorted(items)}, **extra})
        return out

    def to_flat(self) -> dict[str, Any]:
        """The v0 (``/master/state``) flat form: ``{"cpus": 2, "ports": "[31000-32000]"}``."""
        out: dict[str, Any] = {name: 0.0 for name in SCALAR_NAMES}
        out.update(self.scalars)
        for name, rs in self.ranges.items():
            out[name] = "[" + ", ".join(f"{b}-{e}" for b, e in rs) + "]"
        for name, items in self.sets.items():
            out[name] = "{" + ", ".join(sorted(items)) + "}"
        return out

    def __str__(self) -> str:
        parts = [f"{k}:{v:g}" for k, v in self.scalars.items()]
        parts += [f"{k}:" + self.to_flat()[k] for k in self.ranges]
        parts += [f"{k}:" + self.to_flat()[k] for k in self.sets]
        return ";".join(parts)

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    # -- arithmetic ---------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self.scalars or self.ranges or self.sets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return (
            self.scalars == other.scalars
            and self.ranges == other.ranges
            and self.sets == other.sets
        )

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.scalars.items())), tuple(sorted(self.ranges.items()))))

    def get(self, name: str) -> float:
        return self.scalars.get(name, 0.0)

    @classmethod
    def _make(
        cls,
        scalars: dict[str, float],
        ranges: dict[str, tuple[Range, ...]],
        sets: dict[str, frozenset[str]],
    ) -> Resources:
        """Build from already normalised parts (the arithmetic's fast path)."""
        obj = cls.__new__(cls)
        obj.scalars, obj.ranges, obj.sets = scalars, ranges, sets
        return obj

    def __add__(self, other: Resources) -> Resources:
        if not (other.scalars or other.ranges or other.sets):  # (not other), inlined
            return self
        if not (self.scalars or self.ranges or self.sets):
            return other
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            scalars[k] = round((scalars.get(k, 0.0) + v) * 1000) / 1000  # _round, inlined
        ranges = self.ranges
        if other.ranges:
            ranges = dict(ranges)
            for k, spans in other.ranges.items():
                ranges[k] = _merge((*ranges.get(k, ()), *spans))
        sets = self.sets
        if other.sets:
            sets = dict(sets)
            for k, items in other.sets.items():
                sets[k] = sets.get(k, frozenset()) | items
        out = _new(Resources)  # Resources._make, inlined
        out.scalars, out.ranges, out.sets = scalars, ranges, sets
        return out

    def __sub__(self, other: Resources) -> Resources:
        """What is left after taking ``other``; never negative (clamped at zero)."""
        if not (other.scalars or other.ranges or other.sets) \
                or not (self.scalars or self.ranges or self.sets):
            return self
        scalars = dict(self.scalars)
        for k, v in other.scalars.items():
            have = scalars.get(k)
            if have is not None:
                left = round((have - v) * 1000) / 1000  # _round, inlined
                if left > 0:
                    scalars[k] = left
                else:
                    del scalars[k]
        ranges = self.ranges
        if other.ranges and ranges:
            ranges = dict(ranges)
            for k, spans in other.ranges.items():
                if k in ranges:
                    left_ranges = _subtract_ranges(ranges[k], spans)
                    if left_ranges:
                        ranges[k] = left_ranges
                    else:
                        del ranges[k]
        sets = self.sets
        if other.sets and sets:
            sets = dict(sets)
            for k, items in other.sets.items():
                if k in sets:
                    left_set = sets[k] - items
                    if left_set:
                        sets[k] = left_set
                    else:
                        del sets[k]
        out = _new(Resources)  # Resources._make, inlined
        out.scalars, out.ranges, out.sets = scalars, ranges, sets
        return out

    def contains(self, other: Resources) -> bool:
        """True when ``other`` fits entirely inside this bag."""
        mine = self.scalars
        for k, v in other.scalars.items():
            if mine.get(k, 0.0) + _EPS < v:
                return False
        for k, spans in other.ranges.items():
            if not _ranges_contain(self.ranges.get(k, ()), spans):
                return False
        for k, items in other.sets.items():  # noqa: SIM110 - no generator built for no sets
            if not items <= self.sets.get(k, _NO_ITEMS):
                return False
        return True

    def shortfall(self, other: Resources) -> dict[str, float]:
        """Per scalar name, how much of ``other`` this bag lacks (only the positive gaps)."""
        return {
            k: _round(v - self.scalars.get(k, 0.0))
            for k, v in other.scalars.items()
            if self.scalars.get(k, 0.0) + _EPS < v
        }

    def ports_count(self) -> int:
        return sum(e - b + 1 for b, e in self.ranges.get("ports", ()))


_new = object.__new__
EMPTY = Resources()
