"""Sizes for ``mem=`` and ``disk=``: ``"1GB"``, ``"512MiB"``, ``"1.5 GiB"`` or a number of MB.

Mesos counts memory and disk in MB (2**20 bytes), so every unit converts to that::

    >>> parse_size("1GB"), parse_size("512MiB"), parse_size("1.5 GiB"), parse_size(64)
    (1024.0, 512.0, 1536.0, 64.0)

Decimal (``kB``, ``MB``, ``GB``, ``TB``) and binary (``KiB``, ``MiB``, ``GiB``, ``TiB``)
units are both read as powers of 1024, as Mesos and most schedulers do.

:func:`resource_scalars` and :func:`check_retries` check the keywords of ``submit`` and
``run`` at once, with errors that name the argument::

    >>> resource_scalars(0.5, "1GB", None, None)
    {'cpus': 0.5, 'mem': 1024.0}
    >>> check_retries(-1)
    Traceback (most recent call last):
    ...
    ValueError: retries: expected 0 or more, not -1
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

from mesonb.protocol.resources import Resources

_UNITS = {"": 1.0, "b": 1 / 2**20, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*$")


def parse_size(value: str | float | int | None, what: str = "size") -> float:
    """``value`` in MB; ValueError with a clear message for anything else."""
    if value is None:
        raise ValueError(f"{what}: expected a size such as '1GB', '512MiB' or a number of MB")
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a size, not {value!r}")
    if isinstance(value, numbers.Real):
        if not value >= 0 or value == math.inf:  # NaN fails every comparison
            raise ValueError(f"{what}: {value!r} MB must be a finite, non-negative number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a size such as '1GB', not {type(value).__name__}")
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"{what}: cannot read {value!r} as a size; use e.g. '1GB', '512MiB',"
                         " '1.5 GiB' or a number of MB")
    number, prefix, suffix = match.groups()
    unit = prefix.lower() if prefix else ("b" if suffix and suffix.lower() == "b" else "")
    if suffix and suffix.lower() == "ib" and not prefix:
        raise ValueError(f"{what}: cannot read {value!r} as a size (unit 'iB' needs a prefix)")
    mb = float(number) * _UNITS[unit]
    if not math.isfinite(mb):
        raise ValueError(f"{what}: {value!r} is not a finite size")
    return mb


# Mesos keeps scalars as int64 thousandths: amounts are rounded to 0.001 and bounded.
_SMALLEST = 0.0005  # rounds to 0.001, the least amount Mesos can hold
_LARGEST = float((2**63 - 1) // 1000)


def _amount(what: str, value: float, unit: str = "") -> float:
    if _SMALLEST <= value <= _LARGEST:  # the usual case (NaN fails every comparison)
        return float(value)
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"{what}: {value!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{what}: {value!r}{unit} is negative")
    if 0 < value < _SMALLEST:
        raise ValueError(f"{what}: {value!r}{unit} is less than the smallest amount Mesos "
                         "holds, 0.001")
    if value > _LARGEST:
        raise ValueError(f"{what}: {value!r}{unit} is more than the largest amount Mesos "
                         f"holds, {_LARGEST:.4g}")
    return float(value)


def _number(what: str, value: Any, expected: str) -> float:
    if type(value) is float or type(value) is int:
        return _amount(what, value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: expected {expected}, not {type(value).__name__} {value!r}")
    return _amount(what, float(value))


def resource_scalars(cpus: Any, mem: Any, disk: Any, gpus: Any) -> dict[str, float]:
    """The scalar resources of one call or command (``mem``/``disk`` in MB), checked.

    ``cpus`` a positive number; ``mem`` a positive size (0 would mean no memory limit at
    all); ``disk`` a size, None or 0 for none; ``gpus`` a whole number, None or 0 for none.
    TypeError for a value of the wrong type, ValueError for a wrong value; both name the
    argument."""
    scalars = {"cpus": _number("cpus", cpus, "a positive number of CPUs")}
    if not scalars["cpus"]:
        raise ValueError(f"cpus: expected a positive number of CPUs, not {cpus!r}")
    scalars["mem"] = _amount("mem", parse_size(mem, "mem"), " MB")
    if not scalars["mem"]:
        raise ValueError("mem: 0 MB means no memory limit at all; ask for what the call "
                         "needs, e.g. mem='256MiB'")
    if disk is not None:
        amount = _amount("disk", parse_size(disk, "disk"), " MB")
        if amount:
            scalars["disk"] = amount
    if gpus is not None:
        amount = _number("gpus", gpus, "a whole number of GPUs")
        if amount != int(amount):
            raise ValueError(f"gpus: {gpus!r} is not a whole number of GPUs (Mesos hands "
                             "out whole GPUs)")
        if amount:
            scalars["gpus"] = amount
    return scalars


def call_resources(cpus: Any, mem: Any, disk: Any, gpus: Any) -> Resources:
    """The :class:`Resources` of one call (:func:`resource_scalars`). A loop of submits
    asks for the same again and again: the answer for hashable arguments is kept (a
    Resources never changes), so each is parsed and checked once."""
    key = (type(cpus), cpus, type(mem), mem, type(disk), disk, type(gpus), gpus)
    try:
        return _RESOURCES[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable argument (refused by resource_scalars, or not)
        return Resources(resource_scalars(cpus, mem, disk, gpus))
    resources = Resources(resource_scalars(cpus, mem, disk, gpus))
    if len(_RESOURCES) >= 64:
        _RESOURCES.clear()
    _RESOURCES[key] = resources
    return resources


_RESOURCES: dict[tuple[Any, ...], Resources] = {}


def check_retries(retries: Any) -> int:
    """``retries``: a whole number, 0 or more (TypeError, ValueError otherwise)."""
    if type(retries) is int and retries >= 0:  # the usual case, without the ABC check
        return retries
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral):
        raise TypeError(f"retries: expected a whole number of retries, not "
                        f"{type(retries).__name__} {retries!r}")
    if retries < 0:
        raise ValueError(f"retries: expected 0 or more, not {retries!r}")
    return int(retries)


def format_mb(mb: float) -> str:
    """``1536.0`` -> ``'1.5 GiB'``; ``64`` -> ``'64 MiB'``."""
    return f"{mb / 1024:g} GiB" if mb >= 1024 else f"{mb:g} MiB"


def could_hold(agents: list[dict[str, Any]], need: Resources) -> bool:
    """Could one of ``agents`` (the master's state of each) hold ``need`` when idle? The
    answer is kept for this list of agents (a refresh makes a new one) and this
    Resources (a call's, the same object for calls asking the same): a loop of
    submits checks once."""
    kept = _HOLDS.get(id(need))
    if kept is not None and kept[0] is need and kept[1] is agents:
        return kept[2]
    answer = any(all(agent.get("resources", {}).get(k, 0.0) >= v - 1e-9
                     for k, v in need.scalars.items()) for agent in agents)
    if len(_HOLDS) >= 64:
        _HOLDS.clear()
    _HOLDS[id(need)] = (need, agents, answer)  # holding both: their ids are not reused
    return answer


_HOLDS: dict[int, tuple[Resources, list[dict[str, Any]], bool]] = {}
