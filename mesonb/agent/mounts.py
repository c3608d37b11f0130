"""Bind mounts under the agent's work directory, and removing trees that may hold them.

Persistent volumes are bind-mounted into sandboxes when the agent runs as root (as Mesos's
``filesystem/linux`` isolator does, src/slave/containerizer/mesos/isolators/filesystem/
linux.cpp): ``mount --bind <volume> <sandbox>/<container_path>``, remounted read-only for
``mode: RO``. A bind-mounted volume is a plain directory to ``shutil.rmtree``, which would
empty the volume through it: every removal of a sandbox therefore goes through
:func:`remove_tree`, which unmounts what is mounted under the tree first (read from
``/proc/self/mountinfo``, the deepest first) and refuses to delete a tree that still holds
a mount. A killed agent leaves its mounts behind: :func:`unmount_stale` takes them down
at recovery.

The calls are ``mount(2)`` and ``umount2(2)`` through ctypes (no ``mount`` binary needed);
an :class:`OSError` carries the errno (EPERM when not allowed to mount).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MNT_DETACH = 2
MOUNTINFO = Path("/proc/self/mountinfo")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str, path: Path) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} {path}: {os.strerror(err)}")


def bind(source: Path, target: Path, read_only: bool = False) -> None:
    """Bind-mount directory ``source`` at ``target`` (read-only when asked: a write into
    it then fails with EROFS). OSError when the kernel refuses; nothing is left mounted."""
    _check(_libc.mount(os.fsencode(source), os.fsencode(target), None, MS_BIND, None),
           "bind mount at", target)
    if read_only:
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        try:
            _check(_libc.mount(None, os.fsencode(target), None, flags, None),
                   "read-only remount of", target)
        except OSError:
            unmount(target)
            raise


def unmount(target: Path) -> None:
    """Detach the mount at ``target`` (lazily: open files keep the old view)."""
    _check(_libc.umount2(os.fsencode(target), MNT_DETACH), "unmount of", target)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(under: Path, mountinfo: Path = MOUNTINFO) -> list[Path]:
    """The mount points at or below ``under``, the deepest first."""
    root = os.path.realpath(under)
    prefix = root.rstrip("/") + "/"
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point == root or point.startswith(prefix):
            found.append(point)
    return [Path(p) for p in sorted(set(found), key=lambda p: (-p.count("/"), p))]


def unmount_under(path: Path, keep: Iterable[Path] = ()) -> list[Path]:
    """Unmount everything mounted at or below ``path`` but inside the ``keep``
    directories; the mount points taken down."""
    kept = [os.path.realpath(p).rstrip("/") + "/" for p in keep]
    done = []
    for point in mount_points(path):
        if any((str(point) + "/").startswith(k) for k in kept):
            continue
        try:
            unmount(point)
            done.append(point)
        except OSError as exc:
            log.error("cannot unmount %s: %s", point, exc)
    return done


def remove_tree(path: Path) -> bool:
    """``shutil.rmtree`` that never descends into a mount: what is mounted under ``path``
    is unmounted first; when a mount cannot be taken down, nothing is deleted (False)."""
    if not os.path.lexists(path):
        return True
    unmount_under(path)
    left = mount_points(path)
    if left:
        log.error("not removing %s: %s still mounted under it", path,
                  ", ".join(map(str, left)))
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def unmount_stale(under: Path, live: Iterable[Path]) -> list[Path]:
    """Unmount the mounts at or below ``under`` that are not inside one of the ``live``
    directories (the sandboxes of executors that survived an agent restart)."""
    return unmount_under(under, keep=live)


def release(sandbox: Path) -> None:
    """A container ended: take down the volume mounts in its sandbox (Mesos's isolator
    cleanup), so that only a live container's sandbox holds a volume."""
    done = unmount_under(sandbox)
    if done:
        log.info("unmounted %s", ", ".join(map(str, done)))
