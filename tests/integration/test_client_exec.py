"""``fut.exec(command)``: a command inside a running call's container, end to end through
the agent's nested container sessions (what ``mesonb task exec`` uses)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from client_support import wait_for

from mesonb import Cluster

pytestmark = pytest.mark.slow


def stay(marker: str) -> str:
    """Note where the call runs, then run until the marker file goes."""
    Path(marker).write_text(os.getcwd())
    Path("call-was-here.txt").write_text("hello from the call\n")
    while os.path.exists(marker):
        time.sleep(0.02)
    return "done"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local()
    try:
        yield c
    finally:
        c.close()


def test_exec_runs_a_command_in_the_running_calls_sandbox(cluster, tmp_path):
    marker = tmp_path / "running"
    fut = cluster.submit(stay, str(marker))
    try:
        wait_for(lambda: marker.exists() and marker.read_text(), "the call to start")
        sandbox = marker.read_text()
        listed = fut.exec("ls", timeout=30)
        assert listed.returncode == 0, listed
        names = listed.stdout.split()
        assert "call-was-here.txt" in names and "logs" in names  # the executor's sandbox
        assert fut.exec("pwd", timeout=30).stdout.strip() == sandbox
        assert fut.exec(["cat", "call-was-here.txt"], timeout=30).stdout == \
            "hello from the call\n"
        failed = fut.exec("echo out; echo err >&2; exit 3", timeout=30)
        assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
        with pytest.raises(TimeoutError, match="killed"):
            fut.exec("sleep 30", timeout=0.5)
        assert not fut.done()  # the call itself runs on
    finally:
        marker.unlink(missing_ok=True)
    assert fut.result(30) == "done"
    with pytest.raises(RuntimeError, match="finished"):
        fut.exec("ls")
