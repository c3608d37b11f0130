""""Why is my task pending?": what a call needs against what each agent has free.

:func:`explain` is pure: a need (``{"cpus": 2.0, "mem": 512.0}``), the agent rows of
:func:`mesonb.client.state.agent_records`, optionally the outstanding offers
(:func:`mesonb.client.state.offer_records`) and the master's why-not counters
(``GET /mesonb/v1/allocation``) -> an :class:`Explanation` that names the resources no
agent had free, the agents that came closest, and what other frameworks hold in offers
(offered resources are not free: the master gave them to that framework until it uses,
declines or loses them). ``fut.explain()`` builds one for a future; for a call that is
no longer waiting for resources (running, finished, failed, refused as too big for any
agent, cancelled, waiting for its dependencies) it says that and nothing else.

Example::

    >>> rows = [{"agent_id": "a1", "hostname": "h1", "cpus_total": 2.0,
    ...          "cpus_allocated": 1.5, "mem_total": 4096.0, "mem_allocated": 0.0}]
    >>> print(explain({"cpus": 1.0, "mem": 256.0}, rows))
    pending: no agent has cpus 1 free (the most free: 0.5 on h1)
      closest: h1 (a1): short of cpus 0.5
    >>> offers = [{"framework_id": "F2", "agent_id": "a1", "cpus": 0.5, "mem": 1024.0}]
    >>> print(explain({"cpus": 0.5}, rows, offers=offers, framework_id="F1",
    ...               framework_names={"F2": "explore"}))
    pending: no agent has cpus 0.5 free (the most free: 0 on h1)
      closest: h1 (a1): short of cpus 0.5
      h1 (a1): cpus 0.5, mem 1024 MB held in offers to framework explore (F2)
      the call fits once those offers are used, declined or rescinded
    >>> print(explain({}, [], state="done"))
    not pending: the call is done
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from mesonb.allocator.explain import REASONS, SUPPRESSED
from mesonb.frameworks.functions.scheduler import EXECUTOR_RESOURCES

from .frames import short_id

SCALARS = ("cpus", "mem", "disk", "gpus")


@dataclass
class AgentFit:
    agent_id: str
    hostname: str
    free: dict[str, float]
    short: dict[str, float]  # resource -> how much is missing (only those short)
    # "name (id)" of another framework -> what it holds here in outstanding offers
    held: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return not self.short

    @property
    def fits_without_offers(self) -> bool:
        """It would fit if the other frameworks' offers here came back."""
        back = {k: sum(h.get(k, 0.0) for h in self.held.values()) for k in self.short}
        return bool(self.short) and all(back[k] + 1e-9 >= v for k, v in self.short.items())

    def score(self, need: dict[str, float]) -> float:
        """Shortfall as a fraction of the need, summed (0 when it fits)."""
        return sum(v / need[k] for k, v in self.short.items() if need.get(k))


@dataclass
class Explanation:
    need: dict[str, float]
    agents: list[AgentFit]  # closest first
    short_everywhere: dict[str, float]  # resource -> the most any agent has free
    why_not: dict[str, int] = field(default_factory=dict)  # this framework's buckets
    state: str = "pending"  # or "done", "cancelled", "running ...", "waiting for ..."

    @property
    def fits_somewhere(self) -> bool:
        return any(a.fits for a in self.agents)

    def lines(self) -> list[str]:
        if self.state.startswith("failed"):
            return [f"not pending: the call {self.state}"]
        if self.state.startswith("refused"):
            return [f"not pending: the call was {self.state}"]
        if self.state != "pending":
            return [f"not pending: the call is {self.state}"]
        if not self.agents:
            return ["pending: no agent is registered"]
        out: list[str] = []
        if self.short_everywhere:
            best = {k: max(self.agents, key=_most_free(k)) for k in self.short_everywhere}
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
            out.append(f"  closest: {agent.hostname} ({short_id(agent.agent_id)}): short of "
                       f"{short}")
        for agent in self.agents:
            for holder, res in agent.held.items():
                amounts = ", ".join(f"{k} {_fmt(k, v)}" for k, v in res.items() if v)
                out.append(f"  {agent.hostname} ({short_id(agent.agent_id)}): {amounts} held in "
                           f"offers to {holder}")
        if not self.fits_somewhere and any(a.fits_without_offers for a in self.agents):
            out.append("  the call fits once those offers are used, declined or rescinded")
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
            why_not: dict[str, int] | None = None, state: str = "pending", *,
            offers: list[dict[str, Any]] | None = None, framework_id: str | None = None,
            framework_names: dict[str, str] | None = None,
            suppressed: bool | None = None) -> Explanation:
    """Compare ``need`` with each agent's free resources: total - allocated - what other
    frameworks hold in ``offers`` (rows with ``framework_id``, ``agent_id`` and amounts;
    offers to ``framework_id`` itself are the caller's to use, so they count as free).
    Without ``offers``, each row's ``<r>_offered`` is taken as held by others.

    ``why_not`` is the framework's buckets from the last allocation run, which may be
    older than the call; ``suppressed=False`` (the framework is not suppressed now)
    leaves out a stale ``suppressed`` count."""
    need = {k: float(v) for k, v in need.items() if v}
    if state != "pending":
        return Explanation(need, [], {}, {}, state)
    names = framework_names or {}
    held: dict[str, dict[str, dict[str, float]]] = {}  # agent -> holder -> resources
    for offer in offers or ():
        fid = offer.get("framework_id", "")
        if fid == framework_id:
            continue
        holder = f"framework {names[fid]} ({fid})" if names.get(fid) else f"framework {fid}"
        into = held.setdefault(offer.get("agent_id", ""), {}).setdefault(holder, {})
        for k in SCALARS:
            into[k] = into.get(k, 0.0) + float(offer.get(k) or 0.0)
    fits = []
    for row in agent_rows:
        agent_id = row.get("agent_id", "")
        if offers is None:
            offered = {k: float(row.get(f"{k}_offered") or 0.0) for k in SCALARS}
            mine = {"other frameworks": offered} if any(offered.values()) else {}
        else:
            mine = held.get(agent_id, {})
        in_offers = {k: sum(h.get(k, 0.0) for h in mine.values()) for k in need}
        free = {k: max(0.0, float(row.get(f"{k}_total") or 0.0)
                       - float(row.get(f"{k}_allocated") or 0.0) - in_offers[k]) for k in need}
        short = {k: need[k] - free[k] for k in need if free[k] + 1e-9 < need[k]}
        name = row.get("hostname", "")
        if row.get("port"):  # agents are named hostname:port, as everywhere else
            name = f"{name}:{row['port']}"
        fits.append(AgentFit(agent_id, name, free, short, mine))
    fits.sort(key=lambda a: (a.score(need), a.hostname))
    short_everywhere = {}
    for k in need:
        most = max((a.free[k] for a in fits), default=0.0)
        if most + 1e-9 < need[k]:
            short_everywhere[k] = most
    counts = dict(why_not or {})
    if suppressed is False:
        counts.pop(SUPPRESSED, None)
    return Explanation(need, fits, short_everywhere, counts, state)


def call_state(fut: Any, job: Any, scheduler: Any, hostnames: dict[str, str]) -> str:
    """"pending" for a call waiting for resources, else what it is doing, in words."""
    if fut.cancelled():
        return "cancelled"
    if job is None or fut.done():
        return "done"
    waiting = [d for d in getattr(job, "deps", ()) if not d.done()]
    if waiting:
        return f"waiting for {len(waiting)} of its {len(job.deps)} dependencies to finish"
    spec = scheduler.launched.get(fut.task_id) if fut.task_id else None
    if spec is None:
        return "pending"
    where = hostnames.get(spec.agent_id or "", "") or spec.agent_id or "an agent"
    if spec.state == "RUNNING":
        return f"running on {where} (task {fut.task_id})"
    return f"launched on {where} (task {fut.task_id}), starting"


def explain_future(fut: Any, timeout: float = 30.0) -> Explanation:
    """The explanation for one of a :class:`~mesonb.client.Cluster`'s futures."""
    from . import pending, state

    cluster = fut._cluster
    if fut.done():
        return explain({}, [], state=pending.describe(fut, None, None, []))
    job = cluster._jobs.get(fut.key)
    scheduler = cluster._scheduler
    hostnames = {a.get("id", ""): state.agent_name(a) for a in cluster._agents}
    doing = call_state(fut, job, scheduler, hostnames)
    if doing != "pending":
        return explain({}, [], state=doing)
    need = dict(job.resources.scalars)
    if job.command is None and not scheduler.executor_ids:
        for k, v in EXECUTOR_RESOURCES.scalars.items():  # nothing: it is not charged
            need[k] = need.get(k, 0.0) + v

    async def gather() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        agents = await state.operator_call(cluster._master, "GET_AGENTS")
        frameworks = await state.operator_call(cluster._master, "GET_FRAMEWORKS")
        answer = await cluster._master.request("GET", "/mesonb/v1/allocation")
        counts = answer.json() if answer.status == 200 else {}
        return state.agent_records(agents), frameworks, counts

    rows, frameworks, counts = cluster._lt.run(gather(), timeout)
    # the call may have been placed meanwhile
    if fut.done():
        return explain({}, [], state=pending.describe(fut, None, None, []))
    doing = call_state(fut, cluster._jobs.get(fut.key), scheduler, hostnames)
    if doing != "pending":
        return explain({}, [], state=doing)
    why_not = (counts.get("frameworks") or {}).get(cluster.framework_id, {})
    names = {f["framework_id"]: f["name"] for f in state.framework_records(frameworks)}
    return explain(need, rows, why_not, offers=state.offer_records(frameworks),
                   framework_id=cluster.framework_id, framework_names=names,
                   suppressed=bool(scheduler.suppressed))


def _most_free(name: str) -> Callable[[AgentFit], float]:
    return lambda agent: agent.free.get(name, 0.0)


def _fmt(name: str, value: float) -> str:
    if name in ("mem", "disk"):
        return f"{value:g} MB"
    return f"{value:g}"
