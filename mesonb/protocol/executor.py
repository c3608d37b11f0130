"""The Mesos v1 Executor API (include/mesos/v1/executor/executor.proto) as data.

Executors POST calls to ``/api/v1/executor`` on their agent; SUBSCRIBE answers with a
RecordIO stream of events, exactly like the scheduler API.
"""

from __future__ import annotations

from .codec import ID, Message, ProtoEnum, message
from .errors import BadRequest
from .jsontext import loads
from .mesos import (
    AgentInfo,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskGroupInfo,
    TaskInfo,
    TaskStatus,
)
from .states import TaskState

EXECUTOR_PATH = "/api/v1/executor"
# Set to "1" on the SUBSCRIBE answer by mesonb's agent: it takes a JSON array of calls.
BATCH_HEADER = "Mesonb-Batch"
# The secret the agent gives an executor, sent back as ``Authorization: Bearer <token>``.
TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
# mesonb's agent also serves the executor API on a local socket (``unix:@name``), which
# mesonb's executors prefer to its HTTP port (mesonb/agent/executor_socket.py).
SOCKET_ENV = "MESONB_AGENT_SOCKET"
# Set by the agent for its built-in executors: the PYTHONPATH they run with.
PYTHONPATH_MARK = "MESONB_EXECUTOR_PYTHONPATH"


class ExecutorCallType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    SUBSCRIBE = "SUBSCRIBE", 1
    UPDATE = "UPDATE", 2
    MESSAGE = "MESSAGE", 3
    HEARTBEAT = "HEARTBEAT", 4


@message
class ExecutorSubscribe(Message):
    unacknowledged_tasks: list[TaskInfo] | None = None
    unacknowledged_updates: list[dict] | None = None


@message
class ExecutorUpdate(Message):
    status: TaskStatus


@message
class ExecutorMessageBody(Message):
    data: bytes


@message
class ExecutorCall(Message):
    type: ExecutorCallType
    executor_id: ID
    framework_id: ID
    subscribe: ExecutorSubscribe | None = None
    update: ExecutorUpdate | None = None
    message: ExecutorMessageBody | None = None

    @classmethod
    def parse(cls, body: bytes) -> ExecutorCall:
        data = loads(body, "Failed to parse body into executor Call")
        call = cls.from_json(data, "Call")
        call.validate()
        return call

    def validate(self) -> None:
        """Mesos's checks of an executor call (validation::executor::call::validate):
        BadRequest for a missing body field, an UPDATE without ``uuid``, or TASK_STAGING
        (only the agent reports that)."""
        if self.type is ExecutorCallType.UNKNOWN:
            raise BadRequest("Expecting 'type' to be present")
        if self.type is ExecutorCallType.MESSAGE and self.message is None:
            raise BadRequest("Expecting 'message' to be present for a MESSAGE call")
        if self.type is ExecutorCallType.UPDATE:
            if self.update is None:
                raise BadRequest("Expecting 'update' to be present for an UPDATE call")
            if self.update.status.uuid is None:
                raise BadRequest("Expecting 'uuid' to be present")
            if self.update.status.state is TaskState.TASK_STAGING:
                raise BadRequest("Received TASK_STAGING from executor")


class ExecutorEventType(ProtoEnum):
    UNKNOWN = "UNKNOWN", 0
    SUBSCRIBED = "SUBSCRIBED", 1
    LAUNCH = "LAUNCH", 2
    LAUNCH_GROUP = "LAUNCH_GROUP", 8
    KILL = "KILL", 3
    ACKNOWLEDGED = "ACKNOWLEDGED", 4
    MESSAGE = "MESSAGE", 5
    ERROR = "ERROR", 6
    SHUTDOWN = "SHUTDOWN", 7
    HEARTBEAT = "HEARTBEAT", 9


@message
class ExecutorSubscribed(Message):
    executor_info: ExecutorInfo
    framework_info: FrameworkInfo
    agent_info: AgentInfo
    container_id: ID | None = None


@message
class ExecutorLaunch(Message):
    task: TaskInfo


@message
class ExecutorLaunchGroup(Message):
    task_group: TaskGroupInfo


@message
class ExecutorKill(Message):
    task_id: ID
    kill_policy: KillPolicy | None = None


@message
class ExecutorAcknowledged(Message):
    task_id: ID
    uuid: bytes


@message
class ExecutorError(Message):
    message: str


@message
class ExecutorEvent(Message):
    type: ExecutorEventType
    subscribed: ExecutorSubscribed | None = None
    launch: ExecutorLaunch | None = None
    launch_group: ExecutorLaunchGroup | None = None
    kill: ExecutorKill | None = None
    acknowledged: ExecutorAcknowledged | None = None
    message: ExecutorMessageBody | None = None
    error: ExecutorError | None = None
