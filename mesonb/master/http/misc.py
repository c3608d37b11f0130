"""Small endpoints: ``/version``, ``/health``, ``/master/redirect``."""

from __future__ import annotations

from mesonb.config import MESONB_VERSION, VERSION
from mesonb.http.base import BaseHandler
from mesonb.master.master import Master
from mesonb.protocol.errors import Redirect, ServiceUnavailable


def version_json() -> dict[str, str | int]:
    return {
        "version": VERSION,
        "mesonb_version": MESONB_VERSION,
        "build_date": "",
        "build_time": 0,
        "build_user": "mesonb",
        "git_sha": "",
    }


class VersionHandler(BaseHandler):
    """``GET /version``: pymesos reads ``version`` before it subscribes."""

    public = True

    def get(self) -> None:
        self.write_json(version_json())


class HealthHandler(BaseHandler):
    public = True
    master: Master

    def get(self) -> None:
        self.set_status(200)
        self.finish()


class RedirectHandler(BaseHandler):
    """``GET /master/redirect``: 307 to the leading master (this one when it leads)."""

    public = True
    master: Master

    def get(self) -> None:
        if self.master.leading:
            raise Redirect(f"//{self.master.hostname}:{self.master.port}")
        if self.master.leader:
            raise Redirect(f"//{self.master.leader}")
        raise ServiceUnavailable("No leading master is elected yet")
