"""The containerizer's flags on a real `mesonb agent` process: the backend chosen at
start-up shows in /state, and an impossible --isolation stops the start with a reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mesonb.testing.processes import ProcessCluster, get_json

pytestmark = pytest.mark.slow


def test_forced_posix_monitor_and_flags_in_state(tmp_path: Path) -> None:
    args = ["--isolation", "posix/cpu,posix/mem,network/ports", "--cgroups-enable-cfs=false",
            "--gc-delay", "2days", "--fetcher-cache-size", "1GB"]
    cluster = ProcessCluster(tmp_path, agents=1, agent_args=args).start()
    try:
        flags = get_json(cluster.agents[0].url + "/state")["flags"]
        assert flags["isolation"] == "posix/cpu,posix/mem,network/ports"
        assert flags["isolation_backend"] == "posix"
        assert flags["cgroups_enable_cfs"] == "false"
        assert flags["gc_delay"] == "172800secs"
        assert flags["fetcher_cache_size"] == f"{2**30}B"
        assert "isolation: posix/cpu,posix/mem,network/ports (posix)" in \
            cluster.agents[0].output()
    finally:
        cluster.stop()


def test_an_unknown_isolator_stops_the_start(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mesonb", "agent", "--master", "127.0.0.1:1", "--port", "0",
         "--work-dir", str(tmp_path), "--isolation", "cgroups/cpu,docker/runtime"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown isolator 'docker/runtime'" in proc.stderr
