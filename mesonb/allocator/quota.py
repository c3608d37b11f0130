"""Quota limits in one allocation run: a role never gets offers beyond its limits.

Since Mesos 1.9 quota is a *limit* per role on scalar resources (docs/quota.md): what a
role consumes (its frameworks' tasks and executors plus their outstanding offers, and
all of its reservations, held or not; its sub-roles' included: ``eng`` counts
``eng/dev``) never grows past the limit. Reservations count as consumed quota as in Mesos
(docs/quota.md: "consumed quota = reservations + unreserved allocation"): a role with a
``cpus`` limit of 4 and 3 reserved cpus is offered at most 1 unreserved cpu, and its
reserved cpus are offered to it whatever the limit (they are already counted). The
allocator clips each offer to the headroom left under every limit that governs the
role (its own and its ancestors'), and skips the role on an agent when nothing worth
offering is left.

:class:`QuotaHeadroom` holds one run's consumption; it is built from the snapshot and
updated as offers are decided. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from mesonb.protocol.resources import Resources

from .filters import MinAllocatable


def governs(quota_role: str, role: str) -> bool:
    """True when ``quota_role``'s limits cover ``role`` (itself or a sub-role)."""
    return role == quota_role or role.startswith(quota_role + "/")


class QuotaHeadroom:
    """What each role with limits still may be offered during one allocation run.

    ``role_alloc`` is what each role's frameworks hold (tasks, executors, offers);
    ``unheld_reserved`` each role's reserved resources that nothing holds (counted too:
    reservations are consumed quota, held or not).

    >>> q = QuotaHeadroom({"dev": {"cpus": 2.0}}, {"dev/a": {"cpus": 1.5}})
    >>> q.clip("dev/b", Resources({"cpus": 4, "mem": 512}), MinAllocatable(())).scalars
    {'cpus': 0.5, 'mem': 512.0}
    >>> q = QuotaHeadroom({"dev": {"cpus": 2.0}}, {}, {"dev": {"cpus": 1.5}})
    >>> q.clip("dev", Resources({"cpus": 4}), MinAllocatable(())).scalars
    {'cpus': 0.5}
    """

    __slots__ = ("_governing", "consumed", "limits")

    def __init__(self, limits: Mapping[str, Mapping[str, float]],
                 role_alloc: Mapping[str, Mapping[str, float]],
                 unheld_reserved: Mapping[str, Mapping[str, float]] | None = None) -> None:
        self.limits = limits
        self.consumed: dict[str, dict[str, float]] = {q: {} for q in limits}
        self._governing: dict[str, tuple[str, ...]] = {}
        for role, alloc in role_alloc.items():
            self.consume(role, alloc)
        for role, reserved in (unheld_reserved or {}).items():
            self.consume(role, reserved)

    def governing(self, role: str) -> tuple[str, ...]:
        """The roles with limits that cover ``role`` (cached)."""
        found = self._governing.get(role)
        if found is None:
            found = self._governing[role] = tuple(q for q in self.limits if governs(q, role))
        return found

    def clip(self, role: str, available: Resources, minimum: MinAllocatable) -> Resources | None:
        """``available`` cut down to the headroom of ``role``'s limits; None when what is
        left is nothing or below the minimum offer size (the role is at its limit)."""
        quotas = self.governing(role)
        if not quotas:
            return available
        cut: dict[str, float] = {}
        for quota_role in quotas:
            used = self.consumed[quota_role]
            for name, limit in self.limits[quota_role].items():
                have = available.get(name)
                if not have:
                    continue
                excess = have - max(limit - used.get(name, 0.0), 0.0)
                if excess > cut.get(name, 0.0):
                    cut[name] = excess
        offerable = available - Resources(cut) if cut else available
        if not offerable or not minimum.met_by(offerable):
            return None
        return offerable

    def consume(self, role: str, scalars: Mapping[str, float]) -> None:
        """``role`` was given (or holds) ``scalars``: count them against its limits."""
        for quota_role in self.governing(role):
            used = self.consumed[quota_role]
            for name, value in scalars.items():
                used[name] = used.get(name, 0.0) + value
