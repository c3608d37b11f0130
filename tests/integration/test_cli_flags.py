"""Command lines as a user types them: Ctrl-C on ``mesonb local``, and flags of
``mesonb master`` and ``mesonb agent`` that show in ``/master/state``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from mesonb.testing.processes import ProcessCluster, get_json, wait_for

pytestmark = pytest.mark.slow


def test_ctrl_c_stops_mesonb_local_leaving_nothing(tmp_path: Path) -> None:
    work = tmp_path / "local"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesonb", "local", "--agents", "2", "--port", "0",
         "--work-dir", str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"master http://([\d.]+:\d+) with 2 agents", first)
        assert match, first
        state = get_json(f"http://{match[1]}/master/state")
        assert len(state["slaves"]) == 2
        children = psutil.Process(proc.pid).children(recursive=True)
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
        rest = proc.stdout.read()
        assert "mesonb local cluster stopped" in rest
        assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
        wait_for(lambda: not [c for c in children if c.is_running()
                              and c.status() != psutil.STATUS_ZOMBIE], 10,
                 what="no process left behind")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_cluster_name_and_agent_attributes_from_the_command_line_show_in_state(tmp_path):
    cluster = ProcessCluster(tmp_path, agents=1, master_args=["--cluster", "research lab"],
                             agent_args=["--attributes", "rack:a;zone:1"])
    with cluster:
        state = cluster.state()
        assert state["cluster"] == "research lab"
        (slave,) = state["slaves"]
        assert slave["attributes"] == {"rack": "a", "zone": 1.0}
        agent_state = get_json(f"http://{cluster.agents[0].address}/state")
        assert agent_state["attributes"] == {"rack": "a", "zone": 1.0}
        assert agent_state["flags"]["attributes"] == "rack:a;zone:1"
