"""Results written through a worker's kept mapping of the client's pool file, with real
workers: each reads back its own bytes, and the mapping (the client's pages) is not
charged to the calls' memory limit."""

from __future__ import annotations

import gc
import os

import pytest
from client_support import wait_for

from mesonb import Cluster
from mesonb.frameworks.functions import shm_pool

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.slow
MB = 1 << 20


def worker_rss():
    import os

    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def filled(n, fill):
    """Hold an array of ``n`` bytes a while (a memory check looks), then return it, with
    what of this worker's memory was its kept mappings then."""
    import time

    import numpy

    from mesonb.frameworks.functions import shm_pool

    value = numpy.full(n // 8, fill)
    time.sleep(0.3)
    return value, shm_pool.kept_rss(os.getpid())


def test_results_through_a_kept_mapping_read_back_and_are_not_charged_to_the_call():
    with Cluster.local(warm=False) as cluster:
        shm_dir = cluster._shm_dir
        assert shm_dir is not None
        base = cluster.submit(worker_rss).result(60)
        size = 48 * MB
        # Room for the worker, its array and some: not for the array twice.
        mem = (base + size + size // 2) // MB
        seen = []
        for i in range(4):
            value, kept = cluster.submit(filled, size, float(i), mem=mem).result(60)
            assert value.shape == (size // 8,) and float(value.min()) == float(i) \
                and float(value.max()) == float(i)
            seen.append(kept)
            del value
            gc.collect()
            wait_for(lambda: os.path.isdir(shm_dir + ".pool") and any(
                not n.startswith("new-") for n in os.listdir(shm_dir + ".pool")),
                what="a pool file for the next result")
        assert max(seen) >= size  # a call ran with the kept mapping resident


def scaled(a, by):
    return a * by


def test_concurrent_calls_through_kept_mappings_each_get_and_return_their_own_values():
    """Arguments written through the client's kept mappings and results through the
    workers', several calls at once and again, pool files changing hands: every call
    reads its own argument and the client gets back its own result."""
    n = 2 * MB // 8
    with Cluster.local(warm=False) as cluster:
        for round_ in range(4):
            args = [np.full(n, float(10 * round_ + i)) for i in range(5)]
            futures = [cluster.submit(scaled, a, i + 1) for i, a in enumerate(args)]
            results = [f.result(60) for f in futures]
            for i, (a, r) in enumerate(zip(args, results, strict=True)):
                assert r.shape == (n,)
                assert float(r.min()) == float(r.max()) == float(a[0]) * (i + 1)
            del futures, results
            gc.collect()
        assert shm_pool._writable  # the client wrote arguments through kept mappings
