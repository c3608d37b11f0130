"""The master daemon: binds the HTTP server, drives the master's timers, stops cleanly."""

from __future__ import annotations

import ipaddress
import logging
import socket

import tornado.httpserver
import tornado.ioloop
import tornado.netutil

from mesonb.clock import REAL_CLOCK, Clock
from mesonb.config import MasterConfig
from mesonb.http.base import Security

from .http import make_app
from .master import Master

log = logging.getLogger(__name__)
TICK_SECONDS = 0.1


def raise_open_files_limit() -> int:
    """Lift the soft limit on open files to the hard one: each agent and framework is a socket."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ImportError, ValueError, OSError):
        return -1


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(ip)).is_loopback
    except (OSError, ValueError):
        return False


class MasterDaemon:
    """A master serving HTTP on ``config.ip:config.port`` (port 0 picks a free one).

    Use inside a running event loop::

        daemon = MasterDaemon(MasterConfig(port=0))
        await daemon.start()
        print(daemon.url)
        ...
        await daemon.stop()
    """

    def __init__(self, config: MasterConfig, clock: Clock = REAL_CLOCK) -> None:
        if config.secret is None and not is_loopback(config.ip):
            raise ValueError(
                f"refusing to bind the master to {config.ip} without a secret: pass --secret "
                "(or set MESONB_SECRET) so every API call must carry a bearer token"
            )
        self.config = config
        self.clock = clock
        self.master: Master | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._ticker: tornado.ioloop.PeriodicCallback | None = None

    @property
    def port(self) -> int:
        assert self.master is not None, "start() first"
        return self.master.port

    @property
    def url(self) -> str:
        return f"http://{self.config.ip}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, the form agents and pymesos take as their master."""
        return f"{self.config.ip}:{self.port}"

    async def start(self) -> None:
        raise_open_files_limit()
        sockets = tornado.netutil.bind_sockets(self.config.port, self.config.ip)
        port = sockets[0].getsockname()[1]
        self.config.port = port
        self.master = Master(self.config, self.clock)
        loop = tornado.ioloop.IOLoop.current()
        self.master.attach(loop.add_callback)
        app = make_app(self.master, Security(self.config.secret))
        self._server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=3600)
        self._server.add_sockets(sockets)
        self._ticker = tornado.ioloop.PeriodicCallback(self._tick, TICK_SECONDS * 1000)
        self._ticker.start()
        log.info("master %s listening on http://%s:%d", self.master.id, self.config.ip, port)

    def _tick(self) -> None:
        assert self.master is not None
        try:
            self.master.tick()
        except Exception:  # a bug in one timer must not stop the others for good
            log.exception("master timer failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._server is not None:
            self._server.stop()
            if self.master is not None:
                for framework in list(self.master.book.frameworks.values()):
                    if framework.close is not None:
                        framework.close("master shutting down")
                for agent in self.master.book.agents.values():
                    if agent.close is not None:
                        agent.close()
            await self._server.close_all_connections()
            self._server = None
