"""What makes calls cheap: the executor started with the cluster, a function pickled
once per function object (and unpickled once per worker), submits batched onto the loop."""

from __future__ import annotations

import pytest

from mesonb import Cluster
from mesonb.frameworks.functions import failures

pytestmark = pytest.mark.slow


def double(x):
    return 2 * x


def test_the_executor_runs_when_cluster_local_returns():
    with Cluster.local() as cluster:
        tasks = cluster.tasks()
        warm = tasks[tasks.name == "mesonb-warmup"]
        assert list(warm.state) == ["TASK_FINISHED"]  # before the first user call
        assert cluster.submit(double, 4).result(30) == 8
        tasks = cluster.tasks()
        assert tasks.executor_id.nunique() == 1  # the user's call ran in that executor


def test_a_function_is_pickled_once_and_calls_carry_only_their_arguments():
    with Cluster.local(warm=False) as cluster:
        first, second = cluster._pickled(double), cluster._pickled(double)
        assert first is second  # cached for the function object
        futures = [cluster.submit(double, i) for i in range(50)]  # one burst
        assert [f.result(30) for f in futures] == [2 * i for i in range(50)]
        assert cluster._pickled(abs) == cluster._pickled(abs)  # builtins: not cached


def test_a_worker_unpickles_a_function_once():
    pickled = __import__("cloudpickle").dumps(double)
    assert failures.function(pickled) is failures.function(bytes(pickled))


class Offset:
    """A callable object: its state may change between calls."""

    def __init__(self, by):
        self.by = by

    def __call__(self, x):
        return x + self.by


def test_a_callable_object_is_pickled_with_its_state_of_each_call():
    with Cluster.local(warm=False) as cluster:
        add = Offset(1)
        assert cluster.submit(add, 1).result(30) == 2
        add.by = 10
        assert cluster.submit(add, 1).result(30) == 11


def test_a_value_too_big_for_shared_memory_space_goes_in_band(tmp_path):
    from mesonb.frameworks.functions import shm

    np = pytest.importorskip("numpy")
    value = np.ones(shm.SHM_MIN)  # 8 MB of buffers
    inband, shared = shm.dump(value, str(tmp_path / "gone"))  # no such directory
    assert shared is None and len(inband) > shm.SHM_MIN
