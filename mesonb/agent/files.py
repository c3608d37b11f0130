"""The Mesos files API on the agent: browse, read and download sandbox files.

``GET /files/browse?path=``, ``/files/read?path=&offset=&length=`` and
``/files/download?path=`` (mesos: src/files/files.cpp). ``path`` is either a real sandbox
directory, as ``/state`` shows it in each executor's ``directory``, or Mesos's virtual
``/frameworks/<fw>/executors/<exec>/runs/latest`` path.

Only files inside executor run directories
(``<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<exec>/runs/<container>/...``) are
served; the check is on the fully resolved path, so ``..`` and symlinks pointing out of a
sandbox are refused (403). A missing file inside a sandbox is 404.
"""

from __future__ import annotations

import grp
import mimetypes
import os
import pwd
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesonb.http.base import BaseHandler
from mesonb.protocol.errors import BadRequest, Forbidden, NotFound
from mesonb.security.acls import Action

from . import paths

if TYPE_CHECKING:
    from .surface import AgentSurface

READ_CAP = 16 * 4096  # Mesos caps one read at 16 pages
CHUNK = 64 * 1024


class SandboxPaths:
    """Maps files API paths to real files, refusing anything outside the sandboxes."""

    def __init__(self, work_dir: Path) -> None:
        self.root = Path(os.path.realpath(paths.sandboxes_root(work_dir)))

    def resolve(self, path: str | None, virtual: dict[str, Path] | None = None) -> Path:
        """The real file for ``path``; BadRequest, Forbidden or NotFound otherwise."""
        if not path:
            raise BadRequest("Expecting 'path=value' in query.")
        if "\0" in path:
            raise BadRequest("'path' must not contain NUL characters")
        if ".." in path.split("/"):
            raise Forbidden("'..' is not allowed in 'path'")
        candidate: Path | None = None
        for prefix, target in (virtual or {}).items():
            if path.rstrip("/") == prefix or path.startswith(prefix + "/"):
                candidate = target / path[len(prefix):].lstrip("/")
                break
        if candidate is None:
            if not path.startswith("/"):
                raise NotFound(f"File not found: {path}")
            candidate = Path(path)
        real = Path(os.path.realpath(candidate))
        if not self.inside_a_sandbox(real):
            raise Forbidden(f"Access to '{path}' is not allowed: not inside a sandbox")
        if not real.exists():
            raise NotFound(f"File not found: {path}")
        return real

    def inside_a_sandbox(self, real: Path) -> bool:
        """True for a resolved path at or below some executor run directory."""
        try:
            rel = real.relative_to(self.root)
        except ValueError:
            return False
        parts = rel.parts
        # <agent>/frameworks/<fw>/executors/<exec>/runs/<container>[/...]
        return (
            len(parts) >= 7
            and parts[1] == "frameworks"
            and parts[3] == "executors"
            and parts[5] == "runs"
            and parts[6] != paths.LATEST
        )


def file_entry(shown: str, real: Path) -> dict[str, Any]:
    """One ``/files/browse`` entry, as Mesos writes it (``ls -l``-like)."""
    st = real.lstat()
    return {
        "path": shown,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "mtime": st.st_mtime,
        "mode": stat.filemode(st.st_mode),
        "uid": _user(st.st_uid),
        "gid": _group(st.st_gid),
    }


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


def _int_arg(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"Failed to parse {name}: '{value}' is not an integer") from None


def read_range(real: Path, offset: int, length: int) -> dict[str, Any]:
    """``/files/read``'s answer: ``offset=-1`` gives the size with no data (Mesos)."""
    if real.is_dir():
        raise BadRequest("Cannot read a directory")
    if offset < -1:
        raise BadRequest(f"Negative offset provided: {offset}")
    if length < -1:
        raise BadRequest(f"Negative length provided: {length}")
    size = real.stat().st_size
    if offset == -1:
        return {"data": "", "offset": size}
    if offset >= size:
        return {"data": "", "offset": size}
    if length == -1:
        length = size - offset
    length = min(length, READ_CAP)
    with open(real, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    return {"data": data.decode("utf-8", "replace"), "offset": offset}


class _FilesHandler(BaseHandler):
    agent: AgentSurface

    def resolve(self) -> tuple[str, Path]:
        path = self.get_query_argument("path", None)
        real = self.agent.sandbox_paths.resolve(path, self.agent.virtual_sandboxes())
        assert path is not None
        self.authorize_sandbox(real)
        return path, real

    def authorize_sandbox(self, real: Path) -> None:
        """403 unless ``access_sandboxes`` lets the caller read the sandbox of this
        framework's user (the cluster's operator may read any)."""
        acls = self.security.acls
        if self.operator or (acls.permissive and not acls.rules.get(Action.ACCESS_SANDBOX)):
            return
        parts = real.parts
        framework_id = next((parts[i + 1] for i in range(len(parts) - 1)
                             if parts[i] == "frameworks"), None)
        state = self.agent.state()
        users = {f.get("id"): f.get("user") for key in ("frameworks", "completed_frameworks")
                 for f in state.get(key, [])}
        self.authorize(Action.ACCESS_SANDBOX, str(users.get(framework_id) or ""))


class BrowseHandler(_FilesHandler):
    def get(self) -> None:
        path, real = self.resolve()
        shown = path.rstrip("/") or "/"
        if real.is_dir():
            entries = [file_entry(f"{shown}/{child.name}", child)
                       for child in sorted(real.iterdir())]
        else:
            entries = [file_entry(shown, real)]
        self.write_jsonp_or_json(entries)


class ReadHandler(_FilesHandler):
    def get(self) -> None:
        _, real = self.resolve()
        offset = _int_arg(self.get_query_argument("offset", None), "offset", -1)
        length = _int_arg(self.get_query_argument("length", None), "length", -1)
        self.write_jsonp_or_json(read_range(real, offset, length))


class DownloadHandler(_FilesHandler):
    """The whole file, or the byte range of a ``Range: bytes=first-last`` header (206)."""

    async def get(self) -> None:
        _, real = self.resolve()
        if real.is_dir():
            raise BadRequest("Cannot download a directory")
        ctype = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
        self.set_header("Content-Type", ctype)
        self.set_header("Content-Disposition", f'attachment; filename="{real.name}"')
        self.set_header("Accept-Ranges", "bytes")
        size = real.stat().st_size
        first, last = 0, size - 1
        wanted = self.request.headers.get("Range")
        if wanted:
            span = parse_range(wanted, size)
            if span is None:
                self.set_status(416)
                self.set_header("Content-Range", f"bytes */{size}")
                self.finish()
                return
            first, last = span
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {first}-{last}/{size}")
        left = last - first + 1
        with open(real, "rb") as f:
            f.seek(first)
            while left > 0 and (chunk := f.read(min(CHUNK, left))):
                left -= len(chunk)
                self.write(chunk)
                await self.flush()
        self.finish()


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


class DebugHandler(_FilesHandler):
    endpoint_acl = True  # get_endpoints: it lists every sandbox

    def get(self) -> None:
        self.write_json({k: str(v) for k, v in self.agent.virtual_sandboxes().items()})
