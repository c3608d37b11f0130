"""Every page of the web UI in headless Chromium, over a recorded history that holds a bit
of everything: two pages of completed tasks, failures with reasons, a framework and its task
recovered from a re-registering agent, an agent with attributes, an outstanding offer, a
role. Served by a real ``mesonb ui
--history`` process; each page is screenshotted, and no page shows a raw value (an enum
name, ``undefined``, ``NaN``, ``[object Object]``)."""

from __future__ import annotations

import re

import pytest

from mesonb.master.http.ui_feed import MasterFeed
from mesonb.protocol.agent import AgentTask, Register
from mesonb.protocol.mesos import FrameworkInfo, TaskInfo
from mesonb.protocol.states import Reason, TaskState
from mesonb.testing.harness import AgentEnd, MasterHarness, command_task
from mesonb.testing.processes import Daemon
from mesonb.webui.history import HistoryRecorder
from mesonb.webui.hub import Hub

pytestmark = pytest.mark.slow
RAW = re.compile(r"\bREASON_[A-Z_]+|\bTASK_[A-Z_]+|undefined|NaN|\[object Object\]|\bnull\b"
                 r"|\bNone\b")
PAGE_LIMIT = 500 * 1024


def register(h: MasterHarness, hostname: str, tasks: list[AgentTask] | None = None,
             agent_id: str | None = None,
             frameworks: list[FrameworkInfo] | None = None) -> AgentEnd:
    """An agent with attributes (and, re-registering, tasks the master did not launch)."""
    end = AgentEnd(h)
    register = Register.from_json({
        "agent_info": {"hostname": hostname, "port": 5051, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 8192}},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 20000}}],
            "attributes": [{"name": "rack", "type": "TEXT", "text": {"value": "r7"}},
                           {"name": "zone", "type": "TEXT", "text": {"value": "eu-1"}}]},
        "version": "1.11.0"})
    register.tasks, register.agent_id, register.frameworks = tasks, agent_id, frameworks
    agent = h.master.agents.register(register, end.send, end.close)
    assert agent is not None
    end.agent_id = agent.id
    return end


def record_history(directory) -> dict[str, str]:
    """A master that saw a bit of everything, recorded to ``directory``."""
    h = MasterHarness(max_completed_tasks_per_framework=100)
    hub = Hub()
    feed = MasterFeed(h.master, hub)
    recorder = HistoryRecorder(directory, h.master.id)
    recorder.attach(hub, feed)
    agent = register(h, "rack7-box1")
    fw = h.subscribe("catalogue", roles=["analytics"], capabilities=("MULTI_ROLE",))
    h.settle()
    (offer,) = fw.offers()
    tasks = [command_task(f"job-{i:02d}", agent.agent_id, "cpus:0.1;mem:32")
             for i in range(60)]
    fw.call("ACCEPT", accept={"offer_ids": [offer["id"]], "operations": [
        {"type": "LAUNCH", "launch": {"task_infos": tasks}}]})
    for i in range(60):
        agent.update(fw.framework_id, f"job-{i:02d}", TaskState.TASK_RUNNING)
    for i in range(30):
        h.clock.advance(1.0)  # the tasks end one after the other
        agent.update(fw.framework_id, f"job-{i:02d}", TaskState.TASK_FINISHED)
    for i in range(30, 35):
        h.clock.advance(1.0)
        agent.update(fw.framework_id, f"job-{i:02d}", TaskState.TASK_FAILED,
                     reason=Reason.REASON_CONTAINER_LIMITATION_MEMORY,
                     message="Memory limit exceeded: 40 MB of 32 MB")
    for i in range(35, 38):
        h.clock.advance(1.0)
        agent.update(fw.framework_id, f"job-{i:02d}", TaskState.TASK_KILLED)
    # An agent that comes back with a task of a framework this master has not seen
    # subscribe (after a failover): the framework is recovered from the agent, disconnected.
    stray = TaskInfo.from_json(command_task("stray", "stray-agent-S9", "cpus:1;mem:64"))
    register(h, "rack7-box2", agent_id="stray-agent-S9", tasks=[AgentTask(
        framework_id="earlier-framework", task=stray, state=TaskState.TASK_RUNNING)],
        frameworks=[FrameworkInfo.from_json({"id": {"value": "earlier-framework"},
                                             "name": "earlier", "user": "ann",
                                             "failover_timeout": 3600})])
    holder = h.subscribe("offer-holder")  # takes its offer and sits on it
    h.advance(1.0)
    assert holder.offers(take=False)
    feed.sample()
    recorder.close()
    feed.close()
    return {"agent": agent.agent_id, "framework": fw.framework_id}


def test_every_page_renders_readable_text_within_its_weight(tmp_path, ui_page):
    ids = record_history(tmp_path / "history")
    ui = Daemon(["ui", "--history", str(tmp_path / "history"), "--port", "0"],
                tmp_path / "ui.log")
    page = ui_page.page
    try:
        ui.wait_listening()
        page.goto(ui.url + "/")
        page.wait_for_function(
            "document.querySelector('#tasks-finished')?.textContent === '30'", timeout=10_000)
        counts = {s: page.inner_text(f"#tasks-{s}") for s in
                  ("running", "finished", "failed", "killed", "orphan")}
        # (Orphans, tasks of no framework the master knows, stay empty: since Mesos 1.x a
        # re-registering agent brings its frameworks' infos, as here.)
        assert counts == {"running": "23", "finished": "30", "failed": "5", "killed": "3",
                          "orphan": "0"}
        assert page.inner_text("#agents-activated") == "2"
        assert "Exceeded its memory limit" in page.inner_text("#completed-tasks")
        assert "stray" in page.inner_text("#active-tasks")
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", page.inner_text(
            "#info dt:has-text('Built') + dd"))
        weight = page.evaluate("performance.getEntriesByType('navigation').concat("
                               "performance.getEntriesByType('resource'))"
                               ".reduce((n, e) => n + e.decodedBodySize, 0)")
        assert 0 < weight < PAGE_LIMIT
        check_readable(page, "home")
        ui_page.screenshot("catalogue-home")

        # Completed tasks: 38 over two pages of 25; sorted, filtered.
        completed = page.locator("#completed-tasks")
        assert completed.locator(".page").inner_text() == "1 / 2"
        assert completed.locator("tbody tr").count() == 25
        completed.locator("button.next").click()
        assert completed.locator(".page").inner_text() == "2 / 2"
        assert completed.locator("tbody tr").count() == 13
        completed.locator("input.filter").fill("memory limit")
        assert completed.locator(".count").inner_text() == "5 of 38"
        completed.locator("th:has-text('ID')").click()
        ids_shown = completed.locator("tbody tr td:first-child").all_inner_texts()
        assert ids_shown == [f"job-{i}" for i in range(30, 35)]
        completed.locator("th:has-text('ID')").click()
        assert completed.locator("tbody tr td:first-child").all_inner_texts() == ids_shown[::-1]

        # A failed task: state, reason and message as words; links to its agent.
        completed.locator("td a:has-text('job-30')").click()
        page.wait_for_selector("#task-info")
        info = page.inner_text("#task-info")
        assert "Failed" in info and "Exceeded its memory limit" in info
        assert "Memory limit exceeded: 40 MB of 32 MB" in info
        check_readable(page, "task")
        ui_page.screenshot("catalogue-task")
        page.click("#task-info dd a[href^='#/agents/']")

        # The agent: its resources, attributes, frameworks and executors (with sandboxes).
        page.wait_for_selector("#agent-info")
        page.wait_for_selector("#agent-attrs dd:has-text('r7')")
        assert "eu-1" in page.inner_text("#agent-attrs")
        page.wait_for_selector("#agent-execs td a:has-text('Sandbox')")
        assert "catalogue" in page.inner_text("#agent-fws")
        check_readable(page, "agent")
        ui_page.screenshot("catalogue-agent")

        for where, selector, text in (
                ("#/frameworks", "table", "earlier"),
                (f"#/frameworks/{ids['framework']}", "h1", "catalogue"),
                ("#/offers", "#offers-table", "offer-holder"),
                ("#/roles", "#roles-table", "analytics"),
                ("#/agents", "#agents-table", "rack7-box2")):
            page.goto(ui.url + "/" + where)
            page.wait_for_selector(f"{selector.split(',')[-1].strip()} >> text={text}",
                                   timeout=10_000)
            check_readable(page, where)
            ui_page.screenshot("catalogue-" + (where.strip("#/").replace("/", "-")[:40]))
        assert ui_page.errors == [] and ui_page.failed == []
        assert ui_page.outside_loopback() == []
    finally:
        ui.stop()


def check_readable(page, where: str) -> None:
    """No raw enum names or JavaScript non-values in what the page shows."""
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    raw = RAW.findall(text)
    assert raw == [], f"{where}: raw values on screen: {raw[:5]}"
