"""Pages of a client's shared-memory files that a process keeps mapped to write into are
not that process's memory: the posix isolator does not destroy a container over them,
and still destroys one over its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from mesonb import procmem
from mesonb.agent.isolation.limits import Limits
from mesonb.agent.isolation.posix import PosixMonitor, scan

np = pytest.importorskip("numpy")
MB = 1 << 20

# A worker's side: a client directory of its own, two values written into one pool file
# (the second through a mapping it keeps, 32 MB), 64 MB of its own, then idle.
KEEPER = textwrap.dedent("""
    import sys, time
    import numpy
    from mesonb.frameworks.functions import shm
    directory = shm.client_dir()
    for fill in (0.0, 1.0):
        inband, stored = shm.dump(numpy.full(32 * 2**20 // 8, fill), directory)
        stored.remove()
    own = numpy.ones(64 * 2**20 // 8)  # its own memory, above the floor of a limit
    print("ready", flush=True)
    sys.stdin.read()
    shm.remove_dir(directory)
""")


@pytest.fixture
def keeper():
    proc = subprocess.Popen([sys.executable, "-c", KEEPER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(30)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def watched(monitor: PosixMonitor, pid: int, mem_bytes: int) -> list:
    limited: list = []
    handle = monitor.prepare("c1", Limits(mem_mb=mem_bytes / MB))
    handle.pid, handle.on_limitation = pid, limited.append
    monitor._watched["c1"] = handle
    return limited


def test_a_containers_kept_mappings_of_client_files_are_not_its_memory(keeper):
    kept = procmem.kept_shm_rss(keeper.pid)
    assert kept >= 32 * MB
    rss = sum(p[1] for p in scan({keeper.pid})[keeper.pid])
    monitor = PosixMonitor()
    limited = watched(monitor, keeper.pid, rss - kept // 2)  # over only with the mapping
    monitor.check()
    assert limited == []
    monitor = PosixMonitor()
    limited = watched(monitor, keeper.pid, rss - kept - 8 * MB)  # over without it too
    monitor.check()
    assert len(limited) == 1


def test_a_process_without_kept_mappings_counts_none():
    assert procmem.kept_shm_rss(999_999_999) == 0  # gone
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        assert procmem.kept_shm_rss(proc.pid) == 0
    finally:
        proc.kill()
        proc.wait(30)
        if proc.stdin is not None:
            proc.stdin.close()


def test_a_workers_memory_less_its_kept_mappings_reads_smaps_once_while_nothing_changes(
        keeper, monkeypatch):
    from mesonb.frameworks.functions import shm_pool
    from mesonb.frameworks.functions.worker import Worker

    reads = []
    real = shm_pool.kept_rss
    monkeypatch.setattr(shm_pool, "kept_rss", lambda pid: reads.append(pid) or real(pid))
    worker = Worker(pid=keeper.pid, rfd=-1, wfd=-1)
    kept = procmem.kept_shm_rss(keeper.pid)
    assert kept >= 32 * MB
    for _ in range(3):
        less = worker.rss_less_kept()
        assert abs(worker.rss() - kept - less) < MB  # idle: only its own pages move
    assert reads == [keeper.pid]
    os.close(worker.statm)
