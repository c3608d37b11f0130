"""``POST /api/v1`` on the agent: the Mesos v1 agent operator API (JSON).

Also served at ``/slave(1)/api/v1`` and at any ``/api/v1/<x>`` other than ``executor``
(libprocess routes by prefix, as on the master). Calls follow ``mesos.v1.agent.Call`` and
answers ``mesos.v1.agent.Response`` (include/mesos/v1/agent/agent.proto):

- read-only: GET_HEALTH, GET_FLAGS, GET_VERSION, GET_METRICS, GET_LOGGING_LEVEL,
  LIST_FILES, READ_FILE, GET_STATE, GET_CONTAINERS, GET_FRAMEWORKS, GET_EXECUTORS,
  GET_OPERATIONS, GET_TASKS, GET_AGENT, GET_RESOURCE_PROVIDERS;
- SET_LOGGING_LEVEL (a verbosity for a duration, then back);
- commands inside a running task's container (what ``mesos task exec`` does):
  LAUNCH_NESTED_CONTAINER_SESSION streams the command's output as RecordIO ``ProcessIO``
  records until it exits; ATTACH_CONTAINER_INPUT feeds its stdin; ATTACH_CONTAINER_OUTPUT
  re-attaches to its output; WAIT_NESTED_CONTAINER / WAIT_CONTAINER answer its exit;
  KILL_NESTED_CONTAINER / KILL_CONTAINER signal it (see :mod:`.nested`).

Calls the agent cannot carry out (standalone containers, resource providers' configs,
image pruning) answer ``400`` naming the call, never a silent success. Handlers are thin:
the answers are built from the agent's public views.
"""

from __future__ import annotations

import base64
import enum
import logging
from typing import TYPE_CHECKING, Any

from mesonb.http import files as files_api
from mesonb.http.base import JSON, RECORDIO, BaseHandler, method_not_allowed
from mesonb.logging_level import LoggingLevel
from mesonb.protocol import recordio
from mesonb.protocol.errors import BadRequest, NotFound
from mesonb.protocol.jsontext import loads

from .nested import NestedContainers

if TYPE_CHECKING:
    from .book import Executor, Framework, Task
    from .surface import AgentSurface

log = logging.getLogger(__name__)

OPERATOR_PATH = r"(?:/slave\(1\))?/api/v1(?:/(?!executor/?$)[^/]+)?/?"


class AgentCallType(enum.Enum):
    """``mesos.v1.agent.Call.Type``, complete."""

    GET_HEALTH = "GET_HEALTH"
    GET_FLAGS = "GET_FLAGS"
    GET_VERSION = "GET_VERSION"
    GET_METRICS = "GET_METRICS"
    GET_LOGGING_LEVEL = "GET_LOGGING_LEVEL"
    SET_LOGGING_LEVEL = "SET_LOGGING_LEVEL"
    LIST_FILES = "LIST_FILES"
    READ_FILE = "READ_FILE"
    GET_STATE = "GET_STATE"
    GET_CONTAINERS = "GET_CONTAINERS"
    GET_FRAMEWORKS = "GET_FRAMEWORKS"
    GET_EXECUTORS = "GET_EXECUTORS"
    GET_OPERATIONS = "GET_OPERATIONS"
    GET_TASKS = "GET_TASKS"
    GET_AGENT = "GET_AGENT"
    GET_RESOURCE_PROVIDERS = "GET_RESOURCE_PROVIDERS"
    LAUNCH_NESTED_CONTAINER = "LAUNCH_NESTED_CONTAINER"
    WAIT_NESTED_CONTAINER = "WAIT_NESTED_CONTAINER"
    KILL_NESTED_CONTAINER = "KILL_NESTED_CONTAINER"
    REMOVE_NESTED_CONTAINER = "REMOVE_NESTED_CONTAINER"
    LAUNCH_NESTED_CONTAINER_SESSION = "LAUNCH_NESTED_CONTAINER_SESSION"
    ATTACH_CONTAINER_INPUT = "ATTACH_CONTAINER_INPUT"
    ATTACH_CONTAINER_OUTPUT = "ATTACH_CONTAINER_OUTPUT"
    LAUNCH_CONTAINER = "LAUNCH_CONTAINER"
    WAIT_CONTAINER = "WAIT_CONTAINER"
    KILL_CONTAINER = "KILL_CONTAINER"
    REMOVE_CONTAINER = "REMOVE_CONTAINER"
    ADD_RESOURCE_PROVIDER_CONFIG = "ADD_RESOURCE_PROVIDER_CONFIG"
    UPDATE_RESOURCE_PROVIDER_CONFIG = "UPDATE_RESOURCE_PROVIDER_CONFIG"
    REMOVE_RESOURCE_PROVIDER_CONFIG = "REMOVE_RESOURCE_PROVIDER_CONFIG"
    MARK_RESOURCE_PROVIDER_GONE = "MARK_RESOURCE_PROVIDER_GONE"
    PRUNE_IMAGES = "PRUNE_IMAGES"


# Calls with a required body, by the name of their body field.
_BODY_REQUIRED = {
    AgentCallType.SET_LOGGING_LEVEL, AgentCallType.LIST_FILES, AgentCallType.READ_FILE,
    AgentCallType.LAUNCH_NESTED_CONTAINER, AgentCallType.WAIT_NESTED_CONTAINER,
    AgentCallType.KILL_NESTED_CONTAINER, AgentCallType.REMOVE_NESTED_CONTAINER,
    AgentCallType.LAUNCH_NESTED_CONTAINER_SESSION, AgentCallType.ATTACH_CONTAINER_OUTPUT,
    AgentCallType.WAIT_CONTAINER, AgentCallType.KILL_CONTAINER,
    AgentCallType.REMOVE_CONTAINER,
}


def parse_call(body: bytes) -> tuple[AgentCallType, dict[str, Any]]:
    """The call's type and body (``{}`` when it has none); BadRequest with Mesos's words."""
    data = loads(body, "Failed to parse body into JSON")
    if not isinstance(data, dict):
        raise BadRequest("Failed to convert JSON into Call protobuf: expected an object")
    name = data.get("type")
    if name in (None, "UNKNOWN"):
        raise BadRequest("Expecting 'type' to be present")
    try:
        kind = AgentCallType(name)
    except (ValueError, TypeError):
        raise BadRequest(f"Failed to convert JSON into Call protobuf: unknown call type "
                         f"'{name}'") from None
    field = kind.value.lower()
    payload = data.get(field)
    if payload is None and kind in _BODY_REQUIRED:
        raise BadRequest(f"Expecting '{field}' to be present")
    if payload is not None and not isinstance(payload, dict):
        raise BadRequest(f"Expecting '{field}' to be an object")
    return kind, payload or {}


def container_id_of(body: dict[str, Any], field: str = "container_id") -> tuple[str, str | None]:
    """``(value, parent value or None)`` of a ``ContainerID`` body field."""
    cid = body.get(field)
    if not isinstance(cid, dict) or not isinstance(cid.get("value"), str) or not cid["value"]:
        raise BadRequest(f"Expecting '{field}.value' to be present")
    parent = cid.get("parent")
    if parent is None:
        return cid["value"], None
    if not isinstance(parent, dict) or not isinstance(parent.get("value"), str):
        raise BadRequest(f"Expecting '{field}.parent.value' to be a string")
    return cid["value"], parent["value"]


# -- v1 views of the agent's book -------------------------------------------------------
def status_v1(status: Any) -> dict[str, Any]:
    out: dict[str, Any] = status.to_json()
    return out


def task_v1(task: Task, agent_id: str) -> dict[str, Any]:
    """The v1 ``Task`` message for a task on this agent."""
    info = task.info
    out: dict[str, Any] = {
        "name": info.name,
        "task_id": {"value": task.task_id},
        "framework_id": {"value": task.framework_id},
        "executor_id": {"value": task.executor_id},
        "agent_id": {"value": agent_id},
        "state": task.state.value,
        "resources": list(info.resources or []),
        "statuses": [status_v1(s) for s in task.statuses],
    }
    if info.labels:
        out["labels"] = info.labels
    return out


def executor_v1(executor: Executor) -> dict[str, Any]:
    return {"executor_info": executor.info.to_json()}


def framework_v1(framework: Framework) -> dict[str, Any]:
    return {"framework_info": framework.info.to_json()}


def get_frameworks(agent: AgentSurface) -> dict[str, Any]:
    book = agent.executors
    return {"frameworks": [framework_v1(f) for f in book.frameworks.values()],
            "completed_frameworks": [framework_v1(f) for f in book.completed_frameworks]}


def get_executors(agent: AgentSurface) -> dict[str, Any]:
    live: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []
    for framework in [*agent.executors.frameworks.values(), *agent.executors.completed_frameworks]:
        live.extend(executor_v1(e) for e in framework.executors.values())
        done.extend(executor_v1(e) for e in framework.completed_executors)
    return {"executors": live, "completed_executors": done}


def get_tasks(agent: AgentSurface) -> dict[str, Any]:
    """Queued tasks wait for their executor; launched ones are not terminal or not yet
    acknowledged; terminated ones are terminal but unacknowledged; completed ones done."""
    agent_id = agent.agent_id or ""
    queued: list[dict[str, Any]] = []
    launched: list[dict[str, Any]] = []
    terminated: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    for framework in [*agent.executors.frameworks.values(), *agent.executors.completed_frameworks]:
        for executor in [*framework.executors.values(), *framework.completed_executors]:
            queued.extend(task_v1(t, agent_id) for t in executor.queued.values())
            for task in executor.launched.values():
                (terminated if task.state.terminal else launched).append(task_v1(task, agent_id))
            completed.extend(task_v1(t, agent_id) for t in executor.completed)
    return {"pending_tasks": [], "queued_tasks": queued, "launched_tasks": launched,
            "terminated_tasks": terminated, "completed_tasks": completed}


def get_containers(agent: AgentSurface, show_nested: bool,
                   nested: NestedContainers) -> dict[str, Any]:
    usage = {(s["framework_id"], s["executor_id"]): s["statistics"]
             for s in agent.monitor_statistics()}
    out = []
    for executor in agent.executors.all_executors():
        container = executor.container
        if container is None or not container.running:
            continue
        entry: dict[str, Any] = {
            "framework_id": {"value": executor.framework_id},
            "executor_id": {"value": executor.executor_id},
            "executor_name": executor.info.name or "",
            "container_id": {"value": executor.container_id},
            "container_status": {"container_id": {"value": executor.container_id},
                                 "executor_pid": container.pid},
        }
        stats = usage.get((executor.framework_id, executor.executor_id))
        if stats is not None:
            entry["resource_statistics"] = stats
        out.append(entry)
    if show_nested:
        out.extend(nested.describe())
    return {"containers": out}


def list_files(agent: AgentSurface, path: str) -> dict[str, Any]:
    real = agent.sandbox_paths.resolve(path, agent.virtual_sandboxes())
    return {"file_infos": [files_api.file_info(e) for e in files_api.browse(path, real)]}


def read_file(agent: AgentSurface, body: dict[str, Any]) -> dict[str, Any]:
    path, offset, length = files_api.read_file_call(body)
    real = agent.sandbox_paths.resolve(path, agent.virtual_sandboxes())
    return files_api.read_file(real, path, offset, length)


def flags_v1(agent: AgentSurface) -> dict[str, Any]:
    return {"flags": [{"name": k, "value": v} for k, v in sorted(agent.flags().items())]}


def metrics_v1(agent: AgentSurface) -> dict[str, Any]:
    return {"metrics": [{"name": k, "value": v}
                        for k, v in sorted(agent.metrics_snapshot().items())]}


def version_v1(agent: AgentSurface) -> dict[str, Any]:
    fields = ("version", "build_date", "build_time", "build_user", "git_sha")
    info = agent.version_info()
    return {"version_info": {k: info[k] for k in fields if k in info}}


def agent_v1(agent: AgentSurface) -> dict[str, Any]:
    return {"agent_info": agent.agent_info().to_json()}


_UNSUPPORTED = {
    AgentCallType.LAUNCH_NESTED_CONTAINER: "use LAUNCH_NESTED_CONTAINER_SESSION",
    AgentCallType.REMOVE_NESTED_CONTAINER: "nested containers are removed when they exit",
    AgentCallType.LAUNCH_CONTAINER: "standalone containers are not supported by this agent",
    AgentCallType.REMOVE_CONTAINER: "standalone containers are not supported by this agent",
    AgentCallType.ADD_RESOURCE_PROVIDER_CONFIG: "this agent has no resource providers",
    AgentCallType.UPDATE_RESOURCE_PROVIDER_CONFIG: "this agent has no resource providers",
    AgentCallType.REMOVE_RESOURCE_PROVIDER_CONFIG: "this agent has no resource providers",
    AgentCallType.MARK_RESOURCE_PROVIDER_GONE: "this agent has no resource providers",
    AgentCallType.PRUNE_IMAGES: "this agent has no container images",
}


class AgentOperatorHandler(BaseHandler):
    """The agent's operator endpoint; the work is the functions above and :mod:`.nested`."""

    agent: AgentSurface
    nested: NestedContainers
    logging_level: LoggingLevel

    def get(self) -> None:
        raise method_not_allowed("POST")

    put = delete = patch = get

    async def post(self) -> None:
        self.require_json_body()
        body = self.request.body
        if body.lstrip()[:1].isdigit():  # ATTACH_CONTAINER_INPUT: a RecordIO stream of calls
            await self._attach_input(body)
            return
        kind, payload = parse_call(body)
        self.require_json_accept(extra=(RECORDIO,))
        agent = self.agent
        nested = self.nested
        answer: dict[str, Any] | None
        if kind in _UNSUPPORTED:
            raise BadRequest(f"{kind.value} is not supported: {_UNSUPPORTED[kind]}")
        if kind is AgentCallType.LAUNCH_NESTED_CONTAINER_SESSION:
            await self._session(nested, payload)
            return
        if kind is AgentCallType.ATTACH_CONTAINER_OUTPUT:
            await self._attach_output(nested, payload)
            return
        if kind is AgentCallType.ATTACH_CONTAINER_INPUT:
            raise BadRequest("ATTACH_CONTAINER_INPUT must be sent as a RecordIO stream "
                             "(Content-Type: application/recordio)")
        if kind is AgentCallType.GET_HEALTH:
            answer = {"healthy": True}
        elif kind is AgentCallType.GET_FLAGS:
            answer = flags_v1(agent)
        elif kind is AgentCallType.GET_VERSION:
            answer = version_v1(agent)
        elif kind is AgentCallType.GET_METRICS:
            answer = metrics_v1(agent)
        elif kind is AgentCallType.GET_LOGGING_LEVEL:
            answer = {"level": self.logging_level.level}
        elif kind is AgentCallType.SET_LOGGING_LEVEL:
            duration = payload.get("duration") or {}
            nanos = duration.get("nanoseconds") if isinstance(duration, dict) else None
            if not isinstance(nanos, int) or isinstance(nanos, bool):
                raise BadRequest("Expecting 'set_logging_level.duration.nanoseconds' to be "
                                 "an integer")
            level = payload.get("level")
            self.logging_level.set(level, nanos / 1e9)  # type: ignore[arg-type]
            answer = None
        elif kind is AgentCallType.LIST_FILES:
            path = payload.get("path")
            if not isinstance(path, str):
                raise BadRequest("Expecting 'list_files.path' to be a string")
            answer = list_files(agent, path)
        elif kind is AgentCallType.READ_FILE:
            answer = read_file(agent, payload)
        elif kind is AgentCallType.GET_STATE:
            answer = {"get_tasks": get_tasks(agent), "get_executors": get_executors(agent),
                      "get_frameworks": get_frameworks(agent)}
        elif kind is AgentCallType.GET_CONTAINERS:
            answer = get_containers(agent, bool(payload.get("show_nested")), nested)
        elif kind is AgentCallType.GET_FRAMEWORKS:
            answer = get_frameworks(agent)
        elif kind is AgentCallType.GET_EXECUTORS:
            answer = get_executors(agent)
        elif kind is AgentCallType.GET_OPERATIONS:
            answer = {}
        elif kind is AgentCallType.GET_TASKS:
            answer = get_tasks(agent)
        elif kind is AgentCallType.GET_AGENT:
            answer = agent_v1(agent)
        elif kind is AgentCallType.GET_RESOURCE_PROVIDERS:
            answer = {}
        elif kind in (AgentCallType.WAIT_NESTED_CONTAINER, AgentCallType.WAIT_CONTAINER):
            value, _ = container_id_of(payload)
            answer = await nested.wait(value)
        elif kind in (AgentCallType.KILL_NESTED_CONTAINER, AgentCallType.KILL_CONTAINER):
            value, _ = container_id_of(payload)
            signal = payload.get("signal", 9)
            if not isinstance(signal, int) or isinstance(signal, bool) or signal <= 0:
                raise BadRequest("Expecting 'signal' to be a positive integer")
            nested.kill(value, signal)
            answer = None
        else:  # pragma: no cover - every type is handled above
            raise BadRequest(f"Unhandled call {kind.value}")
        if answer is None:
            self.set_status(200)
            self.finish()
            return
        response_type = kind.value
        self.write_json({"type": response_type, response_type.lower(): answer})

    # -- nested container sessions ----------------------------------------------------
    async def _session(self, nested: NestedContainers, payload: dict[str, Any]) -> None:
        value, parent = container_id_of(payload)
        if parent is None:
            raise BadRequest("Expecting 'container_id.parent' to name the running container "
                             "to run the command in")
        executor = next((e for e in self.agent.executors.all_executors()
                         if e.container_id == parent and e.container is not None
                         and e.container.running), None)
        if executor is None:
            raise NotFound(f"Container '{parent}' is not running on this agent")
        command = payload.get("command") or {}
        if not isinstance(command, dict):
            raise BadRequest("Expecting 'command' to be an object")
        session = await nested.launch(value, executor, command)
        await self._stream_output(session)

    async def _attach_output(self, nested: NestedContainers, payload: dict[str, Any]) -> None:
        value, _ = container_id_of(payload)
        await self._stream_output(nested.get(value))

    async def _stream_output(self, session: Any) -> None:
        self.stream_events()
        self.set_status(200)
        self.set_header("Content-Type", RECORDIO)
        self.set_header("Message-Content-Type", JSON)
        self.flush()
        async for kind, data in session.output():
            self.write(recordio.encode_json({"type": "DATA", "data": {
                "type": kind, "data": base64.b64encode(data).decode()}}))
            await self.flush()
        self.finish()

    async def _attach_input(self, body: bytes) -> None:
        decoder = recordio.Decoder()
        try:
            calls = list(decoder.feed_json(body))
        except Exception as exc:
            raise BadRequest(f"Failed to decode the RecordIO stream of calls: {exc}") from None
        if not calls or not isinstance(calls[0], dict):
            raise BadRequest("Expecting an ATTACH_CONTAINER_INPUT call first")
        first = calls[0].get("attach_container_input") or {}
        if calls[0].get("type") != "ATTACH_CONTAINER_INPUT" or first.get("type") != "CONTAINER_ID":
            raise BadRequest("The first record must be ATTACH_CONTAINER_INPUT of type "
                             "CONTAINER_ID")
        value, _ = container_id_of(first)
        session = self.nested.get(value)
        for i, call in enumerate(calls[1:], 1):
            io = ((call or {}).get("attach_container_input") or {}).get("process_io") or {}
            if io.get("type") == "CONTROL":
                continue  # heartbeats and TTY info: nothing to do without a TTY
            data = io.get("data") or {}
            if io.get("type") != "DATA" or data.get("type") != "STDIN":
                raise BadRequest(f"record {i}: expecting PROCESS_IO data of type STDIN")
            try:
                chunk = base64.b64decode(data.get("data") or "", validate=True)
            except (ValueError, TypeError):
                raise BadRequest(f"record {i}: 'data' is not base64") from None
            await session.write_stdin(chunk)
        self.set_status(200)
        self.finish()
