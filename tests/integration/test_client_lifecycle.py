"""Cluster.local leaves no process behind: on close, on context exit, at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from mesonb import Cluster

pytestmark = pytest.mark.slow


def gone(pids, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in pids):
            return True
        time.sleep(0.05)  # polling for exit with a deadline
    return False


def worker_and_executor():
    return os.getpid(), os.getppid()


def test_context_exit_stops_executors_and_workers():
    with Cluster.local(agents=2) as cluster:
        pids = cluster.submit(worker_and_executor, cpus=0.1, mem=64).result(30)
        assert all(psutil.pid_exists(p) for p in pids)
        address = cluster.address
    assert gone(pids)
    with pytest.raises(RuntimeError):
        cluster.submit(worker_and_executor)
    assert address


def test_interpreter_exit_stops_everything(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import os
        from mesonb import Cluster
        cluster = Cluster.local(agents=1)
        print(*cluster.submit(lambda: (os.getpid(), os.getppid()), cpus=0.1, mem=64)
              .result(30), flush=True)
    """))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, env=env, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2 and gone(pids)


def test_connect_to_a_running_cluster_by_address():
    with Cluster.local(agents=1) as local, Cluster(local.address) as remote:
        assert remote.submit(abs, -4, cpus=0.1, mem=64).result(30) == 4
        assert remote.framework_id != local.framework_id
