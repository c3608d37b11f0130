"""One ``mesonb marathon`` instance: the REST API, and, while it leads, the framework.

Without ZooKeeper it leads alone and keeps its state under a local directory. With
``zk`` it joins the election (:mod:`.election`), keeps its state in ZooKeeper, serves the
API at once as a standby (proxying to the leader), and on winning loads the state and
subscribes to the master with the stored framework id — the tasks keep running (Mesos
holds them for ``failover_timeout``, one week, as Marathon's).

Example::

    service = Marathon("127.0.0.1:5050", port=0)
    await service.start()          # http://127.0.0.1:<service.port>/v2/apps
    await service.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import socket
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil

from mesonb import discovery, tls
from mesonb.frameworks.driver import SchedulerDriver
from mesonb.http.base import Security
from mesonb.tasks import spawn

from .api import make_application
from .core import MarathonCore
from .election import Election
from .operations import Operations
from .storage import LocalStore, MemoryStore, Store, ZooKeeperStore
from .views import info_json

log = logging.getLogger(__name__)
FAILOVER_TIMEOUT = 604800.0  # one week, Marathon's default
FRAMEWORK_NAME = "marathon"


class Marathon:
    """A Marathon-compatible framework with its v2 REST API (see the module docstring)."""

    def __init__(self, master: str, *, port: int = 8080, ip: str = "127.0.0.1",
                 zk: str | None = None, work_dir: Path | None = None, secret: str | None = None,
                 master_secret: str | None = None, name: str = FRAMEWORK_NAME,
                 role: str = "*", zk_session_timeout: float = 2.0,
                 in_memory: bool = False, shared_executor: bool = False) -> None:
        self.master = master
        self.ip = ip
        self.port = port
        self.zk = zk
        self.work_dir = work_dir
        self.secret = secret
        self.master_secret = master_secret
        self.name = name
        self.role = role
        self.zk_session_timeout = zk_session_timeout
        self.in_memory = in_memory
        self.shared_executor = shared_executor
        self.security = Security(secret)
        self.groups_latency: list[float] = []
        self.is_leader = False
        self._leading = asyncio.Event()  # set while is_leader
        self.leader_address: str | None = None
        self.core = MarathonCore(role=role)
        self.ops = Operations(self.core)
        self.driver: SchedulerDriver | None = None
        self._server: tornado.httpserver.HTTPServer | None = None
        self._zk_client: Any = None
        self._election: Election | None = None
        self._transition = asyncio.Lock()
        self._stopping = False
        self._pending: set[asyncio.Future[Any]] = set()
        self._memory = MemoryStore()

    async def wait_leading(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until this instance leads: elected, it is loading
        the state; True if it leads."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._leading.wait(), timeout)
        return self.is_leader

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def url(self) -> str:
        return tls.address_url(self.address)

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Serve the API, then lead (alone) or join the election."""
        sockets = tornado.netutil.bind_sockets(self.port, self.ip)
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(make_application(self),
                                                     ssl_options=tls.server_options())
        self._server.add_sockets(sockets)
        log.info("marathon API bound to %s:%d", self.ip, self.port)
        if self.zk:
            await self._join_election()
        else:
            await self._lead()

    async def _join_election(self) -> None:
        from kazoo.client import KazooClient

        assert self.zk is not None
        url = discovery.parse_zk_url(self.zk)
        path = url.path
        self._zk_client = KazooClient(hosts=url.hosts, timeout=self.zk_session_timeout,
                                      auth_data=url.auth_data)
        await asyncio.to_thread(self._zk_client.start, 15)
        self._election = Election(self._zk_client, path, self.address, self._on_election)
        await self._election.start()

    def _on_election(self, is_leader: bool, leader: str | None) -> None:
        self.leader_address = leader
        if is_leader != self.is_leader and not self._stopping:
            spawn(self._lead() if is_leader else self._follow(), self._pending,
                  "taking up leadership" if is_leader else "following the leader", logger=log)

    def _store(self) -> Store:
        if self.in_memory:
            return self._memory
        if self._zk_client is not None:
            assert self.zk is not None
            return ZooKeeperStore(self._zk_client, discovery.parse_zk_url(self.zk).path)
        directory = self.work_dir or Path.home() / ".mesonb" / "marathon"
        return LocalStore(Path(directory))

    async def _lead(self) -> None:
        """Won the election (or alone): load the state, serve, subscribe to the master."""
        async with self._transition:
            if self.is_leader and self.driver is not None:
                return
            core = MarathonCore(self._store(), role=self.role,
                                shared_executor=self.shared_executor)
            core.on_change = self.core.on_change
            log.info("elected: loading the state")
            try:
                await core.load()
            except Exception:
                log.exception("cannot load the state; stepping down")
                if self._election is not None:
                    await self._election.abdicate()
                    return
                raise
            core.bus = self.core.bus  # SSE subscribers stay attached
            self.core = core
            self.ops = Operations(core)
            self.is_leader = True
            self._leading.set()
            self.leader_address = self.address
            log.info("leading with %d apps and %d instances", len(core.apps),
                     len(core.instances))
            framework: dict[str, Any] = {
                "user": getpass.getuser(), "name": self.name, "checkpoint": True,
                "failover_timeout": FAILOVER_TIMEOUT, "hostname": socket.gethostname(),
                "webui_url": self.url, "roles": [self.role],
                "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"},
                                 {"type": "GPU_RESOURCES"}],
                # command tasks run by the agent itself, not an interpreter each; they
                # outlive an agent restart all the same (mesonb.agent.command_runner)
                "labels": {"labels": [{"key": "mesonb.command_executor", "value": "agent"}]},
            }
            if core.framework_id:
                framework["id"] = {"value": core.framework_id}
            self.driver = SchedulerDriver(self.master, framework, core,
                                          secret=self.master_secret)
            core.start(self.driver)
            try:
                await self.driver.start()
            except Exception:
                log.exception("subscribing to the master %s failed; retrying", self.master)

    async def _follow(self) -> None:
        """Lost the lead: stop the framework (tasks keep running) and proxy."""
        async with self._transition:
            self.is_leader = False
            self._leading.clear()
            driver, self.driver = self.driver, None
            await self.core.stop()
            if driver is not None:
                await driver.stop(teardown=False)

    async def abdicate(self) -> None:
        """``DELETE /v2/leader``: step down; another instance (or this one) leads next."""
        if self._election is None:
            spawn(self._relead(), self._pending, "leading again", logger=log)
            return
        await self._election.abdicate()

    async def _relead(self) -> None:
        await asyncio.sleep(0.1)
        await self._follow()
        if not self._stopping:
            await self._lead()

    async def stop(self, teardown: bool = False) -> None:
        """Stop serving; with ``teardown`` the master kills every task of the framework."""
        self._stopping = True
        for task in list(self._pending):
            task.cancel()
        if self._server is not None:
            self._server.stop()
            with contextlib.suppress(Exception):
                await self._server.close_all_connections()
        if self._election is not None:
            await self._election.stop()
        await self.core.stop()
        if self.driver is not None:
            await self.driver.stop(teardown=teardown)
            self.driver = None
        if self._zk_client is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._zk_client.stop)
                await asyncio.to_thread(self._zk_client.close)

    # -- what the API shows ---------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return info_json(self.core, master=self.master, leader=self.leader_address,
                         elected=self.is_leader, http_port=self.port, zk=self.zk,
                         hostname=socket.gethostname(), framework_name=self.name,
                         zk_session_timeout=self.zk_session_timeout)
