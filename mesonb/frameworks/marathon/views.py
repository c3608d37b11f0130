"""Marathon's JSON for what the core holds: apps (with ``embed``), tasks, the launch
queue, groups, ``/v2/info`` and ``/metrics``. Only fields marathon-python's strict models
know are written (see the reference's known-field lists)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from mesonb.config import MESONB_VERSION

from . import controller, launcher
from .appstate import AppState
from .core import MarathonCore
from .model import timestamp

MARATHON_VERSION = "1.9.109"


def parse_embeds(values: list[str]) -> set[str]:
    """``app.tasks``/``apps.tasks``, ``counts``/``count``... -> {"tasks", "counts", ...}."""
    out = set()
    for value in values:
        for item in value.split(","):
            name = item.strip().split(".", 1)[-1]
            out.add({"count": "counts", "failures": "lastTaskFailure"}.get(name, name))
    return out


def app_json(core: MarathonCore, state: AppState, embeds: set[str],
             locks: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """One app's JSON; ``locks`` (:meth:`~.core.MarathonCore.lock_map`) when writing many."""
    app = state.definition
    out = app.to_json()
    instances = core.app_instances(app.id)
    out["tasksStaged"] = sum(i.state.value in ("TASK_STAGING", "TASK_STARTING")
                             for i in instances)
    out["tasksRunning"] = sum(i.state.value == "TASK_RUNNING" for i in instances)
    healthy = sum(i.healthy is True for i in instances) if app.health_checks else 0
    out["tasksHealthy"] = healthy
    out["tasksUnhealthy"] = sum(i.healthy is False for i in instances)
    held = locks.get(app.id, []) if locks is not None else core.locks(app.id)
    out["deployments"] = [{"id": d.id} for d in held]
    if "tasks" in embeds:
        out["tasks"] = [i.to_json() for i in instances]
    if "lastTaskFailure" in embeds and state.last_failure:
        out["lastTaskFailure"] = state.last_failure
    if "readiness" in embeds:
        out["readinessCheckResults"] = []
    if "taskStats" in embeds:
        out["taskStats"] = task_stats(app, instances)
    return out


def task_stats(app: Any, instances: list[Any]) -> dict[str, Any]:
    now = time.monotonic()
    lives = [max(0.0, now - i.running_since) for i in instances if i.running_since]
    counts = {"staged": sum(i.state.value == "TASK_STAGING" for i in instances),
              "running": sum(i.state.value == "TASK_RUNNING" for i in instances),
              "healthy": sum(controller.counts_healthy(app, i) for i in instances),
              "unhealthy": sum(i.healthy is False for i in instances)}
    stats: dict[str, Any] = {"counts": counts}
    if lives:
        stats["lifeTime"] = {"averageSeconds": sum(lives) / len(lives),
                             "medianSeconds": statistics.median(lives)}
    return {"totalSummary": {"stats": stats}}


def visible_apps(core: MarathonCore) -> list[AppState]:
    """The apps (not pods: /v2/pods) that are not being deleted."""
    return [s for s in core.apps.values() if not s.deleting and s.definition.pod is None]


def visible_pods(core: MarathonCore) -> list[AppState]:
    return [s for s in core.apps.values() if not s.deleting and s.definition.pod is not None]


def queue_json(core: MarathonCore, embed_offers: bool) -> list[dict[str, Any]]:
    now = core.clock()
    out = []
    for state in visible_apps(core):
        app = state.definition
        live = [i for i in core.app_instances(app.id) if i.active]
        count = controller.plan(app, live).launch
        if count <= 0:
            continue
        left = state.backoff.time_left(now)
        stats = state.offers
        item: dict[str, Any] = {
            "app": app_json(core, state, set()),
            "count": count,
            "delay": {"timeLeftSeconds": round(left), "overdue": left <= 0},
            "since": state.since or app.version,
            "processedOffersSummary": {
                "processedOffersCount": stats.processed,
                "unusedOffersCount": stats.unused,
                "lastUnusedOfferAt": stats.last_unused_at,
                "lastUsedOfferAt": stats.last_used_at,
                "rejectSummaryLastOffers": launcher.summary(
                    sum(stats.last_rejections.values()), stats.last_rejections),
                "rejectSummaryLaunchAttempt": launcher.summary(
                    stats.processed, stats.launch_rejections),
            },
        }
        if embed_offers:
            item["lastUnusedOffers"] = [
                {"offer": _offer_view(o["offer"]), "timestamp": o["timestamp"],
                 "reason": o["reason"]} for o in stats.last_unused]
        out.append(item)
    return out


def _offer_view(offer: dict[str, Any]) -> dict[str, Any]:
    return {"id": offer["id"]["value"], "agentId": offer["agent_id"]["value"],
            "hostname": offer.get("hostname", ""), "resources": offer.get("resources", []),
            "attributes": offer.get("attributes", [])}


def group_json(core: MarathonCore, group_id: str, embeds: set[str] | None = None,
               locks: dict[str, list[Any]] | None = None) -> dict[str, Any] | None:
    """The group tree under ``group_id`` (None if there is no such group)."""
    embeds = embeds if embeds is not None else set()
    locks = locks if locks is not None else core.lock_map()
    apps = [s for s in visible_apps(core) if _parent(s.definition.id) == group_id]
    children: set[str] = set()
    prefix = group_id.rstrip("/") + "/"
    for path in [*(s.definition.id for s in visible_apps(core)), *core.groups]:
        if path.startswith(prefix) and path != group_id:
            child = prefix + path[len(prefix):].split("/")[0]
            if child != path or child in core.groups:
                children.add(child)
    exists = group_id == "/" or group_id in core.groups or apps or children
    if not exists:
        return None
    groups = [g for g in (group_json(core, c, embeds, locks) for c in sorted(children)) if g]
    versions = [s.definition.version for s in apps] + [g["version"] for g in groups]
    return {"id": group_id,
            "apps": [app_json(core, s, embeds, locks) for s in apps],
            "groups": groups,
            "dependencies": core.groups.get(group_id, []),
            "version": max(versions) if versions else timestamp(),
            "pods": []}


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def info_json(core: MarathonCore, *, master: str, leader: str | None, elected: bool,
              http_port: int, zk: str | None, hostname: str, framework_name: str,
              zk_session_timeout: float) -> dict[str, Any]:
    return {
        "name": "marathon",
        "version": MARATHON_VERSION,
        "buildref": f"mesonb-{MESONB_VERSION}",
        "elected": elected,
        "leader": leader,
        "frameworkId": core.framework_id,
        "marathon_config": {
            "master": master, "failover_timeout": 604800, "checkpoint": True,
            "framework_name": framework_name, "hostname": hostname, "ha": bool(zk),
            "mesos_role": core.role, "mesos_user": None, "executor": "//cmd",
            "decline_offer_duration": 120000, "launch_token": 100,
            "launch_token_refresh_interval": 30000, "max_instances_per_offer": 1000,
            "min_revive_offers_interval": 5000, "reconciliation_interval": 600000,
            "reconciliation_initial_delay": 15000, "mesos_heartbeat_interval": 15000,
            "mesos_heartbeat_failure_threshold": 5, "task_launch_timeout": 300000,
            "local_port_min": 10000, "local_port_max": 20000, "features": [],
        },
        "zookeeper_config": {
            "zk": zk, "zk_timeout": 10000, "zk_session_timeout": int(zk_session_timeout * 1000),
            "zk_max_versions": 50,
        },
        "http_config": {"http_port": http_port, "https_port": None},
        "event_subscriber": {"type": "http_callback",
                             "http_endpoints": list(core.bus.callback_urls)},
    }


def metrics_json(core: MarathonCore, groups_latency: list[float]) -> dict[str, Any]:
    """Marathon 1.9's ``/metrics`` (Dropwizard shape: counters, gauges, timers...)."""
    instances = list(core.instances.values())
    gauges = {
        "marathon.apps.active.gauge": {"value": len(visible_apps(core))},
        "marathon.deployments.active.gauge": {"value": len(core.deployments)},
        "marathon.instances.running.gauge": {
            "value": sum(i.state.value == "TASK_RUNNING" for i in instances)},
        "marathon.instances.staged.gauge": {
            "value": sum(i.state.value == "TASK_STAGING" for i in instances)},
        "marathon.groups.active.gauge": {"value": len(core.groups)},
    }
    counters = {
        "marathon.mesos.offers.incoming.counter": {"count": core.counters["offers"]},
        "marathon.tasks.launched.counter": {"count": core.counters["launched"]},
        "marathon.tasks.failures.counter": {"count": core.counters["failures"]},
        "marathon.tasks.reconciled.counter": {"count": core.counters["reconciled"]},
        "marathon.deployments.success.counter": {
            "count": core.counters["deployments_succeeded"]},
        "marathon.deployments.failure.counter": {"count": core.counters["deployments_failed"]},
    }
    for name, count in core.bus.counts.items():
        counters[f"marathon.events.{name}.counter"] = {"count": count}
    timers: dict[str, Any] = {}
    if groups_latency:
        ordered = sorted(groups_latency)
        timers["marathon.http.v2.groups.get.timer"] = {
            "count": len(ordered), "p50": ordered[len(ordered) // 2],
            "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]}
    return {"version": "4.0.0", "counters": counters, "gauges": gauges,
            "histograms": {}, "meters": {}, "timers": timers}
