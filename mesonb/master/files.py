"""The master's files API: its own log, as Mesos serves it at the virtual path ``/master/log``.

With ``--log-dir DIR`` the master writes its log to ``DIR/mesonb-master.log``
(:func:`attach_log_file`) and attaches it at ``/master/log``, as Mesos attaches its log
file when run with ``--log_dir``. Without it nothing is attached and every path is 404.

Only attached paths are served: a path is resolved under an attached prefix and the
fully resolved file must still lie within what was attached, so ``..`` (refused, 403) and
symlinks cannot reach other files. Used by LIST_FILES / READ_FILE and by
``/files/browse``, ``/files/read``, ``/files/download`` on the master
(:mod:`.http.endpoints_files`).
"""

from __future__ import annotations

import base64
import grp
import logging
import os
import pwd
import stat
from pathlib import Path
from typing import Any

from mesonb.protocol.errors import BadRequest, Forbidden, NotFound

LOG_NAME = "mesonb-master.log"
LOG_PATH = "/master/log"
READ_CAP = 16 * 4096  # Mesos caps one read at 16 pages
CHUNK = 64 * 1024


def attach_log_file(log_dir: Path, level: int = logging.INFO) -> logging.Handler:
    """Write this process's log to ``log_dir/mesonb-master.log`` too; returns the handler
    (remove it from the root logger to stop)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / LOG_NAME, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(
        "%(levelname).1s%(asctime)s %(process)d %(name)s] %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


class MasterFiles:
    """Attached paths (virtual path -> real file or directory) and what reads them."""

    def __init__(self, log_dir: Path | None) -> None:
        self.attached: dict[str, Path] = {}
        if log_dir is not None:
            self.attached[LOG_PATH] = Path(log_dir) / LOG_NAME

    def resolve(self, path: Any) -> tuple[str, Path]:
        """(the path as asked, the real file); BadRequest, Forbidden or NotFound."""
        if not isinstance(path, str) or not path:
            raise BadRequest("Expecting 'path=value' in query.")
        if "\0" in path:
            raise BadRequest("'path' must not contain NUL characters")
        if ".." in path.split("/"):
            raise Forbidden("'..' is not allowed in 'path'")
        shown = "/" + path.strip("/")
        for prefix, target in self.attached.items():
            if shown == prefix or shown.startswith(prefix + "/"):
                root = Path(os.path.realpath(target))
                real = Path(os.path.realpath(target / shown[len(prefix):].lstrip("/")))
                if real != root and root not in real.parents:
                    raise Forbidden(f"Access to '{path}' is not allowed")
                if not real.exists():
                    raise NotFound(f"File not found: {path}")
                return shown, real
        raise NotFound(f"File not found: {path}")

    def browse(self, path: Any) -> list[dict[str, Any]]:
        """``/files/browse`` entries (``ls -l``-like), as Mesos writes them."""
        shown, real = self.resolve(path)
        if real.is_dir():
            return [_entry(f"{shown}/{child.name}", child) for child in sorted(real.iterdir())]
        return [_entry(shown, real)]

    def read(self, path: Any, offset: int, length: int) -> dict[str, Any]:
        """``/files/read``: ``offset=-1`` gives the size and no data (Mesos)."""
        _, real = self.resolve(path)
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

    # -- the operator API's shapes -------------------------------------------------------
    def list_files(self, path: Any) -> dict[str, Any]:
        """``Response.ListFiles{file_infos}``."""
        return {"file_infos": [_file_info(e) for e in self.browse(path)]}

    def read_file(self, body: Any) -> dict[str, Any]:
        """``Call.ReadFile{path, offset, length}`` -> ``Response.ReadFile{size, data}``."""
        if not isinstance(body, dict):
            raise BadRequest("Expecting 'read_file' to be present")
        offset, length = body.get("offset"), body.get("length")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise BadRequest("Expecting 'read_file.offset' to be an unsigned integer")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)
                                   or length < 0):
            raise BadRequest("Expecting 'read_file.length' to be an unsigned integer")
        _, real = self.resolve(body.get("path"))
        if real.is_dir():
            raise BadRequest(f"Cannot read a directory: {body.get('path')}")
        size = real.stat().st_size
        count = min(size - offset if length is None else length, READ_CAP)
        data = _read(real, offset, count) if offset < size and count > 0 else b""
        return {"size": size, "data": base64.b64encode(data).decode()}


def _read(real: Path, offset: int, count: int) -> bytes:
    with open(real, "rb") as f:
        f.seek(offset)
        return f.read(count)


def _entry(shown: str, real: Path) -> dict[str, Any]:
    st = real.lstat()
    return {"path": shown, "nlink": st.st_nlink, "size": st.st_size, "mtime": st.st_mtime,
            "mode": stat.filemode(st.st_mode), "uid": _user(st.st_uid),
            "gid": _group(st.st_gid)}


def _file_info(entry: dict[str, Any]) -> dict[str, Any]:
    """``mesos.v1.FileInfo`` (``mode`` as the st_mode bits, ``mtime`` a TimeInfo)."""
    text = entry["mode"]
    bits = stat.S_IFDIR if text[0] == "d" else stat.S_IFLNK if text[0] == "l" else stat.S_IFREG
    for i, ch in enumerate(text[1:10]):
        if ch != "-":
            bits |= 1 << (8 - i)
    return {"path": entry["path"], "nlink": entry["nlink"], "size": entry["size"],
            "mtime": {"nanoseconds": int(entry["mtime"] * 1e9)}, "mode": bits,
            "uid": entry["uid"], "gid": entry["gid"]}


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
