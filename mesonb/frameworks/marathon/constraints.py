"""Marathon's placement constraints, checked against one offer.

A constraint is ``[field, operator, value?]``; ``field`` is ``hostname`` or an agent
attribute. Operators (Marathon's docs/constraints.md):

* ``UNIQUE``: no two instances share the field's value;
* ``CLUSTER value``: every instance on agents where the field is ``value`` (without a
  value: all on the value of the first one);
* ``GROUP_BY n``: spread evenly over the field's values (``n`` of them, when known);
* ``LIKE regex`` / ``UNLIKE regex``: the field's value matches / does not match;
* ``MAX_PER n``: at most ``n`` instances per value;
* ``IS value``: the field equals ``value``.

:func:`placement_ok` takes the values of the field for the instances already placed.

>>> placement_ok(["hostname", "UNIQUE"], "a", ["b"])
True
>>> placement_ok(["hostname", "UNIQUE"], "a", ["a"])
False
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any


def field_value(field: str, offer: dict[str, Any]) -> str | None:
    """The value of ``field`` on the offer's agent (``hostname`` or an attribute)."""
    if field == "hostname":
        return str(offer.get("hostname", ""))
    for attribute in offer.get("attributes") or []:
        if attribute.get("name") != field:
            continue
        kind = attribute.get("type")
        if kind == "TEXT":
            return str(attribute["text"]["value"])
        if kind == "SCALAR":
            return f"{attribute['scalar']['value']:g}"
        if kind == "SET":
            return ",".join(attribute["set"].get("item", []))
        if kind == "RANGES":
            return ",".join(f"{r['begin']}-{r['end']}" for r in attribute["ranges"]["range"])
    return None


def placement_ok(constraint: list[str], value: str | None, placed: list[str | None],
                 known_values: int = 0) -> bool:
    """Whether one more instance may go where the field is ``value``, given the field's
    values of the instances already placed."""
    operator = constraint[1]
    arg = constraint[2] if len(constraint) > 2 else None
    if operator == "UNIQUE":
        return value is not None and value not in placed
    if operator == "CLUSTER":
        if arg:
            return value == arg
        firsts = [p for p in placed if p is not None]
        return value is not None and (not firsts or value == firsts[0])
    if operator == "IS":
        return value == arg
    if operator == "LIKE":
        return value is not None and re.fullmatch(arg or "", value) is not None
    if operator == "UNLIKE":
        return value is None or re.fullmatch(arg or "", value) is None
    if operator == "MAX_PER":
        return value is not None and placed.count(value) < int(arg or 1)
    if operator == "GROUP_BY":
        if value is None:
            return False
        counts = Counter(p for p in placed if p is not None)
        groups = max(int(arg) if arg else 0, len(counts) + (value not in counts), known_values)
        if len(counts) < groups and value not in counts:
            return True
        least = min(counts.values()) if len(counts) >= groups else 0
        return counts.get(value, 0) <= least
    return False


def offer_meets(constraints: list[list[str]], offer: dict[str, Any],
                placed: list[dict[str, str | None]], known: dict[str, int] | None = None
                ) -> bool:
    """Whether the offer's agent meets every constraint; ``placed`` holds, per instance
    already placed, the values of the fields (``{"hostname": "a", "rack": "r1"}``)."""
    for constraint in constraints:
        field = constraint[0]
        value = field_value(field, offer)
        if not placement_ok(constraint, value, [p.get(field) for p in placed],
                            (known or {}).get(field, 0)):
            return False
    return True
