"""Helpers shared by the web UI tests: a real framework process and its stopping, where
Chromium is and where screenshots go."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from mesonb.testing.processes import ProcessCluster

CHROMIUM = os.environ.get("MESONB_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MESONB_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent / "artifacts"))


def chromium_path() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


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
