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

Handlers are thin: the hub holds the model; nothing here reaches into a master.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import tornado.web
import tornado.websocket

from mesonb.http.base import BaseHandler, Security
from mesonb.http.client import Connection
from mesonb.protocol.errors import BadRequest, NotFound, ProtocolError

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
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((STATIC_DIR / "index.html").read_bytes())


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's assets, from the package (``mesonb/webui/static``)."""

    def initialize(self, security: Security | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        super().initialize(path=str(STATIC_DIR))

    def set_extra_headers(self, path: str) -> None:
        self.set_header("Cache-Control", "no-cache")


class FeedSocket(tornado.websocket.WebSocketHandler):
    """``/ui/feed``: snapshot, then deltas, until the page goes away."""

    hub: Hub
    security: Security

    def initialize(self, security: Security, hub: Hub, **kwargs: Any) -> None:
        self.security = security
        self.hub = hub

    async def get(self, *args: Any, **kwargs: Any) -> None:
        token = self.get_query_argument("token", None)
        header = self.request.headers.get("Authorization") or (
            f"Bearer {token}" if token else None)
        try:
            self.security.check(header)
        except ProtocolError as exc:
            self.set_status(exc.status)
            self.finish(exc.message)
            return
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        self.set_nodelay(True)
        self.hub.attach(self)

    def send_text(self, text: str) -> None:
        self.write_message(text)

    def on_message(self, message: str | bytes) -> None:
        pass  # the page only listens

    def on_close(self) -> None:
        self.hub.detach(self)


class FilesHandler(BaseHandler):
    """``/ui/files/(browse|read)``: an agent's files API through the master."""

    hub: Hub

    async def get(self, operation: str) -> None:
        agent_id = self.get_query_argument("agent_id", "")
        path = self.get_query_argument("path", "")
        if not agent_id or not path:
            raise BadRequest("Expecting 'agent_id' and 'path' in the query")
        url = self.hub.agent_url(agent_id)
        if url is None:
            raise NotFound(f"No agent '{agent_id}' is known")
        query: dict[str, str] = {"path": path}
        for name in ("offset", "length"):
            value = self.get_query_argument(name, None)
            if value is not None:
                query[name] = value
        headers = {"Authorization": f"Bearer {self.hub.secret}"} if self.hub.secret else {}
        connection = Connection.to(url, headers, inproc=True)
        target = f"/files/{operation}?{urllib.parse.urlencode(query)}"
        try:
            answer = await asyncio.wait_for(connection.request("GET", target), AGENT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ProtocolError(f"Agent {agent_id} at {url} did not answer: {exc!r}",
                                502) from None
        finally:
            connection.close()
        self.set_status(answer.status)
        self.set_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.finish(answer.body)


def routes(security: Security, hub: Hub) -> list[tuple[str, type, dict[str, Any]]]:
    deps: dict[str, Any] = {"security": security, "hub": hub}
    return [
        (r"/", PageHandler, deps),
        (r"/panel/([a-z]+)/?", PageHandler, deps),
        (r"/ui/static/(.*)", StaticHandler, {"security": security}),
        (r"/ui/feed", FeedSocket, deps),
        (r"/ui/files/(browse|read)", FilesHandler, deps),
    ]
