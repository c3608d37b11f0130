"""The legacy (v0) JSON endpoints of the Mesos master, for tools that still read them.

``/master/state`` (also ``/master/state.json``, ``/state``, ``/state.json``),
``/master/state-summary``, ``/master/frameworks``, ``/master/slaves``, ``/master/tasks``,
``/master/roles``, ``/master/flags`` and ``/master/weights`` answer ``GET`` with JSON (or
JSONP with ``?jsonp=callback``); ``POST /master/teardown`` with the form field
``frameworkId`` tears a framework down. Shapes come from :mod:`mesonb.master.views`.

Read-only endpoints answer on a standby master too (its ``leader`` field says where the
leader is, which is how the Mesos web UI finds it); teardown redirects to the leader.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from mesonb.http.base import BaseHandler, method_not_allowed
from mesonb.master import views, views_v0
from mesonb.master.master import Master
from mesonb.protocol.errors import BadRequest
from mesonb.security.views import Viewer

TASK_LIMIT = 100  # mesos: src/master/constants.hpp


class ReadOnlyHandler(BaseHandler):
    """A GET-only JSON endpoint; subclasses say what to build."""

    master: Master

    def get(self) -> None:
        with views.no_gc():
            self.write_jsonp_or_json(self.view(self.build()))

    def build(self) -> Any:
        raise NotImplementedError

    def view(self, answer: Any) -> Any:
        """What of ``answer`` the caller may see (the ``view_*`` ACLs, Mesos's filters)."""
        return answer

    def framework_viewer(self) -> Viewer:
        return self.viewer(user_of=framework_user(self.master))

    def post(self) -> None:
        raise method_not_allowed("GET")

    put = delete = patch = post


def framework_user(master: Master) -> Callable[[str], str | None]:
    """A framework's user by id, for the view filters (completed frameworks too)."""
    book = master.book

    def user_of(framework_id: str) -> str | None:
        framework = book.frameworks.get(framework_id) or book.completed_frameworks.get(
            framework_id)
        return framework.info.user if framework is not None else None

    return user_of


class StateHandler(ReadOnlyHandler):
    def build(self) -> Any:
        return views_v0.v0_state(self.master)

    def view(self, answer: Any) -> Any:
        return self.framework_viewer().v0_frameworks(answer)


class StateSummaryHandler(ReadOnlyHandler):
    def build(self) -> Any:
        return views_v0.v0_state_summary(self.master)

    def view(self, answer: Any) -> Any:
        return self.framework_viewer().v0_frameworks(answer)


class FrameworksHandler(ReadOnlyHandler):
    def build(self) -> Any:
        select = self.get_query_argument("framework_id", None)
        return views_v0.v0_frameworks(self.master.book, select)

    def view(self, answer: Any) -> Any:
        return self.framework_viewer().v0_frameworks(answer)


class SlavesHandler(ReadOnlyHandler):
    def build(self) -> Any:
        return views_v0.v0_slaves(self.master.book, self.get_query_argument("slave_id", None))


class TasksHandler(ReadOnlyHandler):
    """``limit`` (100), ``offset`` (0), ``order`` (asc|des), ``framework_id``, ``task_id``."""

    def build(self) -> Any:
        order = "asc" if self.get_query_argument("order", "des") == "asc" else "des"
        return views_v0.v0_tasks(
            self.master.book,
            limit=self._count("limit", TASK_LIMIT),
            offset=self._count("offset", 0),
            order=order,
            framework_id=self.get_query_argument("framework_id", None),
            task_id=self.get_query_argument("task_id", None),
        )

    def view(self, answer: Any) -> Any:
        return self.framework_viewer().v0_tasks(answer)

    def _count(self, name: str, default: int) -> int:
        """Mesos falls back to the default when the value is not a number."""
        try:
            return max(0, int(self.get_query_argument(name, str(default))))
        except ValueError:
            return default


class RolesHandler(ReadOnlyHandler):
    def build(self) -> Any:
        return views_v0.v0_roles(self.master)

    def view(self, answer: Any) -> Any:
        return self.viewer().roles(answer)


class FlagsHandler(ReadOnlyHandler):
    endpoint_acl = True
    def build(self) -> Any:
        return {"flags": views.master_flags(self.master.config)}


class WeightsHandler(ReadOnlyHandler):
    """``GET /master/weights``: a bare array of WeightInfo, as Mesos answers."""

    def build(self) -> Any:
        return views.weight_infos(self.master)


class TeardownHandler(BaseHandler):
    """``POST /master/teardown`` with ``frameworkId=<id>`` in a form-encoded body."""

    master: Master

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get

    def post(self) -> None:
        self.master.check_leader()
        try:
            body = self.request.body.decode()
        except UnicodeDecodeError:
            raise BadRequest("Unable to decode query string: not UTF-8") from None
        values = urllib.parse.parse_qs(body, keep_blank_values=True)
        ids = values.get("frameworkId")
        if not ids:
            raise BadRequest("Missing 'frameworkId' query parameter in the request body")
        framework = self.master.book.frameworks.get(ids[0])
        if framework is None:
            raise BadRequest("No framework found with specified ID")
        self.master.remove_framework(framework, "torn down by an operator (/master/teardown)")
        self.set_status(200)
        self.finish()


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The legacy routes, each also reachable with a ``.json`` suffix as before Mesos 0.25."""
    table: list[tuple[str, type]] = [
        (r"/master/state", StateHandler),
        (r"/state", StateHandler),
        (r"/master/state-summary", StateSummaryHandler),
        (r"/master/frameworks", FrameworksHandler),
        (r"/master/slaves", SlavesHandler),
        (r"/master/tasks", TasksHandler),
        (r"/master/roles", RolesHandler),
        (r"/master/flags", FlagsHandler),
        (r"/master/weights", WeightsHandler),
        (r"/master/teardown", TeardownHandler),
    ]
    return [(rf"{path}(?:\.json)?/?", handler, deps) for path, handler in table]
