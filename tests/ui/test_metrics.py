"""Metrics: Mesos's documented keys in /metrics/snapshot, and Prometheus /metrics, on the
master and the agents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient
from ui_support import execute, stop

from mesonb.local import LocalCluster
from mesonb.master.http.metrics import snapshot
from mesonb.master.quota import QuotaConfig
from mesonb.master.registry import DirectoryStore, Registry
from mesonb.protocol.states import TaskState
from mesonb.testing.harness import MasterHarness, command_task
from mesonb.testing.processes import ProcessCluster, get_json, wait_for

DATA = Path(__file__).resolve().parent / "data"


def documented(name: str) -> tuple[list[str], list[str]]:
    """The fixed keys and the <placeholder> patterns listed in ``data/<name>`` (taken from
    Mesos's docs/monitoring.md, see the file's header)."""
    lines = [line.strip() for line in (DATA / name).read_text().splitlines()]
    keys = [line for line in lines if line and not line.startswith("#")]
    return [k for k in keys if "<" not in k], [k for k in keys if "<" in k]


def pattern(doc: str) -> re.Pattern[str]:
    """A documented name with placeholders as a regex: each placeholder one path segment."""
    parts = re.split(r"(<[^>]+>)", doc)
    return re.compile("^" + "".join("[^/]+" if p.startswith("<") else re.escape(p)
                                    for p in parts) + "$")

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


def test_the_lists_taken_from_mesos_docs_hold_every_documented_key():
    master, master_patterns = documented("mesos_master_metrics.txt")
    agent, agent_patterns = documented("mesos_agent_metrics.txt")
    assert (len(master), len(master_patterns), len(agent), len(agent_patterns)) == (143, 21, 85, 9)
    assert len(set(master)) == 143 and len(set(agent)) == 85


def launched(h: MasterHarness, name: str = "my framework"):
    """A framework with role ``analytics`` that accepted one offer with one task."""
    agent = h.add_agent("cpus:4;mem:1024")
    fw = h.subscribe(name, roles=["analytics"], capabilities=("MULTI_ROLE",))
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task("t1", agent.agent_id, "cpus:1;mem:64")]}}]})
    return agent, fw


def test_every_documented_master_key_and_pattern_is_in_the_snapshot():
    h = MasterHarness()
    launched(h)
    h.master.quotas.apply([QuotaConfig("ops", guarantees={"cpus": 1.0},
                                       limits={"cpus": 2.0})])
    h.advance(1.0)
    m = snapshot(h.master)
    keys, patterns = documented("mesos_master_metrics.txt")
    assert [k for k in keys if k not in m] == []
    for doc in patterns:
        assert any(pattern(doc).match(k) for k in m), doc
    assert m["allocator/mesos/quota/roles/ops/resources/cpus/guarantee"] == 1.0
    assert m["allocator/mesos/quota/roles/ops/resources/cpus/offered_or_allocated"] == 0.0
    assert all(isinstance(v, float) for v in m.values())


def test_per_framework_counters_move_with_calls_events_offers_and_operations():
    h = MasterHarness()
    before = snapshot(h.master)
    agent, fw = launched(h)
    prefix = f"master/frameworks/my%20framework/{fw.framework_id}"
    m = snapshot(h.master)
    assert m[f"{prefix}/calls/subscribe"] == 1 and m[f"{prefix}/calls/accept"] == 1
    assert m[f"{prefix}/calls"] == 2
    assert m[f"{prefix}/events/subscribed"] == 1 and m[f"{prefix}/events/heartbeat"] == 1
    assert m[f"{prefix}/events/offers"] == 1 and m[f"{prefix}/offers/sent"] == 1
    assert m[f"{prefix}/offers/accepted"] == 1 and m[f"{prefix}/offers/declined"] == 0
    assert m[f"{prefix}/operations/launch"] == 1 and m[f"{prefix}/operations"] == 1
    assert m[f"{prefix}/tasks/active/task_staging"] == 1
    assert m["master/messages_launch_tasks"] == before["master/messages_launch_tasks"] + 1
    assert m["master/messages_register_framework"] == 1

    agent.update(fw.framework_id, "t1", TaskState.TASK_RUNNING)
    agent.update(fw.framework_id, "t1", TaskState.TASK_FINISHED)
    h.settle()
    (offer,) = fw.offers()  # the freed cpus, offered again
    fw.call("DECLINE", decline={"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}})
    h.settle()
    (again,) = fw.offers()
    h.master.rescind_offer(h.master.book.offers[again["id"]["value"]])
    h.advance(16.0)  # a heartbeat
    m = snapshot(h.master)
    assert m[f"{prefix}/events/update"] == 2
    assert m[f"{prefix}/tasks/terminal/task_finished"] == 1
    assert m[f"{prefix}/tasks/active/task_staging"] == 0
    # offered: at first, after the task ended, after the decline, after the rescind
    assert m[f"{prefix}/offers/sent"] == 4 and m[f"{prefix}/offers/declined"] == 1
    assert m[f"{prefix}/offers/rescinded"] == 1 and m[f"{prefix}/events/rescind"] == 1
    assert m[f"{prefix}/calls/decline"] == 1 and m[f"{prefix}/calls"] == 3
    assert m[f"{prefix}/events/heartbeat"] >= 2
    assert m[f"{prefix}/events"] == sum(
        v for k, v in m.items() if k.startswith(f"{prefix}/events/"))
    assert m["allocator/mesos/allocation_run_latency_ms/count"] >= 2


def test_terminal_task_counters_count_every_task_not_only_those_kept():
    h = MasterHarness(max_completed_tasks_per_framework=2)
    agent = h.add_agent("cpus:8;mem:1024")
    fw = h.subscribe("many")
    h.settle()
    (offer,) = fw.offers()
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": [
            command_task(f"t{i}", agent.agent_id, "cpus:0.1;mem:8") for i in range(5)]
            + [command_task("bad", agent.agent_id, "cpus:100;mem:8")]}}]})
    for i in range(5):
        agent.update(fw.framework_id, f"t{i}", TaskState.TASK_RUNNING)
        agent.update(fw.framework_id, f"t{i}",
                     TaskState.TASK_FAILED if i == 4 else TaskState.TASK_FINISHED)
    agent.update(fw.framework_id, "t0", TaskState.TASK_FINISHED)  # a repeat: counted once
    prefix = f"master/frameworks/many/{fw.framework_id}"
    m = snapshot(h.master)
    assert len(h.master.book.frameworks[fw.framework_id].completed_tasks) == 2
    assert m[f"{prefix}/tasks/terminal/task_finished"] == 4
    assert m[f"{prefix}/tasks/terminal/task_failed"] == 1
    assert m[f"{prefix}/tasks/terminal/task_error"] == 1  # more than the offer holds
    assert m[f"{prefix}/tasks/active/task_running"] == 0


def test_registrar_timers_move_with_each_write_and_the_recovery(tmp_path):
    h = MasterHarness()
    assert snapshot(h.master)["registrar/state_store_ms/count"] == 0
    registry = Registry(DirectoryStore(tmp_path))
    h.master.registry = registry
    try:
        h.subscribe("stored")  # its FrameworkInfo is written to the registry
        registry.flush(10)
        m = snapshot(h.master)
        assert m["registrar/state_store_ms/count"] == 1
        assert m["registrar/state_store_ms"] > 0
        assert m["registrar/state_store_ms/max"] == m["registrar/state_store_ms"]
        h.subscribe("stored too")
        registry.flush(10)
        assert snapshot(h.master)["registrar/state_store_ms/count"] == 2
        assert registry.recover().result(10).frameworks  # a new leader's read
        assert snapshot(h.master)["registrar/state_fetch_ms"] > 0
    finally:
        registry.close()


def test_prometheus_exposes_every_snapshot_key():
    from mesonb.webui.prometheus import exposition

    h = MasterHarness()
    launched(h, name="a/b c")
    m = snapshot(h.master)
    body, _ = exposition(m)
    samples = [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]
    assert len(samples) == len(m)
    by_key = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    fw = next(f for f in h.master.book.frameworks.values())
    assert by_key[("mesonb_master_framework_calls_accept",
                   (("framework", "a/b c"), ("framework_id", fw.id)))] == 1.0
    assert by_key[("mesonb_registrar_state_store_ms_p99", ())] == 0.0


@pytest.mark.slow
def test_real_daemons_serve_every_documented_key_and_counters_move(tmp_path):
    with ProcessCluster(tmp_path, agents=1, master_args=["--allocation-interval", "0.2"]) as c:
        agent_url = c.agents[0].url
        master0, agent0 = get_json(c.url + "/metrics/snapshot"), get_json(
            agent_url + "/metrics/snapshot")
        keys, _ = documented("mesos_master_metrics.txt")
        assert [k for k in keys if k not in master0] == []
        keys, _ = documented("mesos_agent_metrics.txt")
        assert [k for k in keys if k not in agent0] == []
        assert master0["registrar/state_store_ms/count"] >= 1  # the agent's admission
        assert agent0["slave/tasks_running"] == 0
        for url, snap in ((c.url, master0), (agent_url, agent0)):  # Prometheus: every key
            text = requests.get(url + "/metrics", timeout=10).text
            samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
            assert len(samples) == len(snap), url

        proc = execute(c, "sleep 60", "metrics probe")
        try:
            def running() -> tuple[dict, dict] | None:  # as the agent and the master see it
                agent, master = (get_json(u + "/metrics/snapshot") for u in (agent_url, c.url))
                both = agent["slave/tasks_running"] == master["master/tasks_running"] == 1
                return (agent, master) if both else None

            agent1, master1 = wait_for(running, 30, what="the task to run")
        finally:
            stop(proc)
    assert agent1["slave/executors_running"] == 1
    assert master1["registrar/state_store_ms/count"] > master0["registrar/state_store_ms/count"]
    (prefix,) = {k.removesuffix("/calls") for k in master1  # mesonb execute's framework
                 if k.startswith("master/frameworks/") and k.endswith("/calls")}
    assert master1[f"{prefix}/calls/subscribe"] == 1
    assert master1[f"{prefix}/calls/accept"] >= 1
    assert master1[f"{prefix}/operations/launch"] == 1
    assert master1[f"{prefix}/events/update"] >= 1
    assert master1[f"{prefix}/tasks/active/task_running"] == 1
