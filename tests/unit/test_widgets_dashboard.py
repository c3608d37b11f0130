"""The dashboard model fed operator events by hand."""

from __future__ import annotations

from mesonb.widgets.dashboard import UI_STATES, DashboardModel


def res(**scalars):
    return [{"name": k, "type": "SCALAR", "scalar": {"value": v}} for k, v in scalars.items()]


def agent(aid, allocated=None, offered=None):
    return {"agent_info": {"id": {"value": aid}, "hostname": f"h-{aid}", "port": 5051},
            "total_resources": res(cpus=2, mem=1024),
            "allocated_resources": res(**(allocated or {})),
            "offered_resources": res(**(offered or {}))}


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
    assert m.stale  # task events: the master's allocation is to be read again
    # allocated is the master's book (GET_AGENTS): tasks and executors alike
    m.set_agents({"agents": [agent("A", {"cpus": 0.1, "mem": 64}),
                             agent("B", {"cpus": 1.1, "mem": 128}, {"cpus": 0.5})]})
    m.used = {"B": {"cpus": 0.25, "mem": 100.0, "disk": float("nan")}}
    bars = {(b["agent_id"], b["resource"]): b for b in m.agent_bars()}
    assert set(bars) == {(a, r) for a in "AB" for r in ("cpus", "mem")}
    assert bars[("B", "cpus")] == {"agent_id": "B", "hostname": "h-B", "agent": "h-B:5051",
                                   "resource": "cpus",
                                   "total": 2.0, "allocated": 1.1, "offered": 0.5,
                                   "used": 0.25}
    assert bars[("A", "cpus")]["allocated"] == 0.1 and bars[("A", "cpus")]["used"] is None
    assert bars[("B", "mem")]["allocated"] == 128.0 and bars[("B", "mem")]["used"] == 100.0
    assert [t["task_id"] for t in m.recent_tasks()] == ["old", "t2", "t1"]
    assert m.heartbeats == 1 and [f["name"] for f in m.active_frameworks()] == ["fw"]
    m.feed({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": "B"}}})
    assert {b["agent_id"] for b in m.agent_bars()} == {"A"}
    m.feed({"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"id": {"value": "F"}}}})
    assert m.active_frameworks() == []


def test_subscribed_takes_allocation_and_heartbeat_interval_from_the_master():
    m = DashboardModel()
    m.feed({"type": "SUBSCRIBED", "subscribed": {"heartbeat_interval_seconds": 2.5,
            "get_state": {"get_agents": {"agents": [agent("A", {"cpus": 0.3})]}}}})
    assert m.heartbeat_interval == 2.5 and not m.stale
    [cpus] = [b for b in m.agent_bars() if b["resource"] == "cpus"]
    assert cpus["allocated"] == 0.3  # e.g. an executor with no task left
    m.feed({"type": "HEARTBEAT"})
    assert not m.stale
    m.feed({"type": "FRAMEWORK_REMOVED", "framework_removed": {
        "framework_info": {"id": {"value": "F"}}}})
    assert m.stale  # its executors go with it


def test_dashboard_text_and_bars_when_stopped_without_a_cluster():
    """The view's drawing on a model alone: one row per agent, an allocated and a used
    bar per resource, numbers with units."""
    from mesonb.widgets.dashboard import Dashboard

    dash = Dashboard.__new__(Dashboard)
    dash.model = DashboardModel()
    dash.model.set_agents({"agents": [agent("A", {"cpus": 0.5, "mem": 256})]})
    dash.model.used = {"A": {"cpus": 0.2, "mem": 300.0}}
    import threading

    dash._lock = threading.Lock()
    dash._widget, dash._rows = None, {}
    dash.stopped, dash.error, dash.connected, dash.lost = True, None, False, None
    dash.widget()
    [row] = dash._bars.children  # one row for the agent
    label, cpu_pair, cpu_numbers, _mem_pair, mem_numbers = row.children
    assert label.value == "h-A:5051"
    allocated, used = cpu_pair.children
    assert (allocated.value, allocated.max, used.value, used.max) == (0.5, 2.0, 0.2, 2.0)
    assert (allocated.description, used.description) == ("allocated", "used")
    assert cpu_numbers.value == "cpus 0.5 / 2 cpus allocated, 0.2 used"
    assert mem_numbers.value == "mem 256 MiB / 1 GiB allocated, 300 MiB used"
    text = dash.text()
    assert text.splitlines()[0] == "stopped"
    assert "h-A:5051 cpus: 0.5 / 2 cpus allocated, 0.2 used" in text
    assert "Running <b>0</b>" in dash._counts.value and "queue: empty" in dash._queue.value


def test_the_dashboard_fits_a_screen_and_draws_its_panels():
    from mesonb.widgets import panels

    assert panels.dashboard_height(4) <= 600
    agents = [f"h{i}:5051" for i in range(4)]
    spans = [{"agent": "h0:5051", "name": "square", "start": 95.0, "end": 99.0,
              "state": "TASK_FINISHED"},
             {"agent": "h1:5051", "name": "boom", "start": 97.0, "end": 98.0,
              "state": "TASK_FAILED"},
             {"agent": "h2:5051", "name": "square", "start": 99.0, "end": None,
              "state": "TASK_RUNNING"}]
    svg = panels.stream_svg(agents, spans, now=100.0)
    assert svg.count("<rect") == 3 and "stroke='#c33'" in svg  # the failure marked
    assert svg.count(panels.colour_of("square")) == 2  # one colour per function
    assert f"height='{4 * panels.ROW['stream'] + panels.HEIGHTS['stream_axis']}'" in svg
    memory = panels.memory_svg([("h0:5051", 1024.0, [(0.0, 100.0), (50.0, 512.0)])], 60.0)
    assert "<polyline" in memory and "512 MiB" in memory
    queue = panels.queue_html([{"name": "square", "status": "pending: needs cpus 1"}])
    assert "1</b> call waiting" in queue and "pending: needs cpus 1" in queue
