"""The frozen picture of the cluster that the allocator reads.

The master builds a :class:`Snapshot` from its book at the start of every allocation run
and hands it to :func:`mesonb.allocator.drf.allocate` together with ``now``. Nothing in
here refers to the master: the values are plain data, and the allocator never changes
them.

- :class:`AgentView` -- one connected, active agent: what is free on it and not offered
  (``available``) and its size (``total``).
- :class:`FrameworkView` -- one framework: its roles, what it holds (tasks plus
  outstanding offers, for its DRF share), the roles it suppressed, its per-agent
  ``refuse_seconds`` filters and its own ``min_allocatable_resources``.
- :class:`Filter` -- a DECLINE/ACCEPT filter with Mesos's semantics: while
  ``now < refuse_until`` the agent is not offered to the framework unless more became
  free on it than the filter covers.

An *event-triggered* run (an agent was added, resources were recovered, a framework
revived) passes only the agents that changed but the full cluster ``total``, so shares
stay those of the whole cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesonb.protocol.resources import Resources

# Mesos's --min_allocatable_resources default, "cpus:0.01|mem:32": an offer is worth
# making when it holds at least ONE of these quantities (src/master/constants.hpp).
DEFAULT_MIN_ALLOCATABLE: tuple[Resources, ...] = (
    Resources({"cpus": 0.01}),
    Resources({"mem": 32.0}),
)


@dataclass(frozen=True, slots=True)
class Filter:
    """A ``refuse_seconds`` filter one framework set on one agent.

    ``resources`` is what the framework declined (the unused part of the offer). The
    filter hides the agent while ``now < refuse_until`` *and* ``resources`` contain all
    that would now be offered; if more became free than was declined, it does not apply.
    """

    refuse_until: float
    resources: Resources

    def applies(self, offerable: Resources, now: float) -> bool:
        """True when this filter hides ``offerable`` at time ``now``."""
        if now >= self.refuse_until:
            return False
        declined = self.resources
        # Equal is the usual case (nothing changed on the agent since the decline) and a
        # few dict comparisons in C; containment proper walks ranges in Python.
        return declined is offerable or declined == offerable or declined.contains(offerable)


@dataclass(frozen=True, slots=True)
class AgentView:
    """One connected, active agent as the allocator sees it."""

    agent_id: str
    hostname: str
    available: Resources  # free and not offered
    total: Resources
    attributes: Mapping[str, Any] = field(default_factory=dict)
    # role -> free resources reserved to it (offered only to that role's frameworks);
    # ``available`` is then the unreserved part alone
    reserved: Mapping[str, Resources] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FrameworkView:
    """One framework as the allocator sees it.

    ``allocated`` is everything the framework holds (its tasks' resources plus its
    outstanding offers); it drives the framework's DRF share. ``allocated_by_role``
    (optional) splits it by role as Mesos's per-role sorters do; when it is empty a
    single-role framework's ``allocated`` counts for that role, and a multi-role one's is
    split evenly across its roles. A framework suppressed in all of its roles still
    belongs in the snapshot: what it holds counts toward its roles' shares.

    ``filters`` maps agent_id to a :class:`Filter`. ``min_allocatable`` is the
    framework's ``offer_filters.min_allocatable_resources`` (``None``: the cluster's;
    ``()``: no minimum).
    """

    framework_id: str
    roles: tuple[str, ...]
    allocated: Resources
    suppressed_roles: frozenset[str] = frozenset()
    filters: Mapping[str, Filter] = field(default_factory=dict)
    min_allocatable: tuple[Resources, ...] | None = None
    allocated_by_role: Mapping[str, Resources] = field(default_factory=dict)
    gpu_aware: bool = True  # has the GPU_RESOURCES capability: may be offered gpus

    @property
    def role_list(self) -> tuple[str, ...]:
        """Its roles, without repeats; a framework with no roles is in ``*`` (Mesos)."""
        return tuple(dict.fromkeys(self.roles)) if self.roles else ("*",)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one allocation run reads.

    ``total`` is the whole cluster's resources, also when ``agents`` is a subset (an
    event-triggered run). ``role_weights`` default to 1.0 and must be positive.
    ``min_allocatable`` is the cluster's ``--min_allocatable_resources``: an offer is made
    only when it holds at least one of the quantities (``()``: no minimum).
    """

    agents: Sequence[AgentView]
    frameworks: Sequence[FrameworkView]
    total: Resources
    role_weights: Mapping[str, float] = field(default_factory=dict)
    min_allocatable: tuple[Resources, ...] = DEFAULT_MIN_ALLOCATABLE
    # role -> scalar name -> quota limit (mesonb.allocator.quota): never offered beyond
    quota_limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # role -> scalar name -> its reserved resources, across the whole cluster, that no
    # task, executor or offer holds: consumed quota too (Mesos counts reservations)
    unheld_reserved: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role, weight in self.role_weights.items():
            if not weight > 0:
                raise ValueError(f"role {role!r}: weight must be positive, not {weight!r}")

    def weight(self, role: str) -> float:
        return self.role_weights.get(role, 1.0)
