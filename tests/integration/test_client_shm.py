"""Large numpy values between the client and workers on one host: pickle protocol 5
out-of-band buffers in shared memory, not HTTP and never the master."""

from __future__ import annotations

import gc
import os

import pytest
from client_support import on_loop, wait_for

from mesonb import Cluster
from mesonb.frameworks.functions.protocol import INLINE_MAX

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    c = Cluster.local()
    try:
        yield c
    finally:
        c.close()


def total(a):
    return float(a.sum())


def ones(n):
    import numpy

    return numpy.ones(n)


def first(a):
    return float(a[0])


def test_a_large_array_goes_both_ways_through_shared_memory(cluster):
    shm_dir = cluster._shm_dir
    assert shm_dir and shm_dir.startswith("/dev/shm/")
    arg = np.arange(2_000_000, dtype=np.float64)  # 16 MB
    fut = cluster.submit(total, arg)
    assert fut.result(60) == float(arg.sum())
    assert os.listdir(shm_dir) == []  # the argument's file went with its call
    out = cluster.submit(ones, 2_000_000)
    value = out.result(60)
    assert value.shape == (2_000_000,) and value.sum() == 2_000_000
    value[0] = 5.0  # writable: copy-on-write pages
    assert out._ref.shm is not None and out._ref.url is None  # not through HTTP
    assert cluster.submit(first, out).result(60) == 1.0  # a dependent reads it too
    assert len(os.listdir(shm_dir)) == 1  # the result's file, while its future lives
    del out, value
    gc.collect()
    wait_for(lambda: os.listdir(shm_dir) == [], "the result's file to go with its future")
    # the arrays never went through the master: its TaskInfo holds a small call
    task_id = fut.task_id

    def data_size():
        framework = cluster.local.master.master.book.frameworks[cluster.framework_id]
        for task in [*framework.tasks.values(), *framework.completed_tasks]:
            if task.id == task_id:
                return len(task.info.data or "")
        return None

    size = on_loop(cluster, data_size)
    assert size is not None and size < INLINE_MAX


def test_the_shared_memory_directory_goes_with_the_cluster(cluster):
    with pytest.warns(RuntimeWarning, match="already running"):
        c = Cluster.local(warm=False)  # beside the module's cluster: a second one warns
    with c:
        path = c._shm_dir
        assert path and os.path.isdir(path)
    assert not os.path.exists(path)
