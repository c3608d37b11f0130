"""The client's pool of shared-memory files reused between calls (see :mod:`.shm`).

Filling fresh shared-memory pages costs about three times what writing into pages
already there does (the kernel allocates and clears 25,600 pages per 100 MB; a write
into a reused file is one copy). So a removed file (:meth:`~.shm.Shm.remove`) that
nobody maps any more goes to the client's pool, the directory ``<dir>.pool`` (at most
:data:`POOL_BYTES` in all), under a new name, and the next large value -- the client's
argument or a worker's result -- is written into one of its files (:func:`claim`)
instead of a new one.

Safety: whoever maps a file holds a shared ``flock`` on it for as long as the mapping
lives (the value's arrays). A removed file waits in the pool as ``held-...`` and is
taken only once that lock is free (checked when it is removed, when the client's own
last array of it goes, and again by :func:`claim`), so a reused file never changes
under a live value. A path is never reused, so a late reader of a removed value finds
it gone rather than another value's bytes; a file taken for a smaller value is cut to
its size, so no byte of an earlier value is read after it.

Only files whose pages the client made are pooled (tmpfs pages are charged to the
memory cgroup of whoever made them): a worker's fresh result file (named ``w-...``) is
unlinked, and the client makes a pool file of its size in the background instead, for
the next result. A pool file not reused within :data:`POOL_IDLE` seconds is freed: a
dropped value's memory is kept only while calls come. The pool goes with its client's
directory (:func:`~.shm.remove_dir`, or :func:`~.shm.sweep` after ``kill -9``).

Writing through a mapping: ``pwrite`` into a reused file still costs ~14 ms per 100 MB
(the kernel looks up each page), a copy into pages already mapped ~5 ms. So the client
(an argument) and a worker (a result) keep a shared mapping of each pool file they wrote
into (:func:`write_mapped`) and write their next value into that file through it; only
after :func:`claim` (nobody else reads or writes the file then), and only files whose
pages are all there (a write through a mapping into a hole would allocate: charged to
the writer, and SIGBUS, not ENOSPC, when ``/dev/shm`` is full). A mapping kept is
dropped once its file leaves the pool for good (unlinked: trimmed as idle, the pool
full, the cluster closed), looked at on each write, each trim and, in an idle worker,
every :data:`POOL_IDLE` / 2 seconds, so it never holds a freed file's pages for long.
Its pages are the client's (charged to the client's memory cgroup), so a worker's
memory checks leave them out (:func:`kept_rss`); a forked child lets go of them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import re
import threading
import time
import uuid

from mesonb import procmem

POOL_BYTES = 1 << 30  # what a client's pool of written-once files may hold
WORKER_KEEPS = 256 << 20  # what a worker may keep mapped of its client's files
POOL_IDLE = 10.0  # seconds a pool file waits to be reused before it is freed
BLOCK_NAME = re.compile(r"[0-9a-f]{32}")  # a pool file ready to be taken
WORKER_PREFIX = "w-"  # a file whose pages a worker made: never pooled
log = logging.getLogger(__name__)


def claim(directory: str, total: int, grow: bool) -> tuple[str, int | None]:
    """A pool file of ``directory``'s client taken for a value of ``total`` bytes, at a new
    path in ``directory`` and cut to ``total``: ``(path, fd)``; ``("", None)`` when none
    fits. The smallest that holds ``total``; else, with ``grow`` (the client only), the
    largest, grown (a worker makes no pages in a pooled file: they would be charged to
    it)."""
    entries = []  # (size, path, whether it waits for its last reader: held-...)
    try:
        for entry in os.scandir(directory + ".pool"):
            held = entry.name.startswith("held-")
            if held or BLOCK_NAME.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):  # taken meanwhile
                    entries.append((entry.stat().st_size, entry.path, held))
    except OSError:  # no pool yet, or not ours to read
        return "", None
    fitting = sorted(e for e in entries if e[0] >= total)
    if not fitting and grow:
        fitting = sorted(entries, reverse=True)
    for size, free, held in fitting:
        if held and not _unmapped_everywhere(free):
            continue
        path = os.path.join(directory, uuid.uuid4().hex)
        try:
            os.rename(free, path)  # atomic: one taker wins
        except FileNotFoundError:
            continue
        except OSError:  # not ours to take
            return "", None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # read too: to map it
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
# Reentrant: the collector may run a finalizer (unmapped, a future's release) on a thread
# that holds it.
_mapping = threading.RLock()


def mapped(path: str) -> None:
    """This process maps ``path`` once more (:meth:`~.shm.Shm.load`), until
    :func:`unmapped`."""
    with _mapping:
        _mapped[path] = _mapped.get(path, 0) + 1


def unmapped(path: str, fd: int) -> None:
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


def release(path: str, refill: bool) -> None:
    """``path`` leaves (see :meth:`~.shm.Shm.remove`): renamed into the pool when the
    client made its pages and the pool has room, ready to be taken once nobody maps it
    (no shared ``flock``: see the module docstring); else unlinked, and for a worker's
    file, with ``refill`` (the client), a pool file of its size made in the background
    (once this process's last array of it went)."""
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
        if name.startswith(WORKER_PREFIX) and refill:
            with _mapping:
                if path in _mapped:
                    _to_refill[path] = (pool, size)
                    return
            _refill(pool, size)
        return
    free = os.path.join(pool, "held-" + uuid.uuid4().hex)  # not to be taken unchecked
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
    _trim_later(pool)
    if mapped_here:
        with _mapping:
            if path in _mapped:
                _to_pool[path] = free
                return
    _pool(free)


def _unmapped_everywhere(path: str) -> bool:
    """No process maps ``path``: its shared ``flock`` is free (see the module
    docstring: the file has left its published path, so no reader comes after)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _pool(free: str) -> None:
    """``free`` (``held-...`` in its pool) is ready to be taken when nobody maps it; else
    it stays held (:func:`claim` looks again) until freed as idle."""
    if _unmapped_everywhere(free):
        pool = os.path.dirname(free)
        with contextlib.suppress(FileNotFoundError):  # taken, or gone with its client
            os.rename(free, os.path.join(pool, uuid.uuid4().hex))


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
_trimming = threading.RLock()  # reentrant, as _mapping


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
            if idle >= POOL_IDLE and (BLOCK_NAME.fullmatch(entry.name)
                                      or entry.name.startswith("held-")):
                os.unlink(entry.path)  # taken meanwhile: FileNotFoundError
            else:
                left += 1
        except FileNotFoundError:
            pass
    forget_unlinked()
    return left


# The client's mappings of pool files it wrote into: (st_dev, st_ino) -> (map, an fd of
# the file, to see whether it was unlinked). Holding them keeps each inode alive, so its
# number is not reused while it is here.
_writable: dict[tuple[int, int], tuple[mmap.mmap, int]] = {}
_writing = threading.RLock()  # reentrant, as _mapping


def write_mapped(fd: int, views: list[memoryview], total: int, keep: int = POOL_BYTES
                 ) -> bool:
    """Write ``views`` (``total`` bytes) from the start of ``fd``'s file, a pool file this
    process claimed (so cut to ``total``: pages all there means no hole), through a
    mapping of it kept for its next use (made, populated, the first time); False, writing
    nothing, when its pages are not all there (new, or grown: the caller ``pwrite``s) or
    a mapping cannot be made within ``keep`` bytes kept."""
    stat = os.fstat(fd)
    if stat.st_blocks * 512 < total or stat.st_size < total:
        return False
    key = (stat.st_dev, stat.st_ino)
    with _writing:
        forget_unlinked()
        kept = _writable.get(key)
        if kept is None or len(kept[0]) < total:
            if kept is not None:
                _forget(key)
            if sum(len(m) for m, _ in _writable.values()) + total > keep:
                return False
            try:
                own = os.dup(fd)
            except OSError:
                return False
            try:
                mapping = mmap.mmap(own, total,
                                    flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
            except (OSError, ValueError):
                os.close(own)
                return False
            kept = _writable[key] = (mapping, own)
        target, at = kept[0], 0
        for view in views:
            target[at:at + view.nbytes] = view
            at += view.nbytes
    return True


def forget_unlinked() -> None:
    """Drop the kept mappings (:func:`write_mapped`) of files unlinked since: their pages
    are freed once nobody else maps them."""
    with _writing:
        for key in [k for k, (_, fd) in _writable.items() if _unlinked(fd)]:
            _forget(key)


def _forget_in_child() -> None:
    """A forked child (a call's own processes) lets go of the mappings kept at once: they
    are its parent's, and a thread of the parent may have held the lock."""
    global _writing
    _writing = threading.RLock()
    for mapping, fd in _writable.values():
        with contextlib.suppress(BufferError, OSError):
            mapping.close()
            os.close(fd)
    _writable.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _unlinked(fd: int) -> bool:
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


def _forget(key: tuple[int, int]) -> None:
    mapping, fd = _writable.pop(key)
    mapping.close()
    os.close(fd)


def kept_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` in the mappings kept by :func:`write_mapped`
    (:func:`mesonb.procmem.kept_shm_rss`)."""
    return procmem.kept_shm_rss(pid)
