"""Large values between the client and a worker on the same host: pickle protocol 5 with
out-of-band buffers in a shared-memory file.

A value whose out-of-band buffers (numpy arrays, bytes-like data, anything that supports
:class:`pickle.PickleBuffer`) add up to :data:`SHM_MIN` bytes or more is pickled with
``buffer_callback``: the small in-band pickle travels as before (inline), the buffers are
written once into one file under the client's directory in ``/dev/shm``
(:class:`Shm`: its path and the buffers' sizes). The reader maps the file
copy-on-write and unpickles with ``buffers=`` slices of the map: no copy, no HTTP,
nothing through the master, and the result is writable (pages copied only when
written). The writer's side of a call decides: only when the worker sees the client's
directory (the same host, the same ``/dev/shm``) does it use one; otherwise values go
out of band over HTTP as before (:mod:`.protocol`).

Lifetimes: an argument's file is removed when its call ends; a result's when its future
is collected (a dependent call may still read it) or the cluster closes. A mapped file
that is removed stays readable by whoever mapped it.

Reuse: a removed file that nobody maps any more goes to the client's pool, and the next
large value is written into it instead of into fresh pages (:mod:`.shm_pool`), through a
mapping of it that the writer (the client, a worker) keeps from the last time.

A client killed with ``kill -9`` never closes: its directory, ``mesonb-<pid>-<id>``, is
held locked (``flock`` on the directory) for the client's life, and the kernel drops the
lock with the process. :func:`sweep` (run when a client makes its directory and when a
functions executor starts) removes the directories whose lock is free; a live client's
is never touched, whatever its pid namespace. The directory is made as ``<name>.new``
and renamed once locked, so a sweep never sees it unlocked; a ``.new`` one left by a
client killed in between goes once its pid is gone. Its pool, ``<name>.pool``, goes
with it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import logging
import mmap
import os
import pickle
import re
import shutil
import uuid
import weakref
from typing import Any

import cloudpickle

from . import shm_pool

SHM_MIN = 1 << 20  # out-of-band bytes from which a value goes through shared memory
SHM_ROOT = "/dev/shm"
# Threads that write one large value's bytes at once (at most the cores). One: Linux's
# tmpfs takes one write into a file at a time (the inode's lock), so on 2 cores two
# writers took as long as one into fresh pages and ~20% longer into reused ones.
WRITERS = 1
PARALLEL_SLICE = 16 << 20  # bytes each of them writes at least
_DIR_NAME = re.compile(r"mesonb-(\d+)-[0-9a-f]{12}(\.new|\.pool)?")
_held: dict[str, int] = {}  # this process's directories -> the fd holding their lock
_kept: list[Any] | None = None  # a worker's: what its call loaded and dumped, until sent
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Shm:
    """The out-of-band buffers of one pickle: a file and each buffer's size in it."""

    path: str
    sizes: list[int]

    def load(self, inband: bytes) -> Any:
        """The value: ``inband`` unpickled with this file's buffers (mapped, not read:
        its arrays are views of the file, copy-on-write). The file is held (a shared
        ``flock``) while they live, so it is not reused under them (see the module
        docstring); FileNotFoundError when the value was removed."""
        total = sum(self.sizes)
        if not total:
            return pickle.loads(inband, buffers=[b"" for _ in self.sizes])
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.stat(self.path).st_ino != os.fstat(fd).st_ino:  # removed meanwhile
                raise FileNotFoundError(2, "shared-memory value removed", self.path)
            mapped = mmap.mmap(fd, total, access=mmap.ACCESS_COPY)
        except BaseException:
            os.close(fd)
            raise
        shm_pool.mapped(self.path)
        weakref.finalize(mapped, shm_pool.unmapped, self.path, fd)  # with the last array
        if _kept is not None:
            _kept.append(mapped)
        view = memoryview(mapped)
        buffers, offset = [], 0
        for size in self.sizes:
            buffers.append(view[offset:offset + size])
            offset += size
        return pickle.loads(inband, buffers=buffers)

    def remove(self) -> None:
        """The value is no longer needed here (its call ended, its future went): the
        file leaves its path, for the client's pool when nobody maps it any more and
        the client made its pages, else for good."""
        shm_pool.release(self.path, refill=os.path.dirname(self.path) in _held)


def _write_all(fd: int, views: list[memoryview]) -> None:
    """Write ``views`` one after another from the start of the file ``fd`` (new, or taken
    from the pool and cut to their size); with :data:`WRITERS` above one, a large value's
    bytes are written by that many threads at once, each its own slice (``pwrite``
    releases the GIL), for a filesystem that takes parallel writes into one file."""
    total = sum(v.nbytes for v in views)
    writers = min(WRITERS, os.cpu_count() or 1, total // PARALLEL_SLICE)
    if writers < 2:
        at = 0
        for view in views:
            while view:
                written = os.pwrite(fd, view, at)
                view, at = view[written:], at + written
        return
    os.ftruncate(fd, total)
    slices, offset = [], 0  # (view, offset in the file), each at most total / writers
    step = -(-total // writers)
    for view in views:
        for start in range(0, view.nbytes, step):
            slices.append((view[start:start + step], offset + start))
        offset += view.nbytes

    def write(part: tuple[memoryview, int]) -> None:
        view, at = part
        while view:
            written = os.pwrite(fd, view, at)
            view, at = view[written:], at + written

    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, slices))  # raises what a writer raised


def keep_until_sent() -> None:
    """In a worker: the mappings of what each call loads and the values it dumps live
    until :func:`sent` (its outcome is on its way), not only until the call returns:
    unmapping 100 MB of arguments, or freeing a 100 MB result, takes milliseconds that
    the caller then does not wait for."""
    global _kept
    _kept = []


def sent() -> None:
    """The call's outcome is sent: let go of what :func:`keep_until_sent` kept."""
    if _kept:
        _kept.clear()


def client_dir() -> str | None:
    """A new directory of this client's in ``/dev/shm`` (None where there is none),
    locked for this process's life; the leftovers of killed clients are swept first."""
    if not os.path.isdir(SHM_ROOT) or not os.access(SHM_ROOT, os.W_OK):
        return None
    sweep()
    path = os.path.join(SHM_ROOT, f"mesonb-{os.getpid()}-{uuid.uuid4().hex[:12]}")
    os.mkdir(path + ".new", 0o700)
    fd = os.open(path + ".new", os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(path + ".new", path)  # the lock goes with the directory
    _held[path] = fd
    return path


def remove_dir(path: str) -> None:
    """Remove this client's directory and its pool (the cluster closes) and release its
    lock."""
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path + ".pool", ignore_errors=True)
    shm_pool.forget_unlinked()  # the mappings kept of its files
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _abandoned(path: str, pid: int, locked: bool) -> bool:
    """No live process owns the directory: its lock is free (a ``.new`` one, never
    locked for good: its pid is gone; a ``.pool`` one: its client's directory is gone or
    abandoned)."""
    if path.endswith(".pool"):
        owner = path[:-len(".pool")]
        return owner not in _held and (not os.path.isdir(owner)
                                       or _abandoned(owner, pid, locked=True))
    if not locked:
        return not _pid_alive(pid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # gone, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its client lives
    finally:
        os.close(fd)
    return True


def sweep(root: str | None = None) -> list[str]:
    """Remove the shared-memory directories of clients that died without closing (kill
    -9 of a ``Cluster.local()`` process, say) with the blocks left in them; returns the
    directories removed."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(root or SHM_ROOT))
    except OSError:
        return removed
    for entry in entries:
        match = _DIR_NAME.fullmatch(entry.name)
        if match is None or entry.path in _held or not entry.is_dir(follow_symlinks=False):
            continue
        if _abandoned(entry.path, int(match.group(1)), locked=match.group(2) != ".new"):
            shutil.rmtree(entry.path, ignore_errors=True)
            log.info("removed %s, left in shared memory by a dead client", entry.path)
            removed.append(entry.path)
    return removed


def dump(value: Any, directory: str | None) -> tuple[bytes, Shm | None]:
    """``value`` as an in-band pickle and, when its out-of-band buffers are big enough
    and ``directory`` is given, a :class:`Shm` holding them; else one whole pickle."""
    if _kept is not None:
        _kept.append(value)
    if directory is None:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    buffers: list[pickle.PickleBuffer] = []
    inband = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    if not buffers:  # the usual small value: that pickle is the whole of it
        return inband, None
    raws = []
    for buffer in buffers:
        try:
            raws.append(buffer.raw())
        except BufferError:  # not contiguous: in band after all
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    if sum(r.nbytes for r in raws) < SHM_MIN:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    total = sum(r.nbytes for r in raws)
    path, fd = shm_pool.claim(directory, total, grow=directory in _held)
    claimed = fd is not None
    if fd is None:
        path = os.path.join(directory, ("" if directory in _held else shm_pool.WORKER_PREFIX)
                            + uuid.uuid4().hex)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:  # gone, or not ours to write: in band after all
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    try:
        views = [raw.cast("B") for raw in raws]
        # A pool file taken: through this process's mapping kept from an earlier value.
        keep = shm_pool.POOL_BYTES if directory in _held else shm_pool.WORKER_KEEPS
        if not (claimed and shm_pool.write_mapped(fd, views, total, keep)):
            _write_all(fd, views)
    except OSError:  # /dev/shm full: in band after all
        os.close(fd)
        os.unlink(path)
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return inband, Shm(path, [r.nbytes for r in raws])
