"""What the agent's read-only endpoints show of its book: the frameworks of ``/state`` and
the ``slave/*`` figures of ``/metrics/snapshot`` (Mesos's names), from plain values."""

from __future__ import annotations

from typing import Any

from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState

from .book import AgentBook, ExecutorState

COUNTERS = ("valid_status_updates", "invalid_status_updates", "valid_framework_messages")


def frameworks_v0(book: AgentBook, agent_id: str | None) -> dict[str, Any]:
    """``/state``'s ``frameworks`` and ``completed_frameworks`` (v0 JSON)."""
    return {
        "frameworks": [f.to_v0(agent_id) for f in book.frameworks.values()],
        "completed_frameworks": [f.to_v0(agent_id) for f in book.completed_frameworks],
    }


def slave_metrics(book: AgentBook, resources: Resources, counters: dict[str, int], *,
                  registered: bool, uptime: float,
                  measured: dict[str, float]) -> dict[str, float]:
    """Mesos's ``slave/*`` metrics: tasks and executors by state, resources allocated to
    what runs (``measured``: what the processes really use, psutil's)."""
    out: dict[str, float] = {
        "slave/registered": 1.0 if registered else 0.0,
        "slave/uptime_secs": uptime,
        "slave/frameworks_active": float(len(book.frameworks)),
    }
    counts = {s: 0 for s in TaskState}
    for task in book.all_tasks():
        counts[task.state] += 1
    for framework in book.frameworks.values():
        for executor in [*framework.executors.values(), *framework.completed_executors]:
            for task in executor.completed:
                counts[task.state] += 1
    for task_state, n in counts.items():
        out["slave/" + task_state.value.lower().replace("task_", "tasks_")] = float(n)
    executor_counts = {s: 0 for s in ExecutorState}
    for executor in book.all_executors():
        executor_counts[executor.state] += 1
    for executor_state, n in executor_counts.items():
        out[f"slave/executors_{executor_state.value.lower()}"] = float(n)
    used = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
    for executor in book.all_executors():
        if executor.state is ExecutorState.TERMINATED:
            continue
        for res in [executor.resources, *(t.resources for t in executor.tasks()
                                          if not t.state.terminal)]:
            for name in used:
                used[name] += res.get(name)
    for name, value in used.items():
        total = resources.get(name)
        out[f"slave/{name}_total"] = total
        out[f"slave/{name}_used"] = value
        out[f"slave/{name}_percent"] = value / total if total else 0.0
    for key in COUNTERS:
        out[f"slave/{key}"] = float(counters[key])
    out["slave/cpus_usage"] = measured["cpus"]  # measured (psutil), not allocated
    out["slave/mem_usage"] = measured["mem"]
    return out
