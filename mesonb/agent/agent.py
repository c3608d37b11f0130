"""The mesonb agent daemon: one per machine.

:class:`Agent` fingerprints the machine, serves the executor API and the read-only
endpoints, registers with the master over one WebSocket (:mod:`.master_link`), carries out
the master's commands through :class:`~mesonb.agent.executors.Executors`, and forwards
status updates reliably through the pure
:class:`~mesonb.agent.status_updates.StatusUpdateManager`.

Embedding (tests, ``Cluster.local()``)::

    agent = Agent(AgentConfig(master="127.0.0.1:5050", port=0, work_dir=tmp))
    await agent.start()          # listening on agent.port, registering in the background
    await agent.wait_registered(timeout=10)
    ...
    await agent.stop()           # executors shut down, UNREGISTER sent
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from mesonb import tls
from mesonb.clock import REAL_CLOCK, Clock
from mesonb.config import MESONB_VERSION, VERSION, AgentConfig
from mesonb.http.base import UNBOUNDED_BODY, Security, SlashCollapsingApplication
from mesonb.protocol.agent import (
    AgentCall,
    AgentCallType,
    MasterCommand,
    MasterCommandType,
    Register,
    StatusUpdate,
)
from mesonb.protocol.mesos import AgentInfo, TaskInfo, TaskStatus
from mesonb.security import tokens

from . import checkpoint, recovery, status_updates, views
from .containers import Containerizer
from .executor_socket import ExecutorSocket
from .executors import Executors
from .files import SandboxPaths
from .fingerprint import Machine, agent_attributes, agent_resources, flat_attributes
from .host import Addresses, Host
from .http import make_app
from .isolation import ContainerizerConfig
from .master_link import Backoff, MasterLink, parse_master
from .monitor import ResourceMonitor
from .paths import executor_virtual_path
from .volumes import AgentVolumes

log = logging.getLogger(__name__)

MAX_PING_TIMEOUTS = 5  # Mesos: --max_agent_ping_timeouts
_RUN_TASK, _ACKNOWLEDGE = MasterCommandType.RUN_TASK, MasterCommandType.ACKNOWLEDGE
EXECUTOR_HEARTBEAT_INTERVAL = 30.0


def _log_failure(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("shutdown failed", exc_info=fut.exception())


class UnsafeConfiguration(ValueError):
    """The agent would listen beyond loopback without a secret."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_safety(config: AgentConfig) -> None:
    """Refuse to listen on a non-loopback address without a shared secret."""
    if (not is_loopback(config.ip) and not config.secret and not config.credentials
            and not config.insecure):
        raise UnsafeConfiguration(
            f"refusing to listen on {config.ip} without a secret: executors run code sent"
            " over the network. Pass --secret (or set MESONB_SECRET), or use --ip 127.0.0.1."
        )


class Agent:
    """A mesonb agent that can run inside an existing event loop.

    Public surface: :meth:`start`, :meth:`stop`, :meth:`wait_registered`,
    :meth:`wait_stopped`, and the attributes ``port``, ``agent_id``, ``registered``,
    ``resources``, ``executors`` and ``status_updates``.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock = REAL_CLOCK,
        machine: Machine | None = None,
        rng: Callable[[], float] = random.random,
        recovery_config: recovery.RecoveryConfig | None = None,
        containerizer_config: ContainerizerConfig | None = None,
    ) -> None:
        self.config = config
        self.recovery = recovery_config or recovery.RecoveryConfig()
        config.work_dir = Path(config.work_dir)
        parse_master(config.master)  # ValueError now rather than in the background
        self.clock = clock
        self.security = Security.from_flags(config.secret, config.credentials, config.acls)
        self.resources = agent_resources(config.resources, config.work_dir, machine)
        self.volumes = AgentVolumes(config.work_dir, config.resources)  # reservations too
        self.attributes = agent_attributes(config.attributes)
        self.hostname = config.hostname or socket.gethostname()
        self._pid_ip: str | None = None  # the hostname's address, for a wildcard --ip
        self.agent_id: str | None = checkpoint.read_agent_id(config.work_dir)
        self.port = config.port
        self.registered = False
        self.master_hostname: str | None = None
        self.containerizer = Containerizer(  # containerizer (issue 16)
            containerizer_config, config.work_dir, lambda: self.executors,
            lambda: list(self.resources.ranges.get("ports", ())))
        self.monitor = ResourceMonitor(self.containerizer)
        self.status_updates = status_updates.StatusUpdateManager(
            config.status_update_retry_min, config.status_update_retry_max)
        self.metrics: dict[str, int] = {
            "valid_status_updates": 0, "invalid_status_updates": 0,
            "valid_framework_messages": 0, "registrations": 0,
        }
        self.executor_socket_address: str | None = None
        self.executors = Executors(self._host())
        self.sandbox_paths = SandboxPaths(config.work_dir)
        self.exit_code = 0
        self.link = MasterLink(
            config.master, secret=config.secret, on_open=self._on_open,
            on_command=self._on_command, on_close=self._on_close,
            backoff=Backoff(config.registration_backoff_factor,
                            config.max_registration_backoff, rng))
        self._server: HTTPServer | None = None
        self.app: SlashCollapsingApplication | None = None
        # The executor API for mesonb's own executors, on a local socket (executor_socket)
        self._executor_socket = ExecutorSocket(self)
        self._start_time = 0.0
        self._registered_event = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_at: float | None = None  # the deadline _retry_timer is set for
        self._register_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_timeout = 0.0
        self._heartbeat: asyncio.Task[None] | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._cleanup_done: asyncio.Future[None] | None = None
        self.recovered = asyncio.Event()  # set once recovery is over and registering began

    def _host(self) -> Host:
        """What the executor side gets of this agent (it never holds the agent itself).
        A containerizer object plugs in here: ``launch_container`` (its launch(executor,
        spec, on_limitation)) and ``executor_changed`` (its update(executor))."""
        def addresses() -> Addresses:
            return Addresses(self.endpoint, self.executor_socket_address, self.pid)

        return Host(
            config=self.config, recovery=self.recovery, clock=self.clock, metrics=self.metrics,
            secret=self.security.secret, agent_id=lambda: self.agent_id,
            agent_info=self.agent_info, addresses=addresses,
            registered=lambda: self.registered, to_master=self.send,
            record_update=self.record_update,
            update_seen=self.status_updates.seen,  # a new manager comes with new Executors
            forget_updates=self.forget_framework_updates,
            token_key=tokens.agent_key(Path(self.config.work_dir) / "executor-token.key"),
            launch_container=self.containerizer.launch,
            executor_changed=self.containerizer.update,
            invalid_task=self.containerizer.invalid,
            unknown_resources=self._unknown_resources,
            task_ended=self.containerizer.task_ended,
            mount_volumes=self.volumes.mount,
            parsed_resources=self.volumes.take_parsed,
            adopt_task=self.containerizer.adopt_task)

    def _unknown_resources(self, task: TaskInfo) -> str | None:
        """A persistent volume ``task`` (or its executor) names that this agent does not
        hold: Mesos drops such a task with REASON_RESOURCES_UNKNOWN."""
        if task.executor is None or not task.executor.resources:  # the task's own list
            return self.volumes.invalid(task.resources or [])  # (parsed once: Task)
        return self.volumes.invalid([*(task.resources or ()), *task.executor.resources])

    # -- life cycle -----------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """``ip:port`` where executors reach this agent."""
        ip = self.config.ip
        if ip in ("0.0.0.0", ""):
            ip = "127.0.0.1"
        elif ip == "::":
            ip = "::1"
        return f"[{ip}]:{self.port}" if ":" in ip else f"{ip}:{self.port}"

    @property
    def pid(self) -> str:
        """``slave(1)@ip:port``, as Mesos's agent names itself: the address it listens on
        or, listening on every address, the one its hostname resolves to (libprocess)."""
        ip = self.config.ip
        if ip in ("0.0.0.0", "", "::"):
            if self._pid_ip is None:
                try:
                    self._pid_ip = socket.gethostbyname(self.hostname)
                except OSError:
                    self._pid_ip = "127.0.0.1"
            ip = self._pid_ip
        return f"slave(1)@[{ip}]:{self.port}" if ":" in ip else f"slave(1)@{ip}:{self.port}"

    async def start(self) -> None:
        """Listen (``port`` 0 picks a free one) and start registering with the master."""
        check_safety(self.config)
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        sockets = bind_sockets(self.config.port, address=self.config.ip)
        self.port = sockets[0].getsockname()[1]
        self.app = make_app(self, self.security)  # its router lists every route
        self._server = HTTPServer(self.app, idle_connection_timeout=3600,
                                  max_body_size=UNBOUNDED_BODY, ssl_options=tls.server_options())
        self._server.add_sockets(sockets)
        self.executor_socket_address = await self._executor_socket.start()
        self._start_time = time.time()
        self._heartbeat = asyncio.ensure_future(self._heartbeat_loop())
        log.info("agent listening on %s", tls.url(self.config.ip, self.port))
        self._recovering = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Read the checkpoints, wait for recovered executors to re-subscribe, then register
        (or, with ``--recover=cleanup``, wait for them to die and stop)."""
        work_dir = self.config.work_dir
        cleanup = self.recovery.recover == "cleanup"
        try:
            state = recovery.read(work_dir)
            if state is not None:
                log.info("recovering agent %s from %s%s (%d executors checkpointed)",
                         state.agent_id, work_dir, " after a reboot" if state.rebooted else "",
                         len(state.executors()))
                self.executors.recover(state, self.status_updates, cleanup=cleanup)
            recovery.write_boot_id(work_dir)
            self.volumes.unmount_stale([  # a killed agent's mounts, before the GC
                e.directory for e in self.executors.all_executors() if e.container is not None])
            await self.containerizer.collect_leftovers(self.agent_id, {  # issue 16: sandbox GC
                e.directory for e in self.executors.all_executors() if e.container is not None})
            while self.executors.reregistering() or (cleanup and
                                                     self.executors.recovered_alive()):
                await asyncio.sleep(0.05)
        except Exception:
            log.exception("agent recovery failed; starting without recovered executors")
        if self._stopping:
            return
        if cleanup:
            log.info("--recover=cleanup: recovered executors are gone; stopping")
            self._cleanup_done = asyncio.ensure_future(self.stop())
            return
        log.info("recovery done; registering with the master")
        self.recovered.set()
        self.link.start()

    async def stop(self) -> None:
        """Shut every executor down, say UNREGISTER to the master, stop listening."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        log.info("agent stopping")
        if self._recovering is not None and not self._recovering.done():
            self._recovering.cancel()
        try:
            await self.executors.shutdown_all(self.config.executor_shutdown_grace_period)
        finally:
            for timer in (self._retry_timer, self._register_timer, self._ping_timer):
                if timer is not None:
                    timer.cancel()
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            await self.link.stop(AgentCall(type=AgentCallType.UNREGISTER)
                                 if self.registered else None)
            self.containerizer.close()
            if self._server is not None:
                self._server.stop()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._server.close_all_connections(), 2.0)
            await self._executor_socket.stop()
            self._stopped.set()
            log.info("agent stopped")

    async def wait_registered(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._registered_event.wait(), timeout)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- the master connection ------------------------------------------------------
    def send(self, call: AgentCall) -> bool:
        """Send a message to the master now (False when disconnected)."""
        return self.link.send(call)

    def agent_info(self) -> AgentInfo:
        return AgentInfo(hostname=self.hostname, port=self.port,
                         resources=self.volumes.resources_json(self.resources),
                         attributes=self.attributes or None,
                         id=self.agent_id)

    def _on_open(self) -> None:
        self._send_register()

    def _send_register(self) -> None:
        if self.registered or not self.link.connected:
            return
        tasks, executors, frameworks = self.executors.register_payload()
        info = self.agent_info()
        info.id = None
        register = Register(agent_info=info, version=VERSION, agent_id=self.agent_id,
                            pid=self.pid, tasks=tasks, executors=executors,
                            frameworks=frameworks)
        log.info("%s with the master (%d tasks)",
                 "re-registering" if self.agent_id else "registering", len(tasks))
        self.send(AgentCall(type=AgentCallType.REGISTER, register=register))
        delay = self.link.backoff.next()
        self._register_timer = self._call_later(self._register_timer, max(delay, 0.05),
                                                self._send_register)

    def _on_close(self) -> None:
        was = self.registered
        self.registered = False
        self._registered_event.clear()
        self._apply(self.status_updates.pause())
        for attr in ("_register_timer", "_ping_timer", "_retry_timer"):
            timer = getattr(self, attr)
            if timer is not None:
                timer.cancel()
                setattr(self, attr, None)
        if was:
            log.log(logging.INFO if self._stopping else logging.WARNING,
                    "disconnected from the master")

    def _on_command(self, command: MasterCommand) -> None:
        kind = command.type
        if (kind is _RUN_TASK or kind is _ACKNOWLEDGE) and self.registered:
            # a call's own commands, at every call: straight to the branches below that
            # take them (those before them are for other kinds, and it is registered)
            ack = command.acknowledge
            if kind is _ACKNOWLEDGE and ack is not None:
                self._apply(self.status_updates.acknowledge(
                    ack.framework_id, ack.task_id, ack.uuid, self.clock.monotonic()))
            elif not self.executors.handle(command):
                log.warning("ignoring %s from the master", kind.value)
            return
        if kind is MasterCommandType.PING:
            self._arm_ping_timer()
            self.send(AgentCall(type=AgentCallType.PONG))
        elif kind is MasterCommandType.REGISTERED and command.registered is not None:
            self._registered(command)
        elif kind is MasterCommandType.ERROR and command.error is not None:
            log.error("the master reports an error: %s", command.error.message)
        elif kind is MasterCommandType.SHUTDOWN:
            message = command.shutdown.message if command.shutdown else ""
            self._spawn_shutdown(message)
        elif kind is MasterCommandType.CHECKPOINT_RESOURCES and command.checkpoint_resources:
            self.volumes.checkpoint(command.checkpoint_resources.resources)
        elif not self.registered:
            log.warning("ignoring %s from the master: not registered yet", kind.value)
        elif kind is MasterCommandType.ACKNOWLEDGE and command.acknowledge is not None:
            ack = command.acknowledge
            self._apply(self.status_updates.acknowledge(
                ack.framework_id, ack.task_id, ack.uuid, self.clock.monotonic()))
        elif not self.executors.handle(command):
            log.warning("ignoring %s from the master", kind.value)

    def _registered(self, command: MasterCommand) -> None:
        reg = command.registered
        assert reg is not None
        if self.agent_id is not None and reg.agent_id != self.agent_id:
            log.warning("the master gave this agent a new id %s (was %s); its old executors"
                        " are shut down", reg.agent_id, self.agent_id)
            for executor in list(self.executors.all_executors()):
                self.executors.shutdown_executor(executor, "the agent has a new id")
        if reg.agent_id != self.agent_id or not self.registered:
            log.info("registered with the master as agent %s", reg.agent_id)
        self.agent_id = reg.agent_id
        try:
            checkpoint.write_agent_id(self.config.work_dir, reg.agent_id,
                                      self.agent_info().to_json())
        except (OSError, ValueError) as exc:
            log.error("cannot checkpoint the agent id: %s", exc)
        if reg.master_info is not None:
            self.master_hostname = reg.master_info.hostname
        self.registered = True
        self.metrics["registrations"] += 1
        self.link.backoff.reset()
        if self._register_timer is not None:
            self._register_timer.cancel()
            self._register_timer = None
        self._ping_timeout = max(reg.ping_interval_seconds, 0.1) * MAX_PING_TIMEOUTS
        self._arm_ping_timer()
        self._apply(self.status_updates.resume(self.clock.monotonic()))
        self.executors.flush_exited()
        self._registered_event.set()

    def _arm_ping_timer(self) -> None:
        if self._ping_timeout > 0 and self.registered:
            self._ping_timer = self._call_later(
                self._ping_timer, self._ping_timeout,
                lambda: self.link.reconnect(f"no PING from the master in {self._ping_timeout:g}s"))

    def _spawn_shutdown(self, message: str) -> None:
        """SHUTDOWN from the master (Mesos's ShutdownMessage: the agent was removed, its
        machine went DOWN for maintenance, it was marked gone): as Mesos's agent, kill
        every executor and terminate. The process exits with 0; its agent id is forgotten,
        so a restarted agent registers as a new one (Mesos removes ``meta/slaves/latest``)."""
        log.warning("agent asked to shut down by the master because '%s': killing its"
                    " executors and exiting", message or "no reason given")
        fut = asyncio.ensure_future(self._shut_down_by_master())
        fut.add_done_callback(_log_failure)

    async def _shut_down_by_master(self) -> None:
        if self._stopping:
            return
        for framework_id in list(self.executors.frameworks):
            self.forget_framework_updates(framework_id)
        checkpoint.forget_agent_id(self.config.work_dir)
        self.registered = False  # the master removed it: no UNREGISTER (as Mesos)
        self._registered_event.clear()
        self.exit_code = 0
        await self.stop()

    # -- status updates -------------------------------------------------------------
    def record_update(self, framework_id: str, status: TaskStatus, checkpoint: bool) -> None:
        """Hand a new update (with uuid) to the status update manager."""
        self._apply(self.status_updates.update(framework_id, status, self.clock.monotonic(),
                                               checkpoint=checkpoint))

    def forget_framework_updates(self, framework_id: str) -> None:
        self._apply(self.status_updates.cleanup(framework_id))

    def _apply(self, actions: list[status_updates.Action]) -> None:
        for action in actions:
            if isinstance(action, status_updates.Forward):
                self.send(AgentCall(type=AgentCallType.STATUS_UPDATE, status_update=StatusUpdate(
                    framework_id=action.framework_id, status=action.status,
                    latest_state=action.latest_state)))
            elif isinstance(action, status_updates.Checkpoint):
                self.executors.checkpoint_update(action.framework_id, action.task_id,
                                                 action.record)
            elif isinstance(action, status_updates.StreamClosed):
                self.executors.stream_closed(action.framework_id, action.task_id)
            elif isinstance(action, status_updates.Dropped):
                log.debug("status update manager: %s (task %s of framework %s)",
                          action.why, action.task_id, action.framework_id)
        self._arm_retry_timer()

    def _arm_retry_timer(self) -> None:
        """One timer for the status update manager's earliest retry. A timer already set
        no later than it stays (it fires, :meth:`_retry` sends what is due, if anything,
        and sets it again): every update and acknowledgement moves the deadline, and a
        burst of calls would otherwise cancel and set a timer twice per call."""
        deadline = self.status_updates.next_deadline()
        at = self._retry_at
        if self._retry_timer is not None and at is not None and (
                deadline is None or at <= deadline):
            return  # set for it, or for earlier
        self._retry_at = deadline
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if deadline is not None and not self._stopped.is_set():
            delay = max(0.0, deadline - self.clock.monotonic())
            self._retry_timer = asyncio.get_running_loop().call_later(delay, self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        self._retry_at = None
        self._apply(self.status_updates.tick(self.clock.monotonic()))

    # -- what the endpoints show ----------------------------------------------------
    def virtual_sandboxes(self) -> dict[str, Path]:
        """Mesos's ``/frameworks/<fw>/executors/<exec>/runs/latest`` files API paths."""
        out = {}
        for executor in self.executors.all_executors():
            out[executor_virtual_path(executor.framework_id, executor.executor_id)] = (
                executor.directory)
        return out

    def version_info(self) -> dict[str, Any]:
        return {"version": VERSION, "mesonb_version": MESONB_VERSION,
                "build_date": "", "build_time": 0, "build_user": "", "git_sha": ""}

    def flags(self) -> dict[str, str]:
        c = self.config
        return {
            "master": c.master, "ip": c.ip, "port": str(self.port), "hostname": self.hostname,
            "work_dir": str(c.work_dir), "resources": c.resources or "",
            "attributes": c.attributes or "", "authenticate_http": str(bool(c.secret)).lower(),
            "executor_shutdown_grace_period": f"{c.executor_shutdown_grace_period:g}secs",
            "executor_registration_timeout": f"{c.executor_registration_timeout:g}secs",
            "registration_backoff_factor": f"{c.registration_backoff_factor:g}secs",
            "persistent_volumes": self.volumes.mode,  # bind_mount (root) or symlink
            **self.containerizer.flags(),
        }

    def state(self) -> dict[str, Any]:
        """Mesos's agent ``/state`` (v0 JSON: flat ids and resources)."""
        return {
            "version": VERSION,
            "mesonb_version": MESONB_VERSION,
            "start_time": self._start_time,
            "id": self.agent_id or "",
            "pid": self.pid,
            "hostname": self.hostname,
            "port": self.port,
            "resources": self.resources.to_flat(),
            **self.volumes.state_json(self.resources),
            "attributes": flat_attributes(self.attributes),
            "master_hostname": self.master_hostname or "",
            "registered": self.registered,
            "flags": self.flags(),
            **views.frameworks_v0(self.executors.book, self.agent_id),
        }

    def metrics_snapshot(self) -> dict[str, float]:
        """Mesos's ``slave/*`` metrics."""
        return views.slave_metrics(
            self.executors.book, self.resources, self.metrics,
            registered=self.registered,
            uptime=time.time() - self._start_time if self._start_time else 0.0,
            measured=ResourceMonitor.totals(self.monitor_statistics()))

    def monitor_statistics(self) -> list[dict[str, Any]]:
        """Mesos's ``/monitor/statistics``: what each running executor really uses."""
        return self.monitor.statistics(self.executors.all_executors())

    # -- plumbing -------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(EXECUTOR_HEARTBEAT_INTERVAL)
            self.executors.heartbeat()

    def _call_later(self, old: asyncio.TimerHandle | None, delay: float,
                    fn: Callable[[], Any]) -> asyncio.TimerHandle:
        if old is not None:
            old.cancel()
        return asyncio.get_running_loop().call_later(delay, fn)
