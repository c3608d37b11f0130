"""The DAG scheduler: a job's lineage cut into stages at shuffles, run as tasks.

A job computes some partitions of a node with a function (an action). Its *result
stage* runs over the node; every shuffle the node reads through narrow dependencies is a
*map stage* (kept across jobs, by shuffle id, so a later job reuses map outputs that are
still there), whose parents are found the same way. A stage runs when its parent stages
are complete; its tasks are the partitions it is missing. A task goes to an executor with
a free slot, preferably one that holds a persisted input of it, or most of the shuffle
bytes it reads.

Faults:

* a task that raises is retried up to ``retries`` times, then the job fails with that
  exception (its own type, the remote traceback as its ``__cause__``);
* a lost executor's running tasks go back to the queue (no retry is spent), and its map
  outputs and persisted partitions are forgotten: the stages missing them re-run just
  those partitions from lineage, counted as *recomputed* in the job's record;
* a task that cannot fetch a map output (:class:`~.shuffle.FetchFailed`) makes the same
  happen for the executor it names.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from . import messages
from .framework import Executor, ExecutorPool
from .lineage import (
    MapWork,
    Node,
    ResultWork,
    ShuffleDependency,
    ShuffledNode,
    SourceNode,
    walk_narrow,
)
from .record import JobRecord, Record, StageRecord
from .remote import remote_exception

log = logging.getLogger(__name__)
# How long a task whose persisted input is on a busy executor waits for it (seconds).
LOCALITY_WAIT = 1.0


@dataclass(eq=False)
class Stage:
    """Map stage (``dep`` set) or result stage (``func`` set) over ``node``."""

    id: int
    node: Node
    dep: ShuffleDependency | None = None
    func: Callable[[int, Iterator[Any]], Any] | None = None
    # Map stages: where each partition's output is, and its bucket sizes.
    outputs: list[tuple[str, list[int]] | None] = field(default_factory=list)
    ever_done: set[int] = field(default_factory=set)

    @property
    def partitions(self) -> int:
        return self.node.partitions

    def missing(self) -> list[int]:
        return [i for i, out in enumerate(self.outputs) if out is None]


@dataclass(eq=False)
class _Task:
    task_id: int
    job: _Job
    stage: Stage
    partition: int
    executor: Executor
    started: float


class JobFailed(Exception):
    """The job could not complete (no retry left, or it was cancelled)."""


@dataclass(eq=False)
class _Job:
    record: JobRecord
    final: Stage
    partitions: list[int]
    results: dict[int, Any] = field(default_factory=dict)
    failures: dict[tuple[int, int], int] = field(default_factory=dict)
    error: BaseException | None = None
    blobs: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    stage_records: dict[int, StageRecord] = field(default_factory=dict)
    on_progress: Callable[[JobRecord], Any] | None = None
    waiting: dict[tuple[int, int], float] = field(default_factory=dict)


class DAGScheduler:
    """Runs jobs on the executors of ``pool`` (see the module docstring)."""

    def __init__(self, pool: ExecutorPool, record: Record, retries: int = 2) -> None:
        self.pool = pool
        self.record = record
        self.retries = retries
        self.map_stages: dict[int, Stage] = {}  # by shuffle id
        self.block_locations: dict[tuple[int, int], set[str]] = {}
        self.running: dict[int, _Task] = {}
        self._stage_ids = itertools.count()
        self._task_ids = itertools.count()
        self._job_ids = itertools.count()
        self._job: _Job | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- pool events -------------------------------------------------------------------
    def executor_added(self, executor: Executor) -> None:
        self._wake.set()

    def executor_lost(self, executor: Executor, reason: str) -> None:
        job = self._job
        for task_id in list(executor.running):
            task = self.running.pop(task_id, None)
            if task is not None and job is not None:
                job.record.tasks_lost += 1
        executor.running.clear()
        self._forget_outputs(executor.executor_id)
        self._wake.set()

    def _forget_outputs(self, executor_id: str) -> None:
        for stage in self.map_stages.values():
            for i, out in enumerate(stage.outputs):
                if out is not None and out[0] == executor_id:
                    stage.outputs[i] = None
        for key, where in list(self.block_locations.items()):
            where.discard(executor_id)
            if not where:
                del self.block_locations[key]

    def task_result(self, executor: Executor, result: messages.TaskResult) -> None:
        task = self.running.pop(result.task_id, None)
        executor.running.discard(result.task_id)
        if not executor.running:
            executor.idle_since = time.monotonic()
        self._wake.set()
        job = self._job
        if task is None:
            return
        for key in result.cached:  # persisted partitions are good whatever the job
            self.block_locations.setdefault(key, set()).add(executor.executor_id)
            executor.blocks.add(key)
        if task.job is not job:
            # A task of a job that has ended (it failed or was cancelled): a map output
            # is still good for later jobs; anything else is dropped.
            if result.ok and task.stage.dep is not None:
                task.stage.ever_done.add(task.partition)
                task.stage.outputs[task.partition] = (executor.executor_id, result.sizes or [])
            return
        assert job is not None
        srec = self._stage_record(job, task.stage)
        srec.task_seconds += result.duration
        srec.bytes_read += result.bytes_read
        if result.ok:
            srec.tasks_done += 1
            job.record.tasks_done += 1
            stage, p = task.stage, task.partition
            if stage.dep is not None:
                if p in stage.ever_done:
                    srec.recomputed += 1
                    job.record.recomputed += 1
                stage.ever_done.add(p)
                stage.outputs[p] = (executor.executor_id, result.sizes or [])
                srec.bytes_written += sum(result.sizes or [])
            else:
                job.results[p] = cloudpickle.loads(result.value or b"")
            if job.on_progress is not None:
                job.on_progress(job.record)
            return
        if result.fetch_failed is not None:
            log.warning("task %d could not fetch from %s: its outputs are recomputed",
                        result.task_id, result.fetch_failed)
            job.record.fetch_failures += 1
            lost = self.pool.executors.get(result.fetch_failed)
            if lost is not None and lost.alive:
                self.pool._lose(lost, "its shuffle outputs cannot be fetched")
            else:
                self._forget_outputs(result.fetch_failed)
            return
        key = (task.stage.id, task.partition)
        job.failures[key] = job.failures.get(key, 0) + 1
        srec.tasks_failed += 1
        job.record.tasks_failed += 1
        if job.failures[key] > self.retries:
            job.error = remote_exception(result.error, result.error_type, result.traceback)

    # -- jobs --------------------------------------------------------------------------
    def _map_stage(self, dep: ShuffleDependency) -> Stage:
        stage = self.map_stages.get(dep.shuffle_id)
        if stage is None:
            stage = Stage(next(self._stage_ids), dep.parent, dep=dep,
                          outputs=[None] * dep.parent.partitions)
            self.map_stages[dep.shuffle_id] = stage
        return stage

    def _fully_cached(self, node: Node) -> bool:
        return node.persisted and all((node.id, i) in self.block_locations
                                      for i in range(node.partitions))

    def parents(self, node: Node) -> list[Stage]:
        """The map stages ``node`` reads through narrow dependencies."""
        found: list[Stage] = []
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if n.id in seen or self._fully_cached(n):
                continue
            seen.add(n.id)
            for dep in n.shuffle_deps():
                found.append(self._map_stage(dep))
            stack.extend(n.narrow_nodes())
        return found

    def _runnable(self, job: _Job, stage: Stage, out: list[tuple[Stage, int]],
                  seen: set[int], left: list[int]) -> bool:
        """Add the tasks of ``stage`` (or of its missing parents) that may run now, and
        count in ``left[0]`` the partitions still to compute; True when ``stage`` is
        complete."""
        if stage.id in seen:
            return stage is not job.final and not stage.missing()
        seen.add(stage.id)
        if stage is job.final:
            missing = [p for p in job.partitions if p not in job.results]
        else:
            missing = stage.missing()
        if not missing:
            return True
        left[0] += len(missing)
        ready = True
        for parent in self.parents(stage.node):
            if not self._runnable(job, parent, out, seen, left):
                ready = False
        if ready:
            busy = {(t.stage.id, t.partition) for t in self.running.values()}
            out.extend((stage, p) for p in missing if (stage.id, p) not in busy)
        return False

    def new_record(self, description: str) -> JobRecord:
        """The record of a job about to be run (any thread)."""
        return JobRecord(next(self._job_ids), description, time.time())

    async def run_job(self, node: Node, func: Callable[[int, Iterator[Any]], Any],
                      partitions: list[int] | None, record: JobRecord,
                      on_progress: Callable[[JobRecord], Any] | None = None) -> list[Any]:
        """Compute ``func(i, records of partition i)`` for each partition (all by default);
        the values in partition order."""
        async with self._lock:
            parts = list(range(node.partitions)) if partitions is None else partitions
            record.submitted = time.time()
            self.record.jobs.append(record)
            final = Stage(next(self._stage_ids), node, func=func)
            job = _Job(record, final, parts, on_progress=on_progress)
            self._job = job
            self.pool.set_busy(True)
            try:
                await self._drive(job)
            except BaseException as exc:
                record.status = "cancelled" if isinstance(exc, asyncio.CancelledError) \
                    else "failed"
                raise
            finally:
                record.duration = time.time() - record.submitted
                record.executors_lost = len(self.pool.lost) - record.executors_lost
                self._job = None
                self.pool.set_busy(False)
            record.status = "succeeded"
            return [job.results[p] for p in parts]

    async def _drive(self, job: _Job) -> None:
        job.record.executors_lost = len(self.pool.lost)
        while True:
            if job.error is not None:
                job.record.error = f"{type(job.error).__name__}: {job.error}"
                raise job.error
            todo: list[tuple[Stage, int]] = []
            left = [0]
            self._wake.clear()
            if self._runnable(job, job.final, todo, set(), left):
                return
            job.record.tasks_total = job.record.tasks_done + left[0]
            self._dispatch(job, todo)
            if job.on_progress is not None:
                job.on_progress(job.record)
            await self._wake.wait()

    def _dispatch(self, job: _Job, todo: list[tuple[Stage, int]]) -> None:
        alive = {e.executor_id for e in self.pool.alive()}
        executors = [e for e in self.pool.alive() if e.free_slots > 0]
        now = time.monotonic()
        for stage, p in todo:
            if not executors:
                return
            holders = self._holders(stage, p) & alive
            free_holders = [e for e in executors if e.executor_id in holders]
            if holders and not free_holders:
                # Its persisted input is on a busy executor: wait for it a moment, as
                # Spark's locality wait, rather than compute the partition again.
                since = job.waiting.setdefault((stage.id, p), now)
                if now - since < LOCALITY_WAIT:
                    asyncio.get_running_loop().call_later(
                        since + LOCALITY_WAIT - now + 0.001, self._wake.set)
                    continue
            executor = self._place(stage, p, free_holders or executors)
            self._launch(job, stage, p, executor)
            if executor.free_slots <= 0:
                executors.remove(executor)

    def _holders(self, stage: Stage, p: int) -> set[str]:
        """Executors holding a persisted partition this task reads."""
        found: set[str] = set()
        for node, q in walk_narrow(stage.node, p):
            if node.persisted:
                found.update(self.block_locations.get((node.id, q), ()))
        return found

    def _place(self, stage: Stage, p: int, executors: list[Executor]) -> Executor:
        """The executor for a task: one holding a persisted input, or the most shuffle
        bytes of its partition; else the least busy."""
        if len(executors) == 1:
            return executors[0]
        weight: dict[str, float] = {}
        for node, q in walk_narrow(stage.node, p):
            for executor_id in self.block_locations.get((node.id, q), ()):
                weight[executor_id] = weight.get(executor_id, 0) + 1e18
            for dep in node.shuffle_deps():
                parent = self.map_stages.get(dep.shuffle_id)
                for out in parent.outputs if parent is not None else ():
                    if out is not None and q < len(out[1]):
                        weight[out[0]] = weight.get(out[0], 0) + out[1][q]
        return max(executors, key=lambda e: (weight.get(e.executor_id, 0), e.free_slots))

    def _launch(self, job: _Job, stage: Stage, p: int, executor: Executor) -> None:
        key, blob = self._blob(job, stage)
        inputs = {}
        locations: dict[int, list[tuple[str, str, list[int]]]] = {}
        for node, q in walk_narrow(stage.node, p):
            if isinstance(node, SourceNode):
                inputs[(node.id, q)] = node.slices[q]
            if isinstance(node, ShuffledNode):
                for dep in node.deps:
                    locations[dep.shuffle_id] = self._locations(dep)
        task_id = next(self._task_ids)
        self.running[task_id] = _Task(task_id, job, stage, p, executor, time.monotonic())
        executor.running.add(task_id)
        srec = self._stage_record(job, stage)
        srec.tasks_launched += 1
        srec.started = srec.started or time.time()
        executor.send(messages.RunTask(task_id, key, blob, p, inputs, locations))

    def _locations(self, dep: ShuffleDependency) -> list[tuple[str, str, list[int]]]:
        stage = self.map_stages[dep.shuffle_id]
        by_executor: dict[str, list[int]] = {}
        for m, out in enumerate(stage.outputs):
            if out is not None:
                by_executor.setdefault(out[0], []).append(m)
        return [(e, self.pool.executors[e].address, maps) for e, maps in by_executor.items()
                if e in self.pool.executors]

    def _blob(self, job: _Job, stage: Stage) -> tuple[str, bytes]:
        held = job.blobs.get(stage.id)
        if held is None:
            work: Any = MapWork(stage.node, stage.dep) if stage.dep is not None \
                else ResultWork(stage.node, stage.func)  # type: ignore[arg-type]
            held = (f"{job.record.job_id}-{stage.id}", cloudpickle.dumps(work))
            job.blobs[stage.id] = held
        return held

    def _stage_record(self, job: _Job, stage: Stage) -> StageRecord:
        srec = job.stage_records.get(stage.id)
        if srec is None:
            kind = "shuffle map" if stage.dep is not None else "result"
            srec = StageRecord(job.record.job_id, stage.id, kind, stage.node.name,
                               stage.partitions)
            job.stage_records[stage.id] = srec
            self.record.stages.append(srec)
        srec.finished = time.time()
        return srec

    # -- clean-up ----------------------------------------------------------------------
    def unpersist(self, node: Node) -> None:
        for executor in self.pool.alive():
            executor.send(messages.Forget(datasets=[node.id]))
            executor.blocks = {k for k in executor.blocks if k[0] != node.id}
        for key in [k for k in self.block_locations if k[0] == node.id]:
            del self.block_locations[key]
