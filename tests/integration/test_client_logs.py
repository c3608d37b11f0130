"""``fut.logs()`` on a real embedded cluster: what a call or a command printed so far, while
it still runs, and only what it printed (not the executor's own log lines)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from client_support import SMALL, wait_for

from mesonb import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local(agents=1, resources="cpus:2;mem:2048;disk:1024")
    try:
        yield c
    finally:
        c.close()




def talk_then_wait(marker):
    print("started the work")  # no flush: a worker's stdout is line-buffered
    print("a warning", file=sys.stderr)
    deadline = time.monotonic() + 60
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)  # the call waits for the test's go-ahead
    print("finished")
    return 7


def test_logs_of_a_running_call_show_what_it_printed_so_far(cluster, tmp_path):
    marker = tmp_path / "go"
    fut = cluster.submit(talk_then_wait, str(marker), **SMALL)
    # stderr is written after stdout: a read may come between the two
    logs = wait_for(lambda: (got := fut.logs()).stdout and got.stderr and got)
    assert not fut.done()  # it is still waiting for the marker
    assert logs.stdout == "started the work\n"
    assert logs.stderr == "a warning\n"
    marker.touch()
    assert fut.result(30) == 7
    logs = fut.logs()
    assert logs.stdout == "started the work\nfinished\n" and logs.stderr == "a warning\n"
    # the worker's next call: its own output only
    after = cluster.submit(print, "next", **SMALL)
    after.result(30)
    assert after.logs().stdout == "next\n"


def test_logs_of_a_running_command_show_its_output_so_far(cluster, tmp_path):
    marker = tmp_path / "go"
    fut = cluster.run(f"echo started; echo warned >&2; while [ ! -e {marker} ]; do "
                      "sleep 0.01; done; echo finished", **SMALL)
    logs = wait_for(lambda: (got := fut.logs()).stdout and got)
    assert not fut.done()
    assert logs.stdout == "started\n"
    wait_for(lambda: fut.logs().stderr)
    assert fut.logs().stderr == "warned\n"  # not the executor's "started task" line
    marker.touch()
    result = fut.result(30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "started\nfinished\n",
                                                                  "warned\n")


def test_the_command_executor_logs_to_executor_log_in_the_sandbox(cluster):
    fut = cluster.run("echo out; echo err >&2; exit 3", **SMALL)
    result = fut.result(30)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    directory = cluster._lt.run(cluster._sandboxes.sandbox_of(fut._agent_url, fut.task_id), 10)
    sandbox = Path(directory)
    assert (sandbox / "stderr").read_text() == "err\n"
    log = (sandbox / "executor.log").read_text()
    assert f"started task {fut.task_id}" in log and "TASK_FAILED" in log
