"""``GET /metrics/snapshot``: the master's figures under Mesos's metric names.

A flat JSON object, metric name -> number, sorted by name (mesos: docs/monitoring.md).
Every figure comes from the book's incremental accounting or the master's counters, so a
snapshot costs one pass over the agents and frameworks, never over the tasks. The same
snapshot answers the operator API's ``GET_METRICS``.

Timers follow libprocess: ``allocator/mesos/allocation_run_ms`` is the latest run, and
``/count``, ``/min``, ``/max`` and percentiles (linear interpolation) appear once at
least two runs have been measured.
"""

from __future__ import annotations

import collections
import os
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psutil

from mesonb.http.base import BaseHandler
from mesonb.master import views
from mesonb.master.views import framework_active, registered_agents
from mesonb.protocol.resources import SCALAR_NAMES
from mesonb.protocol.states import TaskState
from mesonb.webui import prometheus

if TYPE_CHECKING:
    from mesonb.master.master import Master

# mesonb counter -> Mesos's name for the same message, where the two differ.
_MESOS_MESSAGE_NAMES = {
    "messages_accept": "messages_launch_tasks",
    "messages_decline": "messages_decline_offers",
    "messages_revive": "messages_revive_offers",
    "messages_suppress": "messages_suppress_offers",
    "messages_kill": "messages_kill_task",
    "messages_acknowledge": "messages_status_update_acknowledgement",
    "messages_reconcile": "messages_reconcile_tasks",
    "messages_message": "messages_framework_to_executor",
    "messages_request": "messages_resource_request",
    "messages_teardown": "messages_unregister_framework",
}
# Counters Mesos always shows, even before the first increment.
_ALWAYS = (
    "dropped_messages", "slave_registrations", "slave_reregistrations", "slave_removals",
    "slave_unreachable_completed", "valid_status_updates", "invalid_status_updates",
    "valid_status_update_acknowledgements", "invalid_status_update_acknowledgements",
    "event_queue_messages", "event_queue_dispatches", "event_queue_http_requests",
)
# Every other documented master metric (mesos: docs/monitoring.md); a counter of something
# mesonb never receives stays at 0, as it would on a Mesos master that never saw one.
_DOCUMENTED_COUNTERS = (
    "invalid_executor_to_framework_messages", "invalid_framework_to_executor_messages",
    "invalid_operation_status_update_acknowledgements", "messages_authenticate",
    "messages_deactivate_framework", "messages_decline_offers", "messages_executor_to_framework",
    "messages_exited_executor", "messages_framework_to_executor", "messages_kill_task",
    "messages_launch_tasks", "messages_operation_status_update_acknowledgement",
    "messages_reconcile_operations", "messages_reconcile_tasks", "messages_register_framework",
    "messages_register_slave", "messages_reregister_framework", "messages_reregister_slave",
    "messages_resource_request", "messages_revive_offers", "messages_status_update",
    "messages_status_update_acknowledgement", "messages_suppress_offers",
    "messages_unregister_framework", "messages_unregister_slave", "messages_update_slave",
    "recovery_slave_removals", "slave_removals/reason_registered",
    "slave_removals/reason_unhealthy", "slave_removals/reason_unregistered",
    "slave_shutdowns_scheduled", "slave_shutdowns_canceled", "slave_shutdowns_completed",
    "slave_unreachable_scheduled", "slave_unreachable_canceled",
    "valid_framework_to_executor_messages", "valid_executor_to_framework_messages",
    "valid_operation_status_update_acknowledgements", "invalid_status_update_acknowledgements",
    # offer operations other than launches (mesonb carries out none yet)
    "operations/pending", "operations/recovered", "operations/finished", "operations/failed",
    "operations/error", "operations/dropped", "operations/gone_by_operator",
)
_PERCENTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99),
                ("p999", 0.999), ("p9999", 0.9999))


def snapshot(master: Master) -> dict[str, float]:
    """Every metric, name -> value."""
    book = master.book
    m: dict[str, float] = {}
    now = master.clock.time()
    m["master/elected"] = 1.0 if master.leading else 0.0
    m["master/uptime_secs"] = max(0.0, now - master.start_time)

    # Agents and their resources.
    used: collections.Counter[str] = collections.Counter()
    offered: collections.Counter[str] = collections.Counter()
    active = connected = registered = 0
    for agent in registered_agents(book):
        registered += 1
        active += agent.active
        connected += agent.send is not None
        used.update(agent.used.scalars)
        offered.update(agent.offered.scalars)
    unreachable = len(book.agents) - registered
    m["master/slaves_active"] = active
    m["master/slaves_inactive"] = registered - active
    m["master/slaves_connected"] = connected
    m["master/slaves_disconnected"] = registered - connected
    m["master/slaves_unreachable"] = unreachable
    total = book.total.scalars
    for name in SCALAR_NAMES:
        t, u = total.get(name, 0.0), used.get(name, 0.0)
        m[f"master/{name}_total"] = t
        m[f"master/{name}_used"] = u
        m[f"master/{name}_percent"] = u / t if t > 0 else 0.0
        prefix = f"allocator/mesos/resources/{name}"
        m[f"{prefix}/total"] = t
        m[f"{prefix}/offered_or_allocated"] = u + offered.get(name, 0.0)

    # Frameworks, offers, tasks.
    frameworks = list(book.frameworks.values())
    fw_active = sum(1 for f in frameworks if framework_active(f))
    fw_connected = sum(1 for f in frameworks if f.connected)
    m["master/frameworks_active"] = fw_active
    m["master/frameworks_inactive"] = len(frameworks) - fw_active
    m["master/frameworks_connected"] = fw_connected
    m["master/frameworks_disconnected"] = len(frameworks) - fw_connected
    m["master/outstanding_offers"] = len(book.offers)
    for state in TaskState:
        m[f"master/tasks_{state.value.removeprefix('TASK_').lower()}"] = master.task_count(state)
    m["master/operator_event_stream_subscribers"] = sum(  # the web UI's feed is not one
        1 for o in master.observers if not getattr(getattr(o, "__self__", None), "ui_feed", False))

    # Counters (messages_*, registrations, status updates, ...).
    for name in _ALWAYS:
        m[f"master/{name}"] = 0
    for name, value in master.counters.items():
        m[f"master/{name}"] = value
        alias = _MESOS_MESSAGE_NAMES.get(name)
        if alias is not None and alias not in master.counters:
            m[f"master/{alias}"] = m.get(f"master/{alias}", 0) + value

    for name in _DOCUMENTED_COUNTERS:
        m.setdefault(f"master/{name}", 0)
    for name in SCALAR_NAMES:  # mesonb offers no revocable resources
        for kind in ("total", "used", "percent"):
            m[f"master/{name}_revocable_{kind}"] = 0.0
    m.update(task_reason_counts(master))
    m.update(framework_metrics(master))

    # Allocator.
    m["allocator/mesos/allocation_runs"] = master.allocation_runs
    m["allocator/event_queue_dispatches"] = 0
    m["allocator/mesos/allocation_run_latency_ms"] = (
        master.allocation_ms[-1] if master.allocation_ms else 0.0)
    shares = (master.last_why_not or {}).get("role_shares") or {}
    for role, share in shares.items():
        m[f"allocator/mesos/roles/{role}/shares/dominant"] = share
    filters: collections.Counter[str] = collections.Counter()
    for framework in book.frameworks.values():
        filters[framework.roles[0] if framework.roles else "*"] += len(framework.filters)
    for role, count in filters.items():
        m[f"allocator/mesos/offer_filters/roles/{role}/active"] = count

    # The registrar.
    m["registrar/queued_operations"] = 0
    m["registrar/registry_size_bytes"] = 0
    m["registrar/log/recovered"] = 1.0 if master.leading else 0.0
    m["registrar/log/ensemble_size"] = 1
    m["allocator/mesos/event_queue_dispatches"] = 0
    m.update(timer("allocator/mesos/allocation_run_ms", master.allocation_ms))

    # The machine the master runs on.
    m["system/cpus_total"] = psutil.cpu_count() or 0
    memory = psutil.virtual_memory()
    m["system/mem_total_bytes"] = memory.total
    m["system/mem_free_bytes"] = memory.available
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    m["system/load_1min"], m["system/load_5min"], m["system/load_15min"] = load
    return {k: float(v) for k, v in sorted(m.items())}


def task_reason_counts(master: Master) -> dict[str, float]:
    """``master/task_<state>/source_<source>/reason_<reason>``: terminal tasks the master
    still holds, by the source and reason of their last status (Mesos counts every one
    ever seen; mesonb counts the completed tasks it keeps)."""
    counts: collections.Counter[str] = collections.Counter()
    for framework in views.all_frameworks(master.book):
        for task in framework.completed_tasks:
            status = task.latest_status
            if status is None or status.reason is None:
                continue
            state = status.state.value.removeprefix("TASK_").lower()
            source = (status.source.value if status.source else "SOURCE_MASTER").lower()
            counts[f"master/task_{state}/{source}/{status.reason.value.lower()}"] += 1
    return dict(counts)


def framework_key(framework: Any) -> str:
    """``master/frameworks/<name, URL-encoded>/<id>``, as Mesos names a framework's metrics."""
    return f"master/frameworks/{urllib.parse.quote(framework.name, safe='')}/{framework.id}"


def framework_metrics(master: Master) -> dict[str, float]:
    """Mesos's per-framework metrics, for the frameworks the master holds now."""
    out: dict[str, float] = {}
    for framework in master.book.frameworks.values():
        key = framework_key(framework)
        out[f"{key}/subscribed"] = 1.0 if framework.connected else 0.0
        for role in framework.roles:
            out[f"{key}/roles/{role}/suppressed"] = float(role in framework.suppressed_roles)
        active: collections.Counter[str] = collections.Counter(
            t.state.value.lower() for t in framework.tasks.values())
        terminal: collections.Counter[str] = collections.Counter(
            t.state.value.lower() for t in framework.completed_tasks)
        for state in TaskState:
            name = state.value.lower()
            if state.terminal:
                out[f"{key}/tasks/terminal/{name}"] = terminal.get(name, 0)
            else:
                out[f"{key}/tasks/active/{name}"] = active.get(name, 0)
        out[f"{key}/offers/outstanding"] = len(framework.offers)
    return out


def timer(key: str, samples: Iterable[float]) -> dict[str, float]:
    """A libprocess timer: the latest value, and statistics once there are two samples."""
    values = list(samples)
    if not values:
        return {}
    out = {key: values[-1]}
    if len(values) < 2:
        return out
    values.sort()
    out[f"{key}/count"] = float(len(values))
    out[f"{key}/min"] = values[0]
    out[f"{key}/max"] = values[-1]
    for name, p in _PERCENTILES:
        out[f"{key}/{name}"] = percentile(values, p)
    return out


def percentile(ordered: list[float], p: float) -> float:
    """libprocess's percentile: linear interpolation between the closest ranks."""
    position = p * (len(ordered) - 1)
    index = int(position)
    lower = ordered[index]
    upper = ordered[min(index + 1, len(ordered) - 1)]
    return lower + (upper - lower) * (position - index)


class MetricsHandler(BaseHandler):
    """``GET /metrics/snapshot`` (``?jsonp=`` supported; ``timeout`` is accepted and unused)."""

    endpoint_acl = True  # get_endpoints
    master: Master

    def get(self) -> None:
        self.write_jsonp_or_json(snapshot(self.master))


class PrometheusHandler(BaseHandler):
    """``GET /metrics``: the same figures in Prometheus's text format."""

    endpoint_acl = True  # get_endpoints
    master: Master

    def get(self) -> None:
        body, content_type = prometheus.exposition(snapshot(self.master))
        self.set_header("Content-Type", content_type)
        self.finish(body)
