"""Cancelling calls on a real embedded cluster: a cancelled future is done for ``wait``,
``as_completed`` and executor shutdowns, and what the call held in the client is freed."""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time

import pytest
from client_support import SMALL, on_loop, task_state, wait_for

import mesonb
from mesonb import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    # one agent with one cpu: a call asking for 0.8 of it leaves no room for another
    c = Cluster.local(agents=1, resources="cpus:1;mem:2048;disk:1024")
    try:
        yield c
    finally:
        c.close()








def running(cluster, fut):
    return wait_for(lambda: fut.task_id and task_state(cluster, fut.task_id) == "TASK_RUNNING")


def test_wait_and_as_completed_count_a_cancelled_future_as_done(cluster):
    fut = cluster.submit(time.sleep, 60, **SMALL)
    running(cluster, fut)
    assert fut.cancel() and fut.cancelled() and fut.done()
    assert fut.cancel()  # again: still cancelled, no error
    done, not_done = mesonb.wait([fut], timeout=10)
    assert done == {fut} and not not_done
    assert list(mesonb.as_completed([fut], timeout=10)) == [fut]
    wait_for(lambda: task_state(cluster, fut.task_id) == "TASK_KILLED")
    pending = cluster.submit(time.sleep, 60, **SMALL)
    queued = cluster.submit(abs, pending, **SMALL)
    assert queued.cancel()
    done, _ = mesonb.wait([queued], timeout=10, return_when=concurrent.futures.FIRST_COMPLETED)
    assert done == {queued}
    assert pending.cancel()


def test_executor_shutdown_cancelling_running_calls_returns(cluster):
    pool = cluster.executor(**SMALL)
    fut = pool.submit(time.sleep, 60)
    running(cluster, fut)
    stopper = threading.Thread(target=pool.shutdown,
                               kwargs={"wait": True, "cancel_futures": True}, daemon=True)
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive(), "shutdown(wait=True, cancel_futures=True) hung"
    assert fut.cancelled()
    wait_for(lambda: task_state(cluster, fut.task_id) == "TASK_KILLED")


def test_cancelling_a_call_queued_in_the_scheduler_frees_it_and_its_blob(cluster):
    blocker = cluster.submit(time.sleep, 60, cpus=0.8, mem=64)
    running(cluster, blocker)
    big = os.urandom(256 * 1024)  # over INLINE_MAX: the call waits in the blob server
    queued = cluster.submit(len, big, cpus=0.5, mem=64)  # no room for it: it queues
    wait_for(lambda: on_loop(cluster, lambda: any(
        s.task_id == queued.task_id for s in cluster._scheduler.queue)))
    assert on_loop(cluster, lambda: len(cluster._blobs.store)) == 1
    assert queued.cancel()
    wait_for(lambda: on_loop(cluster, lambda: queued.key not in cluster._jobs), timeout=5)
    assert on_loop(cluster, lambda: (len(cluster._blobs.store), len(cluster._scheduler.queue),
                                     queued.key in cluster._jobs)) == (0, 0, False)
    assert blocker.cancel()
    assert cluster.submit(abs, -5, cpus=0.5, mem=64).result(30) == 5  # the room is free again
    assert queued.task_id not in set(cluster.tasks()["task_id"])  # never launched


def test_cancelling_a_call_waiting_for_its_dependency_frees_it(cluster):
    blocker = cluster.submit(time.sleep, 60, **SMALL)
    waiting = cluster.submit(len, [blocker, os.urandom(256 * 1024)], **SMALL)
    assert waiting.cancel()
    wait_for(lambda: on_loop(cluster, lambda: waiting.key not in cluster._jobs), timeout=5)
    assert on_loop(cluster, lambda: len(cluster._blobs.store)) == 0
    assert blocker.cancel()
    wait_for(lambda: on_loop(cluster, lambda: not cluster._jobs))
