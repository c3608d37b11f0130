"""``GET /mesonb/v1/allocation``: the why-not counters of the master's last allocation run.

Read-only, mesonb's own (Mesos has no such endpoint): the body is
:meth:`mesonb.allocator.explain.WhyNot.to_json` of the last run that had a framework to
offer to (``{}`` before the first), which ``fut.explain()`` shows to say why a call is
pending.
"""

from __future__ import annotations

from mesonb.http.base import BaseHandler, method_not_allowed
from mesonb.master.master import Master

ALLOCATION_PATH = r"/mesonb/v1/allocation/?"


class AllocationHandler(BaseHandler):
    master: Master

    def get(self) -> None:
        self.write_json(dict(self.master.last_why_not or {}))

    def post(self) -> None:
        raise method_not_allowed("GET")

    put = delete = patch = post
