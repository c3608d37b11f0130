"""Mesos metric snapshots (``name/with/slashes -> number``) as Prometheus metrics.

Built with ``prometheus_client``: each snapshot key becomes a gauge named
``mesonb_<key with / turned into _>``; the keys that hold an id or a name become
labels instead, so that one metric covers every framework or role::

    master/frameworks/<name>/<id>/tasks/active/task_running
        -> mesonb_master_framework_tasks_active_task_running{framework="..", framework_id=".."}
    allocator/mesos/roles/<role>/shares/dominant
        -> mesonb_allocator_mesos_role_shares_dominant{role=".."}
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")
_LABELLED = (
    (re.compile(r"^master/frameworks/([^/]+)/([^/]+)/roles/(.+)/(suppressed)$"),
     "master_framework_role", ("framework", "framework_id", "role")),
    (re.compile(r"^master/frameworks/([^/]+)/([^/]+)/(.+)$"), "master_framework",
     ("framework", "framework_id")),
    (re.compile(r"^allocator/mesos/roles/(.+)/shares/(.+)$"), "allocator_mesos_role_shares",
     ("role",)),
    (re.compile(r"^allocator/mesos/offer_filters/roles/(.+)/(active)$"),
     "allocator_mesos_role_offer_filters", ("role",)),
)


def metric_name(key: str) -> tuple[str, dict[str, str]]:
    """The Prometheus name and labels of a snapshot key."""
    for pattern, prefix, labels in _LABELLED:
        match = pattern.match(key)
        if match is None:
            continue
        groups = match.groups()
        values = {name: urllib.parse.unquote(v) for name, v in zip(labels, groups, strict=False)}
        rest = groups[len(labels)] if len(groups) > len(labels) else ""
        return "mesonb_" + _UNSAFE.sub("_", f"{prefix}_{rest}".rstrip("_")), values
    return "mesonb_" + _UNSAFE.sub("_", key), {}


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Mapping[str, float]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily] = {}
        label_names: dict[str, tuple[str, ...]] = {}
        for key, value in sorted(self.snapshot.items()):
            name, labels = metric_name(key)
            family = families.get(name)
            if family is None:
                names = tuple(sorted(labels))
                family = GaugeMetricFamily(name, f"Mesos metric {key}", labels=names)
                families[name], label_names[name] = family, names
            if tuple(sorted(labels)) != label_names[name]:
                continue  # a key that clashes with another's shape; the first one wins
            family.add_metric([labels[n] for n in label_names[name]], float(value))
        yield from families.values()


def exposition(snapshot: Mapping[str, float]) -> tuple[bytes, str]:
    """The Prometheus text format of ``snapshot``, and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry), CONTENT_TYPE_LATEST
