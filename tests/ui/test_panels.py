"""The panels beyond Mesos, each as its own page (/panel/<name>), in headless Chromium."""

from __future__ import annotations

import pytest
from ui_support import execute, stop

pytestmark = pytest.mark.slow


def test_panels_show_failures_stream_usage_pending_and_shares(cluster, ui_page):
    failing = execute(cluster, "echo boom-on-stderr >&2; exit 3", "breaks")
    running = execute(cluster, "sleep 30", "sleeper")
    try:
        assert failing.wait(60) != 0
        page = ui_page.page

        page.goto(cluster.url + "/panel/failures")
        page.wait_for_selector(".failure:has-text('breaks')", timeout=15_000)
        page.wait_for_selector(".failure .stderr:has-text('boom-on-stderr')", timeout=15_000)
        card = page.inner_text(".failure")
        assert "Failed" in card
        # The status's message, when it has one (a command task's TASK_FAILED sometimes
        # reaches the master without "Command exited with status 3": not the UI's doing).
        message = page.evaluate("[...mesonb.S.tables.tasks.values()].find("
                                "r => r[0].startsWith('breaks'))[mesonb.S.cols.message]")
        assert message is None or message in card
        ui_page.screenshot("panel-failures")

        page.goto(cluster.url + "/panel/tasks")
        page.wait_for_selector("rect.task-bar.failed", timeout=10_000)
        page.wait_for_selector("rect.task-bar:not(.failed)", timeout=10_000)
        ui_page.screenshot("panel-tasks")

        page.goto(cluster.url + "/panel/usage")
        page.wait_for_function(
            "document.querySelectorAll('#usage-table tbody tr').length === 2 && "
            "!document.querySelector('#usage-table tbody').textContent.includes('…')",
            timeout=15_000)
        ui_page.screenshot("panel-usage")

        page.goto(cluster.url + "/panel/pending")
        page.wait_for_selector("#pending-table td a:has-text('sleeper')", timeout=10_000)
        ui_page.screenshot("panel-pending")

        page.goto(cluster.url + "/panel/shares")
        page.wait_for_selector("#shares-frameworks a:has-text('sleeper')", timeout=10_000)
        ui_page.screenshot("panel-shares")
        assert page.evaluate("document.body.classList.contains('panel-only')")
    finally:
        stop(running)
        stop(failing)
    assert ui_page.errors == []
    assert ui_page.failed == []
    assert ui_page.outside_loopback() == []
    missing = page.goto(cluster.url + "/panel/nosuch")
    assert missing is not None and missing.status == 404
