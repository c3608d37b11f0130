"""Helpers shared by the web UI tests: a real framework process and its stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mesonb.testing.processes import ProcessCluster


def execute(cluster: ProcessCluster, command: str, name: str) -> subprocess.Popen[bytes]:
    """``mesonb execute`` as a real framework process, in its own session."""
    return subprocess.Popen(
        [sys.executable, "-m", "mesonb", "execute", "--master", cluster.address,
         "--command", command, "--name", name, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
