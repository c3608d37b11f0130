"""Drive a real :class:`~mesonb.master.master.Master` in memory, on a fake clock.

No sockets: frameworks and agents are capture objects that record what the master sends
them. Used by mesonb's own fast tests and usable for testing a scheduler's logic::

    h = MasterHarness()
    agent = h.add_agent("cpus:2;mem:1024")
    fw = h.subscribe("demo")
    h.settle()
    offer = fw.offers()[0]
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

from mesonb.config import MasterConfig
from mesonb.master.book import Agent, Framework
from mesonb.master.master import Master
from mesonb.protocol.agent import (
    AgentCall,
    AgentCallType,
    AgentTask,
    Register,
    StatusUpdate,
)
from mesonb.protocol.mesos import AgentInfo, FrameworkInfo, TaskStatus
from mesonb.protocol.reservations import flag_to_json
from mesonb.protocol.resources import Resources
from mesonb.protocol.scheduler import Call
from mesonb.protocol.states import Source, TaskState

from .clock import FakeClock


class Capture:
    """Stands at the end of a stream or link and keeps what arrives."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.closed: str | None = None

    def send(self, message: Any) -> None:
        self.messages.append(message if isinstance(message, dict) else message.to_json())

    def close(self, reason: str | None = "closed") -> None:
        self.closed = reason or "closed"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def take(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Remove and return the messages (of one type) received so far."""
        if kind is None:
            taken, self.messages = self.messages, []
            return taken
        taken = self.of_type(kind)
        self.messages = [m for m in self.messages if m.get("type") != kind]
        return taken


class FrameworkEnd(Capture):
    """A subscribed framework's side of the SUBSCRIBE stream."""

    def __init__(self, harness: MasterHarness) -> None:
        super().__init__()
        self.harness = harness
        self.framework_id = ""
        self.stream_id = str(uuid.uuid4())

    def offers(self, take: bool = True) -> list[dict[str, Any]]:
        events = self.take("OFFERS") if take else self.of_type("OFFERS")
        return [o for e in events for o in e["offers"]["offers"]]

    def updates(self) -> list[dict[str, Any]]:
        return [e["update"]["status"] for e in self.take("UPDATE")]

    def call(self, kind: str, **body: Any) -> dict[str, Any] | None:
        """Send a scheduler call (``body`` as the call's JSON body field)."""
        data: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id}}
        data.update(body)
        return self.harness.master.calls.handle(Call.parse(data), self.stream_id)

    @property
    def record(self) -> Framework:
        return self.harness.master.book.frameworks[self.framework_id]


class AgentEnd(Capture):
    """An agent's side of its link to the master."""

    def __init__(self, harness: MasterHarness) -> None:
        super().__init__()
        self.harness = harness
        self.agent_id = ""

    def commands(self, kind: str) -> list[dict[str, Any]]:
        return self.take(kind)

    def update(
        self,
        framework_id: str,
        task_id: str,
        state: TaskState,
        *,
        latest_state: TaskState | None = None,
        **fields: Any,
    ) -> bytes:
        """Send a STATUS_UPDATE as an agent's status update manager does; returns its uuid."""
        status_uuid = uuid.uuid4().bytes
        status = TaskStatus(task_id=task_id, state=state, uuid=status_uuid, agent_id=self.agent_id,
                            source=Source.SOURCE_EXECUTOR, timestamp=self.harness.clock.time(),
                            **fields)
        self.send_call(AgentCall(type=AgentCallType.STATUS_UPDATE, status_update=StatusUpdate(
            framework_id=framework_id, status=status, latest_state=latest_state)))
        return status_uuid

    def send_call(self, call: AgentCall) -> None:
        agent = self.record
        self.harness.master.agents.handle(agent, AgentCall.from_json(call.to_json()))

    def pong(self) -> None:
        self.send_call(AgentCall(type=AgentCallType.PONG))

    @property
    def record(self) -> Agent:
        return self.harness.master.book.agents[self.agent_id]


class MasterHarness:
    """A real Master with a fake clock and in-memory ends."""

    def __init__(self, **config: Any) -> None:
        self.clock = FakeClock()
        self.master = Master(MasterConfig(**config), self.clock)
        self._pending: list[Callable[[], None]] = []
        self.master.attach(self._pending.append)

    def settle(self) -> None:
        """Run what the master scheduled for its next loop iteration (e.g. allocation)."""
        while self._pending:
            self._pending.pop(0)()

    def advance(self, seconds: float) -> None:
        """Move the clock and run the timers that came due."""
        self.clock.advance(seconds)
        self.master.tick()
        self.settle()

    def add_agent(
        self,
        resources: str = "cpus:4;mem:4096;disk:10000;ports:[31000-32000]",
        *,
        hostname: str = "agent.local",
        agent_id: str | None = None,
        tasks: list[AgentTask] | None = None,
        frameworks: list[FrameworkInfo] | None = None,
        end: AgentEnd | None = None,
    ) -> AgentEnd:
        end = end or AgentEnd(self)
        info = AgentInfo(hostname=hostname, port=5051,
                         resources=flag_to_json(resources))  # cpus(role):N: static
        register = Register(agent_info=info, version="1.11.0", agent_id=agent_id, tasks=tasks,
                            frameworks=frameworks)
        agent = self.master.agents.register(Register.from_json(register.to_json()), end.send,
                                            end.close)
        if agent is not None:
            end.agent_id = agent.id
        return end

    def subscribe(
        self,
        name: str = "framework",
        *,
        framework_id: str | None = None,
        capabilities: tuple[str, ...] = (),
        end: FrameworkEnd | None = None,
        **info: Any,
    ) -> FrameworkEnd:
        end = end or FrameworkEnd(self)
        end.stream_id = str(uuid.uuid4())
        framework_info: dict[str, Any] = {"user": "tester", "name": name, **info}
        if framework_id:
            framework_info["id"] = {"value": framework_id}
        if capabilities:
            framework_info["capabilities"] = [{"type": c} for c in capabilities]
        call = Call.parse({"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info}})
        framework = self.master.calls.subscribe(call, end.stream_id, end.send, end.close)
        if framework is not None:
            end.framework_id = framework.id
        return end

    def disconnect(self, end: FrameworkEnd) -> None:
        self.master.calls.disconnected(end.record, end.stream_id)


def command_task(task_id: str, agent_id: str, resources: str = "cpus:1;mem:128",
                 command: str = "true") -> dict[str, Any]:
    """A TaskInfo JSON for a shell command task."""
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "command": {"shell": True, "value": command},
        "resources": Resources.parse(resources).to_json(),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
