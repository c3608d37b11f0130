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

import logging
import os
from pathlib import Path
from typing import Any

from mesonb.http import files as files_api
from mesonb.protocol.errors import Forbidden, NotFound

LOG_NAME = "mesonb-master.log"
LOG_PATH = "/master/log"


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
        path = files_api.check_path(path)
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
        return files_api.browse(*self.resolve(path))

    def read(self, path: Any, offset: int, length: int) -> dict[str, Any]:
        """``/files/read``: ``offset=-1`` gives the size and no data (Mesos)."""
        return files_api.read_range(self.resolve(path)[1], offset, length)

    # -- the operator API's shapes -------------------------------------------------------
    def list_files(self, path: Any) -> dict[str, Any]:
        """``Response.ListFiles{file_infos}``."""
        return {"file_infos": [files_api.file_info(e) for e in self.browse(path)]}

    def read_file(self, body: Any) -> dict[str, Any]:
        """``Call.ReadFile{path, offset, length}`` -> ``Response.ReadFile{size, data}``."""
        path, offset, length = files_api.read_file_call(body)
        return files_api.read_file(self.resolve(path)[1], path, offset, length)
