"""The client's blob server: large call payloads, fetched by workers, not sent via the master.

A call whose pickle is over ``INLINE_MAX`` is kept here under a random key and the task
carries only its URL. Bound to 127.0.0.1 for a local cluster, else to the address this
machine uses to reach the master. Blobs are dropped when their call ends.
"""

from __future__ import annotations

import logging
import secrets
import socket
from urllib.parse import urlsplit

import tornado.httpserver
import tornado.web

from mesonb import tls
from mesonb.http.base import log_request

log = logging.getLogger(__name__)


class _BlobHandler(tornado.web.RequestHandler):
    def initialize(self, store: dict[str, bytes]) -> None:
        self.store = store

    def get(self, key: str) -> None:
        data = self.store.get(key)
        if data is None:
            raise tornado.web.HTTPError(404)
        self.set_header("Content-Type", "application/octet-stream")
        self.write(data)


class BlobServer:
    """``put(data) -> url``; ``drop(url)``. Start and stop on the client's loop."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}
        self.server: tornado.httpserver.HTTPServer | None = None
        self.base = ""

    def start(self, master_url: str) -> None:
        host = urlsplit(master_url).hostname or "127.0.0.1"
        ip = "127.0.0.1" if host in ("127.0.0.1", "localhost") else _route_to(host)
        app = tornado.web.Application([(r"/blobs/([A-Za-z0-9_-]+)", _BlobHandler,
                                        {"store": self.store})],
                                      log_function=log_request)  # mesonb's access log
        # TLS when this client has a certificate (--ssl-cert/MESONB_SSL_CERT): executors
        # fetch large values from here and verify it against the cluster's CA.
        secure = tls.can_serve()
        if tls.enabled() and not secure:
            log.warning("TLS is on but this client has no certificate (MESONB_SSL_CERT, "
                        "MESONB_SSL_KEY): executors fetch values over 64 KiB from it "
                        "in plain HTTP")
        self.server = tornado.httpserver.HTTPServer(
            app, max_buffer_size=2**31, ssl_options=tls.server_context() if secure else None)
        sockets = tornado.netutil.bind_sockets(0, ip)
        self.server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        self.base = f"{'https' if secure else 'http'}://{tls.netloc(ip, port)}/blobs/"

    def put(self, data: bytes) -> str:
        key = secrets.token_urlsafe(24)
        self.store[key] = data
        return self.base + key

    def drop(self, url: str | None) -> None:
        if url and url.startswith(self.base):
            self.store.pop(url[len(self.base):], None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.store.clear()


def _route_to(host: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"
