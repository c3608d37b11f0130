"""The web UI's maintenance page in headless Chromium, against a real master and agent."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from ui_support import execute, stop

from mesonb.testing.processes import ProcessCluster, wait_for

pytestmark = pytest.mark.slow


def test_the_maintenance_page_shows_the_schedule_and_each_machines_mode(tmp_path: Path, ui_page):
    with ProcessCluster(tmp_path, agents=1, agent_args=["--hostname", "box1"],
                        master_args=["--allocation-interval", "0.2"]) as cluster:
        framework = execute(cluster, "sleep 60", "held")
        try:
            wait_for(lambda: any(f["tasks"] for f in cluster.state()["frameworks"]), 30,
                     what="the framework's task")
            page = ui_page.page
            page.goto(cluster.url + "/#/maintenance")
            page.wait_for_selector("text=No maintenance is scheduled.", timeout=10_000)
            schedule = {"windows": [
                {"machine_ids": [{"hostname": "box1"}],
                 "unavailability": {"start": {"nanoseconds": 1_900_000_000 * 10**9},
                                    "duration": {"nanoseconds": 7200 * 10**9}}},
                {"machine_ids": [{"hostname": "box9", "ip": "10.0.0.9"}],
                 "unavailability": {"start": {"nanoseconds": 10**18}}}]}
            r = requests.post(cluster.url + "/master/maintenance/schedule", json=schedule,
                              timeout=10)
            assert r.status_code == 200, r.text
            r = requests.post(cluster.url + "/master/machine/down",
                              json=[{"hostname": "box9", "ip": "10.0.0.9"}], timeout=10)
            assert r.status_code == 200, r.text
            # Without a reload: the page reads the master's maintenance status again.
            page.wait_for_selector("#maint-windows td:has-text('box9 / 10.0.0.9')",
                                   timeout=10_000)
            assert "2 h" in page.inner_text("#maint-windows")
            page.wait_for_selector("#maint-status .answer:has-text('UNKNOWN')", timeout=10_000)
            rows = {r.split("\t")[0]: r for r in page.inner_text("#maint-status tbody")
                    .splitlines() if "\t" in r}
            assert "Draining" in rows["box1"] and "held" in rows["box1"]
            assert "Down" in rows["box9 / 10.0.0.9"]
            ui_page.screenshot("maintenance-schedule")
            assert ui_page.errors == [] and ui_page.failed == []
        finally:
            stop(framework)
