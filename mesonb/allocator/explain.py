"""Why-not counters: what one allocation run did with each agent, per framework.

Modelled on Nomad's ``AllocMetric``: cheap counters filled in while allocating, read
later to answer "why is my task pending?". For every framework in the snapshot, every
agent in the run lands in exactly one bucket:

=========================  ==========================================================
``offered``                the agent was offered to this framework
``nothing_available``      the agent had nothing free (all used or already offered)
``suppressed``             the framework suppressed offers in all of its roles
``below_min_allocatable``  what was free is smaller than the framework's minimum
                           (its ``min_allocatable`` or the cluster's)
``filtered``               a ``refuse_seconds`` filter of this framework hides it
``quota_limit``            its role (or an ancestor) is at its quota limit
``lost_to_lower_share``    it went to a framework ahead in DRF order (a role or a
                           framework with a lower share) before this one was asked
=========================  ==========================================================

so ``sum(counts.values()) == agents_considered`` for every framework. A framework in
several roles is counted once per agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OFFERED = "offered"
NOTHING_AVAILABLE = "nothing_available"
SUPPRESSED = "suppressed"
BELOW_MIN_ALLOCATABLE = "below_min_allocatable"
FILTERED = "filtered"
QUOTA_LIMIT = "quota_limit"
LOST_TO_LOWER_SHARE = "lost_to_lower_share"

REASONS: tuple[str, ...] = (
    NOTHING_AVAILABLE,
    SUPPRESSED,
    BELOW_MIN_ALLOCATABLE,
    FILTERED,
    QUOTA_LIMIT,
    LOST_TO_LOWER_SHARE,
)
BUCKETS: tuple[str, ...] = (OFFERED, *REASONS)

_PHRASES = {
    NOTHING_AVAILABLE: "had nothing free",
    SUPPRESSED: "were skipped because offers are suppressed",
    BELOW_MIN_ALLOCATABLE: "had less free than the minimum offer size",
    FILTERED: "are hidden by refuse_seconds filters",
    QUOTA_LIMIT: "were held back by a role's quota limit",
    LOST_TO_LOWER_SHARE: "went to frameworks with a lower DRF share",
}


def empty_counts() -> dict[str, int]:
    """A fresh bucket dict, every bucket at zero."""
    return dict.fromkeys(BUCKETS, 0)


@dataclass(slots=True)
class WhyNot:
    """The counters of one allocation run (see the module docstring)."""

    agents_considered: int = 0
    frameworks_considered: int = 0
    offers: int = 0
    # agents with something free that no framework took (every one had a reason)
    agents_unoffered: int = 0
    # framework_id -> bucket -> number of agents
    frameworks: dict[str, dict[str, int]] = field(default_factory=dict)
    # role -> weighted DRF share at the end of the run
    role_shares: dict[str, float] = field(default_factory=dict)

    def for_framework(self, framework_id: str) -> dict[str, int]:
        """The buckets of one framework (all zero if it was not in the run)."""
        return self.frameworks.get(framework_id) or empty_counts()

    def explain(self, framework_id: str) -> str:
        """One line for a human: what happened to the agents, for this framework."""
        counts = self.for_framework(framework_id)
        head = f"{framework_id}: offered {counts[OFFERED]} of {self.agents_considered} agents"
        parts = [f"{counts[r]} {_PHRASES[r]}" for r in REASONS if counts[r]]
        return head + ("; " + ", ".join(parts) if parts else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "agents_considered": self.agents_considered,
            "frameworks_considered": self.frameworks_considered,
            "offers": self.offers,
            "agents_unoffered": self.agents_unoffered,
            "frameworks": {fid: dict(c) for fid, c in self.frameworks.items()},
            "role_shares": dict(self.role_shares),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WhyNot:
        return cls(
            agents_considered=int(data.get("agents_considered", 0)),
            frameworks_considered=int(data.get("frameworks_considered", 0)),
            offers=int(data.get("offers", 0)),
            agents_unoffered=int(data.get("agents_unoffered", 0)),
            frameworks={
                fid: {**empty_counts(), **{k: int(v) for k, v in c.items()}}
                for fid, c in (data.get("frameworks") or {}).items()
            },
            role_shares={r: float(s) for r, s in (data.get("role_shares") or {}).items()},
        )
