"""The agent's metrics: ``GET /metrics/snapshot`` with Mesos's documented ``slave/*`` keys,
and ``GET /metrics`` in Prometheus's text format.

The figures the agent measures come from :meth:`Agent.metrics_snapshot`; the documented keys
it has no figure for are added with Mesos's value for an agent that never saw the event
(0), so tools that read a fixed set of keys find them all. ``system/*`` describes the
machine (psutil).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import psutil

from mesonb.http.base import BaseHandler
from mesonb.webui import prometheus

if TYPE_CHECKING:
    from .surface import AgentSurface

_RESOURCES = ("cpus", "mem", "disk", "gpus")
_ZERO_KEYS = (
    "slave/container_launch_errors", "slave/executors_preempted", "slave/recovery_errors",
    "slave/invalid_framework_messages", "slave/executor_directory_max_allowed_age_secs",
    "containerizer/mesos/container_destroy_errors",
    "containerizer/fetcher/cache_size_total_bytes", "containerizer/fetcher/cache_size_used_bytes",
    "containerizer/fetcher/task_fetches_failed", "containerizer/fetcher/task_fetches_succeeded",
    "containerizer/mesos/provisioner/remove_container_errors",
    "containerizer/mesos/disk/project_ids_total", "containerizer/mesos/disk/project_ids_free",
    "gc/path_removals_failed", "gc/path_removals_pending", "gc/path_removals_succeeded",
    "volume_gid_manager/volume_gids_total", "volume_gid_manager/volume_gids_free",
    "resource_provider_manager/subscribed", "slave/recovery_time_secs",
    "containerizer/mesos/filesystem/containers_new_rootfs",
    "containerizer/mesos/provisioner/bind/remove_rootfs_errors",
    "containerizer/mesos/provisioner/overlay/remove_rootfs_errors",
    # Image pulls (mesonb runs no Docker images): Mesos's timers, always 0.
    *(f"{timer}{stat}" for timer in ("containerizer/docker/image_pull_ms",
                                     "containerizer/mesos/provisioner/docker_store/image_pull_ms")
      for stat in ("", "/count", "/min", "/max", "/p50", "/p90", "/p95", "/p99", "/p999",
                   "/p9999")),
)


def snapshot(agent: AgentSurface) -> dict[str, float]:
    """Every agent metric, name -> value, sorted by name."""
    m: dict[str, float] = dict(agent.metrics_snapshot())
    containerizer = agent.monitor.containerizer
    if containerizer is not None:  # sandbox GC, fetcher cache
        m.update(containerizer.metrics())
    for name in _RESOURCES:
        for kind in ("total", "used", "percent"):
            m.setdefault(f"slave/{name}_{kind}", 0.0)
            m[f"slave/{name}_revocable_{kind}"] = 0.0
    for state in ("registering", "running", "terminating", "terminated"):
        m.setdefault(f"slave/executors_{state}", 0.0)
    for key in _ZERO_KEYS:
        m.setdefault(key, 0.0)
    m["system/cpus_total"] = float(psutil.cpu_count() or 0)
    memory = psutil.virtual_memory()
    m["system/mem_total_bytes"] = float(memory.total)
    m["system/mem_free_bytes"] = float(memory.available)
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    m["system/load_1min"], m["system/load_5min"], m["system/load_15min"] = load
    return {k: float(v) for k, v in sorted(m.items())}


class MetricsHandler(BaseHandler):
    """``GET /metrics/snapshot`` (``?jsonp=`` supported)."""

    endpoint_acl = True  # get_endpoints
    agent: AgentSurface

    def get(self) -> None:
        self.write_jsonp_or_json(snapshot(self.agent))


class PrometheusHandler(BaseHandler):
    """``GET /metrics``: the snapshot in Prometheus's text format."""

    endpoint_acl = True  # get_endpoints
    agent: AgentSurface

    def get(self) -> None:
        body, content_type = prometheus.exposition(snapshot(self.agent))
        self.set_header("Content-Type", content_type)
        self.finish(body)
