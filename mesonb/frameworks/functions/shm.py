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

Reuse (:class:`Shm.remove`, :func:`dump`): filling fresh shared-memory pages costs about
three times what writing into pages already there does (the kernel allocates and
clears 25,600 pages per 100 MB; a write into a reused file is one copy). So a removed
file that nobody maps any more goes to the client's pool, the directory ``<dir>.pool``
(at most :data:`POOL_BYTES` in all), under a new name, and the next large value -- the
client's argument or a worker's result -- is written into one of its files instead of a
new one. Whoever maps a file holds a shared ``flock`` on it for as long as the mapping
lives (the value's arrays); a file still locked so is never pooled, only unlinked (one
the client itself maps, a future dropped before its value, waits for the value's last
array), so a reused file never changes under a live value; and a path is never reused,
so a late reader of a removed value finds it gone rather than another value's bytes. Only files
whose pages the client made are pooled: a worker's fresh result file (named ``w-...``;
its pages are charged to the worker's container) is unlinked, and the client makes a
pool file of its size in the background instead, for the next result. A pool file not
reused within :data:`POOL_IDLE` seconds is freed: a dropped value's memory is kept only
while calls come.

A client killed with ``kill -9`` never closes: its directory, ``mesonb-<pid>-<id>``, is
held locked (``flock`` on the directory) for the client's life, and the kernel drops the
lock with the process. :func:`sweep` (run when a client makes its directory and when a
functions executor starts) removes the directories whose lock is free; a live client's
is never touched, whatever its pid namespace. The directory is made as ``<name>.new``
and renamed once locked, so a sweep never sees it unlocked; a ``.new`` one left by a
client killed in between goes once its pid is gone.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import logging
import mmap
import os
import pickle
import re
import shutil
import threading
import time
import uuid
import weakref
from typing import Any

import cloudpickle

SHM_MIN = 1 << 20  # out-of-band bytes from which a value goes through shared memory
SHM_ROOT = "/dev/shm"
# Threads that write one large value's bytes at once (at most the cores). One: Linux's
# tmpfs takes one write into a file at a time (the inode's lock), so on 2 cores two
# writers took as long as one into fresh pages and ~20% longer into reused ones.
WRITERS = 1
PARALLEL_SLICE = 16 << 20  # bytes each of them writes at least
POOL_BYTES = 1 << 30  # what a client's pool of written-once files may hold
POOL_IDLE = 10.0  # seconds a pool file waits to be reused before it is freed
_DIR_NAME = re.compile(r"mesonb-(\d+)-[0-9a-f]{12}(\.new|\.pool)?")
_BLOCK_NAME = re.compile(r"[0-9a-f]{32}")  # a pool file ready to be taken
WORKER_PREFIX = "w-"  # a file whose pages a worker made: never pooled
_held: dict[str, int] = {}  # this process's directories -> the fd holding their lock
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
        with _mapping:
            _mapped[self.path] = _mapped.get(self.path, 0) + 1
        weakref.finalize(mapped, _unmapped, self.path, fd)  # with the last array
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
        release(self.path)


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
    path, fd = _claim(directory, total)
    if fd is None:
        path = os.path.join(directory, ("" if directory in _held else WORKER_PREFIX)
                            + uuid.uuid4().hex)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:  # gone, or not ours to write: in band after all
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), None
    try:
        _write_all(fd, [raw.cast("B") for raw in raws])
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


# -- the pool of written-once files (see the module docstring) -------------------------
def _claim(directory: str, total: int) -> tuple[str, int | None]:
    """A pool file of ``directory``'s client taken for a value of ``total`` bytes, at a new
    path in ``directory`` and cut to ``total``: ``(path, fd)``; ``("", None)`` when none
    fits. The smallest that holds ``total``; else, for the client only, the largest,
    grown (a worker makes no pages in a pooled file: they would be charged to it)."""
    entries = []
    try:
        for entry in os.scandir(directory + ".pool"):
            if _BLOCK_NAME.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):  # taken meanwhile
                    entries.append((entry.stat().st_size, entry.path))
    except OSError:  # no pool yet, or not ours to read
        return "", None
    fitting = sorted(e for e in entries if e[0] >= total)
    if not fitting and directory in _held:
        fitting = sorted(entries, reverse=True)
    for size, free in fitting:
        path = os.path.join(directory, uuid.uuid4().hex)
        try:
            os.rename(free, path)  # atomic: one taker wins
        except FileNotFoundError:
            continue
        except OSError:  # not ours to take
            return "", None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                if size != total:  # bytes past the value's end go: nothing old is read
                    os.ftruncate(fd, total)
            except OSError:
                os.close(fd)
                raise
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            return "", None
        return path, fd
    return "", None


_mapped: dict[str, int] = {}  # paths this process maps -> how many times
_to_pool: dict[str, str] = {}  # of those, removed ones -> their file, pooled once unmapped
_to_refill: dict[str, tuple[str, int]] = {}  # removed workers' files -> (pool, size)
_mapping = threading.Lock()


def _unmapped(path: str, fd: int) -> None:
    """The last array of one load of ``path`` went: its lock goes, and a file removed
    meanwhile (a future dropped before its value) goes to the pool now."""
    os.close(fd)
    with _mapping:
        _mapped[path] -= 1
        if _mapped[path]:
            return
        del _mapped[path]
        held, refill = _to_pool.pop(path, None), _to_refill.pop(path, None)
    if held is not None:
        _pool(held)
    if refill is not None:
        _refill(*refill)


def release(path: str) -> None:
    """``path`` leaves (see :meth:`Shm.remove`): renamed into the pool when the client
    made its pages, the pool has room and nobody maps it (no shared ``flock``); else
    unlinked, and for a worker's file, a pool file of its size made in the background.
    While this process maps it, it waits in the pool as ``held-...`` for its last array
    to go (and a worker's file's refill waits too)."""
    directory, name = os.path.split(path)
    pool = directory + ".pool"
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return
    with _mapping:
        mapped_here = path in _mapped
    if name.startswith(WORKER_PREFIX) or _pooled_bytes(pool) + size > POOL_BYTES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if name.startswith(WORKER_PREFIX) and directory in _held:
            with _mapping:
                if path in _mapped:
                    _to_refill[path] = (pool, size)
                    return
            _refill(pool, size)
        return
    free = os.path.join(pool, ("held-" if mapped_here else "") + uuid.uuid4().hex)
    try:
        os.rename(path, free)  # no new reader finds it (a late one sees it gone)
    except FileNotFoundError:
        if not os.path.isdir(directory) or os.path.isdir(pool):
            return  # removed already, or its client's directory went
        with contextlib.suppress(FileExistsError):
            os.mkdir(pool, 0o700)
        try:
            os.rename(path, free)
        except FileNotFoundError:
            return
    if mapped_here:
        with _mapping:
            if path in _mapped:
                _to_pool[path] = free
                return
    _pool(free)


def _pool(free: str) -> None:
    """``free`` (in its pool) is ready to be taken when nobody maps it, else unlinked."""
    try:
        fd = os.open(free, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a reader maps it: not reused
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(free)
        return
    finally:
        os.close(fd)
    pool, name = os.path.split(free)
    if name.startswith("held-"):
        try:
            os.rename(free, os.path.join(pool, uuid.uuid4().hex))
        except FileNotFoundError:  # the pool went with its client
            return
    _trim_later(pool)


def _pooled_bytes(pool: str) -> int:
    try:
        return sum(e.stat().st_size for e in os.scandir(pool))
    except OSError:
        return 0


_refills = threading.Lock()  # one pool file made at a time


def _refill(pool: str, size: int) -> None:
    """Make a pool file of ``size`` bytes, its pages allocated by this process, on a
    thread of its own (a worker writes its next result of that size into it)."""

    def make() -> None:
        with _refills:
            if _pooled_bytes(pool) + size > POOL_BYTES or not os.path.isdir(pool[:-5]):
                return
            with contextlib.suppress(FileExistsError):
                os.mkdir(pool, 0o700)
            making = os.path.join(pool, f"new-{uuid.uuid4().hex}")
            try:
                fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o600)
            except OSError:
                return
            try:
                os.posix_fallocate(fd, 0, size)
                os.rename(making, os.path.join(pool, uuid.uuid4().hex))
                _trim_later(pool)
            except OSError as exc:  # /dev/shm full, or the pool went with its client
                log.debug("no pool file of %d bytes in %s: %s", size, pool, exc)
                with contextlib.suppress(OSError):
                    os.unlink(making)
            finally:
                os.close(fd)

    threading.Thread(target=make, name="mesonb-shm-refill", daemon=True).start()


_trimmers: set[str] = set()  # pools a thread of this process frees idle files of
_trimming = threading.Lock()


def _trim_later(pool: str) -> None:
    """Free the files of ``pool`` left unused for :data:`POOL_IDLE` seconds (one thread
    per pool while it holds files)."""
    with _trimming:
        if pool in _trimmers:
            return
        _trimmers.add(pool)
    threading.Thread(target=_trim, args=(pool,), name="mesonb-shm-trim", daemon=True).start()


def _trim(pool: str) -> None:
    while True:
        time.sleep(POOL_IDLE / 2)
        with _trimming:  # the last look and leaving are one step: a file pooled after
            if not _trim_idle(pool):  # it starts another thread
                _trimmers.discard(pool)
                return


def _trim_idle(pool: str) -> int:
    """Unlink ``pool``'s files unused (not renamed) for :data:`POOL_IDLE` seconds; the
    number of files left."""
    try:
        entries = list(os.scandir(pool))
    except OSError:
        return 0
    now, left = time.time(), 0
    for entry in entries:
        try:
            idle = now - entry.stat().st_ctime  # a rename sets it
            if _BLOCK_NAME.fullmatch(entry.name) and idle >= POOL_IDLE:
                os.unlink(entry.path)  # taken meanwhile: FileNotFoundError
            else:
                left += 1
        except FileNotFoundError:
            pass
    return left
