"""``/files/browse``, ``/files/read``, ``/files/download`` and ``/files/debug`` on the master.

The Mesos files API over what the master attached (:mod:`mesonb.master.files`: its log at
``/master/log`` when run with ``--log-dir``), with the agent's sandboxing rules: ``..`` is
403, anything not attached 404. Reading the master's log needs ``access_mesos_logs``.
"""

from __future__ import annotations

from typing import Any

from mesonb.http import files as files_api
from mesonb.http.base import BaseHandler, method_not_allowed
from mesonb.master.files import MasterFiles
from mesonb.master.master import Master
from mesonb.security.acls import Action


class _FilesHandler(BaseHandler):
    master: Master

    @property
    def files(self) -> MasterFiles:
        self.authorize(Action.ACCESS_MESOS_LOG)
        return MasterFiles(self.master.config.log_dir)

    def _int(self, name: str, default: int) -> int:
        return files_api.int_arg(self.get_query_argument(name, None), name, default)

    def post(self) -> None:
        raise method_not_allowed("GET")

    put = delete = patch = post


class BrowseHandler(_FilesHandler):
    def get(self) -> None:
        self.write_jsonp_or_json(self.files.browse(self.get_query_argument("path", None)))


class ReadHandler(_FilesHandler):
    def get(self) -> None:
        path = self.get_query_argument("path", None)
        self.write_jsonp_or_json(self.files.read(path, self._int("offset", -1),
                                                 self._int("length", -1)))


class DownloadHandler(_FilesHandler):
    async def get(self) -> None:
        _, real = self.files.resolve(self.get_query_argument("path", None))
        await files_api.download(self, real)


class DebugHandler(_FilesHandler):
    def get(self) -> None:
        self.write_json({k: str(v) for k, v in self.files.attached.items()})


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    return [
        (r"/files/browse(?:\.json)?/?", BrowseHandler, deps),
        (r"/files/read(?:\.json)?/?", ReadHandler, deps),
        (r"/files/download(?:\.json)?/?", DownloadHandler, deps),
        (r"/files/debug(?:\.json)?/?", DebugHandler, deps),
    ]
