"""``GET /metrics/snapshot``: the master's figures under Mesos's metric names.

A flat JSON object, metric name -> number, sorted by name (mesos: docs/monitoring.md).
Every figure comes from the book's incremental accounting or the master's counters, so a
snapshot costs one pass over the agents and frameworks, never over the tasks. The same
snapshot answers the operator API's ``GET_METRICS``.

Timers follow libprocess: ``allocator/mesos/allocation_run_ms`` is the latest run, with
``/count``, ``/min``, ``/max`` and percentiles (linear interpolation) over the last 1000;
the registrar's ``registrar/state_store_ms`` times each write to the registry's store and
``registrar/state_fetch_ms`` its read at recovery. Every documented master key is present
(0 until it happens; per framework: :mod:`mesonb.master.metrics_framework`), as the test
against the list taken from Mesos's docs/monitoring.md checks.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psutil

from mesonb.http.base import BaseHandler
from mesonb.master import views
from mesonb.master.metrics_framework import framework_metrics
from mesonb.master.views import framework_active, registered_agents
from mesonb.protocol.mesos import OperationType
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
)
# Always shown, as Mesos registers them up front (mesos: src/master/metrics.cpp).
_TASK_REASONS_ALWAYS = (
    "master/task_lost/source_master/reason_invalid_offers",
    "master/task_lost/source_master/reason_slave_removed",
    "master/task_lost/source_slave/reason_executor_terminated",
)
# Offer operations with status feedback (LAUNCH and LAUNCH_GROUP have none, as in Mesos),
# and the states Mesos counts them in; ``master.counters["operations/<type>/<state>"]``.
OPERATION_TYPES = tuple(t.value.lower() for t in OperationType if t not in (
    OperationType.UNKNOWN, OperationType.LAUNCH, OperationType.LAUNCH_GROUP))
OPERATION_STATES = ("pending", "recovering", "unreachable", "finished", "failed", "error",
                    "dropped", "gone_by_operator")
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
    for key in _TASK_REASONS_ALWAYS:
        m.setdefault(key, 0)
    m.update(operation_metrics(master))
    for framework in book.frameworks.values():
        m.update(framework_metrics(framework))

    # Allocator.
    m["allocator/mesos/allocation_runs"] = master.allocation_runs
    m["allocator/event_queue_dispatches"] = 0
    m.update(documented_timer("allocator/mesos/allocation_run_latency_ms",
                              master.allocation_latency_ms))
    shares = (master.last_why_not or {}).get("role_shares") or {}
    for role, share in shares.items():
        m[f"allocator/mesos/roles/{role}/shares/dominant"] = share
    m.update(quota_metrics(master))
    filters: collections.Counter[str] = collections.Counter()
    for framework in book.frameworks.values():
        filters[framework.roles[0] if framework.roles else "*"] += len(framework.filters)
    for role, count in filters.items():
        m[f"allocator/mesos/offer_filters/roles/{role}/active"] = count

    # The registrar (a master without one, --registry in_memory in tests, shows zeros).
    registry = master.registry
    m["registrar/queued_operations"] = registry.queued if registry is not None else 0
    m["registrar/registry_size_bytes"] = 0
    m["registrar/state_fetch_ms"] = (registry.fetch_ms or 0.0) if registry is not None else 0.0
    m.update(documented_timer("registrar/state_store_ms",
                              registry.store_ms if registry is not None else ()))
    m["registrar/log/recovered"] = 1.0 if master.leading else 0.0
    m["registrar/log/ensemble_size"] = 1
    m["allocator/mesos/event_queue_dispatches"] = 0
    m.update(documented_timer("allocator/mesos/allocation_run_ms", master.allocation_ms))

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


def quota_metrics(master: Master) -> dict[str, float]:
    """``allocator/mesos/quota/roles/<role>/resources/<name>/{guarantee,offered_or_allocated}``
    for every role with quota (with its sub-roles' holdings, as the limit counts them)."""
    configs = master.quotas.configs
    if not configs:
        return {}
    held: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for role, use in views.role_usage(master).items():
        parts = role.split("/")
        for i in range(1, len(parts) + 1):
            held["/".join(parts[:i])].update(use.allocated)
            held["/".join(parts[:i])].update(use.offered)
    out: dict[str, float] = {}
    for role, config in configs.items():
        for name in sorted({*config.guarantees, *config.limits}):
            prefix = f"allocator/mesos/quota/roles/{role}/resources/{name}"
            out[f"{prefix}/guarantee"] = config.guarantees.get(name, 0.0)
            out[f"{prefix}/offered_or_allocated"] = held[role][name]
    return out


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


def operation_metrics(master: Master) -> dict[str, float]:
    """``master/operations/...``: by state, by type and state, and totals; from the
    counters ``operations/<type>/<state>`` that the code carrying out operations bumps."""
    counters = master.counters
    out: dict[str, float] = {}
    by_state = dict.fromkeys(OPERATION_STATES, 0)
    for kind in OPERATION_TYPES:
        total = 0
        for state in OPERATION_STATES:
            value = counters.get(f"operations/{kind}/{state}", 0)
            out[f"master/operations/{kind}/{state}"] = value
            by_state[state] += value
            total += value
        out[f"master/operations/{kind}/total"] = total
    for state, value in by_state.items():
        out[f"master/operations/{state}"] = value
    out["master/operations/total"] = sum(by_state.values())
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


def documented_timer(key: str, samples: Iterable[float]) -> dict[str, float]:
    """A timer whose every key Mesos documents: shown from the start (0 before the first
    sample) and with its statistics from the first sample on, so that tools reading the
    documented keys find them all."""
    values = list(samples)
    out = dict.fromkeys((key, f"{key}/count", f"{key}/min", f"{key}/max",
                         *(f"{key}/{name}" for name, _ in _PERCENTILES)), 0.0)
    out.update(timer(key, values * 2 if len(values) == 1 else values))
    out[f"{key}/count"] = float(len(values))
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
