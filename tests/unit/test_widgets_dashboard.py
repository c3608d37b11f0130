"""The dashboard model fed operator events by hand."""

from __future__ import annotations

from mesonb.widgets.dashboard import UI_STATES, DashboardModel


def res(**scalars):
    return [{"name": k, "type": "SCALAR", "scalar": {"value": v}} for k, v in scalars.items()]


def agent(aid):
    return {"agent_info": {"id": {"value": aid}, "hostname": f"h-{aid}", "port": 5051},
            "total_resources": res(cpus=2, mem=1024), "allocated_resources": [],
            "offered_resources": []}


def task(tid, aid, state, cpus):
    return {"task_id": {"value": tid}, "name": tid, "framework_id": {"value": "F"},
            "agent_id": {"value": aid}, "state": state, "resources": res(cpus=cpus, mem=64),
            "statuses": []}


def updated(tid, aid, state):
    return {"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": "F"}, "state": state,
        "status": {"task_id": {"value": tid}, "agent_id": {"value": aid}, "state": state,
                   "timestamp": 1.0}}}


def test_events_drive_counts_bars_and_recent_tasks():
    m = DashboardModel()
    m.feed({"type": "SUBSCRIBED", "subscribed": {"get_state": {
        "get_agents": {"agents": [agent("A")]},
        "get_tasks": {"tasks": [task("old", "A", "TASK_RUNNING", 0.5)]},
        "get_frameworks": {"frameworks": [{"framework_info": {
            "id": {"value": "F"}, "name": "fw"}, "active": True}]}}}})
    m.feed({"type": "AGENT_ADDED", "agent_added": {"agent": agent("B")}})
    m.feed({"type": "TASK_ADDED", "task_added": {"task": task("t1", "B", "TASK_STAGING", 1)}})
    m.feed(updated("t1", "B", "TASK_RUNNING"))
    m.feed({"type": "TASK_ADDED", "task_added": {"task": task("t2", "B", "TASK_STAGING", 0.5)}})
    m.feed(updated("t2", "B", "TASK_FAILED"))
    m.feed(updated("old", "A", "TASK_FINISHED"))
    m.feed({"type": "HEARTBEAT"})
    counts = m.state_counts()
    assert list(counts) == list(UI_STATES)
    assert counts["TASK_RUNNING"] == 1 and counts["TASK_FAILED"] == 1
    assert counts["TASK_FINISHED"] == 1 and counts["TASK_STAGING"] == 0
    bars = {(b["agent_id"], b["resource"]): b for b in m.agent_bars()}
    assert bars[("B", "cpus")]["allocated"] == 1.0 and bars[("B", "cpus")]["total"] == 2.0
    assert bars[("A", "cpus")]["allocated"] == 0.0
    assert bars[("B", "mem")]["allocated"] == 64.0
    assert [t["task_id"] for t in m.recent_tasks()] == ["old", "t2", "t1"]
    assert m.heartbeats == 1 and [f["name"] for f in m.active_frameworks()] == ["fw"]
    m.feed({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "B"}}})
    assert {b["agent_id"] for b in m.agent_bars()} == {"A"}
    m.feed({"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"id": {"value": "F"}}}})
    assert m.active_frameworks() == []
