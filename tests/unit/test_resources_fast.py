"""The fast paths of protocol/resources.py read and compute what the general code does.

``Resources.from_json`` reads a plain scalar item without the general checks, and the
arithmetic rounds inline; ``REFERENCE`` below is the code as it was before, kept here to
compare with on every kind of resource list (ranges, sets, reservations, disk and volume
info, revocable, shared, malformed items).
"""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.reservations import _any_special, _special, split
from mesonb.protocol.resources import MAX_SCALAR, Resources


def reference_from_json(items: Any, path: str = "resources") -> Resources:
    """Resources.from_json before its fast path (its general case, for every item)."""
    if items is None:
        return Resources()
    if not isinstance(items, list):
        raise BadRequest(f"{path}: expected an array of Resource objects")
    scalars: dict[str, float] = {}
    ranges: dict[str, list[tuple[int, int]]] = {}
    sets: dict[str, list[str]] = {}
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadRequest(f"{where}: expected an object with a 'name'")
        name = item["name"]
        kind = item.get("type", "SCALAR")
        try:
            if kind == "SCALAR":
                value = float(item["scalar"]["value"])
                if not math.isfinite(value) or value < 0 or value > MAX_SCALAR:
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
            raise BadRequest(f"{where}: malformed {kind} resource {name!r}"
                             " (expected e.g. {\"scalar\": {\"value\": 1.0}} with a finite,"
                             " non-negative value)") from None
    rounded = {k: round(v * 1000) / 1000 for k, v in scalars.items()}
    out = Resources(ranges=ranges, sets=sets)
    out.scalars = {k: v for k, v in rounded.items() if v > 0}
    return out


NUMBERS = (st.floats(allow_nan=True, allow_infinity=True)
           | st.floats(min_value=0, max_value=1e6)
           | st.integers(min_value=-5, max_value=2**64)
           | st.sampled_from([0, 0.0004, 0.0005, 0.2, 1024.0, MAX_SCALAR, 2**53 + 1, True,
                              "2.5", "nan", None, [], {}]))
NAMES = st.sampled_from(["cpus", "mem", "disk", "gpus", "ports", "x"])
EXTRAS = st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["*", "ads"]),
    "allocation_info": st.just({"role": "*"}),
    "reservations": st.just([{"type": "DYNAMIC", "role": "ads", "principal": "p"}]),
    "reservation": st.just({"principal": "p"}),
    "disk": st.sampled_from([{"persistence": {"id": "v1"}, "volume": {
        "container_path": "data", "mode": "RW"}}, {"source": {"type": "PATH"}}]),
    "revocable": st.just({}),
    "shared": st.just({}),
})
SCALAR = st.builds(lambda n, v, x: {"name": n, "type": "SCALAR", "scalar": {"value": v}, **x},
                   NAMES, NUMBERS, EXTRAS)
UNTYPED = st.builds(lambda n, v: {"name": n, "scalar": {"value": v}}, NAMES, NUMBERS)
RANGES = st.builds(
    lambda n, rs, x: {"name": n, "type": "RANGES",
                      "ranges": {"range": [{"begin": b, "end": e} for b, e in rs]}, **x},
    NAMES, st.lists(st.tuples(st.integers(0, 70), st.integers(0, 70)), max_size=4), EXTRAS)
SETS = st.builds(lambda n, xs, x: {"name": n, "type": "SET", "set": {"item": xs}, **x},
                 NAMES, st.lists(st.sampled_from(["a", "b", "c", 1]), max_size=3), EXTRAS)
ODD = st.sampled_from([
    {"name": "cpus"}, {"name": "cpus", "scalar": 1}, {"name": 3, "scalar": {"value": 1}},
    {"scalar": {"value": 1}}, {"name": "cpus", "type": "TEXT"}, "cpus", None,
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "extra": {"deep": [1]}},
])
ITEMS = st.lists(SCALAR | UNTYPED | RANGES | SETS | ODD, max_size=6)


def outcome(fn, items):
    try:
        return ("ok", fn(items))
    except BadRequest as exc:
        return ("bad", exc.message)


def parts(value: Resources) -> tuple:
    return (value.scalars, {k: tuple(v) for k, v in value.ranges.items()}, value.sets,
            [type(v) for v in value.scalars.values()])


@given(ITEMS)
def test_from_json_reads_what_the_general_code_reads(items):
    fast, slow = outcome(Resources.from_json, items), outcome(reference_from_json, items)
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "ok":
        assert parts(fast[1]) == parts(slow[1])
        assert fast[1] == slow[1]
    else:
        assert fast == slow


@given(ITEMS)
def test_split_is_unchanged_on_reserved_shared_and_volume_items(items):
    """split() (reservations, volumes) gives the same as with the reference from_json."""
    fast = outcome(split, items)
    with mock.patch.object(Resources, "from_json", staticmethod(reference_from_json)):
        slow = outcome(split, items)
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert parts(fast[1][0]) == parts(slow[1][0])
        assert fast[1][1].volumes == slow[1][1].volumes
        assert {k: parts(v) for k, v in fast[1][1].reserved.items()} == {
            k: parts(v) for k, v in slow[1][1].reserved.items()}
    else:
        assert fast == slow


@given(ITEMS, ITEMS)
def test_arithmetic_is_that_of_rounded_scalars(a_items, b_items):
    a, b = outcome(Resources.from_json, a_items), outcome(Resources.from_json, b_items)
    if a[0] != "ok" or b[0] != "ok":
        return
    a, b = a[1], b[1]
    total, left = a + b, a - b
    for name in {*a.scalars, *b.scalars}:
        expect = round((a.get(name) + b.get(name)) * 1000) / 1000
        assert total.scalars.get(name, 0.0) == (expect if expect > 0 else 0.0)
        if name in a.scalars:
            rest = round((a.get(name) - b.get(name)) * 1000) / 1000
            assert left.scalars.get(name, 0.0) == (rest if rest > 0 else 0.0)
    assert a.contains(a) and total.contains(a) and total.contains(b)
    assert (a + b) - b == a or b.ranges or b.sets or a.ranges or a.sets or any(
        round((a.get(n) + b.get(n)) * 1000) / 1000 - b.get(n) != a.get(n) for n in a.scalars)


def test_common_task_resources():
    items = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}, "role": "*"},
             {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}, "role": "*"},
             {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1004}}]
    value = Resources.from_json(items)
    assert value.scalars == {"cpus": 0.3, "mem": 1024.0}
    assert type(value.scalars["mem"]) is float
    assert Resources.from_json([]) == Resources() and not Resources.from_json([])


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), MAX_SCALAR * 2, True, "1"])
def test_odd_scalars_take_the_general_path(value):
    items = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": value}}]
    assert outcome(Resources.from_json, items) == outcome(reference_from_json, items) or (
        parts(Resources.from_json(items)) == parts(reference_from_json(items)))


@given(ITEMS)
def test_any_special_is_any_of_special(items):
    assert _any_special(items) is any(_special(i) for i in items)


@given(ITEMS, ITEMS)
def test_contains_is_that_of_each_kind(a_items, b_items):
    a, b = outcome(Resources.from_json, a_items), outcome(Resources.from_json, b_items)
    if a[0] != "ok" or b[0] != "ok":
        return
    a, b = a[1], b[1]
    want = (all(a.get(k) + 0.0005 >= v for k, v in b.scalars.items())
            and all(any(x <= lo and hi <= y for x, y in a.ranges.get(k, ()))
                    for k, spans in b.ranges.items() for lo, hi in spans)
            and all(v <= a.sets.get(k, frozenset()) for k, v in b.sets.items()))
    assert a.contains(b) is want
