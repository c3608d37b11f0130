"""Sizes for ``mem=`` and ``disk=``: ``"1GB"``, ``"512MiB"``, ``"1.5 GiB"`` or a number of MB.

Mesos counts memory and disk in MB (2**20 bytes), so every unit converts to that::

    >>> parse_size("1GB"), parse_size("512MiB"), parse_size("1.5 GiB"), parse_size(64)
    (1024.0, 512.0, 1536.0, 64.0)

Decimal (``kB``, ``MB``, ``GB``, ``TB``) and binary (``KiB``, ``MiB``, ``GiB``, ``TiB``)
units are both read as powers of 1024, as Mesos and most schedulers do.
"""

from __future__ import annotations

import re

_UNITS = {"": 1.0, "b": 1 / 2**20, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*$")


def parse_size(value: str | float | int | None, what: str = "size") -> float:
    """``value`` in MB; ValueError with a clear message for anything else."""
    if value is None:
        raise ValueError(f"{what}: expected a size such as '1GB', '512MiB' or a number of MB")
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a size, not {value!r}")
    if isinstance(value, int | float):
        if value < 0 or value != value:
            raise ValueError(f"{what}: {value!r} MB must be a non-negative number")
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
    return float(number) * _UNITS[unit]


def format_mb(mb: float) -> str:
    """``1536.0`` -> ``'1.5 GiB'``; ``64`` -> ``'64 MiB'``."""
    return f"{mb / 1024:g} GiB" if mb >= 1024 else f"{mb:g} MiB"
