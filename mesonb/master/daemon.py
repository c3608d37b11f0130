"""The master daemon: binds the HTTP server, drives the master's timers, stops cleanly.

With ``config.zk`` it contends for leadership after binding (:mod:`.election`): until it
leads it answers scheduler/agent/operator calls with 503, or with 307 to the leader once
it knows one; when it becomes leader it recovers the registry, then serves. While it
recovers it accepts no new connection: they wait in the listen backlog and are served
once it leads, instead of a 503 that would send every agent ZooKeeper has just pointed
here into its registration back-off (seconds) for a recovery of milliseconds. A leader that
loses its ZooKeeper session aborts: ``on_abort(reason)`` runs (``mesonb master`` exits 1
so a supervisor restarts it; the default stops the daemon).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web

from mesonb import tls
from mesonb.clock import REAL_CLOCK, Clock
from mesonb.config import MasterConfig
from mesonb.discovery import parse_zk_url
from mesonb.http import inproc
from mesonb.http.base import UNBOUNDED_BODY, Security
from mesonb.tasks import spawn

from .election import Abort, Action, Follow, Lead, ZooKeeperContender
from .http import make_app
from .http.inproc import MasterEndpoint
from .http.scheduler_lane import SchedulerLane
from .master import Master
from .registry import DirectoryStore, MemoryStore, Registry, RegistryStore, ZooKeeperStore

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


def next_turn(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], None]:
    """A thread-safe "run this on the loop's next turn": ``call_soon`` on the loop's own
    thread, ``call_soon_threadsafe`` (which also wakes the loop) from any other. What
    tornado's ``IOLoop.add_callback`` does, less its wrapping of every callback, which
    cost the master about 3% of its CPU (it schedules a few callbacks per task)."""
    thread = threading.get_ident()
    call_soon, call_soon_threadsafe = loop.call_soon, loop.call_soon_threadsafe

    def schedule(fn: Callable[[], None]) -> None:
        if threading.get_ident() == thread:
            call_soon(fn)
        else:
            call_soon_threadsafe(fn)

    return schedule


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

    def __init__(
        self,
        config: MasterConfig,
        clock: Clock = REAL_CLOCK,
        on_abort: Callable[[str], None] | None = None,
        registry_store: RegistryStore | None = None,
    ) -> None:
        if (config.secret is None and config.credentials is None and not config.insecure
                and not is_loopback(config.ip)):
            raise ValueError(
                f"refusing to bind the master to {config.ip} without authentication: pass "
                "--secret (or set MESONB_SECRET) or --credentials FILE so every API call must "
                "carry credentials (or --insecure to serve anyone who can reach it)"
            )
        self.security = Security.from_flags(config.secret, config.credentials, config.acls)
        self.config = config
        self.clock = clock
        self.master: Master | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self.app: tornado.web.Application | None = None
        self._sockets: list[socket.socket] = []
        self._accepting = True
        self._endpoint: MasterEndpoint | None = None  # frameworks and agents in-process
        self._lane: SchedulerLane | None = None  # mesonb drivers' calls (http.lane)
        self._ticker: tornado.ioloop.PeriodicCallback | None = None
        self.on_abort = on_abort
        self.aborted: str | None = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self.contender: ZooKeeperContender | None = None
        self.registry: Registry | None = None
        self._registry_store = registry_store
        self._zk_url = parse_zk_url(config.zk) if config.zk else None
        if config.registry not in ("in_memory", "local", "zk"):
            raise ValueError(f"--registry {config.registry!r}: expected in_memory, local or zk")
        if config.registry == "zk" and self._zk_url is None:
            raise ValueError("--registry zk needs --zk")

    @property
    def registry_path(self) -> str | None:
        """The registry's znode path: the election path's sibling ``<path>-registry``."""
        return f"{self._zk_url.path.rstrip('/')}-registry" if self._zk_url else None

    @property
    def port(self) -> int:
        assert self.master is not None, "start() first"
        return self.master.port

    @property
    def url(self) -> str:
        return tls.url(self.config.ip, self.port)

    @property
    def address(self) -> str:
        """``host:port``, the form agents and pymesos take as their master."""
        return f"{self.config.ip}:{self.port}"

    async def start(self) -> None:
        raise_open_files_limit()
        self._sockets = sockets = tornado.netutil.bind_sockets(self.config.port, self.config.ip)
        port = sockets[0].getsockname()[1]
        self.config.port = port
        self.master = master = Master(self.config, self.clock)
        master.acls = self.security.acls  # reservations and volumes are authorized in the core
        loop = tornado.ioloop.IOLoop.current()
        master.attach(next_turn(asyncio.get_running_loop()))
        if self._zk_url is not None:
            master.leading, master.elected_time = False, None
            info = json.dumps(master.info().to_json()).encode()
            self.contender = ZooKeeperContender(
                self._zk_url, info, loop.add_callback, self._on_election,
                self.clock.monotonic, self.config.zk_session_timeout)
        self.registry = Registry(self._make_store())
        master.registry = self.registry
        if self.contender is None:
            await self._lead()  # standalone: recover the registry, then serve
        security = self.security
        self._lane = SchedulerLane(master, security)
        try:
            lane_port: int | None = await self._lane.start(self.config.ip)
        except OSError as exc:  # frameworks then send every call to the HTTP port
            log.warning("no calls lane for frameworks: %s", exc)
            lane_port = None
        self.app = app = make_app(master, security, lane_port)  # its router lists every route
        self._server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=3600,
                                                     max_body_size=UNBOUNDED_BODY,
                                                     ssl_options=tls.server_options())
        self._server.add_sockets(sockets)
        self._endpoint = MasterEndpoint(master, security, asyncio.get_running_loop())
        inproc.serve(self.config.ip, port, self._endpoint)
        self._ticker = tornado.ioloop.PeriodicCallback(self._tick, TICK_SECONDS * 1000)
        self._ticker.start()
        log.info("master %s listening on %s", master.id, tls.url(self.config.ip, port))
        if self.contender is not None:
            try:
                await asyncio.to_thread(self.contender.start, 30.0)
            except BaseException:
                await self.stop()
                raise
            log.info("master %s contending in %s", master.id, self._zk_url)

    def _make_store(self) -> RegistryStore:
        if self._registry_store is not None:
            return self._registry_store
        if self.config.registry == "local":
            return DirectoryStore(Path(self.config.work_dir) / "registry")
        if self.config.registry == "zk":
            contender = self.contender
            assert contender is not None and self.registry_path is not None
            return ZooKeeperStore(contender.client, self.registry_path,
                                  fence=lambda: contender.node_path)
        return MemoryStore()

    async def _lead(self) -> None:
        """Become the serving leader: recover the registry first (new connections wait
        meanwhile, see the module docstring)."""
        master, registry = self.master, self.registry
        assert master is not None and registry is not None
        try:
            state = await asyncio.wrap_future(registry.recover())
        except Exception as exc:
            self._abort(f"could not read the registry: {exc!r}")
            return
        if self.aborted is not None:
            return
        master.recover(state)
        master.leader = None
        master.leading = True
        master.elected_time = self.clock.time()
        self._accept(True)
        log.info("master %s is the leader", master.id)

    def _accept(self, accepting: bool) -> None:
        """Stop (or resume) accepting connections; those that arrive meanwhile wait in
        the kernel's listen backlog."""
        if accepting == self._accepting or self._server is None:
            return
        self._accepting = accepting
        if accepting:
            self._server.add_sockets(self._sockets)
        else:
            loop = tornado.ioloop.IOLoop.current()
            for sock in self._sockets:
                loop.remove_handler(sock)

    def _on_election(self, action: Action) -> None:
        master = self.master
        assert master is not None
        if isinstance(action, Lead):
            master.leader = None  # 503 while recovering, not a 307 to the old leader
            self._accept(False)
            self._spawn(self._lead())
        elif isinstance(action, Follow):
            master.leader = action.leader
            log.info("standing by; the leader is %s", action.leader or "unknown")
        elif isinstance(action, Abort):
            self._abort(action.reason)

    def _abort(self, reason: str) -> None:
        """Lost leadership (or could not take it up): stop serving at once."""
        log.critical("master aborting: %s", reason)
        self.aborted = reason
        if self.master is not None:
            self.master.leading, self.master.leader = False, None
        if self.on_abort is not None:
            self.on_abort(reason)
        else:
            self._spawn(self.stop())

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._tasks, "master daemon work", logger=log)

    def _tick(self) -> None:
        assert self.master is not None
        try:
            if self.contender is not None:
                self.contender.tick()
            if self.master.leading:
                self.master.tick()
        except Exception:  # a bug in one timer must not stop the others for good
            log.exception("master timer failed")

    async def stop(self) -> None:
        if self._endpoint is not None:
            inproc.withdraw(self.config.ip, self.port, self._endpoint)
            self._endpoint = None
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
        if self._lane is not None:
            lane, self._lane = self._lane, None
            await lane.stop()
        if self.contender is not None:
            contender, self.contender = self.contender, None
            await asyncio.to_thread(contender.stop)
        if self.registry is not None:
            registry, self.registry = self.registry, None
            await asyncio.to_thread(registry.close)
