"""The extension's handlers: ``/mesonb/clusters`` and ``/mesonb/proxy/<cluster>/<path>``.

Every handler authenticates through Jupyter (``current_user``). The proxy is one handler
for HTTP and WebSocket (as jupyter-server-proxy is): ``get`` with ``Upgrade: websocket``
checks the user *before* the upgrade and answers 403 without one — the hole of
CVE-2024-28179 was an upgrade that skipped that check.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import tornado.httpclient
import tornado.web
import tornado.websocket
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join

from mesonb import tls
from mesonb.security import local_secret

from .clusters import ClusterManager

log = logging.getLogger(__name__)
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailers", "transfer-encoding", "upgrade", "host", "content-length",
               "authorization", "cookie", "accept-encoding"}
_ANSWER_SKIP = {"connection", "transfer-encoding", "content-length", "content-encoding",
                "set-cookie", "server", "date"}
CONNECT_TIMEOUT = 10.0
STREAM_TIMEOUT = 24 * 3600.0  # event streams stay open; the page ends them by leaving


class ClustersHandler(APIHandler):
    """``/mesonb/clusters[/<id>]``: GET lists (or one), PUT starts, DELETE stops."""

    manager: ClusterManager

    def initialize(self, manager: ClusterManager) -> None:
        self.manager = manager

    @tornado.web.authenticated
    def get(self, key: str | None = None) -> None:
        if key:
            entry = self.manager.get(key)
            if entry is None:
                raise tornado.web.HTTPError(404, f"no cluster {key!r}")
            self.finish(json.dumps(entry.to_json(self.base_url)))
            return
        self.finish(json.dumps([e.to_json(self.base_url)
                                for e in self.manager.clusters.values()]))

    @tornado.web.authenticated
    async def put(self, key: str | None = None) -> None:
        try:
            options = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "the body must be JSON") from None
        if not isinstance(options, dict):
            raise tornado.web.HTTPError(400, "the body must be a JSON object")
        try:
            entry = await self.manager.start(key, options)
        except ValueError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.set_status(201)
        self.finish(json.dumps(entry.to_json(self.base_url)))

    @tornado.web.authenticated
    async def delete(self, key: str | None = None) -> None:
        if not key or not await self.manager.stop(key):
            raise tornado.web.HTTPError(404, f"no cluster {key!r}")
        self.set_status(204)
        self.finish()


class ProxyHandler(tornado.websocket.WebSocketHandler, JupyterHandler):
    """``/mesonb/proxy/<cluster>/<path>`` to the cluster's master, HTTP or WebSocket."""

    manager: ClusterManager

    def initialize(self, manager: ClusterManager) -> None:
        self.manager = manager
        self.upstream: tornado.websocket.WebSocketClientConnection | None = None

    def _target(self, key: str, path: str, scheme: str) -> str:
        address = self.manager.target(key)
        if address is None:
            raise tornado.web.HTTPError(404, f"no cluster {key!r} (ids, or a loopback "
                                             "host:port)")
        query = self._upstream_query()
        return f"{scheme}://{address}/{path}" + (f"?{query}" if query else "")

    def _upstream_query(self) -> str:
        """The query without Jupyter's ``token`` (the master must not see it)."""
        from urllib.parse import urlencode

        args = [(k, v.decode()) for k, values in self.request.query_arguments.items()
                if k != "token" for v in values]
        return urlencode(args)

    def check_origin(self, origin: str | None = None) -> bool:
        """WebSocket upgrades: same origin only (tornado's rule); plain HTTP: Jupyter's."""
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            return tornado.websocket.WebSocketHandler.check_origin(self, origin or "")
        return JupyterHandler.check_origin(self)

    # -- HTTP ------------------------------------------------------------------------
    async def get(self, key: str, path: str = "") -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            if self.current_user is None:  # before the upgrade: never an anonymous socket
                raise tornado.web.HTTPError(403, "WebSocket upgrade without credentials")
            self._ws_target = self._target(key, path, tls.ws_scheme())
            await tornado.websocket.WebSocketHandler.get(self, key, path)
            return
        await self._proxy(key, path)

    async def post(self, key: str, path: str = "") -> None:
        await self._proxy(key, path)

    async def put(self, key: str, path: str = "") -> None:
        await self._proxy(key, path)

    async def delete(self, key: str, path: str = "") -> None:
        await self._proxy(key, path)

    async def _proxy(self, key: str, path: str) -> None:
        """Relay one request; the answer streams through as it comes (an operator
        SUBSCRIBE, a file download), chunk by chunk."""
        if self.current_user is None:
            raise tornado.web.HTTPError(403, "not authenticated")
        url = self._target(key, path, tls.scheme())
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in _HOP_BY_HOP}
        # a local cluster of this user's (secure by default): its secret, behind Jupyter's
        # own authentication, in place of Jupyter's token
        headers.update(local_secret.headers_for(url))
        body = self.request.body if self.request.method in ("POST", "PUT", "PATCH") else None
        answer_head = tornado.httputil.HTTPHeaders()
        status: list[Any] = [502, None]
        started = False

        def on_header(line: str) -> None:
            if line.startswith("HTTP/"):  # a status line (again after a 100 Continue)
                start = tornado.httputil.parse_response_start_line(line.strip())
                status[:] = [start.code, start.reason]
                answer_head.clear()
            elif line.strip():
                answer_head.parse_line(line)

        def begin() -> None:
            nonlocal started
            started = True
            self.set_status(status[0], status[1])
            self._headers = tornado.httputil.HTTPHeaders()
            for name, value in answer_head.get_all():
                if name.lower() not in _ANSWER_SKIP:
                    self.add_header(name, value)

        def on_chunk(chunk: bytes) -> None:
            if not started:
                begin()
            self.write(chunk)
            self.flush()

        request = tornado.httpclient.HTTPRequest(
            url, method=self.request.method or "GET", headers=headers, body=body,
            follow_redirects=False, connect_timeout=CONNECT_TIMEOUT,
            request_timeout=STREAM_TIMEOUT, allow_nonstandard_methods=True,
            header_callback=on_header, streaming_callback=on_chunk, decompress_response=False,
            ssl_options=tls.client_context() if tls.enabled() else None)
        client = tornado.httpclient.AsyncHTTPClient()
        try:
            answer = await client.fetch(request, raise_error=False)
        except OSError as exc:
            raise tornado.web.HTTPError(502, f"the master at {url} did not answer: {exc}") from None
        if answer.code == 599 and not started:
            raise tornado.web.HTTPError(502, f"the master did not answer: {answer.error}")
        if not started:
            begin()
        if not self._finished:
            self.finish()

    # -- WebSocket -------------------------------------------------------------------
    async def open(self, *args: str, **kwargs: str) -> None:
        try:
            self.upstream = await tornado.websocket.websocket_connect(
                tornado.httpclient.HTTPRequest(
                    self._ws_target, headers=local_secret.headers_for(self._ws_target),
                    ssl_options=tls.client_context() if tls.enabled() else None),
                on_message_callback=self._from_upstream)
        except Exception as exc:
            log.info("mesonb proxy: cannot reach %s: %s", self._ws_target, exc)
            self.close(1011, "the master did not answer")

    def _from_upstream(self, message: str | bytes | None) -> None:
        if message is None:  # the master closed
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except tornado.websocket.WebSocketClosedError:
            if self.upstream is not None:
                self.upstream.close()

    async def on_message(self, message: str | bytes) -> None:
        if self.upstream is not None:
            await self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def setup_handlers(serverapp: Any) -> None:
    """Add the routes under the server's base URL; stop local clusters on shutdown."""
    web_app = serverapp.web_app
    base = web_app.settings["base_url"]
    manager = ClusterManager()
    web_app.settings["mesonb_clusters"] = manager
    deps = {"manager": manager}
    web_app.add_handlers(".*$", [
        (url_path_join(base, r"mesonb/clusters/?"), ClustersHandler, deps),
        (url_path_join(base, r"mesonb/clusters/([^/]+)/?"), ClustersHandler, deps),
        (url_path_join(base, r"mesonb/proxy/([^/]+)/?(.*)"), ProxyHandler, deps),
    ])
    serverapp.log.info("mesonb extension loaded: %smesonb/clusters", base)
    original = getattr(serverapp, "cleanup_extensions", None)
    if original is not None:  # stop the local clusters with the server (their tasks too)

        async def cleanup_extensions() -> None:
            try:
                await manager.close()
            finally:
                await original()

        serverapp.cleanup_extensions = cleanup_extensions
