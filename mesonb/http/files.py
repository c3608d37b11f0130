"""The Mesos files API's shapes and reads, one copy for the master and the agent.

Mesos serves ``/files/browse``, ``/files/read`` and ``/files/download`` (and the operator
calls LIST_FILES and READ_FILE) the same way on both daemons (mesos: src/files/files.cpp);
only what may be served differs: the agent serves its sandboxes
(:class:`mesonb.agent.files.SandboxPaths`), the master what it attached, its log
(:class:`mesonb.master.files.MasterFiles`). Each daemon resolves a path to a real file and
then uses these functions, so the answers' shapes, limits and errors are the same.
"""

from __future__ import annotations

import base64
import grp
import mimetypes
import pwd
import stat
from pathlib import Path
from typing import Any

from mesonb.protocol.errors import BadRequest, Forbidden

from .base import BaseHandler

READ_CAP = 16 * 4096  # Mesos caps one read at 16 pages
CHUNK = 64 * 1024


def check_path(path: Any) -> str:
    """A ``path`` query argument as Mesos checks it before resolving it."""
    if not isinstance(path, str) or not path:
        raise BadRequest("Expecting 'path=value' in query.")
    if "\0" in path:
        raise BadRequest("'path' must not contain NUL characters")
    if ".." in path.split("/"):
        raise Forbidden("'..' is not allowed in 'path'")
    return path


def int_arg(value: str | None, name: str, default: int) -> int:
    """An integer query argument (``offset``, ``length``); absent or empty: ``default``."""
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Failed to parse {name}: '{value}' is not an integer") from None


def file_entry(shown: str, real: Path) -> dict[str, Any]:
    """One ``/files/browse`` entry, as Mesos writes it (``ls -l``-like)."""
    st = real.lstat()
    return {"path": shown, "nlink": st.st_nlink, "size": st.st_size, "mtime": st.st_mtime,
            "mode": stat.filemode(st.st_mode), "uid": _user(st.st_uid),
            "gid": _group(st.st_gid)}


def browse(shown: str, real: Path) -> list[dict[str, Any]]:
    """``/files/browse``: a directory's entries, or the file's own."""
    shown = shown.rstrip("/") or "/"
    if real.is_dir():
        return [file_entry(f"{shown.rstrip('/')}/{child.name}", child)
                for child in sorted(real.iterdir())]
    return [file_entry(shown, real)]


def file_info(entry: dict[str, Any]) -> dict[str, Any]:
    """``mesos.v1.FileInfo`` from a browse entry (``mode`` as st_mode bits, ``mtime`` a
    TimeInfo): what LIST_FILES answers."""
    text = entry["mode"]
    bits = stat.S_IFDIR if text[0] == "d" else stat.S_IFLNK if text[0] == "l" else stat.S_IFREG
    for i, ch in enumerate(text[1:10]):
        if ch != "-":
            bits |= 1 << (8 - i)
    return {"path": entry["path"], "nlink": entry["nlink"], "size": entry["size"],
            "mtime": {"nanoseconds": int(entry["mtime"] * 1e9)}, "mode": bits,
            "uid": entry["uid"], "gid": entry["gid"]}


def read_range(real: Path, offset: int, length: int) -> dict[str, Any]:
    """``/files/read``'s answer: ``offset=-1`` gives the size with no data (Mesos)."""
    if real.is_dir():
        raise BadRequest("Cannot read a directory")
    if offset < -1:
        raise BadRequest(f"Negative offset provided: {offset}")
    if length < -1:
        raise BadRequest(f"Negative length provided: {length}")
    size = real.stat().st_size
    if offset == -1 or offset >= size:
        return {"data": "", "offset": size}
    count = min(size - offset if length == -1 else length, READ_CAP)
    return {"data": _read(real, offset, count).decode("utf-8", "replace"), "offset": offset}


def read_file_call(body: Any) -> tuple[str, int, int | None]:
    """``Call.ReadFile{path, offset, length}`` checked: (path, offset, length or None)."""
    if not isinstance(body, dict):
        raise BadRequest("Expecting 'read_file' to be present")
    path, offset, length = body.get("path"), body.get("offset"), body.get("length")
    if not isinstance(path, str):
        raise BadRequest("Expecting 'read_file.path' to be a string")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise BadRequest("Expecting 'read_file.offset' to be an unsigned integer")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                               or length < 0):
        raise BadRequest("Expecting 'read_file.length' to be an unsigned integer")
    return path, offset, length


def read_file(real: Path, path: str, offset: int, length: int | None) -> dict[str, Any]:
    """``Response.ReadFile{size, data}`` (data base64, at most :data:`READ_CAP` bytes)."""
    if real.is_dir():
        raise BadRequest(f"Cannot read a directory: {path}")
    size = real.stat().st_size
    count = min(size - offset if length is None else length, READ_CAP)
    data = _read(real, offset, count) if offset < size and count > 0 else b""
    return {"size": size, "data": base64.b64encode(data).decode()}


async def download(handler: BaseHandler, real: Path) -> None:
    """``/files/download``: the whole file, or the byte range of a ``Range:
    bytes=first-last`` header (206; 416 when it cannot be satisfied)."""
    if real.is_dir():
        raise BadRequest("Cannot download a directory")
    handler.set_header("Content-Type",
                       mimetypes.guess_type(real.name)[0] or "application/octet-stream")
    handler.set_header("Content-Disposition", f'attachment; filename="{real.name}"')
    handler.set_header("Accept-Ranges", "bytes")
    size = real.stat().st_size
    first, last = 0, size - 1
    wanted = handler.request.headers.get("Range")
    if wanted:
        span = parse_range(wanted, size)
        if span is None:
            handler.set_status(416)
            handler.set_header("Content-Range", f"bytes */{size}")
            handler.finish()
            return
        first, last = span
        handler.set_status(206)
        handler.set_header("Content-Range", f"bytes {first}-{last}/{size}")
    left = last - first + 1
    with open(real, "rb") as f:
        f.seek(first)
        while left > 0 and (chunk := f.read(min(CHUNK, left))):
            left -= len(chunk)
            handler.write(chunk)
            await handler.flush()
    handler.finish()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=first-last`` (or ``first-``, ``-suffix``) within a file of ``size`` bytes:
    the first and last byte; None when it is unsatisfiable or not a single bytes range.

    >>> parse_range("bytes=2-5", 10), parse_range("bytes=7-", 10), parse_range("bytes=-3", 10)
    ((2, 5), (7, 9), (7, 9))
    >>> parse_range("bytes=10-", 10) is None
    True
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if not first_text:
            suffix = int(last_text)
            return (max(size - suffix, 0), size - 1) if suffix > 0 and size else None
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first < 0 or first >= size or last < first:
        return None
    return first, min(last, size - 1)


def _read(real: Path, offset: int, count: int) -> bytes:
    with open(real, "rb") as f:
        f.seek(offset)
        return f.read(count)


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
