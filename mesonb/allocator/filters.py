"""The minimum offer size (``min_allocatable_resources``), compiled for speed.

Mesos semantics (src/master/allocator/mesos/hierarchical.cpp, ``allocatable``): the
resources are worth offering when they contain at least ONE of the listed quantities
(``cpus:0.01|mem:32`` means "a hundredth of a CPU, or 32 MB"). An empty list means no
minimum: anything non-empty is offered.

The check runs once per agent and list, so a list is compiled once per run into plain
``(name, value)`` pairs compared against ``Resources.scalars`` directly; only quantities
that name ranges or sets fall back to :meth:`Resources.contains`. The other check that
keeps an agent from a framework, the ``refuse_seconds`` filter, is
:meth:`mesonb.allocator.snapshot.Filter.applies`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from mesonb.protocol.resources import Resources

# Resources.contains treats values within half a thousandth as equal; so do we.
_EPS = 0.0005

# One compiled quantity: its scalar requirements, and the whole Resources when it also
# asks for ranges or sets (checked with Resources.contains).
_Quantity = tuple[tuple[tuple[str, float], ...], Resources | None]


class MinAllocatable:
    """A compiled ``min_allocatable_resources`` list (see the module docstring)."""

    __slots__ = ("_quantities", "any_size")

    def __init__(self, quantities: Iterable[Resources]) -> None:
        compiled: list[_Quantity] = []
        for q in quantities:
            scalars = tuple((name, value - _EPS) for name, value in q.scalars.items())
            compiled.append((scalars, q if (q.ranges or q.sets) else None))
        self._quantities = tuple(compiled)
        # No minimum, or one quantity that is empty: every non-empty offer qualifies.
        self.any_size = not compiled or any(not s and r is None for s, r in compiled)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def of(quantities: tuple[Resources, ...]) -> MinAllocatable:
        """The compiled list for ``quantities``, compiled once (lists rarely change)."""
        return MinAllocatable(quantities)

    @staticmethod
    def of_list(quantities: tuple[Resources, ...] | list[Resources]) -> MinAllocatable:
        """:meth:`of` ``tuple(quantities)``; the same tuple as the last call's (the
        cluster's list, run after run) is answered without hashing its Resources again
        (a tuple of immutable values: the same object holds the same list)."""
        global _LAST
        last = _LAST
        if last is not None and last[0] is quantities:
            return last[1]
        compiled = MinAllocatable.of(tuple(quantities))
        if type(quantities) is tuple:
            _LAST = (quantities, compiled)
        return compiled

    def met_by(self, offerable: Resources) -> bool:
        """True when ``offerable`` holds at least one of the quantities."""
        if self.any_size:
            return bool(offerable)
        have = offerable.scalars
        for scalars, whole in self._quantities:
            for name, value in scalars:
                if have.get(name, 0.0) < value:
                    break
            else:
                if whole is None or offerable.contains(whole):
                    return True
        return False


# the tuple of the last of_list call and its MinAllocatable (one tuple: read whole)
_LAST: tuple[tuple[Resources, ...], MinAllocatable] | None = None
