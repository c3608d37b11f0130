"""The agent <-> master protocol: mesonb's own, in Mesos's style.

Transport: the agent opens one WebSocket to the master at ``/mesonb/v1/agent`` (with the
bearer token when the cluster has one). Every frame is one JSON message shaped like a
Mesos call, ``{"type": "STATUS_UPDATE", "status_update": {...}}``. The agent sends
:class:`AgentCall` messages, the master sends :class:`MasterCommand` messages.

A frame may also hold a JSON array of such messages: both sides coalesce what they send
in one event-loop turn into one frame (a burst of status updates or acknowledgements
costs one frame, not one per message).

Conversation::

    agent                                   master
      | -- REGISTER{agent_info, pid, agent_id?, tasks[], ...} -->
      | <-- REGISTERED{agent_id, ping_interval_seconds} --
      | <-- RUN_TASK / RUN_TASK_GROUP / KILL_TASK / ... --
      | -- STATUS_UPDATE{framework_id, status(uuid)} ---->   (retried until ACKNOWLEDGE)
      | <-- ACKNOWLEDGE{framework_id, task_id, uuid} ------
      | <-- PING --   -- PONG -->                           (every ping_interval_seconds)

A REGISTER that carries ``agent_id`` is a re-registration: the agent reports the tasks and
executors it still runs, and the master rebuilds its book from them (agent restart,
master failover, or the end of a partition).
"""

from __future__ import annotations

from typing import Any

from .codec import ID, Message, ProtoEnum, message
from .errors import BadRequest
from .jsontext import dumps as _dumps
from .jsontext import loads
from .mesos import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    TaskGroupInfo,
    TaskInfo,
    TaskStatus,
)
from .states import TaskState

AGENT_PATH = "/mesonb/v1/agent"


class AgentCallType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    REGISTER = "REGISTER", 1
    STATUS_UPDATE = "STATUS_UPDATE", 2
    PONG = "PONG", 3
    EXECUTOR_EXITED = "EXECUTOR_EXITED", 4
    FRAMEWORK_MESSAGE = "FRAMEWORK_MESSAGE", 5
    UNREGISTER = "UNREGISTER", 6


@message
class AgentTask(Message):
    """A task as the agent reports it on re-registration."""

    framework_id: ID
    task: TaskInfo
    state: TaskState
    executor_id: ID | None = None
    latest_status: TaskStatus | None = None


@message
class AgentExecutor(Message):
    framework_id: ID
    executor: ExecutorInfo


@message
class Register(Message):
    """``pid`` is the agent's ``slave(1)@ip:port``: Mesos's master learns it from the sender
    of the registration message; here the agent says it."""

    agent_info: AgentInfo
    version: str
    agent_id: ID | None = None
    pid: str | None = None
    tasks: list[AgentTask] | None = None
    executors: list[AgentExecutor] | None = None
    frameworks: list[FrameworkInfo] | None = None


@message
class StatusUpdate(Message):
    framework_id: ID
    status: TaskStatus
    latest_state: TaskState | None = None


@message
class ExecutorExited(Message):
    framework_id: ID
    executor_id: ID
    status: int | None = None


@message
class AgentFrameworkMessage(Message):
    framework_id: ID
    executor_id: ID
    data: bytes


@message
class AgentCall(Message):
    """A message from an agent to the master."""

    type: AgentCallType
    register: Register | None = None
    status_update: StatusUpdate | None = None
    executor_exited: ExecutorExited | None = None
    framework_message: AgentFrameworkMessage | None = None


class MasterCommandType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    REGISTERED = "REGISTERED", 1
    RUN_TASK = "RUN_TASK", 2
    RUN_TASK_GROUP = "RUN_TASK_GROUP", 3
    KILL_TASK = "KILL_TASK", 4
    ACKNOWLEDGE = "ACKNOWLEDGE", 5
    SHUTDOWN_FRAMEWORK = "SHUTDOWN_FRAMEWORK", 6
    SHUTDOWN_EXECUTOR = "SHUTDOWN_EXECUTOR", 7
    FRAMEWORK_MESSAGE = "FRAMEWORK_MESSAGE", 8
    PING = "PING", 9
    UPDATE_FRAMEWORK = "UPDATE_FRAMEWORK", 10
    SHUTDOWN = "SHUTDOWN", 11
    ERROR = "ERROR", 12
    CHECKPOINT_RESOURCES = "CHECKPOINT_RESOURCES", 13


@message
class Registered(Message):
    agent_id: ID
    ping_interval_seconds: float
    master_info: MasterInfo | None = None


@message
class RunTask(Message):
    framework_info: FrameworkInfo  # carries ``id``
    task: TaskInfo
    executor: ExecutorInfo | None = None  # None: the agent's command executor runs the task


@message
class RunTaskGroup(Message):
    framework_info: FrameworkInfo
    executor: ExecutorInfo
    task_group: TaskGroupInfo


@message
class KillTask(Message):
    framework_id: ID
    task_id: ID
    kill_policy: KillPolicy | None = None


@message
class AcknowledgeUpdate(Message):
    framework_id: ID
    task_id: ID
    uuid: bytes


@message
class ShutdownFramework(Message):
    framework_id: ID


@message
class ShutdownExecutor(Message):
    framework_id: ID
    executor_id: ID


@message
class UpdateFrameworkInfo(Message):
    framework_info: FrameworkInfo


@message
class Notice(Message):
    message: str


@message
class CheckpointResources(Message):
    """The agent's dynamic reservations and persistent volumes (a ``Resource`` list), all
    of them: the agent checkpoints the list and makes its volumes' directories match."""

    resources: list[dict]


@message
class MasterCommand(Message):
    """A message from the master to an agent."""

    type: MasterCommandType
    registered: Registered | None = None
    run_task: RunTask | None = None
    run_task_group: RunTaskGroup | None = None
    kill_task: KillTask | None = None
    acknowledge: AcknowledgeUpdate | None = None
    shutdown_framework: ShutdownFramework | None = None
    shutdown_executor: ShutdownExecutor | None = None
    framework_message: AgentFrameworkMessage | None = None
    update_framework: UpdateFrameworkInfo | None = None
    shutdown: Notice | None = None
    error: Notice | None = None
    checkpoint_resources: CheckpointResources | None = None




def dumps(msg: AgentCall | MasterCommand) -> str:
    return _dumps(msg.to_json())


def frame(messages: list[dict[str, Any]]) -> str:
    """One frame for messages already in JSON form: an object, or an array of several."""
    return _dumps(messages[0] if len(messages) == 1 else messages)


def _loads_all(cls: Any, text: str | bytes) -> list[Any]:
    data = loads(text, "agent protocol")
    if isinstance(data, list):
        return [_check(cls, item) for item in data]
    return [_check(cls, data)]


def _loads(cls: Any, text: str | bytes) -> Any:
    msgs = _loads_all(cls, text)
    if len(msgs) != 1:
        raise BadRequest("agent protocol: expected one message, got an array")
    return msgs[0]


def _check(cls: Any, data: Any) -> Any:
    msg = cls.from_json(data, cls.__name__)
    body = msg.type.value.lower()
    if msg.type.value not in ("PONG", "PING", "UNREGISTER") and getattr(msg, body, None) is None:
        raise BadRequest(f"agent protocol: {msg.type} without its '{body}' body")
    return msg


def load_call(text: str | bytes) -> AgentCall:
    return _loads(AgentCall, text)


def load_command(text: str | bytes) -> MasterCommand:
    return _loads(MasterCommand, text)


def load_calls(text: str | bytes) -> list[AgentCall]:
    """The agent messages in one frame (an object or an array of them)."""
    return _loads_all(AgentCall, text)


def load_commands(text: str | bytes) -> list[MasterCommand]:
    """The master messages in one frame (an object or an array of them)."""
    return _loads_all(MasterCommand, text)


def command_from_json(data: Any) -> MasterCommand:
    """One master message from its parsed JSON, checked as :func:`load_commands` checks
    each message of a frame."""
    return _check(MasterCommand, data)
