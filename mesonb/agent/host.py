"""What the executor side of the agent needs from the rest of it, handed over at start.

The executor side (:mod:`.executors` and the parts it is made of) never holds the
:class:`~mesonb.agent.agent.Agent`: it gets this :class:`Host`, the agent's configuration
and clock, a few values read when needed (they change: the agent id after registering,
the socket an executor is told of) and its outgoing ports: the master link and the status
update manager. The agent builds it; tests can build one with plain functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesonb.clock import Clock
from mesonb.config import AgentConfig
from mesonb.protocol.agent import AgentCall
from mesonb.protocol.mesos import AgentInfo, TaskInfo, TaskStatus
from mesonb.protocol.resources import Resources

from .recovery import RecoveryConfig

if TYPE_CHECKING:
    from .book import Executor
    from .containerizer import Container, LaunchSpec

# The containerizer's launch: (executor, spec, on_limitation) -> the started container;
# on_limitation(limitation) is called with an object that has ``reason`` and ``message``.
LaunchContainer = Callable[["Executor", "LaunchSpec", Callable[[Any], None]],
                           Awaitable["Container"]]


@dataclass(frozen=True)
class Addresses:
    """Where a newly launched executor reaches its agent, and what the agent calls itself."""

    endpoint: str  # ip:port of the agent's HTTP API
    socket: str | None  # the executor API's local socket
    pid: str  # slave(1)@ip:port


@dataclass(frozen=True)
class Host:
    """The agent as the executor side sees it."""

    config: AgentConfig
    recovery: RecoveryConfig
    clock: Clock
    metrics: dict[str, int]  # the agent's counters (valid_status_updates, ...)
    secret: str | None
    agent_id: Callable[[], str | None]
    agent_info: Callable[[], AgentInfo]
    addresses: Callable[[], Addresses]
    registered: Callable[[], bool]
    to_master: Callable[[AgentCall], bool]  # False while disconnected
    record_update: Callable[[str, TaskStatus, bool], None]  # (framework, status, checkpoint)
    update_seen: Callable[[str, str, bytes], bool]  # (framework, task, uuid)
    forget_updates: Callable[[str], None]  # a framework's streams
    # Seams for a containerizer object (limits, isolation); without one, executors are
    # launched by mesonb.agent.containerizer.launch and nothing follows their tasks.
    token_key: bytes | None = None  # signs executors' per-container tokens (HMAC)
    launch_container: LaunchContainer | None = None
    executor_changed: Callable[[Executor], None] | None = None  # its tasks changed
    # What the containerizer cannot run (an image, ports outside the offer, fractional
    # gpus, ...): the reason, or None; such a task gets TASK_ERROR before any launch.
    invalid_task: Callable[[TaskInfo], str | None] | None = None
    # Checkpointed resources (persistent volumes) a task names that this agent does not
    # hold: the reason, or None; such a task is TASK_DROPPED (TASK_LOST for a framework
    # that is not partition-aware) with REASON_RESOURCES_UNKNOWN, as in Mesos.
    unknown_resources: Callable[[TaskInfo], str | None] | None = None
    # The parse of a task's ``resources`` list that ``unknown_resources`` made, if it made
    # one of that very list (handed out once): the task's record takes it as its own.
    parsed_resources: Callable[[Any], Resources | None] | None = None
    task_ended: Callable[[Executor | None], None] | None = None  # a task of it ended
    # Links the persistent volumes named in some resources into a sandbox (volumes.py).
    mount_volumes: Callable[[Path, Any], None] | None = None
    # A restarted agent takes back an in-agent command task that outlived it (its
    # recovered container in, the container that now supervises it out).
    adopt_task: Callable[[Executor, Container], Container] | None = None
