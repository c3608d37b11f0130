"""The notebook client on a real embedded cluster: real master, agents, executors, workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
import traceback

import psutil
import pytest
from client_support import SMALL, on_loop, task_state, wait_for

import mesonb
from mesonb import Cluster
from mesonb.client import CommandResult, ResourceError, TaskError
from mesonb.frameworks.functions.protocol import INLINE_MAX

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local(agents=2)
    try:
        yield c
    finally:
        c.close()








def master_task(cluster, task_id):
    """The master's own record of a task (its TaskInfo, ``data`` included)."""
    def find():
        framework = cluster.local.master.master.book.frameworks[cluster.framework_id]
        for task in [*framework.tasks.values(), *framework.completed_tasks]:
            if task.id == task_id:
                return task
        return None
    return on_loop(cluster, find)


def square(x):
    return x * x


class Custom(Exception):
    pass


class TwoArgs(Exception):
    """Its __init__ wants more than it passes on: it does not unpickle as a whole."""

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raises_two_args():
    raise TwoArgs("first", "second")


def raises(x):
    print("about to fail", x)
    raise Custom(f"bad {x}")


def test_submit_result_and_the_master_tracks_the_task(cluster):
    fut = cluster.submit(square, 7, **SMALL)
    assert fut.result(30) == 49
    assert fut.done() and fut.exception() is None
    tasks = cluster.tasks().set_index("task_id")
    assert tasks.loc[fut.task_id, "state"] == "TASK_FINISHED"
    assert tasks.loc[fut.task_id, "name"] == "square"


def test_remote_exception_same_type_with_remote_traceback(cluster):
    fut = cluster.submit(raises, 3, **SMALL)
    with pytest.raises(Custom, match="bad 3") as info:
        fut.result(30)
    cause = "".join(traceback.format_exception(info.value))  # the remote frames, as shown
    assert "Traceback" in str(cause) and "raises" in str(cause) and "Custom: bad 3" in str(cause)
    assert isinstance(fut.exception(), Custom)
    assert "about to fail 3" in fut.logs().stdout


def test_remote_exception_that_does_not_unpickle_keeps_its_type(cluster):
    fut = cluster.submit(raises_two_args, **SMALL)
    with pytest.raises(TwoArgs) as info:
        fut.result(30)
    assert not isinstance(info.value, mesonb.client.RemoteError)
    assert info.value.args == ("first",) and info.value.b == "second"
    assert str(info.value) == "first"
    cause = "".join(traceback.format_exception(info.value))  # the remote frames, as shown
    assert "raises_two_args" in str(cause) and "TwoArgs: first" in str(cause)


def test_logs_capture_stdout_and_stderr(cluster):
    def noisy():
        import sys
        print("to stdout")
        print("to stderr", file=sys.stderr)
        return 1

    fut = cluster.submit(noisy, **SMALL)
    assert fut.result(30) == 1
    logs = fut.logs()
    assert logs.stdout == "to stdout\n" and logs.stderr == "to stderr\n"


def test_each_call_gets_only_its_own_output(cluster):
    # One after another, the calls share a worker and its log files: each future still
    # shows only what its own call printed, multi-byte text included.
    futures = []
    for i in range(6):
        futures.append(cluster.submit(print, f"call {i} \u00e9\u00e8 " + "x" * (i * 1000),
                                      **SMALL))
        futures[-1].result(30)
    for i, fut in enumerate(futures):
        assert fut.logs().stdout == f"call {i} \u00e9\u00e8 " + "x" * (i * 1000) + "\n"
        assert fut.logs().stderr == ""


def test_map_gather_as_completed_and_wait(cluster):
    futures = cluster.map(square, range(20), **SMALL)
    assert cluster.gather(futures, timeout=60) == [x * x for x in range(20)]
    assert sorted(f.result() for f in mesonb.as_completed(futures, timeout=10)) == sorted(
        x * x for x in range(20))
    more = cluster.map(pow, [2, 3], [3, 2], **SMALL)
    done, not_done = mesonb.wait(more, timeout=30)
    assert len(done) == 2 and not not_done


def test_futures_as_arguments_are_dependencies(cluster):
    a = cluster.submit(square, 3, **SMALL)
    b = cluster.submit(square, 4, **SMALL)
    total = cluster.submit(sum, [a, b], **SMALL)
    assert cluster.submit(pow, total, 2, **SMALL).result(30) == 625
    failed = cluster.submit(raises, 1, **SMALL)
    downstream = cluster.submit(square, failed, **SMALL)
    with pytest.raises(Custom):
        downstream.result(30)

def test_futures_nested_too_deep_are_refused_clearly(cluster):
    fut = cluster.submit(square, 4, **SMALL)
    with pytest.raises(TypeError, match="argument 0 has one at depth 2"):
        cluster.submit(len, [[fut]], **SMALL)
    with pytest.raises(TypeError, match="keyword argument 'key' has one at depth 2"):
        cluster.submit(dict, key=[{"a": fut}], **SMALL)
    with pytest.raises(TypeError, match="cannot be pickled: pass it as an argument"):
        cluster.submit(lambda: fut.result(), **SMALL)  # inside the function itself
    assert cluster.submit(sum, [fut, 1], **SMALL).result(30) == 17  # one level deep works


async def test_await_future_in_asyncio_code(cluster):
    assert await cluster.submit(square, 5, **SMALL) == 25
    results = await asyncio.gather(*(cluster.submit(square, i, **SMALL) for i in range(3)))
    assert results == [0, 1, 4]


def test_done_callback_runs(cluster):
    seen = concurrent.futures.Future()
    fut = cluster.submit(square, 6, **SMALL)
    fut.add_done_callback(lambda f: seen.set_result(f.result()))
    assert seen.result(30) == 36


def test_run_shell_command(cluster):
    result = cluster.run("echo out; echo err >&2; exit 3").result(30)
    assert isinstance(result, CommandResult)
    # exactly what the command wrote: the executor's own lines go to executor.log
    assert result.returncode == 3 and result.stdout == "out\n" and result.stderr == "err\n"
    assert cluster.run("true").result(30).returncode == 0


def test_executor_is_a_concurrent_futures_executor(cluster):
    with cluster.executor(**SMALL) as pool:
        assert isinstance(pool, concurrent.futures.Executor)
        assert list(pool.map(square, range(5))) == [0, 1, 4, 9, 16]
        fut = pool.submit(pow, 2, 5)
    assert fut.done() and fut.result() == 32
    with pytest.raises(RuntimeError):
        pool.submit(square, 1)
    pool2 = cluster.executor(**SMALL)
    futs = [pool2.submit(square, i) for i in range(3)]
    pool2.shutdown(wait=True)
    assert all(f.done() for f in futs)


def test_request_no_agent_could_hold_fails_fast(cluster):
    start = time.monotonic()
    fut = cluster.submit(square, 1, cpus=64)
    with pytest.raises(ResourceError, match="largest agent") as info:
        fut.result(10)
    assert "cpus 64" in str(info.value)
    assert "functions executor" in str(info.value)  # a call runs in it: its share counts
    fut = cluster.submit(square, 1, cpus=0.1, mem="10TB")
    with pytest.raises(ResourceError, match="mem"):
        fut.result(10)
    fut = cluster.run("true", cpus=64)  # a command task: no functions executor
    with pytest.raises(ResourceError, match="could ever hold this command") as info:
        fut.result(10)
    assert "cpus 64" in str(info.value) and "executor" not in str(info.value)
    assert time.monotonic() - start < 5


def test_a_busy_cluster_queues(cluster):
    # each agent has 1 cpu: 12 half-cpu sleeps cannot all run at once, so they queue
    futures = cluster.map(lambda i: (time.sleep(0.2), i)[1], range(12), cpus=0.4, mem=64)
    assert cluster.gather(futures, timeout=60) == list(range(12))


def test_cancel_kills_a_running_task(cluster):
    fut = cluster.submit(time.sleep, 60, **SMALL)
    wait_for(lambda: task_state(cluster, fut.task_id) == "TASK_RUNNING")
    assert fut.cancel()
    assert fut.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(1)
    wait_for(lambda: task_state(cluster, fut.task_id) == "TASK_KILLED")
    assert cluster.submit(square, 2, **SMALL).result(30) == 4  # the executor lives on


def test_cancel_a_queued_call(cluster):
    blocker = cluster.submit(time.sleep, 60, **SMALL)
    queued = cluster.submit(square, blocker, **SMALL)  # waits on its dependency
    assert queued.cancel() and queued.cancelled()
    wait_for(lambda: on_loop(cluster, lambda: queued.key not in cluster._jobs), timeout=5)
    blocker.cancel()


def test_memory_limit_kills_only_that_task(cluster):
    def hog():
        print("allocating", flush=True)
        block = bytearray(400 * 2**20)
        time.sleep(5)
        return len(block)

    others = cluster.map(lambda i: (time.sleep(0.3), i)[1], range(4), **SMALL)
    fut = cluster.submit(hog, cpus=0.1, mem="150MB")
    with pytest.raises(TaskError, match="REASON_CONTAINER_LIMITATION_MEMORY") as info:
        fut.result(30)
    assert info.value.state == "TASK_FAILED"
    assert fut.logs().stdout == "allocating\n"  # what it printed before it was killed
    assert cluster.gather(others, timeout=30) == [0, 1, 2, 3]
    assert cluster.submit(square, 9, **SMALL).result(30) == 81


def test_retries_relaunch_a_failed_call(cluster, tmp_path):
    marker = tmp_path / "tried"

    def flaky():
        if not marker.exists():
            marker.write_text("once")
            raise RuntimeError("first try fails")
        return "second try"

    fut = cluster.submit(flaky, retries=1, **SMALL)
    assert fut.result(30) == "second try" and fut.attempts == 2
    marker.unlink()
    with pytest.raises(RuntimeError, match="first try"):
        cluster.submit(flaky, retries=0, **SMALL).result(30)


def test_large_arguments_and_results_go_out_of_band(cluster):
    blob = os.urandom(3 * 2**20)
    fut = cluster.submit(lambda b: b[::-1], blob, **SMALL)
    result = fut.result(60)
    assert result == blob[::-1]
    dependent = cluster.submit(len, fut, **SMALL)
    assert dependent.result(60) == len(blob)  # result by reference
    # Neither the 3 MB argument nor the result went through the master: the tasks it
    # launched carried small data, and the result is fetched from the agent by URL.
    for task_id in (fut.task_id, dependent.task_id):
        task = master_task(cluster, task_id)
        assert task is not None and task.info.data is not None
        assert len(task.info.data) < INLINE_MAX
    assert fut._ref.url and fut._ref.data is None and "/files/download" in fut._ref.url
    assert on_loop(cluster, lambda: len(cluster._blobs.store)) == 0  # dropped once done


def test_sequential_calls_on_an_agent_share_one_executor_process(cluster):
    # A call runs in a worker of the agent's long-lived executor: no interpreter per call.
    parents = {}
    for _ in range(6):
        fut = cluster.submit(os.getppid, **SMALL)
        ppid = fut.result(30)
        parents.setdefault(fut._agent_url, set()).add(ppid)
    for ppids in parents.values():
        assert len(ppids) == 1
        (ppid,) = ppids
        assert ppid != os.getpid()
        assert "mesonb.frameworks.functions.executor" in psutil.Process(ppid).cmdline()


def test_the_documented_defaults_reach_the_master(cluster):
    fut = cluster.submit(square, 3)
    assert fut.result(30) == 9
    task = master_task(cluster, fut.task_id)
    assert task.resources.scalars == {"cpus": 0.2, "mem": 1024.0}  # disk 0 and gpus 0: none
    listed = cluster.tasks().set_index("task_id").loc[fut.task_id]
    assert (listed["cpus"], listed["mem"]) == (0.2, 1024.0)
    assert listed.get("disk", 0) == 0 and listed.get("gpus", 0) == 0
    failed = cluster.submit(raises, 1)
    with pytest.raises(Custom):
        failed.result(30)
    assert failed.attempts == 1  # retries=0: not tried again


def test_bad_arguments_raise_at_once(cluster):
    with pytest.raises(ValueError, match="mem"):
        cluster.submit(square, 1, mem="lots")
    with pytest.raises(ValueError, match="cpus"):
        cluster.submit(square, 1, cpus=0)
    with pytest.raises(TypeError):
        cluster.submit(42)
    with pytest.raises(TypeError, match="gpus: expected a whole number of GPUs"):
        cluster.submit(square, 1, gpus="x")
    with pytest.raises(ValueError, match="mem: 0 MB means no memory limit"):
        cluster.submit(square, 1, mem=0)
    with pytest.raises(ValueError, match="cpus: inf"):
        cluster.submit(square, 1, cpus=float("inf"))
    with pytest.raises(ValueError, match="retries"):
        cluster.run("true", retries=-1)
    with pytest.raises(TypeError, match="retries"):
        cluster.submit(square, 1, retries="2")
    assert on_loop(cluster, lambda: len(cluster._jobs)) == 0  # nothing was queued



def test_malformed_zk_address_gives_a_clear_error():
    # zk:// URLs work (tests/integration/test_client_zk.py); a malformed one fails at once
    with pytest.raises(ValueError, match="needs a path"):
        Cluster("zk://127.0.0.1:2181")
    with pytest.raises(ValueError, match="bad host:port"):
        Cluster("zk://127.0.0.1:99999/mesonb")
