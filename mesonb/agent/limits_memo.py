"""A container's limits, computed once per distinct input instead of once per task start.

Every task that starts in a running container has the containerizer sum the resources
of the executor and of every live task (:func:`.isolation.limits.container_limits`),
then lift the result to the limits applied and to the peak since ends last settled
(:meth:`.containers.Containerizer.update`). In a burst of calls of one function, those
inputs repeat: the tasks' resources are the same parsed object
(:meth:`.volumes.AgentVolumes.invalid` parses each distinct list once), the applied
limits and the peak change only when a write happens. :class:`LimitsMemo` keeps the
results of both steps keyed by the identity of their inputs, each entry holding its
inputs alive (so no id is reused while its entry is kept). The same inputs in the same
order give the same floating-point sums, so a result read here is the very value the
computation gives; a task with its own ``limits`` field is always computed afresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mesonb.protocol.resources import Resources

from .isolation.limits import Limits, container_limits

if TYPE_CHECKING:
    from .book import Task

KEEP = 64  # entries of each kind kept; all are forgotten when one more comes


def at_least(wanted: Limits, applied: Limits) -> Limits:
    """``wanted``, with no CPU share or cap under ``applied``'s (None: no cap)."""
    cap = None if wanted.cpus_cap is None or applied.cpus_cap is None else max(
        wanted.cpus_cap, applied.cpus_cap)
    if cap == wanted.cpus_cap and wanted.cpus >= applied.cpus:
        return wanted  # already (the common case in a burst): no new Limits
    return dataclasses.replace(wanted, cpus=max(wanted.cpus, applied.cpus), cpus_cap=cap)


def joined(applied: Limits, limits: Limits, peak: Limits | None) -> Limits:
    """What a container's limits become when a task joins others: ``limits`` (memory
    never lowered from ``applied``), with CPU no lower than ``applied`` nor ``peak`` (the
    highest since ends last settled; None: none yet)."""
    wanted = applied.raised_to(limits)
    return at_least(at_least(wanted, applied), wanted if peak is None else peak)


class LimitsMemo:
    """Memoized :func:`container_limits` over live tasks, and :func:`joined`."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._sums: dict[tuple[Any, ...], tuple[Any, Limits]] = {}
        self._lifts: dict[tuple[int, int, int], tuple[Any, Limits]] = {}

    def limits(self, executor_resources: Resources, live: Sequence[Task], *,
               enable_cfs: bool, pids_max: int | None, enforce_disk: bool) -> Limits:
        """``container_limits`` of the executor and its ``live`` tasks."""
        if any([t for t in live if t.info.extra and t.info.extra.get("limits") is not None]):
            return container_limits(  # not kept: computed each time
                executor_resources, [(t.resources, t.info.extra.get("limits")) for t in live],
                enable_cfs=enable_cfs, pids_max=pids_max, enforce_disk=enforce_disk)
        held = [t.resources for t in live]
        key = (id(executor_resources), enable_cfs, pids_max, enforce_disk, *map(id, held))
        kept = self._sums.get(key)
        if kept is not None:
            return kept[1]
        value = container_limits(executor_resources, [(r, None) for r in held],
                                 enable_cfs=enable_cfs, pids_max=pids_max,
                                 enforce_disk=enforce_disk)
        if len(self._sums) >= self.keep:
            self._sums.clear()
        self._sums[key] = ((executor_resources, held), value)
        return value

    def joined(self, applied: Limits, limits: Limits, peak: Limits | None) -> Limits:
        """:func:`joined` (a pure function of the three), kept."""
        key = (id(applied), id(limits), id(peak))
        kept = self._lifts.get(key)
        if kept is not None:
            return kept[1]
        value = joined(applied, limits, peak)
        if len(self._lifts) >= self.keep:
            self._lifts.clear()
        self._lifts[key] = ((applied, limits, peak), value)
        return value
