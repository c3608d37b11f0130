"""The DRF sorter: clients (roles, or frameworks in a role) kept in order of their share.

Mesos's ``DRFSorter`` (src/master/allocator/mesos/sorter/drf/sorter.cpp) defines a
client's share as its *dominant share* divided by its weight::

    share = max over scalar names r of (allocated_r / total_r)  /  weight

and the allocator asks the client with the lowest share first (ties by name). Here the
order is one Python list of ``(share, name)`` tuples kept sorted: reading it in order is
free, and after an allocation only the one client that received resources moves (a
bisect, a ``del`` and an ``insort``), so an allocation run never re-sorts everything.

Allocations are kept as fractions of the cluster total. Within a run they only grow, so a
client's dominant share can only grow too, and it is updated from the names that changed
alone.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping

Fractions = list[tuple[str, float]]  # (scalar name, amount / cluster total)


def fractions(scalars: Mapping[str, float], inv_total: Mapping[str, float]) -> Fractions:
    """``scalars`` as fractions of the cluster total; names with no total are dropped."""
    return [(name, value * inv_total[name]) for name, value in scalars.items() if name in inv_total]


def dominant_share(allocated: Mapping[str, float], inv_total: Mapping[str, float]) -> float:
    """``max(allocated_r / total_r)`` over the names with a positive total (0.0 if none)."""
    return max((f for _, f in fractions(allocated, inv_total)), default=0.0)


class DRFSorter:
    """Clients sorted by weighted dominant share; see the module docstring.

    ``order`` is the sorted list of ``(share, name)``; read it, never change it from
    outside. ``inv_total`` maps each scalar name with a positive cluster total to
    ``1 / total``. Allocations are kept as fractions of the cluster total, so the
    dominant share is simply their maximum.
    """

    __slots__ = ("_alloc", "_dominant", "_inv_total", "_keys", "_weights", "order")

    def __init__(self, inv_total: Mapping[str, float]) -> None:
        self._inv_total = inv_total
        self._alloc: dict[str, dict[str, float]] = {}
        self._dominant: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._keys: dict[str, tuple[float, str]] = {}
        self.order: list[tuple[float, str]] = []

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def add(self, name: str, allocated: Mapping[str, float], weight: float = 1.0) -> None:
        """Add a client holding ``allocated`` (scalars by name)."""
        if name in self._keys:
            raise ValueError(f"{name!r} is already in the sorter")
        alloc = dict(fractions(allocated, self._inv_total))
        self._alloc[name] = alloc
        self._weights[name] = weight
        self._dominant[name] = dominant = max(alloc.values(), default=0.0)
        key = (dominant / weight, name)
        self._keys[name] = key
        insort(self.order, key)

    def allocated(self, name: str, received: Fractions) -> None:
        """Record that ``name`` received ``received`` (see :func:`fractions`); move it."""
        alloc = self._alloc[name]
        dominant = self._dominant[name]
        for res, fraction in received:
            now = alloc.get(res, 0.0) + fraction
            alloc[res] = now
            if now > dominant:
                dominant = now
        self._dominant[name] = dominant
        key = (dominant / self._weights[name], name)
        old = self._keys[name]
        if key == old:
            return
        order = self.order
        del order[bisect_left(order, old)]
        insort(order, key)
        self._keys[name] = key

    def share(self, name: str) -> float:
        """The client's weighted share now."""
        return self._keys[name][0]
