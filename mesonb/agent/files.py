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

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mesonb.http import files as files_api
from mesonb.http.base import BaseHandler
from mesonb.protocol.errors import Forbidden, NotFound
from mesonb.security.acls import Action

from . import paths

if TYPE_CHECKING:
    from .surface import AgentSurface

class SandboxPaths:
    """Maps files API paths to real files, refusing anything outside the sandboxes."""

    def __init__(self, work_dir: Path) -> None:
        self.root = Path(os.path.realpath(paths.sandboxes_root(work_dir)))

    def resolve(self, path: str | None, virtual: dict[str, Path] | None = None) -> Path:
        """The real file for ``path``; BadRequest, Forbidden or NotFound otherwise."""
        path = files_api.check_path(path)
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
        self.write_jsonp_or_json(files_api.browse(path, real))


class ReadHandler(_FilesHandler):
    def get(self) -> None:
        _, real = self.resolve()
        offset = files_api.int_arg(self.get_query_argument("offset", None), "offset", -1)
        length = files_api.int_arg(self.get_query_argument("length", None), "length", -1)
        self.write_jsonp_or_json(files_api.read_range(real, offset, length))


class DownloadHandler(_FilesHandler):
    """The whole file, or the byte range of a ``Range: bytes=first-last`` header (206)."""

    async def get(self) -> None:
        _, real = self.resolve()
        await files_api.download(self, real)


class DebugHandler(_FilesHandler):
    endpoint_acl = True  # get_endpoints: it lists every sandbox

    def get(self) -> None:
        self.write_json({k: str(v) for k, v in self.agent.virtual_sandboxes().items()})
