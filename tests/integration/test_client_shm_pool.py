"""Large values through the client's pool of reused shared-memory files, with real
workers: every call reads and returns its own bytes, and a value still held keeps them
while later calls reuse the pool."""

from __future__ import annotations

import gc
import os

import pytest
from client_support import wait_for

from mesonb import Cluster

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.slow
N = 1_000_000  # 8 MB of float64


def full(n, fill):
    import numpy

    return numpy.full(n, fill)


def stats(a):
    return float(a.min()), float(a.max()), a.size


def stash(a):
    """Keep the argument in the worker past its call."""
    import builtins
    import os

    builtins.__dict__.setdefault("_mesonb_test_stash", []).append(a)
    return os.getpid()


def stashed():
    import builtins
    import os

    return os.getpid(), [(float(a.min()), float(a.max())) for a in builtins._mesonb_test_stash]


def pool_files(shm_dir):
    try:
        return [n for n in os.listdir(shm_dir + ".pool") if not n.startswith("new-")]
    except FileNotFoundError:
        return []


def test_calls_reusing_pooled_files_read_and_return_their_own_values():
    with Cluster.local(warm=False) as cluster:
        shm_dir = cluster._shm_dir
        assert shm_dir is not None
        kept = cluster.submit(full, N, -1.0).result(60)  # held all along
        for i in range(4):
            arg = np.full(N, float(i))
            assert cluster.submit(stats, arg).result(60) == (float(i), float(i), N)
            out = cluster.submit(full, N, float(i) + 0.5)
            value = out.result(60)
            assert out._ref.shm is not None  # through shared memory
            assert value.min() == value.max() == float(i) + 0.5 and value.size == N
            del out, value
            gc.collect()
            # what a call left goes to the pool (or, a worker's, makes a pool file)
            wait_for(lambda: pool_files(shm_dir), "a file in the pool")
        assert kept.min() == kept.max() == -1.0  # never reused under the held value
        half = np.arange(N // 2, dtype=np.float64)  # smaller than the pooled files
        assert cluster.submit(stats, half).result(60) == (0.0, float(N // 2 - 1), N // 2)
    assert not os.path.exists(shm_dir) and not os.path.exists(shm_dir + ".pool")


def test_without_a_shared_host_large_arrays_go_through_the_blob_server():
    """A client that shares no ``/dev/shm`` with the workers (a remote one) sends the
    array through its blob server and gets the result from the agent, as before."""
    with Cluster.local(warm=False) as cluster:
        shm_dir, cluster._shm_dir = cluster._shm_dir, None  # as a remote client is
        try:
            arg = np.arange(N, dtype=np.float64)
            assert cluster.submit(stats, arg).result(60) == (0.0, float(N - 1), N)
            out = cluster.submit(full, N, 2.5)
            value = out.result(60)
            assert out._ref.shm is None and out._ref.url is not None  # from the agent
            assert value.min() == value.max() == 2.5 and value.size == N
        finally:
            cluster._shm_dir = shm_dir
        assert shm_dir is not None and os.listdir(shm_dir) == [] and not pool_files(shm_dir)


def test_an_argument_a_worker_keeps_is_never_overwritten_by_later_calls():
    with Cluster.local(warm=False) as cluster:
        pid = cluster.submit(stash, np.full(N, 1.0)).result(60)
        for i in range(3):  # its file is not reused while the worker maps it
            assert cluster.submit(stats, np.full(N, 5.0 + i)).result(60) == (5.0 + i,) * 2 + (N,)
            out = cluster.submit(full, N, 9.0 + i)
            assert out.result(60).max() == 9.0 + i
            del out
        assert cluster.submit(stashed).result(60) == (pid, [(1.0, 1.0)])
