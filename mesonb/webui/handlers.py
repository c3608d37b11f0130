"""The web UI's HTTP surface, shared by the live master and ``mesonb ui --history``.

* ``GET /`` and ``GET /panel/<name>``: the page (one HTML file; the app routes by the URL
  fragment, ``#/agents``, ``#/frameworks/<id>``, ...). Public: it holds no data.
* ``GET /ui/static/<file>``: the page's script and style, shipped in the package.
* ``GET /ui/feed`` (WebSocket): the model's snapshot, then its deltas (:mod:`.hub`).
  When the daemon has a secret, the page passes it as ``?token=`` (a browser cannot set
  headers on a WebSocket) or an ``Authorization`` header.
* ``GET /ui/files/{browse,read}?agent_id=&path=[&offset=&length=]``: an agent's files
  API, proxied so that the page needs to reach only the master (and works behind a
  Jupyter proxy). Sandbox bytes pass through; nothing is interpreted.
* ``GET /ui/sandbox?agent_id=&framework_id=&executor_id=``: where an executor's sandbox
  is (also after it ended); ``GET /ui/agent/{metrics/snapshot,monitor/statistics}``:
  one agent's figures, for the panels.

Handlers are thin: the hub holds the model; nothing here reaches into a master.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import tornado.web
import tornado.websocket

from mesonb.http.base import BaseHandler, Security
from mesonb.http.client import Connection
from mesonb.protocol.errors import BadRequest, Forbidden, NotFound, ProtocolError
from mesonb.security.acls import Action
from mesonb.security.views import Viewer

from .hub import Hub

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"
PANELS = ("tasks", "usage", "pending", "shares", "failures")
AGENT_TIMEOUT = 10.0


class PageHandler(BaseHandler):
    """The single page; ``/panel/<name>`` opens one panel full-page."""

    public = True

    def get(self, panel: str | None = None) -> None:
        if panel is not None and panel not in PANELS:
            raise NotFound(f"No panel '{panel}'; panels: {', '.join(PANELS)}")
        # Relative to where the page is (the master's root, or a proxy's prefix before it):
        # ``/panel/tasks`` -> ``../``, so assets and the feed resolve under either.
        depth = max(0, self.request.path.count("/") - 1)
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page.replace("{{base}}", "../" * depth or "./"))


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's assets, from the package (``mesonb/webui/static``). Public: no data."""

    public = True

    def initialize(self, security: Security | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(path=str(STATIC_DIR))

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")

    async def get(self, path: str, include_body: bool = True) -> None:
        if "\0" in path:  # os.stat would raise ValueError (a 500): no such asset
            raise tornado.web.HTTPError(404)
        await super().get(path, include_body)


class FeedSocket(tornado.websocket.WebSocketHandler):
    """``/ui/feed``: snapshot, then deltas, until the page goes away."""

    hub: Hub
    security: Security

    def initialize(self, security: Security, hub: Hub, **kwargs: Any) -> None:
        self.security = security
        self.hub = hub

    def prepare(self) -> None:
        """Authenticate every request, whatever its method, before anything else."""
        token = self.get_query_argument("token", None)
        header = self.request.headers.get("Authorization") or (
            f"Bearer {token}" if token else None)
        try:
            principal = self.security.authenticate(header)
            operator = self.security.secret is not None and principal is None
            # the feed carries the whole cluster: a principal the view_* ACLs confine to
            # part of it reads the filtered state endpoints instead
            if not operator and not Viewer(self.security.acls, principal).sees_everything():
                raise Forbidden(f"{self.security.acls.explain(Action.VIEW_FRAMEWORK, principal)}"
                                " (the web UI's feed shows every framework, task, executor "
                                "and role; the state endpoints show what may be viewed)")
        except ProtocolError as exc:
            self.set_status(exc.status)
            if exc.status == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="mesonb"')
            self.finish(exc.message)

    max_unsent = 64 * 1024 * 1024  # a page that stops reading is dropped past this

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        self.unsent = 0
        self.hub.attach(self)

    def send_text(self, text: str) -> None:
        """Send, unless the page has left more than :attr:`max_unsent` bytes unread (then
        it is dropped: the master's memory must not grow for a stuck browser tab)."""
        if self.unsent > self.max_unsent:
            log.warning("web UI page %s is not reading (%d bytes unsent); dropping it",
                        self.request.remote_ip, self.unsent)
            self.hub.detach(self)
            self.close(1013, "too slow")
            return
        size = len(text)
        self.unsent += size
        self.write_message(text).add_done_callback(lambda _f: self._sent(size))

    def _sent(self, size: int) -> None:
        self.unsent -= size

    def on_message(self, message: str | bytes) -> None:
        pass  # the page only listens

    def on_close(self) -> None:
        self.hub.detach(self)


class AgentHandler(BaseHandler):
    """Base of the handlers that ask one agent something on the page's behalf."""

    hub: Hub

    async def ask_agent(self, agent_id: str, target: str) -> Any:
        """The agent's answer to ``GET target`` (its status, headers and body)."""
        if not agent_id:
            raise BadRequest("Expecting 'agent_id' in the query")
        url = self.hub.agent_url(agent_id)
        if url is None:
            raise NotFound(f"No agent '{agent_id}' is known")
        headers = {"Authorization": f"Bearer {self.hub.secret}"} if self.hub.secret else {}
        caller = self.request.headers.get("Authorization") or (
            f"Bearer {self.get_query_argument('token', '')}"
            if self.get_query_argument("token", None) else None)
        if not self.operator and caller:
            # the agent decides with the caller's own credentials (access_sandboxes), not
            # with the cluster secret the master holds
            headers = {"Authorization": caller}
        connection = Connection.to(url, headers, inproc=True)
        try:
            return await asyncio.wait_for(connection.request("GET", target), AGENT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ProtocolError(f"Agent {agent_id} at {url} did not answer: {exc!r}",
                                502) from None
        finally:
            connection.close()

    def relay(self, answer: Any) -> None:
        self.set_status(answer.status)
        self.set_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.finish(answer.body)


class FilesHandler(AgentHandler):
    """``/ui/files/(browse|read)``: an agent's files API through the master."""

    async def get(self, operation: str) -> None:
        path = self.get_query_argument("path", "")
        if not path:
            raise BadRequest("Expecting 'path' in the query")
        query: dict[str, str] = {"path": path}
        for name in ("offset", "length"):
            value = self.get_query_argument(name, None)
            if value is not None:
                query[name] = value
        target = f"/files/{operation}?{urllib.parse.urlencode(query)}"
        self.relay(await self.ask_agent(self.get_query_argument("agent_id", ""), target))


class AgentFiguresHandler(AgentHandler):
    """``/ui/agent/(metrics/snapshot|monitor/statistics)?agent_id=``: what an agent
    measures (the usage panel asks for the agents it shows, not for all of them)."""

    async def get(self, what: str) -> None:
        self.relay(await self.ask_agent(self.get_query_argument("agent_id", ""), f"/{what}"))


class SandboxHandler(AgentHandler):
    """``/ui/sandbox?agent_id=&framework_id=&executor_id=``: the executor's sandbox
    directory, from the agent's state (live or completed executors), for the files API
    once the executor has ended and ``runs/latest`` is no longer served."""

    async def get(self) -> None:
        framework_id = self.get_query_argument("framework_id", "")
        executor_id = self.get_query_argument("executor_id", "")
        answer = await self.ask_agent(self.get_query_argument("agent_id", ""), "/state")
        if answer.status != 200:
            self.relay(answer)
            return
        state = json.loads(answer.body)
        for framework in [*state.get("frameworks", ()), *state.get("completed_frameworks", ())]:
            if framework.get("id") != framework_id:
                continue
            for executor in reversed([*framework.get("completed_executors", ()),
                                      *framework.get("executors", ())]):
                if executor.get("id") == executor_id and executor.get("directory"):
                    self.write_json({"directory": executor["directory"]})
                    return
        raise NotFound(f"The agent holds no sandbox of executor '{executor_id}' of framework "
                       f"'{framework_id}' (removed by its garbage collection?)")


def routes(security: Security, hub: Hub) -> list[tuple[str, type, dict[str, Any]]]:
    deps: dict[str, Any] = {"security": security, "hub": hub}
    return [
        (r"/", PageHandler, deps),
        (r"/panel/([a-z]+)/?", PageHandler, deps),
        (r"/ui/static/(.*)", StaticHandler, {"security": security}),
        (r"/ui/feed", FeedSocket, deps),
        (r"/ui/files/(browse|read)", FilesHandler, deps),
        (r"/ui/agent/(metrics/snapshot|monitor/statistics)", AgentFiguresHandler, deps),
        (r"/ui/sandbox", SandboxHandler, deps),
    ]
