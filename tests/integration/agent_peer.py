"""A scripted stand-in for the master, and a harness that runs a real Agent against it.

The peer speaks :mod:`mesonb.protocol.agent` over a tornado WebSocket on a free loopback
port. Tests wait on conditions with deadlines (``await master.until(...)``), never on
sleeps. :class:`AgentHarness` stops the agent and kills every process its containers left
behind, even when the test fails.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from mesonb.agent import Agent
from mesonb.agent.containerizer import kill_session, session_members
from mesonb.agent.fingerprint import GB, Machine
from mesonb.config import AgentConfig
from mesonb.protocol.agent import (
    AGENT_PATH,
    AcknowledgeUpdate,
    AgentCall,
    AgentCallType,
    KillTask,
    MasterCommand,
    MasterCommandType,
    Registered,
    RunTask,
    RunTaskGroup,
    StatusUpdate,
    dumps,
    load_calls,
)
from mesonb.protocol.mesos import (
    Capability,
    CommandInfo,
    Environment,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskGroupInfo,
    TaskInfo,
    Variable,
)
from mesonb.protocol.states import TaskState

MACHINE = Machine(cpus=4, mem_bytes=8 * GB, disk_bytes=100 * GB)
DEADLINE = 30.0


class _AgentSocket(tornado.websocket.WebSocketHandler):
    def initialize(self, master: FakeMaster) -> None:
        self.master = master

    def prepare(self) -> None:
        secret = self.master.secret
        if secret is not None and self.request.headers.get("Authorization") != f"Bearer {secret}":
            raise tornado.web.HTTPError(401)

    def open(self) -> None:
        self.master.connections += 1
        self.master.conn = self

    def on_message(self, message: str | bytes) -> None:
        for call in load_calls(message):  # a frame holds one message or an array
            self.master.receive(call, self)

    def on_close(self) -> None:
        if self.master.conn is self:
            self.master.conn = None
        self.master.notify()


class _Redirect(tornado.web.RequestHandler):
    def initialize(self, target: str) -> None:
        self.target = target

    def get(self) -> None:
        self.redirect(self.target, status=307)


class FakeMaster:
    """Records every AgentCall; answers REGISTER and PING; sends what the test says."""

    def __init__(self, *, secret: str | None = None, agent_id: str = "agent-1",
                 ping_interval: float = 15.0, auto_register: bool = True) -> None:
        self.secret = secret
        self.agent_id = agent_id
        self.ping_interval = ping_interval
        self.auto_register = auto_register
        self.calls: list[AgentCall] = []
        self.conn: _AgentSocket | None = None
        self.connections = 0
        self.port = 0
        self._server: HTTPServer | None = None
        self._changed = asyncio.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        app = tornado.web.Application([(AGENT_PATH, _AgentSocket, {"master": self})])
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()

    # -- receiving ------------------------------------------------------------------
    def receive(self, call: AgentCall, conn: _AgentSocket) -> None:
        self.calls.append(call)
        if call.type is AgentCallType.REGISTER and self.auto_register:
            agent_id = call.register.agent_id or self.agent_id
            self.send(MasterCommand(type=MasterCommandType.REGISTERED, registered=Registered(
                agent_id=agent_id, ping_interval_seconds=self.ping_interval)))
        self.notify()

    def notify(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], Any], timeout: float = DEADLINE) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every message); its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout}s; calls: "
                                     f"{[c.type.value for c in self.calls][-20:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                # also re-check now and then: some conditions are not about messages
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    # -- queries --------------------------------------------------------------------
    def of_type(self, kind: AgentCallType) -> list[AgentCall]:
        return [c for c in self.calls if c.type is kind]

    def updates(self, task_id: str | None = None) -> list[StatusUpdate]:
        return [c.status_update for c in self.of_type(AgentCallType.STATUS_UPDATE)
                if task_id is None or c.status_update.status.task_id == task_id]

    def states(self, task_id: str) -> list[TaskState]:
        """Distinct states in arrival order (retries collapsed)."""
        out: list[TaskState] = []
        for u in self.updates(task_id):
            if not out or out[-1] is not u.status.state:
                out.append(u.status.state)
        return out

    async def update(self, task_id: str, state: TaskState, *, ack: bool = True,
                     timeout: float = DEADLINE) -> StatusUpdate:
        """Wait for an update of ``task_id`` in ``state``; acknowledge it unless told not."""
        found = await self.until(lambda: next(
            (u for u in self.updates(task_id) if u.status.state is state), None), timeout)
        if ack:
            self.ack(found)
        return found

    async def terminal(self, task_id: str, timeout: float = DEADLINE) -> StatusUpdate:
        """Acknowledge every update of ``task_id`` until its terminal one, and return it."""
        acked: set[bytes] = set()

        def step() -> StatusUpdate | None:
            for u in self.updates(task_id):
                if u.status.uuid not in acked:
                    acked.add(u.status.uuid)
                    self.ack(u)
                if u.status.state.terminal:
                    return u
            return None

        return await self.until(step, timeout)

    # -- sending --------------------------------------------------------------------
    def send(self, command: MasterCommand) -> None:
        assert self.conn is not None, "no agent connected"
        self.conn.write_message(dumps(command))

    def ack(self, update: StatusUpdate) -> None:
        self.send(MasterCommand(type=MasterCommandType.ACKNOWLEDGE, acknowledge=AcknowledgeUpdate(
            framework_id=update.framework_id, task_id=update.status.task_id,
            uuid=update.status.uuid)))

    def run_task(self, task: TaskInfo, framework: FrameworkInfo | None = None,
                 executor: ExecutorInfo | None = None) -> None:
        self.send(MasterCommand(type=MasterCommandType.RUN_TASK, run_task=RunTask(
            framework_info=framework or framework_info(), task=task, executor=executor)))

    def run_group(self, tasks: list[TaskInfo], executor: ExecutorInfo,
                  framework: FrameworkInfo | None = None) -> None:
        self.send(MasterCommand(type=MasterCommandType.RUN_TASK_GROUP, run_task_group=RunTaskGroup(
            framework_info=framework or framework_info(), executor=executor,
            task_group=TaskGroupInfo(tasks=tasks))))

    def kill(self, task_id: str, framework_id: str = "fw-1",
             grace: float | None = None) -> None:
        policy = None
        if grace is not None:
            policy = KillPolicy.from_json({"grace_period": {"nanoseconds": int(grace * 1e9)}})
        self.send(MasterCommand(type=MasterCommandType.KILL_TASK, kill_task=KillTask(
            framework_id=framework_id, task_id=task_id, kill_policy=policy)))


def framework_info(framework_id: str = "fw-1", *, capabilities: tuple[str, ...] = (),
                   checkpoint: bool = False) -> FrameworkInfo:
    return FrameworkInfo(user=os.environ.get("USER", "nobody"), name="test-framework",
                         id=framework_id, checkpoint=checkpoint,
                         capabilities=[Capability(type=c) for c in capabilities] or None)


def command_task(task_id: str, value: str | None = None, *, shell: bool = True,
                 arguments: list[str] | None = None, env: dict[str, str] | None = None,
                 agent_id: str = "agent-1", **extra: Any) -> TaskInfo:
    environment = None
    if env:
        environment = Environment(variables=[Variable(name=k, value=v) for k, v in env.items()])
    command = CommandInfo(shell=shell, value=value, arguments=arguments, environment=environment)
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]
    return TaskInfo(name=task_id, task_id=task_id, agent_id=agent_id, command=command,
                    resources=resources, **extra)


def new_id(prefix: str = "task") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AgentHarness:
    """A FakeMaster plus a real Agent on free loopback ports, torn down without leftovers."""

    def __init__(self, work_dir: Path, *, master: FakeMaster | None = None,
                 start_agent: bool = True, **config: Any) -> None:
        self.work_dir = work_dir
        self.master = master or FakeMaster()
        self.start_agent = start_agent
        defaults: dict[str, Any] = {
            "port": 0, "status_update_retry_min": 0.3, "status_update_retry_max": 1.2,
            "registration_backoff_factor": 0.05, "max_registration_backoff": 0.2,
            "executor_shutdown_grace_period": 2.0, "executor_registration_timeout": 20.0,
        }
        defaults.update(config)
        self.config_values = defaults
        self.agent: Agent | None = None
        self.sessions: set[int] = set()

    def new_agent(self, **overrides: Any) -> Agent:
        values = {"master": self.master.address, "work_dir": self.work_dir,
                  **self.config_values, **overrides}
        config = AgentConfig(**values)
        self.agent = Agent(config, machine=MACHINE)
        return self.agent

    async def __aenter__(self) -> AgentHarness:
        await self.master.start()
        if self.start_agent:
            await self.start()
        return self

    async def start(self) -> Agent:
        agent = self.new_agent()
        await agent.start()
        await agent.wait_registered(timeout=DEADLINE)
        return agent

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self.agent is not None:
                self.remember_sessions()
                await asyncio.wait_for(self.agent.stop(), 30)
        finally:
            for sid in self.sessions:
                kill_session(sid, signal.SIGKILL)
            await self.master.stop()

    def remember_sessions(self) -> None:
        """Note every container's session, so teardown can kill what is left."""
        if self.agent is None:
            return
        for executor in self.agent.executors.all_executors():
            if executor.container is not None:
                self.sessions.add(executor.container.pid)

    def executor(self, task_id: str, framework_id: str = "fw-1") -> Any:
        assert self.agent is not None
        framework = self.agent.executors.frameworks.get(framework_id)
        executor = framework.executor_of(task_id) if framework else None
        if executor is not None and executor.container is not None:
            self.sessions.add(executor.container.pid)
        return executor

    async def http(self, path: str, *, method: str = "GET", body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> HTTPResponse:
        """Call the agent; non-2xx answers are returned, not raised."""
        assert self.agent is not None
        client = AsyncHTTPClient()
        try:
            return await client.fetch(f"http://127.0.0.1:{self.agent.port}{path}",
                                      method=method, body=body, headers=headers,
                                      request_timeout=10)
        except HTTPClientError as exc:
            assert exc.response is not None
            return exc.response


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def leftovers(sessions: set[int]) -> list[int]:
    return [pid for sid in sessions for pid in session_members(sid) if alive(pid)]


def run(body: Callable[[AgentHarness], Any], work_dir: Path, *, timeout: float = 90.0,
        **kwargs: Any) -> None:
    """Run ``await body(harness)`` inside a started harness, on a fresh event loop."""

    async def main() -> None:
        async with AgentHarness(work_dir, **kwargs) as harness:
            await asyncio.wait_for(body(harness), timeout)

    asyncio.run(main())
