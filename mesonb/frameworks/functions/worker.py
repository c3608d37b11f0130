"""The executor's pool of forked worker processes, one function call at a time each.

The executor forks workers before its event loop starts (``Pool.prefork``) and more when
calls find every worker busy for a few milliseconds (:class:`Pool`). A worker reads a
call from its pipe, runs it, and writes back an :class:`~.protocol.Outcome` (the child's
side: :mod:`.worker_child`), which the parent passes on still encoded (:class:`Finished`;
the parent's handle on a worker: :mod:`.worker_handle`).

Memory: a task's ``mem`` covers its worker's whole resident memory plus that of every
process the worker started (its process tree, as Mesos's posix memory isolator counts a
container). The parent samples it every :data:`MONITOR_INTERVAL` seconds while calls with
a limit run; a worker past its task's ``mem`` is killed (SIGKILL, with its descendants)
and replaced, so only that task fails. Workers are reused, so what earlier calls left in
one (imported modules, caches) is charged to the next call too: a call is not handed to a
worker whose leftovers take more than half of what the call may use above a fresh
worker's size; that worker is retired and another, or a new one, takes the call
(:meth:`Pool._fits`: one read of ``/proc/<pid>/statm`` per call with a ``mem`` handed to a
worker that ran calls before). The process tree is read from ``/proc`` at most every
:data:`TREE_SCAN` seconds, and only when a process was created since the last look.

Each worker's stdout and stderr go to two log files of its own in the sandbox
(``logs/worker-<pid>-<n>.stdout``, appended to, a new pair after :data:`LOG_ROTATE`
bytes); the parent notes each file's size before and after a call, so a call's output is
a :class:`~.protocol.LogSlice` of them. No file is made per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import pickle
import select
import signal
from collections import deque

from . import proctree
from .logsizes import file_size as _size  # (executor's hunk: fstat, not a path walk)
from .protocol import Outcome
from .worker_child import DECLINED as _DECLINED
from .worker_child import ENDS as _ENDS
from .worker_child import FRAME_LEN as _LEN
from .worker_child import OK as _OK
from .worker_child import SLOTS
from .worker_child import write_frame as _write_frame
from .worker_handle import Finished, WaitingCall, Worker, WorkerDied, fork_worker

__all__ = ["Finished", "Pool", "Worker", "WorkerDied", "fork_worker"]

log = logging.getLogger(__name__)
MONITOR_INTERVAL = 0.05
TREE_SCAN = 0.25  # seconds between looks at /proc for the workers' descendants
GROW_AFTER = 0.005  # seconds a call waits for a free worker before one is forked for it
LOG_ROTATE = 32 * 2**20  # a worker starts new log files once one is this big
OFFERS = 4  # waiting calls a busy worker may be offered (less than worker_child.SLOTS)


class Pool:
    """Workers that run calls; see the module docstring.

    A call takes the most recently used idle worker. When every worker is busy it waits
    for one to come free; a new worker is forked for it only once it has waited
    :data:`GROW_AFTER` seconds and no worker finished a call for as long: a burst of
    short calls is served by the workers there are (forking costs milliseconds and cold
    pages), while calls that block (sleep, I/O) each soon get a worker of their own, so
    they still run side by side.

    A waiting call is also offered to a busy worker (up to :data:`OFFERS` each): sent down
    its pipe now, so that the worker takes it as soon as its call returns, with no wait
    for the parent to read the answer and send the next call (the worker does not sleep
    between the calls of a burst). It stays a waiting call until then: a worker that
    comes free takes it back (:class:`~.worker_child.Claim`) and runs it, as does a
    worker forked for it after :data:`GROW_AFTER`, so a call never waits longer behind a
    slow one than it waited before.

    Example (inside the executor's event loop)::

        pool = Pool.prefork(2, sandbox)
        outcome = await pool.run("task-1", task_data, mem_mb=512)
    """

    def __init__(self, sandbox: str, workers: list[Worker] | None = None) -> None:
        self.sandbox = sandbox
        self.idle: deque[Worker] = deque(workers or ())
        self.busy: dict[str, Worker] = {}
        self.waiting: dict[str, WaitingCall] = {}  # calls for which no worker was free
        self._monitor: asyncio.Task[None] | None = None
        self._grow: asyncio.TimerHandle | None = None
        self._last_finish = float("-inf")  # loop time a worker last finished a call
        # A fresh worker's size: at first this process's (workers are its forks), then
        # the smallest a worker was when handed its first call.
        self.base_rss = proctree.rss_of(os.getpid())
        self._scanned = -math.inf  # loop time of the last look at the process tree
        self._last_pid = b""  # the newest pid then (/proc/loadavg)
        self._offers = 0  # the last offer's number
        for sub in ("logs", "results"):
            os.makedirs(os.path.join(sandbox, sub), exist_ok=True)
        self._results = os.path.join(sandbox, "results", "")  # (with its trailing slash)

    @classmethod
    def prefork(cls, count: int, sandbox: str) -> Pool:
        return cls(sandbox, [fork_worker() for _ in range(count)])

    def result_path(self, task_id: str) -> str:
        return f"{self._results}{task_id}.pkl"

    def _log_files(self, worker: Worker,
                   offer: bool = False) -> tuple[tuple[str, str], tuple[int, int]]:
        """The worker's log files for its next call (a new pair once one is big), and
        their sizes now: where the call's output starts (one stat of each, not two).
        For an ``offer`` its current files stay :attr:`Worker.logs` (its call writes them)."""
        if worker.logs is not None:
            sizes = (_size(worker.logs[0]), _size(worker.logs[1]))
            if sizes[0] <= LOG_ROTATE and sizes[1] <= LOG_ROTATE:
                return worker.logs, sizes
        worker.log_files += 1
        base = os.path.join(self.sandbox, "logs", f"worker-{worker.pid}-{worker.log_files}")
        logs = (f"{base}.stdout", f"{base}.stderr")
        if not offer:
            worker.logs = logs
        return logs, (_size(logs[0]), _size(logs[1]))

    async def run(self, task_id: str, payload: bytes, mem_mb: float = 0.0) -> Outcome:
        """Run one call; raises :class:`WorkerDied` if its worker dies or is killed."""
        return (await self.submit(task_id, payload, mem_mb)).outcome()

    def submit(self, task_id: str, payload: bytes,
               mem_mb: float = 0.0) -> asyncio.Future[Finished]:
        """Hand the call to a worker now (or queue it) and return the future of its
        encoded outcome (:class:`WorkerDied` if its worker dies)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Finished] = loop.create_future()
        if self.idle:
            # The most recently used worker: its caches and pages are warm, and at low
            # concurrency one or two workers serve every call.
            self._start(self._pick(mem_mb), task_id, payload, mem_mb, future)
        else:
            call = self.waiting[task_id] = WaitingCall(payload, mem_mb, future,
                                                    loop.time() + GROW_AFTER)
            least, fewest = None, OFFERS  # the busy worker with the fewest calls offered
            for worker in self.busy.values():
                offered = len(worker.offered)
                if offered < fewest and worker.claim is not None and \
                        worker.kill_reason is None:
                    least, fewest = worker, offered
                    if not offered:
                        break
            if least is not None:  # (it checks it fits the call itself: _offer)
                self._offer(least, task_id, call)
            if self._grow is None:
                self._grow = loop.call_later(GROW_AFTER, self._grow_for_waiting)
        return future

    def _offer(self, worker: Worker, task_id: str, call: WaitingCall) -> None:
        """Send the waiting ``call`` to busy ``worker``, to run after its current one."""
        assert worker.claim is not None
        used = {self.waiting[t].offer % SLOTS for t in worker.offered}
        if worker.unread:  # (the offer it runs may be unread)
            used.add(worker.unread % SLOTS)
        self._offers += 1
        while self._offers % SLOTS in used:
            self._offers += 1
        if worker.offered:  # after another offer: on its files, where that one ends
            call.logs, call.starts = self.waiting[worker.offered[-1]].logs, None
        else:
            call.logs, starts = self._log_files(worker, offer=True)
            call.starts = None if call.logs == worker.logs else starts
        call.offered_to, call.offer = worker, self._offers
        worker.offered.append(task_id)
        worker.claim.offer(call.offer)
        assert call.logs is not None
        # the most it may hold to take the call, as _fits has it (0: no limit)
        headroom = call.mem_mb * 2**20 - self.base_rss
        fits = int(self.base_rss + headroom / 2) if call.mem_mb and headroom > 0 else 0
        try:
            _write_frame(worker.wfd, pickle.dumps(
                (task_id, call.payload, *call.logs, self.result_path(task_id), call.starts,
                 call.offer, fits)))
        except OSError:
            self._died(worker)

    def _take_back(self, task_id: str, call: WaitingCall) -> bool:
        """Withdraw ``call``'s offer; False when its worker took it already (it runs)."""
        worker = call.offered_to
        if worker is None:
            return True
        if worker.claim is None or not worker.claim.take_back(call.offer):
            return False
        worker.offered.remove(task_id)
        call.offered_to = None
        return True

    def _commit(self, worker: Worker, ends: tuple[int, int]) -> None:
        """``worker`` returned its call and took the one offered to it, which runs now
        (its output from where the call before ended, on the same files)."""
        task_id = worker.offered.popleft()
        assert worker.claim is not None
        call = worker.committed = self.waiting.pop(task_id)
        call.offered_to = None
        taken = worker.claim.commit(call.offer)  # (taken by the worker, or it will be)
        worker.unread = 0 if taken else call.offer
        self._begin(worker, task_id, call.mem_mb, call.future)
        assert call.logs is not None
        if call.starts is not None:
            worker.log_starts = call.starts
        else:  # where the call before ended; on files it did not write, their start
            worker.log_starts = ends if call.logs == worker.logs else (0, 0)
        worker.logs = call.logs
        for waiting_id, waiting in self.waiting.items():  # more, offered to it
            if len(worker.offered) >= OFFERS:
                break
            if waiting.offered_to is None and not waiting.future.done():
                self._offer(worker, waiting_id, waiting)

    def _start(self, worker: Worker, task_id: str, payload: bytes, mem_mb: float,
               future: asyncio.Future[Finished]) -> None:
        if not worker.watched:
            asyncio.get_running_loop().add_reader(worker.rfd, self._readable, worker)
            worker.watched = True
        self._begin(worker, task_id, mem_mb, future)
        (out, err), worker.log_starts = self._log_files(worker)
        try:
            _write_frame(worker.wfd, pickle.dumps(
                (task_id, payload, out, err, self.result_path(task_id), worker.log_starts, 0,
                 0)))
        except OSError:
            self._died(worker)

    def _begin(self, worker: Worker, task_id: str, mem_mb: float,
               future: asyncio.Future[Finished]) -> None:
        """Note that ``worker`` runs the call ``task_id``."""
        worker.task_id = task_id
        worker.calls += 1
        worker.mem_limit = mem_mb * 2**20
        worker.kill_reason = None
        worker.future = future
        self.busy[task_id] = worker
        if mem_mb and (self._monitor is None or self._monitor.done()):
            self._monitor = asyncio.ensure_future(self._watch_memory())

    def _fits(self, worker: Worker, mem_mb: float) -> bool:
        """May ``worker`` take a call limited to ``mem_mb``? A fresh one may (and its size
        is noted: :attr:`base_rss`); one that ran calls before keeps what they left (all
        of it charged to this call), and may while that takes at most half of what the
        call may use above a fresh worker's size. Costs one pread of its
        ``/proc/<pid>/statm``, for calls with a limit only."""
        if not mem_mb:
            return True
        rss = worker.rss()
        if not worker.calls:
            self.base_rss = min(self.base_rss, rss)
            return True
        headroom = mem_mb * 2**20 - self.base_rss
        if headroom <= 0 or rss - self.base_rss <= headroom / 2:
            return True
        # Its mappings kept of the client's files are not its memory (looked at only now).
        return worker.rss_less_kept() - self.base_rss <= headroom / 2

    def _pick(self, mem_mb: float) -> Worker:
        """The most recently used idle worker that fits a call of ``mem_mb``; those passed
        over are retired. A new worker when none fits."""
        while self.idle:
            worker = self.idle.pop()
            if self._fits(worker, mem_mb):
                return worker
            self._retire(worker, mem_mb)
        return fork_worker()

    def _retire(self, worker: Worker, mem_mb: float) -> None:
        """End an idle worker grown too big for the calls it gets (its pipe's end reaps it)."""
        log.info("worker %d holds %d MB after %d calls, too much for a call limited to %g MB;"
                 " retiring it", worker.pid, worker.rss() >> 20, worker.calls, mem_mb)
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)

    def _next_waiting(self, worker: Worker) -> bool:
        """Hand the longest-waiting call to ``worker`` (or, when it does not fit the call, to
        a new worker, retiring it), taking it back from the busy worker it was offered
        to; False when none waits (or each runs already) and ``worker`` is still free."""
        for task_id, call in list(self.waiting.items()):
            if not self._take_back(task_id, call):
                continue  # its worker took it: it runs there (its answer comes first)
            del self.waiting[task_id]
            if not call.future.done():
                if not self._fits(worker, call.mem_mb):
                    self._retire(worker, call.mem_mb)
                    worker = fork_worker()
                self._start(worker, task_id, call.payload, call.mem_mb, call.future)
                return True
        return False

    def _grow_for_waiting(self) -> None:
        """Fork a worker for each call that has waited :data:`GROW_AFTER` seconds, unless
        workers are coming free: one that finished a call within the last GROW_AFTER
        seconds means the queue is moving (a burst of short calls), and forking would
        only take the CPU those workers need (a fork costs milliseconds of this loop)."""
        self._grow = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last_finish < GROW_AFTER:
            if self.waiting:
                self._grow = loop.call_at(self._last_finish + GROW_AFTER,
                                          self._grow_for_waiting)
            return
        for task_id, call in list(self.waiting.items()):
            if call.start_by > now:
                break
            if not self._take_back(task_id, call):
                continue  # its worker took it: it runs there (its answer comes first)
            del self.waiting[task_id]
            if not call.future.done():
                self._start(fork_worker(), task_id, call.payload, call.mem_mb, call.future)
        due = [call.start_by for call in self.waiting.values() if call.start_by > now]
        if due:
            self._grow = loop.call_at(min(due), self._grow_for_waiting)

    def kill(self, task_id: str, message: str = "killed", reason: str | None = None) -> bool:
        waiting = self.waiting.get(task_id)
        if waiting is not None:
            offered_to = waiting.offered_to
            if self._take_back(task_id, waiting):
                del self.waiting[task_id]
                if not waiting.future.done():
                    waiting.future.set_exception(WorkerDied(message, reason))
                return True
            # its worker took it: once the answer before it is read, it runs there
            while offered_to is not None and task_id in offered_to.offered and \
                    offered_to.rfd >= 0 and select.select([offered_to.rfd], [], [], 1.0)[0]:
                self._readable(offered_to)
        worker = self.busy.get(task_id)
        if worker is None:
            return False
        worker.kill_reason = (message, reason)
        proctree.kill_trees([worker.pid])
        return True

    def close(self) -> None:
        if self._grow is not None:
            self._grow.cancel()
            self._grow = None
        for call in self.waiting.values():
            if not call.future.done():
                call.future.set_exception(WorkerDied("the executor is shutting down"))
        self.waiting.clear()
        if self.busy:  # what their calls started goes too
            proctree.kill_trees([w.pid for w in self.busy.values()])
        for worker in [*self.idle, *self.busy.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
            self._release(worker)
        self.idle.clear()

    def _readable(self, worker: Worker) -> None:
        try:
            chunk = os.read(worker.rfd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self._died(worker)
            return
        data = worker.buffer + chunk if worker.buffer else chunk
        start = 0
        while len(data) - start >= 4:  # (each answer: its length, OK or not, ends, outcome)
            end = start + 4 + _LEN.unpack_from(data, start)[0]
            if len(data) < end:
                break
            if data[start + 4] == _DECLINED[0]:
                worker.declined = True  # (it exits: _died)
            else:
                self._finished(worker, Finished(data[start + 4] == _OK[0],
                                                data[start + 21:end]),
                               _ENDS.unpack_from(data, start + 5))
            start = end
        worker.buffer = data[start:] if start else data

    def _finished(self, worker: Worker, outcome: Finished, ends: tuple[int, int]) -> None:
        self._last_finish = asyncio.get_running_loop().time()
        future, task_id = worker.future, worker.task_id
        worker.future = worker.task_id = None
        worker.unread, worker.committed = 0, None  # (it read every frame before it)
        if task_id is not None:
            self.busy.pop(task_id, None)
        if worker.offered:
            self._commit(worker, ends)
        elif not self._next_waiting(worker):
            self.idle.append(worker)
        if future is not None and not future.done():
            future.set_result(outcome)

    def _died(self, worker: Worker) -> None:
        self._release(worker)
        code: int | None = None
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(worker.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        if worker.task_id is not None:
            self.busy.pop(worker.task_id, None)
        if worker in self.idle:
            self.idle.remove(worker)
        message, reason = worker.kill_reason or (
            f"the worker process exited ({_describe(code)})", None)
        offered = [self.waiting[t] for t in worker.offered if t in self.waiting]
        worker.offered.clear()
        if worker.declined and worker.committed is not None and worker.task_id is not None \
                and worker.kill_reason is None:
            # Grown too big for the call it was to take (as _next_waiting retires a free
            # one): the call, never started, goes to a new worker.
            log.info("worker %d holds too much for a call limited to %g MB; retired it",
                     worker.pid, worker.committed.mem_mb)
            call, worker.committed = worker.committed, None
            if not call.future.done():
                self._start(fork_worker(), worker.task_id, call.payload, call.mem_mb,
                            call.future)
        elif worker.future is not None and not worker.future.done():
            worker.future.set_exception(WorkerDied(message, reason, *worker.log_slices()))
        for call in offered:  # never started: they wait for other workers, or new ones
            call.offered_to = None
            call.start_by = min(call.start_by, asyncio.get_running_loop().time())
        while offered and self.idle:
            free = self.idle.pop()
            if not self._next_waiting(free):
                self.idle.append(free)
                break
        if offered and self.waiting and self._grow is None:
            self._grow = asyncio.get_running_loop().call_later(0, self._grow_for_waiting)

    def _release(self, worker: Worker) -> None:
        if worker.watched:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(worker.rfd)
            worker.watched = False
        for fd in (worker.rfd, worker.wfd, worker.statm):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        worker.rfd = worker.wfd = worker.statm = -1

    def _look_at_tree(self, now: float) -> None:
        """Note each worker's descendants, at most every :data:`TREE_SCAN` seconds and only
        when a process was created since the last look (the newest pid moved)."""
        if now - self._scanned < TREE_SCAN:
            return
        self._scanned = now
        last_pid = proctree.last_pid()
        if last_pid == self._last_pid:
            return
        self._last_pid = last_pid
        if proctree.available():  # the workers' trees alone, not every process's stat
            for worker in [*self.idle, *self.busy.values()]:
                worker.tree = proctree.descendants(worker.pid)
            return
        children = proctree.all_children()
        for worker in [*self.idle, *self.busy.values()]:
            worker.tree = proctree.descendants_in(worker.pid, children)

    async def _watch_memory(self) -> None:
        # The first look is one interval after a call starts: a short call costs nothing.
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            if not any(w.mem_limit for w in self.busy.values()):
                return
            self._look_at_tree(loop.time())
            for worker in list(self.busy.values()):
                if not worker.mem_limit or worker.kill_reason:
                    continue
                if worker.unread and worker.claim is not None and \
                        not worker.claim.started(worker.unread):
                    continue  # its call is not started: what it holds is the last one's
                rss = worker.rss()
                if worker.tree:
                    rss += sum(proctree.rss_of(pid) for pid in worker.tree)
                if rss > worker.mem_limit:  # less its mappings kept, not its memory
                    rss += worker.rss_less_kept() - worker.rss()
                if rss > worker.mem_limit:
                    log.warning("task %s uses %d MB, over its limit of %d MB; killing it",
                                worker.task_id, rss >> 20, int(worker.mem_limit) >> 20)
                    also = f" (with {len(worker.tree)} child processes)" if worker.tree else ""
                    self.kill(worker.task_id or "", f"Memory limit exceeded: the task used "
                              f"{rss / 2**20:.0f} MB{also} of its "
                              f"{worker.mem_limit / 2**20:g} MB",
                              "REASON_CONTAINER_LIMITATION_MEMORY")


def _describe(code: int | None) -> str:
    if code is None:
        return "unknown status"
    return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
