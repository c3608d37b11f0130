""""Why is my task pending?": what a call needs against what each agent has free.

:func:`explain` is pure: a need (``{"cpus": 2.0, "mem": 512.0}``), the agent rows of
:func:`mesonb.client.state.agent_records` and, optionally, the master's why-not counters
(``GET /mesonb/v1/allocation``) -> an :class:`Explanation` that names the resources no
agent had free and the agents that came closest. ``fut.explain()`` builds one for a
future.

Example::

    >>> rows = [{"agent_id": "a1", "hostname": "h1", "cpus_total": 2.0,
    ...          "cpus_allocated": 1.5, "mem_total": 4096.0, "mem_allocated": 0.0}]
    >>> print(explain({"cpus": 1.0, "mem": 256.0}, rows))
    pending: no agent has cpus 1 free (the most free: 0.5 on h1)
      closest: h1 (a1): short of cpus 0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from mesonb.allocator.explain import REASONS


@dataclass
class AgentFit:
    agent_id: str
    hostname: str
    free: dict[str, float]
    short: dict[str, float]  # resource -> how much is missing (only those short)

    @property
    def fits(self) -> bool:
        return not self.short

    def score(self, need: dict[str, float]) -> float:
        """Shortfall as a fraction of the need, summed (0 when it fits)."""
        return sum(v / need[k] for k, v in self.short.items() if need.get(k))


@dataclass
class Explanation:
    need: dict[str, float]
    agents: list[AgentFit]  # closest first
    short_everywhere: dict[str, float]  # resource -> the most any agent has free
    why_not: dict[str, int] = field(default_factory=dict)  # this framework's buckets
    state: str = "pending"

    @property
    def fits_somewhere(self) -> bool:
        return any(a.fits for a in self.agents)

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.state != "pending":
            out.append(f"not pending: the call is {self.state}")
        if not self.agents:
            return [*out, "pending: no agent is registered"]
        if self.short_everywhere:
            best = {k: max(self.agents, key=lambda a, k=k: a.free.get(k, 0.0))
                    for k in self.short_everywhere}
            parts = [f"{k} {_fmt(k, self.need[k])} free (the most free: "
                     f"{_fmt(k, v)} on {best[k].hostname})"
                     for k, v in self.short_everywhere.items()]
            out.append("pending: no agent has " + "; ".join(parts))
        elif not self.fits_somewhere:
            out.append("pending: every resource is free somewhere, but no single agent "
                       "has all of them")
        else:
            fit = [a.hostname for a in self.agents if a.fits]
            out.append(f"resources are free on {', '.join(fit)}; the call waits for the "
                       "next offer")
        for agent in [a for a in self.agents if not a.fits][:3]:
            short = ", ".join(f"{k} {_fmt(k, v)}" for k, v in agent.short.items())
            out.append(f"  closest: {agent.hostname} ({agent.agent_id}): short of {short}")
        reasons = [f"{n} {r.replace('_', ' ')}" for r in REASONS
                   if (n := self.why_not.get(r))]
        if reasons:
            out.append("  last allocation run, agents not offered: " + ", ".join(reasons))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return "<pre class='mesonb-explain'>" + escape(str(self)) + "</pre>"


def explain(need: dict[str, float], agent_rows: list[dict[str, Any]],
            why_not: dict[str, int] | None = None, state: str = "pending") -> Explanation:
    """Compare ``need`` with each agent's free resources (total - allocated)."""
    need = {k: float(v) for k, v in need.items() if v}
    fits = []
    for row in agent_rows:
        free = {k: max(0.0, float(row.get(f"{k}_total") or 0.0)
                       - float(row.get(f"{k}_allocated") or 0.0)) for k in need}
        short = {k: need[k] - free[k] for k in need if free[k] + 1e-9 < need[k]}
        fits.append(AgentFit(row.get("agent_id", ""), row.get("hostname", ""), free, short))
    fits.sort(key=lambda a: (a.score(need), a.hostname))
    short_everywhere = {}
    for k in need:
        most = max((a.free[k] for a in fits), default=0.0)
        if most + 1e-9 < need[k]:
            short_everywhere[k] = most
    return Explanation(need, fits, short_everywhere, dict(why_not or {}), state)


def explain_future(fut: Any, timeout: float = 30.0) -> Explanation:
    """The explanation for one of a :class:`~mesonb.client.Cluster`'s futures."""
    cluster = fut._cluster
    job = cluster._jobs.get(fut.key)
    if job is None or fut.done():
        status = "cancelled" if fut.cancelled() else "done"
        return Explanation({}, [], {}, {}, status)
    from mesonb.frameworks.functions.scheduler import EXECUTOR_RESOURCES

    need = dict(job.resources.scalars)
    if job.command is None and not cluster._scheduler.executor_ids:
        for k, v in EXECUTOR_RESOURCES.scalars.items():
            need[k] = need.get(k, 0.0) + v

    async def gather() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows = await cluster._records("agents")
        answer = await cluster._master.request("GET", "/mesonb/v1/allocation")
        counts = answer.json() if answer.status == 200 else {}
        return rows, counts

    rows, counts = cluster._lt.run(gather(), timeout)
    why_not = (counts.get("frameworks") or {}).get(cluster.framework_id, {})
    return explain(need, rows, why_not)


def _fmt(name: str, value: float) -> str:
    if name in ("mem", "disk"):
        return f"{value:g} MB"
    return f"{value:g}"
