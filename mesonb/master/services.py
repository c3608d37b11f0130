"""What the scheduler-call and agent-message handlers use of the master.

:class:`~.frameworks.SchedulerCalls` and :class:`~.agents.AgentMessages` are given the
:class:`~.master.Master` that owns them, but see it only through this protocol: the few
services they need besides the book and the outbox. So they do not import ``master.py``
(which imports them) and what they may call back into is listed in one place.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any, Protocol

from mesonb.clock import Clock
from mesonb.config import MasterConfig
from mesonb.protocol.mesos import MasterInfo
from mesonb.protocol.states import TaskState
from mesonb.security.acls import Acls

from .book import Agent, Book, Framework, Task
from .framework_fsm import Action as FrameworkAction
from .offer_fsm import Action as OfferAction
from .offer_fsm import OfferLifecycle, Pooled
from .operation_status import OperationStatuses
from .outbox import Outbox
from .registry import Registry


class MaintenanceView(Protocol):
    """The master's maintenance (inverse_offers.py), as agents and schedulers reach it."""

    def refusal(self, hostname: str, upid: str | None) -> str | None: ...

    def answer(self, framework: Framework, ids: list[str], accepted: bool,
               refuse_seconds: float = 5.0) -> None: ...


class DrainView(Protocol):
    """The master's drains (drain.py), as a registering agent meets them."""

    def adopt(self, agent: Agent) -> None: ...


class MasterServices(Protocol):
    book: Book
    maintenance: MaintenanceView
    drains: DrainView
    out: Outbox
    clock: Clock
    config: MasterConfig
    counters: collections.Counter[str]
    offer_lifecycle: OfferLifecycle
    recovered_agents: dict[str, dict[str, Any]]
    registry: Registry | None
    acls: Acls  # the local authorizer (reservations and volumes are checked in the core)
    operation_statuses: OperationStatuses

    def new_id(self, kind: str) -> str: ...

    def info(self) -> MasterInfo: ...

    def schedule(self, fn: Callable[..., None], *args: Any) -> None: ...

    def resources_changed(self, agent_id: str) -> None: ...

    def rescind_agent_offers(self, agent: Agent) -> None: ...

    def carry_out_offers(self, actions: list[OfferAction]) -> Pooled | None: ...

    def carry_out_framework(self, framework: Framework,
                            actions: list[FrameworkAction]) -> None: ...

    def remove_framework(self, framework: Framework, reason: str) -> None: ...

    def terminate_task(self, task: Task, state: TaskState) -> None: ...

    def persist(self, future: Any, what: str) -> None: ...

    def persist_framework(self, framework: Framework) -> None: ...
