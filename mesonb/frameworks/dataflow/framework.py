"""The dataflow framework on Mesos: executors launched on offers, and their connections.

:class:`ExecutorPool` is the framework's scheduler (a handler of
:class:`~mesonb.frameworks.driver.SchedulerDriver`, the v1 scheduler API only) and the
driver's control server. Coarse-grained, as Spark on Mesos: each executor is one Mesos
task of ``cpus``/``mem`` in a custom executor (:mod:`.executor`), up to ``executors`` of
them, one per agent while agents remain. Once an executor's process connects back
(:class:`~.messages.Hello`) it is ready for tasks.

An executor is *lost* when its control connection breaks (a killed process closes its
sockets, so a dead machine is noticed at once) or when Mesos reports its task terminal;
the pool tells its listener (the DAG scheduler). Without work, an executor idle for
``idle_timeout`` seconds and holding no persisted partitions is killed, and new work
asks for executors again.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import os
import pickle
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from mesonb import tls
from mesonb.http.client import Connection, HTTPError
from mesonb.protocol.resources import Resources
from mesonb.tasks import spawn

from .. import driver as driver_mod
from . import messages

log = logging.getLogger(__name__)
EXECUTOR_MODULE = "mesonb.frameworks.dataflow.executor"
EXECUTOR_RESOURCES = Resources({"cpus": 0.05, "mem": 32.0})
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR",
                      "TASK_LOST", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
                      "TASK_UNREACHABLE", "TASK_UNKNOWN"})
# The master keeps the executors this long while the driver re-subscribes (a master
# failover); a driver that is gone for good closes their control connections, and they end.
FAILOVER_TIMEOUT = 300.0
HASH_SEED = "4217"  # one PYTHONHASHSEED for every executor: keys hash alike everywhere


class PoolListener(Protocol):
    def executor_added(self, executor: Executor) -> None: ...

    def executor_lost(self, executor: Executor, reason: str) -> None: ...

    def task_result(self, executor: Executor, result: messages.TaskResult) -> None: ...


@dataclass(eq=False)
class Executor:
    """One executor as the driver sees it."""

    executor_id: str
    agent_id: str
    hostname: str
    slots: int
    address: str = ""  # its shuffle server, once connected
    writer: asyncio.StreamWriter | None = None
    running: set[int] = field(default_factory=set)
    idle_since: float = field(default_factory=time.monotonic)
    blocks: set[tuple[int, int]] = field(default_factory=set)
    alive: bool = True

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running) if self.alive and self.writer else 0

    def send(self, message: Any) -> None:
        if self.writer is not None and not self.writer.is_closing():
            self.writer.write(messages.dumps(message))


@dataclass
class PoolConfig:
    name: str = "mesonb-dataflow"
    executors: int = 2
    cpus: float = 1.0
    mem: float = 1024.0  # MB
    idle_timeout: float | None = 60.0
    role: str = "*"
    memory_fraction: float = 0.4  # of mem, for persisted partitions before spilling
    env: dict[str, str] = field(default_factory=dict)


class ExecutorPool:
    """Mesos framework + control server (see the module docstring)."""

    def __init__(self, config: PoolConfig, listener: PoolListener) -> None:
        self.config = config
        self.listener = listener
        self.token = secrets.token_hex(16)
        self.executors: dict[str, Executor] = {}  # launched, by executor id
        self.wanted = config.executors
        self.busy = False  # a job runs: keep every executor, launch up to the count
        self.driver: driver_mod.SchedulerDriver | None = None
        self.framework_id = ""
        self.address = ""
        self.tls = False  # the control socket (and the executors' shuffles) over TLS
        self.lost: list[tuple[str, str, float]] = []  # (executor id, reason, when)
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._suppressed = False
        self._idle_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.closing = False

    # -- life cycle ---------------------------------------------------------------------
    async def start(self, master: str, secret: str | None = None, timeout: float = 30.0) -> str:
        framework = {"user": getpass.getuser(), "name": self.config.name,
                     "hostname": socket.gethostname(),
                     "failover_timeout": FAILOVER_TIMEOUT,
                     "roles": [self.config.role], "capabilities": [{"type": "MULTI_ROLE"}]}
        url = await driver_mod.resolve_master_url(master, timeout)
        await self._check_fits(url, secret)
        # The control server first: offers may come as soon as the framework subscribes.
        host = _local_address(url)
        # With TLS on, executors connect (and fetch shuffles) over TLS; a driver without a
        # certificate of its own cannot serve it (its own calls to Mesos still use TLS).
        self.tls = tls.can_serve()
        if tls.enabled() and not self.tls:
            log.warning("TLS is on but this process has no certificate (--ssl-cert/"
                        "--ssl-key): the dataflow control and shuffle sockets are plaintext")
        self._server = await asyncio.start_server(
            self._accept, host, 0, ssl=tls.server_context() if self.tls else None)
        self.address = f"{host}:{self._server.sockets[0].getsockname()[1]}"
        self.driver = driver_mod.SchedulerDriver(master, framework, self, secret=secret)
        self.framework_id = await self.driver.start(timeout)
        self._idle_task = asyncio.create_task(self._idle_loop(), name="dataflow-idle")
        await self._revive()
        return self.framework_id

    async def _check_fits(self, url: str, secret: str | None) -> None:
        """Fail fast when no registered agent could ever hold one executor."""
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        conn = Connection.to(url, headers, inproc=True)
        try:
            answer = await conn.request("GET", "/master/state")
            agents = (answer.json() or {}).get("slaves", []) if answer.status == 200 else []
        except (OSError, ValueError, ConnectionError, HTTPError):
            return
        finally:
            conn.close()
        need = Resources({"cpus": self.config.cpus, "mem": self.config.mem}) + \
            EXECUTOR_RESOURCES
        sizes = [Resources({k: float(v) for k, v in (a.get("resources") or {}).items()
                            if k in ("cpus", "mem") and isinstance(v, int | float)})
                 for a in agents if a.get("active", True)]
        if sizes and not any(size.contains(need) for size in sizes):
            largest = max(sizes, key=lambda r: (r.get("cpus"), r.get("mem")))
            raise ValueError(
                f"no agent can hold an executor of cpus={self.config.cpus:g}, "
                f"mem={self.config.mem:g} MB (plus {EXECUTOR_RESOURCES} for the executor "
                f"itself): the largest agent has {largest}")

    async def stop(self) -> None:
        self.closing = True
        if self._idle_task is not None:
            self._idle_task.cancel()
        for executor in self.executors.values():
            if executor.writer is not None:
                executor.writer.close()
        if self._server is not None:
            self._server.close()
        if self.driver is not None:
            await self.driver.stop(teardown=True)

    # -- demand -------------------------------------------------------------------------
    def alive(self) -> list[Executor]:
        return [e for e in self.executors.values() if e.alive and e.writer is not None]

    def set_busy(self, busy: bool) -> None:
        """A job starts (every executor wanted) or ends."""
        self.busy = busy
        now = time.monotonic()
        for e in self.executors.values():
            e.idle_since = now
        if busy and self.wanted < self.config.executors:
            self.wanted = self.config.executors
        if busy and self._launched() < self.wanted:
            self._spawn(self._revive())

    def _launched(self) -> int:
        return sum(1 for e in self.executors.values() if e.alive)

    async def _revive(self) -> None:
        if self.driver is not None and self._launched() < self.wanted:
            self._suppressed = False
            with contextlib.suppress(ConnectionError, OSError, driver_mod.HTTPError):
                await self.driver.revive()

    async def _idle_loop(self) -> None:
        timeout = self.config.idle_timeout
        while True:
            await asyncio.sleep(0.5 if timeout is None else min(0.5, timeout / 4))
            if timeout is None or self.busy:
                continue
            now = time.monotonic()
            for e in list(self.executors.values()):
                if (e.alive and e.writer is not None and not e.running and not e.blocks
                        and now - e.idle_since >= timeout):
                    log.info("executor %s idle for %gs: giving it back", e.executor_id, timeout)
                    self.wanted = max(0, self.wanted - 1)
                    self._lose(e, "idle", close=False)  # it ends on the KILL
                    if self.driver is not None:
                        self._spawn(self.driver.kill(e.executor_id, e.agent_id))

    # -- the scheduler API side ----------------------------------------------------------
    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        need = Resources({"cpus": self.config.cpus, "mem": self.config.mem}) + EXECUTOR_RESOURCES
        used_agents = {e.agent_id for e in self.executors.values() if e.alive}
        # Spread: agents without an executor first.
        offers = sorted(offers, key=lambda o: o["agent_id"]["value"] in used_agents)
        decline = []
        for offer in offers:
            agent_id = offer["agent_id"]["value"]
            free = Resources.from_json(offer["resources"])
            tasks = []
            while (self._launched() < self.wanted and free.contains(need)
                   and (agent_id not in used_agents or self._spread_done(offers, used_agents))):
                tasks.append(self._task_info(offer))
                used_agents.add(agent_id)
                free = free - need
            if tasks:
                try:
                    await self.driver.launch([offer["id"]["value"]], tasks, refuse_seconds=5.0)
                except (ConnectionError, OSError, driver_mod.HTTPError) as exc:
                    log.warning("launching executors failed: %s", exc)
                    for t in tasks:
                        self.executors.pop(t["task_id"]["value"], None)
            else:
                decline.append(offer["id"]["value"])
        if decline:
            enough = self._launched() >= self.wanted
            with contextlib.suppress(ConnectionError, OSError, driver_mod.HTTPError):
                await self.driver.decline(decline, refuse_seconds=30.0 if enough else 2.0)
                if enough and not self._suppressed:
                    self._suppressed = True
                    await self.driver.suppress()

    def _spread_done(self, offers: list[dict[str, Any]], used: set[str]) -> bool:
        """Every offered agent has an executor: more may go on one agent."""
        return all(o["agent_id"]["value"] in used for o in offers)

    def _task_info(self, offer: dict[str, Any]) -> dict[str, Any]:
        executor_id = f"dataflow-{next(self._ids)}-{secrets.token_hex(3)}"
        agent_id = offer["agent_id"]["value"]
        slots = max(1, int(self.config.cpus))
        config = messages.ExecutorConfig(
            driver=self.address, token=self.token, executor_id=executor_id, slots=slots,
            tls=self.tls,
            memory_limit=int(self.config.mem * self.config.memory_fraction * 2**20))
        self.executors[executor_id] = Executor(executor_id, agent_id,
                                               offer.get("hostname", ""), slots)
        import base64

        variables = {"PYTHONHASHSEED": HASH_SEED, **self.config.env}
        return {
            "name": f"{self.config.name} executor", "task_id": {"value": executor_id},
            "agent_id": {"value": agent_id},
            "resources": Resources({"cpus": self.config.cpus,
                                    "mem": self.config.mem}).to_json(),
            "data": base64.b64encode(pickle.dumps(config)).decode("ascii"),
            "executor": {
                "executor_id": {"value": executor_id}, "type": "CUSTOM",
                "name": "mesonb dataflow executor",
                "command": {"shell": False, "value": sys.executable,
                            "arguments": [sys.executable, "-m", EXECUTOR_MODULE],
                            "environment": {"variables": [
                                {"name": k, "value": v} for k, v in sorted(variables.items())]}},
                "resources": EXECUTOR_RESOURCES.to_json(),
            },
        }

    def on_update(self, status: dict[str, Any]) -> None:
        executor = self.executors.get(status["task_id"]["value"])
        if executor is None or status["state"] not in TERMINAL:
            return
        if self.closing:
            self.executors.pop(executor.executor_id, None)
            return
        reason = f"{status['state']}: {status.get('message') or status.get('reason') or ''}"
        if executor.alive:
            self._lose(executor, reason)
        self.executors.pop(executor.executor_id, None)
        if self.busy and self._launched() < self.wanted:
            self._spawn(self._revive())

    def on_disconnected(self) -> None:
        log.info("disconnected from the master; re-subscribing")

    def on_error(self, message: str) -> None:
        log.error("the master ended the dataflow framework: %s", message)

    # -- the control server ----------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        executor: Executor | None = None
        try:
            token = (await asyncio.wait_for(messages.read_frame(reader), 30)).decode(
                errors="replace")
            if not messages.check_token(token, self.token):
                log.warning("a connection with a wrong token was refused")
                return
            hello = await messages.read_message(reader)
            executor = self.executors.get(getattr(hello, "executor_id", ""))
            if executor is None or not executor.alive or executor.writer is not None:
                log.warning("unknown executor %r refused", hello)
                return
            executor.address, executor.writer = hello.shuffle_address, writer
            executor.idle_since = time.monotonic()
            log.info("executor %s ready at %s", executor.executor_id, executor.address)
            self.listener.executor_added(executor)
            while True:
                result = await messages.read_message(reader)
                if executor.alive:
                    self.listener.task_result(executor, result)
        except (asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
            if executor is not None and executor.alive and not self.closing:
                self._lose(executor, f"connection lost ({type(exc).__name__})")
        finally:
            writer.close()

    def _lose(self, executor: Executor, reason: str, close: bool = True) -> None:
        executor.alive = False
        if close and executor.writer is not None:
            executor.writer.close()
        if reason == "idle":
            log.info("executor %s given back: idle", executor.executor_id)
        else:
            self.lost.append((executor.executor_id, reason, time.time()))
            log.warning("executor %s lost: %s", executor.executor_id, reason)
            if self.busy and self._launched() < self.wanted:
                self._spawn(self._revive())  # a replacement, where offers allow
        self.listener.executor_lost(executor, reason)

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._background, "dataflow framework work", logger=log)


def _local_address(url: str) -> str:
    """This machine's address on the route to the master (agents reach it the same way)."""
    host = url.split("//", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def executor_env() -> dict[str, str]:
    """Executors import what the driver can (functions pickled by reference)."""
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]  # executors run elsewhere
    paths = [p for p in dict.fromkeys(paths) if os.path.isdir(p)]
    return {"PYTHONPATH": os.pathsep.join(paths)}
