"""What the core's helpers (health recording, deployments) see of it: a typed protocol.

:class:`~.checks.HealthRecorder` and :class:`~.deployments.DeploymentRunner` belong to a
:class:`~.core.MarathonCore`, which builds them; typing them against this protocol instead
of the core class keeps the imports one way (core -> its helpers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from .appstate import AppState
from .deployment_fsm import Deployment
from .events import EventBus
from .health import TaskChecks
from .instance_fsm import Action
from .instance_store import InstanceStore
from .instances import Instance
from .storage import Store


class CoreSurface(Protocol):
    """The part of :class:`~.core.MarathonCore` its helpers use."""

    store: Store
    instance_store: InstanceStore
    clock: Callable[[], float]
    bus: EventBus
    apps: dict[str, AppState]
    instances: dict[str, Instance]
    deployments: dict[str, Deployment]
    checks: dict[str, TaskChecks]
    counters: Counter[str]
    expunged: dict[str, str]
    driver: Any
    _dirty: set[str]

    def app_instances(self, app_id: str) -> list[Instance]: ...

    def locks(self, app_id: str) -> list[Deployment]: ...

    async def converge(self, app_id: str) -> None: ...

    def _spawn(self, coro: Any) -> None: ...

    def _carry_out(self, inst: Instance, actions: tuple[Action, ...],
                   status: dict[str, Any] | None = None) -> None: ...

    def _changed(self) -> None: ...
