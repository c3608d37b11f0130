"""``Dataflow``: a Spark-like context, a Mesos framework of its own.

Example::

    from mesonb.frameworks.dataflow import Dataflow

    with Dataflow("127.0.0.1:5050", executors=2, cpus=1, mem="1GB") as flow:
        counts = (flow.text("corpus/").flat_map(str.split)
                  .map(lambda w: (w, 1)).reduce_by_key(operator.add))
        print(counts.take(5))
        print(flow.jobs())

``Cluster.dataflow(...)`` makes one on a cluster's master. The framework registers with
the master (``/master/state`` lists it) and launches its executors as long-running Mesos
tasks (:mod:`.framework`); jobs are cut into stages and run by :mod:`.dag`. Its core runs
on an event loop in a thread of its own, so the same code works in a script and in a
Jupyter kernel.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import glob
import logging
import os
import re
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from mesonb.security.local_secret import secret_for

from .dag import DAGScheduler
from .dataframe import DataFrame, parquet_files
from .dataset import Dataset
from .framework import ExecutorPool, PoolConfig, executor_env
from .lineage import Node, ParquetNode, SourceNode, TextNode, WholeTextNode, text_splits
from .progress import view_for
from .record import JobRecord, Record

log = logging.getLogger(__name__)
T = TypeVar("T")
SPLIT_SIZE = 64 * 2**20
PROGRESS_INTERVAL = 0.1  # seconds between redraws of a job's progress
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_mem(value: str | float) -> float:
    """``"1GB"``, ``"512MiB"`` or a number of MB -> MB."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"mem: expected a positive size, not {value!r}")
        return float(value)
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"mem: cannot read {value!r} as a size; use e.g. '1GB' or '512MiB'")
    number, prefix, suffix = match.groups()
    unit = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0**2}[prefix.lower()]
    if not prefix and suffix and suffix.lower() == "b":
        unit = 1 / 2**20
    return float(number) * unit


def _exit_hook(fn: Callable[[], None], remove: bool = False) -> None:
    """Run ``fn`` at interpreter exit while threads still work: in ``threading``'s exit
    hooks (last in, first out, before ``concurrent.futures`` stops), else ``atexit``."""
    hooks = getattr(threading, "_threading_atexits", None)
    register = getattr(threading, "_register_atexit", None)
    if remove:
        if hooks is not None and fn in hooks:
            hooks.remove(fn)
        atexit.unregister(fn)
        return
    if register is not None and hooks is not None:
        with contextlib.suppress(RuntimeError):  # RuntimeError: already shutting down
            register(fn)
            return
    atexit.register(fn)


def _closer(ref: weakref.ref[Dataflow]) -> Callable[[], None]:
    """At interpreter exit, close the context if it is still open (before what was made
    earlier, such as its cluster: atexit runs last in, first out)."""

    def close() -> None:
        flow = ref()
        if flow is not None:
            with contextlib.suppress(Exception):
                flow.close()

    return close


class _Loop:
    """An event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mesonb-dataflow",
                                       daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking dataflow call was made on its own event loop")
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class Dataflow:
    """A dataflow context on the Mesos master at ``master`` (``"HOST:PORT"`` or
    ``"zk://..."``). Executors: up to ``executors``, each one Mesos task of ``cpus`` and
    ``mem``; one idle for ``idle_timeout`` seconds is given back (None: never). A task
    that raises is tried ``retries`` more times. ``progress``: None shows a bar in
    Jupyter or on a terminal, True always, False never. A shuffle has
    ``shuffle_partitions`` reduce partitions unless its call says (default: two per
    executor cpu, at most the input's partitions)."""

    def __init__(self, master: str, *, name: str = "mesonb-dataflow", executors: int = 2,
                 cpus: float = 1.0, mem: str | float = "1GB",
                 idle_timeout: float | None = 60.0, retries: int = 2,
                 secret: str | None = None, progress: bool | None = None,
                 role: str = "*", shuffle_partitions: int | None = None,
                 timeout: float = 30.0) -> None:
        if not isinstance(executors, int) or executors < 1:
            raise ValueError(f"executors: expected a positive integer, not {executors!r}")
        if not cpus > 0:
            raise ValueError(f"cpus: expected a positive number, not {cpus!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries: expected 0 or more, not {retries!r}")
        self.master = master
        self.progress = progress
        # Reduce partitions of a shuffle, unless given: two per task slot (Spark's default
        # parallelism), fewer when the input has fewer partitions.
        self.shuffle_partitions = shuffle_partitions or 2 * executors * max(1, int(cpus))
        self.record = Record()
        self.closed = False
        config = PoolConfig(name=name, executors=executors, cpus=float(cpus),
                            mem=parse_mem(mem), idle_timeout=idle_timeout, role=role,
                            env=executor_env())
        self._loop = _Loop()
        self.pool = ExecutorPool(config, self)
        self.dag = DAGScheduler(self.pool, self.record, retries)
        self._at_exit = _closer(weakref.ref(self))
        _exit_hook(self._at_exit)
        try:
            secret = secret or secret_for(master)  # a local cluster's, from its file
            self.framework_id = self._loop.run(self.pool.start(master, secret, timeout))
        except BaseException:
            self.closed = True
            self._loop.run(self.pool.stop(), 30)
            self._loop.stop()
            raise

    # The pool's listener: events go to the DAG scheduler (on the loop thread).
    def executor_added(self, executor: Any) -> None:
        self.dag.executor_added(executor)

    def executor_lost(self, executor: Any, reason: str) -> None:
        self.dag.executor_lost(executor, reason)

    def task_result(self, executor: Any, result: Any) -> None:
        self.dag.task_result(executor, result)

    # -- life cycle --------------------------------------------------------------------
    def close(self) -> None:
        """Stop the framework: its executors end and the master forgets it."""
        if self.closed:
            return
        self.closed = True
        _exit_hook(self._at_exit, remove=True)
        try:
            self._loop.run(self.pool.stop(), 30)
        finally:
            self._loop.stop()

    def __enter__(self) -> Dataflow:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


    def __repr__(self) -> str:
        ready = len(self.pool.alive())
        return f"<Dataflow {self.pool.config.name} on {self.master}: {ready}/" \
               f"{self.pool.config.executors} executors>"

    # -- sources -----------------------------------------------------------------------
    def parallelize(self, items: Iterable[Any], partitions: int | None = None) -> Dataset:
        """A dataset of ``items`` (kept here; each task is sent its own slice)."""
        data = list(items)
        n = partitions or max(1, min(len(data), 2 * self.pool.config.executors))
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"partitions: expected a positive integer, not {partitions!r}")
        slices = [data[i * len(data) // n:(i + 1) * len(data) // n] for i in range(n)]
        return Dataset(self, SourceNode(slices))

    def text(self, path: str, split_size: int = SPLIT_SIZE) -> Dataset:
        """The lines of a text file, of the files in a directory, or of a glob's files: a
        partition per file, files over ``split_size`` bytes cut into several."""
        return Dataset(self, TextNode(text_splits(_text_files(path, "text"), split_size)))

    def whole_text(self, path: str) -> Dataset:
        """One record ``(path, text)`` per file (a partition each): for work on whole
        files, such as ``Counter(text.split())``."""
        return Dataset(self, WholeTextNode(_text_files(path, "whole_text")))

    def from_pandas(self, frame: Any, partitions: int | None = None) -> DataFrame:
        """A :class:`~.dataframe.DataFrame` of a pandas frame, cut into row ranges."""
        n = partitions or max(1, min(len(frame), 2 * self.pool.config.executors))
        size = len(frame)
        slices = [[frame.iloc[i * size // n:(i + 1) * size // n]] for i in range(n)]
        return DataFrame(self, SourceNode(slices, "from_pandas"), frame.iloc[:0])

    def read_parquet(self, path: str, columns: list[str] | None = None) -> DataFrame:
        """A :class:`~.dataframe.DataFrame` of a parquet file, a directory or glob of
        them: one partition per file, read by the executors (pyarrow)."""
        import pyarrow.parquet as pq

        files = parquet_files(path)
        meta = pq.read_schema(files[0]).empty_table().to_pandas()
        if columns is not None:
            meta = meta[columns]
        return DataFrame(self, ParquetNode(files, columns), meta)

    def _reducers(self, inputs: int) -> int:
        """A shuffle's reduce partitions when its call names none."""
        return max(1, min(inputs, self.shuffle_partitions))

    # -- records -----------------------------------------------------------------------
    def jobs(self) -> Any:
        """A DataFrame of the jobs run: tasks, duration, executors lost, recomputed
        partitions."""
        return self.record.frame("jobs")

    def stages(self) -> Any:
        """A DataFrame of the stages run: kind, tasks, task seconds, shuffle bytes written
        and read, recomputed partitions."""
        return self.record.frame("stages")

    def executors(self) -> Any:
        """A DataFrame of the executors launched: agent, shuffle address, state."""
        import pandas as pd

        return pd.DataFrame([{"executor_id": e.executor_id, "agent_id": e.agent_id,
                              "address": e.address, "slots": e.slots,
                              "running": len(e.running), "blocks": len(e.blocks),
                              "alive": e.alive}
                             for e in self.pool.executors.values()],
                            columns=["executor_id", "agent_id", "address", "slots",
                                     "running", "blocks", "alive"])

    # -- running jobs ------------------------------------------------------------------
    def _run(self, node: Node, func: Callable[[int, Iterator[Any]], Any],
             partitions: list[int] | None, description: str) -> list[Any]:
        if self.closed:
            raise RuntimeError("this dataflow context is closed")
        record: JobRecord = self.dag.new_record(description)
        view = view_for(record, self.progress)
        future = self._loop.submit(self.dag.run_job(node, func, partitions, record))
        try:
            # The view is drawn from this thread (widgets and tqdm belong to the caller's).
            while view is not None:
                try:
                    return future.result(PROGRESS_INTERVAL)
                except concurrent.futures.TimeoutError:
                    view.update(record)
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise
        finally:
            if view is not None:
                view.close(record)

    def _unpersist(self, node: Node) -> None:
        self._loop.loop.call_soon_threadsafe(self.dag.unpersist, node)


def _text_files(path: str, what: str) -> list[str]:
    """The files a path names: a file, a directory's files, or a glob's."""
    if os.path.isdir(path):
        files = sorted(p for p in glob.glob(os.path.join(path, "*")) if os.path.isfile(p))
    else:
        files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else \
            ([path] if os.path.isfile(path) else [])
    if not files:
        raise FileNotFoundError(f"{what}: no file at {path!r}")
    return [os.path.abspath(f) for f in files]
