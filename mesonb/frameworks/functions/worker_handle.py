"""The functions executor's handle on one forked worker (:class:`Worker`: its pipes, the
call it runs, its log files, its memory), a call's answer as the worker encoded it
(:class:`Finished`), a call waiting for a worker (:class:`WaitingCall`), and how a call
ends when its worker dies (:class:`WorkerDied`). The pool that drives them:
:mod:`.worker`; the worker process's side: :mod:`.worker_child`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from dataclasses import dataclass, field

import psutil

from . import proctree, shm_pool
from .logsizes import file_size as _size  # (fstat of a descriptor kept open)
from .protocol import LogSlice, Outcome
from .worker_child import Claim, fork_child, new_claim


class WorkerDied(Exception):
    """The worker running a call died or was killed; ``reason`` is a Mesos reason name,
    ``stdout``/``stderr`` what the call wrote before (None for a call never started)."""

    def __init__(self, message: str, reason: str | None = None,
                 stdout: LogSlice | None = None, stderr: LogSlice | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.stdout, self.stderr = stdout, stderr


@dataclass(eq=False)
class Worker:
    pid: int
    rfd: int  # results from the child
    wfd: int  # calls to the child
    task_id: str | None = None
    mem_limit: float = 0.0  # bytes; 0 = none
    future: asyncio.Future[Finished] | None = None
    kill_reason: tuple[str, str | None] | None = None
    buffer: bytes = b""  # the start of an answer not read whole yet
    watched: bool = False
    logs: tuple[str, str] | None = None  # this worker's current stdout and stderr files
    log_starts: tuple[int, int] = (0, 0)  # their sizes when the current call began
    log_files: int = 0
    calls: int = 0  # calls handed to it so far
    statm: int = -1  # its /proc/<pid>/statm, kept open: its memory in one pread
    tree: list[int] = field(default_factory=list)  # its descendants, at the last look
    kept: tuple[int, int] = (-2, 0)  # (statm's shared pages, kept mappings' bytes) then
    claim: Claim | None = None  # who runs the call offered to it (None: no offers)
    offered: deque[str] = field(default_factory=deque)  # calls sent to run after this one
    unread: int = 0  # an offer it runs whose frame it may not have read yet (its slot)
    declined: bool = False  # it answered DECLINED: its call never started (it exits)
    committed: WaitingCall | None = None  # the offered call it runs, until its answer

    def rss(self) -> int:
        """The worker process's resident bytes (itself only; see :attr:`tree`)."""
        return self._statm()[0]

    def rss_less_kept(self) -> int:
        """:meth:`rss` less its kept mappings of the client's files (the client's pages,
        :func:`~.shm_pool.kept_rss`, read from ``smaps`` only when its file-backed pages
        changed since; before ``statm``: a mapping made in between counts)."""
        if self.kept[0] != self._statm()[1]:
            self.kept = (self._statm()[1], shm_pool.kept_rss(self.pid))
        return self._statm()[0] - self.kept[1]

    def _statm(self) -> tuple[int, int]:
        """Resident bytes, and the pages of them backed by files or shared memory."""
        if self.statm < 0:
            try:
                self.statm = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:  # no /proc
                try:
                    return psutil.Process(self.pid).memory_info().rss, -1
                except psutil.Error:
                    return 0, -1
        try:
            fields = os.pread(self.statm, 128, 0).split()
            return int(fields[1]) * proctree.PAGE, int(fields[2])
        except (OSError, IndexError, ValueError):
            return 0, -1

    def log_slices(self) -> tuple[LogSlice | None, LogSlice | None]:
        """What the current call wrote to stdout and stderr so far."""
        if self.logs is None:
            return None, None
        ends = [_size(path) for path in self.logs]
        return (LogSlice(self.logs[0], self.log_starts[0], ends[0] - self.log_starts[0]),
                LogSlice(self.logs[1], self.log_starts[1], ends[1] - self.log_starts[1]))


@dataclass(frozen=True, slots=True)
class Finished:
    """A call's outcome as its worker encoded it (:meth:`~.protocol.Outcome.encode`, with
    the call's log slices): ``data`` goes into the terminal update as it is."""

    ok: bool  # the call returned (outcome.ok)
    data: bytes

    def outcome(self) -> Outcome:
        """The decoded :class:`~.protocol.Outcome`."""
        return Outcome.decode(self.data)


@dataclass(eq=False)
class WaitingCall:
    """A call that found no idle worker."""

    payload: bytes
    mem_mb: float
    future: asyncio.Future[Finished]
    start_by: float  # loop time when a worker is forked for it, if none came free
    offered_to: Worker | None = None  # the busy worker it was sent to (Pool._offer)
    offer: int = 0  # that offer's number (worker_child.Claim)
    logs: tuple[str, str] | None = None  # the log files it would write there
    starts: tuple[int, int] | None = None  # and their sizes (None: the current call's ends)


def fork_worker() -> Worker:
    """Fork one worker (:func:`~.worker_child.fork_child`)."""
    claim = new_claim()
    pid, rfd, wfd = fork_child(claim)
    return Worker(pid=pid, rfd=rfd, wfd=wfd, claim=claim)
