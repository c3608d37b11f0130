"""The web UI in a real headless Chromium against real master and agent processes."""

from __future__ import annotations

import json

import pytest
from ui_support import execute, stop

from mesonb.testing.processes import Daemon, ProcessCluster, wait_for

pytestmark = pytest.mark.slow
TASK_COMMAND = "for i in $(seq 1 60); do echo tick$i; echo tock$i >&2; sleep 0.2; done"


def test_home_page_task_lifecycle_sandbox_tail_and_unreachable_agent(cluster, ui_page):
    page = ui_page.page
    page.goto(cluster.url + "/")
    page.wait_for_function("document.querySelector('#agents-activated')?.textContent === '2'",
                           timeout=10_000)
    page.evaluate("window.__loaded_once = true")  # gone if the page ever reloads
    assert page.inner_text("#cluster") == "mesonb"
    ui_page.screenshot("home")

    framework = execute(cluster, TASK_COMMAND, "uitask")
    try:
        # The task appears and runs, without a reload.
        page.wait_for_selector("#active-tasks td:has-text('uitask')", timeout=20_000)
        page.wait_for_selector("#active-tasks .state:has-text('Running')", timeout=20_000)
        assert page.inner_text("#tasks-running") == "1"
        ui_page.screenshot("task-running")

        # Its sandbox opens, and stdout tails while the task writes to it.
        page.click("#active-tasks td a:has-text('uitask')")
        page.click("text=Browse the sandbox")
        page.wait_for_selector("#files a:has-text('stdout')", timeout=10_000)
        ui_page.screenshot("sandbox")
        page.click("#files a:has-text('stdout')")
        page.wait_for_function("document.querySelector('#file')?.textContent.includes('tick')",
                               timeout=10_000)
        first = page.inner_text("#file").count("tick")
        page.wait_for_function(
            f"(document.querySelector('#file')?.textContent.match(/tick/g) || []).length > {first}",
            timeout=10_000)
        ui_page.screenshot("stdout-tail")
        # And stderr, from the sandbox's listing.
        page.go_back()
        page.click("#files a:has-text('stderr')")
        page.wait_for_function("document.querySelector('#file')?.textContent.includes('tock')",
                               timeout=10_000)
        first = page.inner_text("#file").count("tock")
        page.wait_for_function(
            f"(document.querySelector('#file')?.textContent.match(/tock/g) || []).length > {first}",
            timeout=10_000)
        assert "tick" not in page.inner_text("#file")
        ui_page.screenshot("stderr-tail")

        # Back home: the task moves to Finished when it ends, still without a reload.
        page.goto(cluster.url + "/#/")
        page.wait_for_selector("#completed-tasks .state:has-text('Finished')", timeout=30_000)
        assert framework.wait(20) == 0
        assert page.inner_text("#tasks-finished") == "1"
        ui_page.screenshot("task-finished")
        assert page.evaluate("window.__loaded_once") is True
    finally:
        stop(framework)

    # An agent that dies shows as unreachable.
    cluster.agents[1].kill()
    page.wait_for_function("document.querySelector('#agents-unreachable')?.textContent === '1'",
                           timeout=15_000)
    assert page.inner_text("#agents-activated") == "1"
    page.click("#nav a[data-nav=agents]")
    page.wait_for_selector("#agents-table .state:has-text('Unreachable')", timeout=5_000)
    ui_page.screenshot("agent-unreachable")

    assert ui_page.outside_loopback() == []
    assert ui_page.errors == []
    assert ui_page.failed == []


def test_pages_link_to_each_other_and_tables_sort_filter_paginate(cluster, ui_page):
    page = ui_page.page
    framework = execute(cluster, "true", "many")
    try:
        subprocess_done = framework.wait(60)
    finally:
        stop(framework)
    assert subprocess_done == 0
    page.goto(cluster.url + "/#/agents")
    page.wait_for_function("document.querySelectorAll('#agents-table tbody tr').length === 2",
                           timeout=10_000)
    # Sorted by ID; a click on the header sorts the other way.
    asc = page.locator("#agents-table tbody tr td:nth-child(1)").all_inner_texts()
    page.click("#agents-table th:has-text('ID')")
    page.wait_for_selector("#agents-table th.sorted-desc")
    desc = page.locator("#agents-table tbody tr td:nth-child(1)").all_inner_texts()
    assert asc == sorted(asc) and desc == list(reversed(asc)) and len(asc) == 2
    # Filter.
    page.fill("#agents-table input.filter", "no-such-agent")
    page.wait_for_selector("#agents-table td:has-text('No agents')")
    page.fill("#agents-table input.filter", "")
    # Agent page -> its framework -> the task -> back to the agent.
    page.click("#agents-table tbody tr:first-child td:first-child a")
    page.wait_for_selector("#agent-info")
    page.goto(cluster.url + "/#/frameworks")
    page.wait_for_selector("text=Completed Frameworks")
    page.click("a:has-text('many')")
    page.wait_for_selector("#fw-info")
    page.wait_for_selector(".state:has-text('Finished')", timeout=10_000)
    page.click("td a:has-text('many')")
    page.wait_for_selector("#task-info")
    assert "Finished" in page.inner_text("#task-info")
    page.click("#task-info dd a[href^='#/agents/']")
    page.wait_for_selector("#agent-info")
    for where in ("#/roles", "#/offers", "#/maintenance"):
        page.goto(cluster.url + "/" + where)
        page.wait_for_selector("h1")
        assert "Not found" not in page.inner_text("h1")
    ui_page.screenshot("maintenance")
    assert ui_page.errors == []
    assert ui_page.failed == []
    assert ui_page.outside_loopback() == []


def test_history_serves_the_pages_of_a_stopped_cluster(tmp_path, ui_page):
    history = tmp_path / "history"
    # Rotated small, so that the pages come from a history read across several files.
    with ProcessCluster(tmp_path / "run", agents=2, master_args=[
            "--history-dir", str(history), "--history-max-size", "1KB"]) as cluster:
        framework = execute(cluster, "echo recorded", "kept")
        try:
            assert framework.wait(60) == 0
        finally:
            stop(framework)
        # Agents are sampled every 0.5 s: both are in the record before the master dies
        # first (kill -9), as a crashed cluster's would, so the history ends with both
        # registered. (Stopped in order, the agents would leave first.)
        agent_ids = {a["id"] for a in cluster.state()["slaves"]}
        wait_for(lambda: agent_ids <= recorded_agents(history), 10,
                 what="both agents in the history")
        cluster.master.kill()
    assert len(list(history.glob("history-*.jsonl"))) >= 2

    ui = Daemon(["ui", "--history", str(history), "--port", "0"], tmp_path / "ui.log")
    try:
        ui.wait_listening()
        page = ui_page.page
        page.goto(ui.url + "/")
        page.wait_for_selector("#conn:has-text('history')", timeout=10_000)
        page.wait_for_selector("#completed-tasks td:has-text('kept')", timeout=10_000)
        assert page.inner_text("#tasks-finished") == "1"
        ui_page.screenshot("history")
        # The agents as they were last seen.
        page.click("#nav a[data-nav=agents]")
        page.wait_for_function(
            "document.querySelectorAll('#agents-table tbody tr').length === 2", timeout=5_000)
        assert ui_page.outside_loopback() == []
    finally:
        ui.stop()


def recorded_agents(history) -> set[str]:
    """The ids of the agents in a history's agents table records so far."""
    ids = set()
    for path in history.glob("history-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            if record.get("type") == "ROWS" and record.get("table") == "agents":
                ids.update(row["id"] for row in record.get("rows", []))
    return ids
