"""A call's way through the client, on its loop: from ``submit`` to its outcome.

:class:`Job` is what the client holds of one call; :class:`ClusterJobs` (a part of
:class:`~.cluster.Cluster`) hands jobs from the caller's thread to the loop, admits them
(resources, out-of-band data, dependencies), launches each as a task of the functions
framework, cancels them, and settles their futures when the framework's result handling
(:class:`~mesonb.frameworks.functions.results.Results`) reaches an outcome.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from mesonb.frameworks.functions.protocol import INLINE_MAX, Call, Ref
from mesonb.frameworks.functions.results import CallRecord, Results, TaskError
from mesonb.frameworks.functions.scheduler import (
    EXECUTOR_RESOURCES,
    FunctionsScheduler,
    TaskSpec,
)
from mesonb.frameworks.functions.shm import Shm
from mesonb.protocol.resources import Resources
from mesonb.tasks import spawn

from .errors import ResourceError
from .futures import Future
from .sizes import call_resources

log = logging.getLogger(__name__)
_SUFFIXES = random.Random()  # a task id's 8 hex digits (seeded from os.urandom; the user's
# random.seed() leaves it alone): as unique as uuid4's first 8, a tenth of the cost


@dataclass(eq=False)
class Job:
    """One call, as the client tracks it from submit to its outcome."""

    future: Future
    name: str
    resources: Resources
    retries: int
    call: bytes | None = None
    command: str | None = None
    deps: list[Future] = field(default_factory=list)
    call_url: str | None = None
    shm: Shm | None = None  # the call's large buffers, in shared memory
    fn: bytes | None = None  # the function, pickled apart from its arguments
    health_check: dict[str, Any] | None = None  # Mesos's HealthCheck JSON
    closed: bool = False  # the cluster closed under it

    @property
    def record(self) -> CallRecord:
        return self.future.record

    def over(self) -> bool:
        """The caller no longer waits for this call."""
        return self.future.done() or self.closed


class ClusterJobs:
    """The part of :class:`~.cluster.Cluster` that takes calls from submit to their
    outcome, on the client's loop (see the module docstring)."""

    # set by Cluster
    closed: bool
    _lt: Any
    _jobs: dict[str, Job]
    _posted: deque[Job]
    _drain_scheduled: bool
    _unannounced: list[Future]  # settled (done), the threads waiting on them not yet woken
    _announcing: asyncio.Handle | None  # _announce_settled, scheduled
    _background: set[asyncio.Future[Any]]
    _scheduler: FunctionsScheduler
    _results: Results
    _blobs: Any
    _shm_dir: str | None
    _offer_holders: list[Any]

    def _could_hold(self, need: Resources) -> bool:
        raise NotImplementedError

    async def _refresh_agents(self) -> None:
        raise NotImplementedError

    def _too_big(self, job: Job) -> str:
        raise NotImplementedError

    # -- submission (runs on the loop) ---------------------------------------------
    def _resources(self, cpus: float, mem: Any, disk: Any, gpus: Any) -> Resources:
        if self.closed:
            raise RuntimeError("this cluster is closed")
        return call_resources(cpus, mem, disk, gpus)

    def _post(self, job: Job) -> None:
        """Hand ``job`` to the loop (any thread). A burst of submits wakes the loop once:
        jobs wait in a deque, and only the first of a burst schedules the drain."""
        self._jobs[job.future.key] = job
        self._posted.append(job)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._lt.call_soon(self._drain_posted)

    def _drain_posted(self) -> None:
        self._drain_scheduled = False  # first: a job posted from now on schedules again
        posted = self._posted
        while posted:
            self._spawn_admit(posted.popleft())

    def _spawn_admit(self, job: Job) -> None:
        if not job.deps and (job.call is None or len(job.call) <= INLINE_MAX) and \
                self._could_hold(self._need(job)):
            self._launch(job)  # the usual case, at once
            return
        spawn(self._admit(job), self._background, "admitting a call", logger=log)

    def _need(self, job: Job) -> Resources:
        """What the task needs on one agent: with the executor's share for a call."""
        return job.resources + EXECUTOR_RESOURCES if job.command is None else job.resources

    async def _admit(self, job: Job) -> None:
        need = self._need(job)
        if not self._could_hold(need):
            await self._refresh_agents()
            if not self._could_hold(need):
                self._finish(job, exc=ResourceError(self._too_big(job)))
                return
        if job.future.done():  # cancelled meanwhile
            self._finish(job)
            return
        if job.call is not None and len(job.call) > INLINE_MAX:
            job.call_url = self._blobs.put(job.call)
        if not job.deps:
            self._launch(job)
            return
        remaining = {id(d) for d in job.deps}
        loop = asyncio.get_running_loop()

        def dep_done(dep: concurrent.futures.Future) -> None:
            remaining.discard(id(dep))
            if not remaining:
                self._launch(job)

        for dep in job.deps:
            dep.add_done_callback(lambda d: loop.call_soon_threadsafe(dep_done, d))

    def _launch(self, job: Job) -> None:
        fut = job.future
        if job.over() or self.closed:
            self._finish(job)
            return
        refs = []
        for dep in job.deps:
            if dep.cancelled():
                self._finish(job, exc=concurrent.futures.CancelledError(
                    f"dependency {dep!r} was cancelled"))
                return
            if dep.exception() is not None:
                self._finish(job, exc=dep.exception())
                return
            refs.append(dep._ref if dep._ref is not None else
                        Ref(data=cloudpickle.dumps(dep.result())))
        call = Call(call=None if job.call_url else job.call,
                    call_url=Ref(url=job.call_url) if job.call_url else None, deps=refs,
                    shm=job.shm, shm_dir=self._shm_dir, fn=job.fn)
        record = fut.record
        record.attempts += 1
        record.logs = record.running_logs = None  # a retry's output is its own
        task_id = f"{fut.key}-{_SUFFIXES.getrandbits(32):08x}"
        record.task_id = task_id
        fut.started = fut.launched = None
        spec = TaskSpec(task_id=task_id, name=job.name, resources=job.resources,
                        on_status=self._on_status, command=job.command,
                        data=None if job.command else call.encode(),
                        health_check=job.health_check)
        spec.extra["job"] = job
        self._scheduler.enqueue(spec)

    def _cancel(self, fut: Future) -> None:
        """``fut`` was cancelled (any thread)."""
        with contextlib.suppress(RuntimeError):  # a closed loop: the cluster's calls are over
            self._lt.call_soon(self._cancelled, fut)

    def _cancelled(self, fut: Future) -> None:
        """On the loop: forget a call not launched yet (waiting for its dependencies, or
        queued in the scheduler) with its out-of-band data; KILL a launched one, which
        is forgotten on its terminal update."""
        job = self._jobs.get(fut.key)
        if job is None:
            return
        if fut.task_id is None or self._scheduler.kill(fut.task_id):
            self._finish(job, settle=False)

    def _finish(self, job: Job, value: Any = None, exc: BaseException | None = None,
                settle: bool = True) -> None:
        self._jobs.pop(job.future.key, None)
        self._blobs.drop(job.call_url)
        if job.shm is not None:
            job.shm.remove()
            job.shm = None
        job.call = job.call_url = None  # dependency callbacks may hold the job a while
        job.deps = []
        if settle and job.future._settle_quiet(value, exc):
            # Threads blocked on it are woken with the other outcomes of this loop turn
            # (:meth:`_announce_settled`), each once, not once per future.
            self._unannounced.append(job.future)
            if self._announcing is None:
                self._announcing = self._lt.loop.call_soon(self._announce_settled)

    def _events_handled(self) -> None:
        """The events of one read from the master were handled: the announcement of the
        outcomes they settled goes after what they started (the placement of new work
        on the offers that came with them, which sends an ACCEPT), so that the caller's
        thread, once woken, does not take the GIL from the loop in mid-turn."""
        if self._announcing is not None:
            self._announcing.cancel()
            self._announcing = self._lt.loop.call_soon(self._announce_settled)

    def _announce_settled(self) -> None:
        """Wake the threads (and run the callbacks) waiting on the futures settled since
        the last call: after the rest of the loop turn that settled them, so a caller in
        ``f.result()`` of one future after another finds the next ones set too."""
        if self._announcing is not None:  # called directly (closing): it has nothing left
            self._announcing.cancel()
            self._announcing = None
        settled, self._unannounced = self._unannounced, []
        for fut in settled:
            fut._announce()

    # -- outcomes (the functions framework's result handling settles them) ----------
    def _on_status(self, spec: TaskSpec, status: dict[str, Any]) -> None:
        job: Job = spec.extra["job"]
        if status["state"] == "TASK_RUNNING" and job.future.started is None:
            job.future.started = time.time()
        self._results.on_status(job, spec.agent_url, status)

    def _on_launched(self, spec: TaskSpec) -> None:
        spec.extra["job"].future.launched = time.time()

    def _release_held_offers(self) -> None:
        """The functions framework waits for offers: this client's notebook frameworks
        give theirs back (the master's allocator then offers them to it)."""
        self._offer_holders = [f for f in self._offer_holders if not f.closed]
        for framework in self._offer_holders:
            framework.release_offers()

    def _fatal(self, message: str) -> None:
        for job in list(self._jobs.values()):
            self._finish(job, exc=TaskError(job.future.task_id or job.future.key,
                                            "TASK_LOST", None, f"framework error: {message}"))
