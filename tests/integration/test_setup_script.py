"""scripts/setup.sh: without ZooKeeper the high-availability tests are all skipped, so
setting up for the tests fails loudly when ZooKeeper cannot be installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup.sh"
TOOLS = ("dirname", "id", "mktemp", "tail", "rm", "env", "cat")

pytestmark = pytest.mark.skipif(not (ROOT / ".venv/bin/python").exists(),
                                reason="needs the development venv (scripts/setup.sh)")


def run(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPT), "--zookeeper"],
        env={"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture
def no_java(tmp_path: Path) -> Path:
    """A PATH with the shell tools the script uses, no java, and an apt-get that fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\necho 'E: Unable to locate package zookeeper' >&2\nexit 100\n")
    apt.chmod(0o755)
    return bin_dir


def test_fails_loudly_when_zookeeper_cannot_be_installed(no_java):
    result = run(no_java)
    assert result.returncode == 1
    assert "ZooKeeper could not be installed" in result.stderr
    assert "MESONB_SKIP_ZOOKEEPER=1" in result.stderr
    assert "Unable to locate package zookeeper" in result.stderr  # apt-get's own words


def test_goes_on_without_zookeeper_when_told_to(no_java):
    result = run(no_java, MESONB_SKIP_ZOOKEEPER="1")
    assert result.returncode == 0
    assert "tests will be skipped" in result.stderr


def test_is_quiet_when_zookeeper_is_there(tmp_path):
    from mesonb.testing.zookeeper import zookeeper_jar

    if zookeeper_jar() is None:
        pytest.skip("ZooKeeper is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*TOOLS, "java"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\necho called >&2\nexit 1\n")
    apt.chmod(0o755)
    result = run(bin_dir)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
