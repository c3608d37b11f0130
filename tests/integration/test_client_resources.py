"""Resources as users mean them: on an N-core machine one local cluster takes ``cpus=1``
up to ``cpus=N`` calls, and N ``cpus=1`` calls run at once (the functions executor's own
overhead is not charged to the calls, as Mesos's agent adds its command executor's)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from mesonb import Cluster
from mesonb.client import ResourceError

pytestmark = pytest.mark.slow
CORES = psutil.cpu_count() or 1


def interval(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local()
    try:
        yield c
    finally:
        c.close()


def test_one_local_agent_holds_the_machine(cluster):
    agents = cluster.agents()
    assert len(agents) == 1
    assert agents.cpus_total.iloc[0] == CORES


@pytest.mark.parametrize("cpus", sorted({1, CORES}))
def test_calls_of_one_to_n_cpus_run(cluster, cpus):
    assert cluster.submit(abs, -cpus, cpus=cpus).result(30) == cpus


def test_n_one_cpu_calls_run_at_once(cluster):
    futures = [cluster.submit(interval, 1.0, cpus=1) for _ in range(CORES)]
    spans = [f.result(60) for f in futures]
    assert most_at_once(spans) == CORES, spans


def test_a_refused_call_says_what_was_counted(cluster):
    with pytest.raises(ResourceError) as info:
        cluster.submit(abs, -1, cpus=CORES + 1).result(10)
    text = str(info.value)
    assert f"cpus {CORES + 1:g}" in text and f"has cpus {CORES:g}" in text
    assert "functions executor's own overhead is not charged" in text


def test_mesonb_local_takes_a_call_of_every_core(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesonb", "local", "--port", "0", "--work-dir",
         str(tmp_path / "local")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"master http://([\d.]+:\d+) with 1 agent\b", first)
        assert match, first
        with Cluster(match[1]) as remote:
            assert remote.submit(abs, -CORES, cpus=CORES).result(60) == CORES
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
