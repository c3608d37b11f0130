"""Metrics: Mesos's documented keys in /metrics/snapshot, and Prometheus /metrics, on the
master and the agents."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

from mesonb.local import LocalCluster
from mesonb.master.http.metrics import snapshot
from mesonb.testing.harness import MasterHarness, command_task

# A sample of the master keys documented in mesos: docs/monitoring.md.
MASTER_KEYS = [
    "master/elected", "master/uptime_secs", "master/cpus_total", "master/cpus_used",
    "master/cpus_percent", "master/cpus_revocable_total", "master/mem_revocable_percent",
    "master/gpus_total", "master/disk_percent", "master/slaves_active",
    "master/slaves_unreachable", "master/slave_shutdowns_scheduled",
    "master/slave_removals/reason_unhealthy", "master/frameworks_active",
    "master/outstanding_offers", "master/tasks_staging", "master/tasks_killing",
    "master/tasks_gone_by_operator", "master/messages_launch_tasks",
    "master/messages_status_update_acknowledgement", "master/valid_status_updates",
    "master/invalid_executor_to_framework_messages", "master/event_queue_dispatches",
    "master/operator_event_stream_subscribers", "allocator/mesos/allocation_runs",
    "allocator/mesos/resources/cpus/total", "registrar/queued_operations",
    "system/cpus_total", "system/load_1min", "system/mem_free_bytes",
]
AGENT_KEYS = [
    "slave/registered", "slave/uptime_secs", "slave/cpus_total", "slave/mem_revocable_used",
    "slave/executors_running", "slave/tasks_running", "slave/tasks_finished",
    "slave/container_launch_errors", "slave/valid_status_updates",
    "containerizer/fetcher/task_fetches_failed", "gc/path_removals_pending",
    "system/load_5min",
]


def test_master_snapshot_has_documented_per_framework_and_per_role_keys():
    h = MasterHarness()
    agent = h.add_agent("cpus:4;mem:1024")
    fw = h.subscribe("my framework", roles=["analytics"],
                     capabilities=("MULTI_ROLE",))
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task("t1", agent.agent_id, "cpus:1;mem:64")]}}]})
    h.advance(1.0)
    m = snapshot(h.master)
    assert [k for k in MASTER_KEYS if k not in m] == []
    assert len([k for k in m if not k.startswith("master/frameworks/")]) >= 120
    prefix = f"master/frameworks/my%20framework/{fw.framework_id}"
    assert m[f"{prefix}/subscribed"] == 1.0
    assert m[f"{prefix}/tasks/active/task_staging"] == 1.0
    assert m[f"{prefix}/roles/analytics/suppressed"] == 0.0
    assert m["allocator/mesos/roles/analytics/shares/dominant"] > 0


async def test_prometheus_and_snapshot_over_http_on_master_and_agents(tmp_path):
    cluster = LocalCluster(agents=2, port=0, work_dir=tmp_path,
                           resources="cpus:2;mem:1024;disk:1000")
    await cluster.start()
    client = AsyncHTTPClient()
    try:
        await cluster.wait_ready()
        master = json.loads((await client.fetch(cluster.url + "/metrics/snapshot")).body)
        assert [k for k in MASTER_KEYS if k not in master] == []
        text = (await client.fetch(cluster.url + "/metrics")).body.decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["mesonb_master_slaves_active"].samples[0].value == 2.0
        assert families["mesonb_master_cpus_total"].samples[0].value == 4.0
        for agent in cluster.agents:
            url = f"http://127.0.0.1:{agent.port}"
            snap = json.loads((await client.fetch(url + "/metrics/snapshot")).body)
            assert [k for k in AGENT_KEYS if k not in snap] == []
            assert snap["slave/registered"] == 1.0
            text = (await client.fetch(url + "/metrics")).body.decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            assert families["mesonb_slave_cpus_total"].samples[0].value == 2.0
    finally:
        await cluster.stop()


def test_prometheus_names_put_ids_in_labels():
    from mesonb.webui.prometheus import metric_name

    assert metric_name("master/cpus_total") == ("mesonb_master_cpus_total", {})
    assert metric_name("master/frameworks/my%20fw/F-1/tasks/active/task_running") == (
        "mesonb_master_framework_tasks_active_task_running",
        {"framework": "my fw", "framework_id": "F-1"})
    assert metric_name("allocator/mesos/roles/a/b/shares/dominant") == (
        "mesonb_allocator_mesos_role_shares_dominant", {"role": "a/b"})
