"""Memory limits of calls on a real embedded cluster: a call is charged for the processes it
starts, and not for what earlier calls left in a reused worker."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import psutil
import pytest

from mesonb import Cluster
from mesonb.client import TaskError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local(agents=1, resources="cpus:2;mem:4096;disk:1024")
    try:
        yield c
    finally:
        c.close()


def gone(pid, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)  # polling for exit with a deadline
    return False


def import_pandas_and_keep_a_cache():
    import builtins

    import pandas

    builtins._mesonb_test_cache = b"c" * (40 * 2**20)  # a module-level cache, as libraries keep
    return pandas.__name__


def rss_mb():
    time.sleep(0.3)  # long enough for the memory monitor (every 50 ms) to look
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


def test_small_calls_after_big_imports_are_not_charged_for_them(cluster):
    heavy = [cluster.submit(import_pandas_and_keep_a_cache, cpus=0.1, mem="1GB")
             for _ in range(6)]
    assert cluster.gather(heavy, timeout=60) == ["pandas"] * 6
    small = [cluster.submit(rss_mb, cpus=0.1, mem="64MiB") for _ in range(12)]
    sizes = cluster.gather(small, timeout=60)  # none killed for REASON_CONTAINER_LIMITATION_MEMORY
    assert all(size < 64 for size in sizes)
    heavy_again = cluster.submit(import_pandas_and_keep_a_cache, cpus=0.1, mem="1GB")
    assert heavy_again.result(60) == "pandas"


def spawn_hog(pid_file):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c",
                              "import time; b = b'x' * (300 * 2**20); time.sleep(120)"])
    with open(pid_file, "w") as f:
        f.write(str(child.pid))
    child.wait()
    return "the child was never killed"


def test_memory_of_child_processes_counts(cluster, tmp_path):
    pid_file = tmp_path / "child.pid"
    fut = cluster.submit(spawn_hog, str(pid_file), cpus=0.1, mem="100MB")
    try:
        with pytest.raises(TaskError, match="REASON_CONTAINER_LIMITATION_MEMORY") as info:
            fut.result(30)
        assert info.value.state == "TASK_FAILED"
        assert "child process" in info.value.message
        assert gone(int(pid_file.read_text()))  # killed with the worker
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert cluster.submit(abs, -3, cpus=0.1, mem="100MB").result(30) == 3
