"""The worker process's side of the functions executor's pool (:mod:`.worker`).

:func:`fork_child` forks a worker; the child reads calls from its pipe, runs each
(:func:`~.failures.run_call`) and writes back its :class:`~.protocol.Outcome`, until the
pipe closes. Its stdout and stderr go to the log files the parent names with each call
(the file descriptors 1 and 2 are pointed at them when they change).

Frames on the pipes are a 4-byte big-endian length and a body. A call's body is the pickle
of ``(task_id, payload, stdout_path, stderr_path, result_path, starts, offer)``:
``starts`` are the log files' sizes where the call's output begins (None: where the
worker's previous call ended). An answer's body is one byte, :data:`OK` or
:data:`NOT_OK`, the log files' sizes once the call returned (:data:`ENDS`), then the
encoded :class:`~.protocol.Outcome`, complete with its log slices (what the call printed:
the files from its starts to those sizes, its streams flushed), so that the parent
passes it on as it is, with no unpickling and pickling again.

A call with an ``offer`` number was sent while the worker was still running another (the
parent has more calls than free workers): the worker takes it straight after, with no
wait on its pipe, unless the parent took it back meanwhile to run it elsewhere. Who runs
it is settled by :class:`Claim`, shared by the two processes. An offer carries the most
the worker may hold to take it (``fits``, the parent's rule for a call with a ``mem``
limit: what earlier calls left must not take more than half of what the call may use);
a worker grown past it runs nothing more: it answers :data:`DECLINED` and exits, and the
parent gives the call, which never started, to another worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import pickle
import select
import signal
import struct
import sys

from . import logsizes, shm, shm_pool
from .failures import run_call
from .protocol import LogSlice

FRAME_LEN = struct.Struct(">I")
OK, NOT_OK = b"\x01", b"\x00"  # an answer's first byte: did the call return?
DECLINED = b"\x02"  # or: too big for the offer it was to take (it exits)
ENDS = struct.Struct(">QQ")  # then the sizes of the call's stdout and stderr files


SLOTS = 8  # offers a worker's Claim keeps apart: more than it may have open, plus one


_COMMITTED = 1 << 48  # added to an offer's number once the parent counts it as running


class Claim:
    """Who runs a call offered to a busy worker: the worker when it gets to it, or the
    parent, which may take it back until then. Offer ``n`` has slot ``n % SLOTS`` of an
    array both processes share (under a lock): ``n`` while open, ``n + _COMMITTED`` once
    the parent counts on the worker to run it, ``-n`` once the worker took it, 0 once
    taken back. A worker's offers use distinct slots (the parent skips numbers to keep
    clear of a slot in use), so that a frame of an offer taken back finds another number
    in its slot; numbers are never reused."""

    def __init__(self) -> None:
        self._lock = multiprocessing.Lock()
        self._slots = multiprocessing.RawArray("q", SLOTS)

    def offer(self, number: int) -> None:
        with self._lock:
            self._slots[number % SLOTS] = number

    def take(self, number: int) -> bool:
        """The worker runs offer ``number``; False if the parent took it back."""
        with self._lock:
            if self._slots[number % SLOTS] in (number, number + _COMMITTED, -number):
                self._slots[number % SLOTS] = -number
                return True
            return False

    def commit(self, number: int) -> bool:
        """The parent's word that the worker runs offer ``number`` (it read the answer
        before it): it can no longer be taken back. True if the worker took it already."""
        with self._lock:
            if self._slots[number % SLOTS] == -number:
                return True
            self._slots[number % SLOTS] = number + _COMMITTED
            return False

    def started(self, number: int) -> bool:
        """Has the worker taken offer ``number`` (its call runs, or ran)?"""
        with self._lock:
            return self._slots[number % SLOTS] == -number

    def take_back(self, number: int) -> bool:
        """The parent runs the offered call elsewhere; False if it was taken already."""
        with self._lock:
            if self._slots[number % SLOTS] == number:
                self._slots[number % SLOTS] = 0
                return True
            return False


def new_claim() -> Claim | None:
    """A :class:`Claim` (None where the system has no shared semaphores: no offers)."""
    try:
        return Claim()
    except (OSError, ImportError):
        return None


class FrameReader:
    """Frames from a pipe, a chunk at a time: the frames the parent sent together (calls
    offered behind the running one) come in one read, not two per frame."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def buffered(self) -> bool:
        """Is a whole frame read already (none to wait for on the pipe)?"""
        buffer = self._buffer
        return len(buffer) >= 4 and len(buffer) >= 4 + FRAME_LEN.unpack_from(buffer)[0]

    def next(self) -> bytes:
        """The next frame's body; EOFError once the pipe closes."""
        buffer = self._buffer
        while True:
            if len(buffer) >= 4:
                end = 4 + FRAME_LEN.unpack_from(buffer)[0]
                if len(buffer) >= end:
                    self._buffer = buffer[end:]
                    return buffer[4:end]
                want = end - len(buffer)
            else:
                want = 4 - len(buffer)
            chunk = os.read(self.fd, max(want, 1 << 16))
            if not chunk:
                raise EOFError
            buffer += chunk
            self._buffer = buffer


def write_frame(fd: int, data: bytes) -> None:
    """Write ``data`` as one frame (its length first)."""
    view = memoryview(FRAME_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def fork_child(claim: Claim | None) -> tuple[int, int, int]:
    """Fork one worker: its pid, the fd its answers come from and the fd calls go to
    (the child never returns from here)."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    # The executor's objects move to the collector's permanent generation, so that the
    # child's collections do not touch (and copy) every page it shares with the parent.
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(to_child_w)
            os.close(from_child_r)
            _child_main(to_child_r, from_child_w, claim)
        finally:
            os._exit(1)
    os.close(to_child_r)
    os.close(from_child_w)
    return pid, from_child_r, to_child_w


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child_main(rfd: int, wfd: int, claim: Claim | None) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    keep = {0, 1, 2, rfd, wfd}
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    # print() goes to fds 1 and 2 whatever the parent had in sys.stdout and sys.stderr;
    # line-buffered, so that what a running call printed shows in fut.logs() at once.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                      closefd=False)
    logs = ["", ""]  # the files fds 1 and 2 point at
    ends = (0, 0)  # their sizes when the last call returned
    logsizes.forget_all(close=False)  # the parent's descriptors, closed above
    shm.keep_until_sent()  # a call's large values are unmapped and freed after its outcome
    frames = FrameReader(rfd)
    while True:
        # Idle, let go of the mappings kept of client files since freed (see shm_pool).
        while shm_pool._writable and not frames.buffered() and \
                not select.select([rfd], [], [], shm_pool.POOL_IDLE / 2)[0]:
            shm_pool.forget_unlinked()
        try:
            _task_id, payload, out_path, err_path, result_path, starts, offer, fits = \
                pickle.loads(frames.next())
        except EOFError:
            os._exit(0)
        if offer and fits and _resident() > fits and \
                _resident() - shm_pool.kept_rss(os.getpid()) > fits:
            # grown too big for it (before taking it: it never starts here): retire
            write_frame(wfd, DECLINED + ENDS.pack(*ends))
            os._exit(0)
        if offer and (claim is None or not claim.take(offer)):
            continue  # taken back: it runs elsewhere
        if starts is None:  # an offer: where the call before ended, or new files' start
            starts = ends if logs == [out_path, err_path] else (0, 0)
        for fd, path in ((1, out_path), (2, err_path)):
            if logs[fd - 1] != path:
                _redirect(fd, path)
                logs[fd - 1] = path
        outcome = run_call(payload, result_path)  # (its streams flushed)
        ends = (logsizes.file_size(out_path), logsizes.file_size(err_path))
        outcome.stdout, outcome.stderr = (LogSlice(out_path, starts[0], ends[0] - starts[0]),
                                          LogSlice(err_path, starts[1], ends[1] - starts[1]))
        write_frame(wfd, (OK if outcome.ok else NOT_OK) + ENDS.pack(*ends) + outcome.encode())
        shm.sent()


_statm = [-1]  # this worker's /proc/self/statm, kept open
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _resident() -> int:
    """This process's resident bytes (``/proc/self/statm``, one pread; 0 without it). The
    descriptor is opened again when it fails (a call's code may have closed it)."""
    for _ in (0, 1):
        try:
            if _statm[0] < 0:
                _statm[0] = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(_statm[0], 128, 0).split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            _statm[0] = -1
    return 0


def _redirect(target: int, path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, target)
    os.close(fd)
