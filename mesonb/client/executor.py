"""``cluster.executor(...)``: the cluster as a :class:`concurrent.futures.Executor`.

>>> with cluster.executor(cpus=0.5, mem="512MiB") as pool:  # doctest: +SKIP
...     print(list(pool.map(abs, [-1, -2])))
[1, 2]
"""

from __future__ import annotations

import concurrent.futures
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .futures import Future


class ClusterExecutor(concurrent.futures.Executor):
    """Each ``submit`` is ``cluster.submit(fn, *args, **resources, **kwargs)``."""

    def __init__(self, cluster: Any, resources: dict[str, Any]) -> None:
        """``cluster``: the :class:`~.cluster.Cluster` that runs the calls."""
        self.cluster = cluster
        self.resources = dict(resources)
        self._futures: set[Future] = set()
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut = self.cluster.submit(fn, *args, **self.resources, **kwargs)
            self._futures.add(fut)
        fut.add_done_callback(self._discard)
        return fut

    def _discard(self, fut: Any) -> None:
        with self._lock:
            self._futures.discard(fut)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            pending = list(self._futures)
        if cancel_futures:
            for fut in pending:
                fut.cancel()
        if wait:
            concurrent.futures.wait(pending)
