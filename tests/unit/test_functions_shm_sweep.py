"""Shared-memory blocks of a client killed with ``kill -9``: its directory is found and
swept by the next client (or functions executor) to start; a live client's never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mesonb.frameworks.functions import shm

HOLDER = textwrap.dedent("""
    import pickle, sys, time
    from mesonb.frameworks.functions import shm
    shm.SHM_ROOT = sys.argv[1]
    directory = shm.client_dir()
    _, block = shm.dump(pickle.PickleBuffer(bytearray(shm.SHM_MIN)), directory)
    print(block.path, flush=True)
    time.sleep(120)
""")


def holder(root: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real client process holding a block in ``root``: the process and the block."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, "the holder made no block"
    return proc, Path(line)


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_killed_clients_blocks_are_swept_and_a_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shm, "SHM_ROOT", str(tmp_path))
    proc, block = holder(tmp_path)
    try:
        directory = block.parent
        assert directory.name.startswith(f"mesonb-{proc.pid}-")
        assert block.stat().st_size == shm.SHM_MIN
        assert shm.sweep(str(tmp_path)) == []  # its owner lives: untouched
        mine = shm.client_dir()  # a live client of this process
        assert mine is not None and block.exists()
    finally:
        kill9(proc)
    assert block.exists()  # kill -9: nobody cleaned up
    assert shm.sweep(str(tmp_path)) == [str(directory)]
    assert not directory.exists()
    assert Path(mine).is_dir()  # still ours
    shm.remove_dir(mine)
    assert not Path(mine).exists() and mine not in shm._held


def test_a_new_client_sweeps_and_only_an_unfinished_directory_is_judged_by_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shm, "SHM_ROOT", str(tmp_path))
    proc, block = holder(tmp_path)
    kill9(proc)
    unlocked_dead = tmp_path / f"mesonb-{proc.pid}-{'a' * 12}.new"  # killed making it
    unlocked_live = tmp_path / f"mesonb-{os.getpid()}-{'b' * 12}.new"  # being made
    other = tmp_path / "someone-elses"
    for d in (unlocked_dead, unlocked_live, other):
        d.mkdir()
    mine = shm.client_dir()  # starting sweeps first
    try:
        assert not block.parent.exists() and not unlocked_dead.exists()
        assert unlocked_live.is_dir() and other.is_dir()
    finally:
        assert mine is not None
        shm.remove_dir(mine)


@pytest.mark.skipif(not os.access(shm.SHM_ROOT, os.W_OK), reason="no writable /dev/shm")
def test_a_functions_executor_sweeps_at_start(tmp_path: Path) -> None:
    """The functions executor's start sweeps the real ``/dev/shm`` (here it starts outside
    an agent, so its driver fails right after: the sweep came first)."""
    proc, block = holder(Path(shm.SHM_ROOT))
    kill9(proc)
    assert block.exists()
    env = {**os.environ, "MESONB_FUNCTIONS_WORKERS": "1", "MESOS_SANDBOX": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith("MESOS_AGENT")}
    subprocess.run([sys.executable, "-m", "mesonb.frameworks.functions.executor"], env=env,
                   capture_output=True, timeout=60)
    assert not block.parent.exists()
