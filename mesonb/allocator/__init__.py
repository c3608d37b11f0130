"""The pure allocator: ``allocate(snapshot, now) -> Allocation`` (hierarchical DRF).

It reads a frozen :class:`Snapshot` of the cluster and returns offer decisions plus
why-not counters. No clock, no I/O, no tornado/kazoo/psutil: the master builds the
snapshot and carries out the decisions.
"""

from .drf import Allocation, OfferDecision, allocate
from .explain import WhyNot
from .snapshot import DEFAULT_MIN_ALLOCATABLE, AgentView, Filter, FrameworkView, Snapshot

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "AgentView",
    "Allocation",
    "Filter",
    "FrameworkView",
    "OfferDecision",
    "Snapshot",
    "WhyNot",
    "allocate",
]
