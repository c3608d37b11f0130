"""What health and readiness checks say about instances, recorded on the core.

Marathon-side checks (:class:`~.health.TaskChecks`) start when an instance first runs;
their results, or the ``healthy`` of the agent's status updates (Mesos checks), become the
instance's ``healthCheckResults``, the health events (``health_status_changed_event``,
``failed_health_check_event``) and, after ``maxConsecutiveFailures``, the UNHEALTHY event
of the instance machine, which kills it.
"""

from __future__ import annotations

from typing import Any

from .health import FRAMEWORK_CHECKS, TaskChecks
from .instance_fsm import Event, transition
from .instances import Instance
from .model import AppDefinition, timestamp
from .surface import CoreSurface


class HealthRecorder:
    """Starts an instance's checks and records what they find (see the module docstring)."""

    def __init__(self, core: CoreSurface) -> None:
        self.core = core

    def start(self, app: AppDefinition, inst: Instance) -> None:
        """Start the Marathon-side checks of an instance that just began to run."""
        framework_checks = [c for c in app.health_checks
                            if c.get("protocol", "HTTP") in FRAMEWORK_CHECKS]
        if not framework_checks and not app.readiness_checks:
            return
        names = [p.get("name") for p in app.ports]
        self.core.checks[inst.id] = TaskChecks(
            inst.id, inst.ip or inst.host, inst.ports, framework_checks, app.readiness_checks,
            names, self._on_health, self._on_ready)

    def _on_health(self, task_id: str, alive: bool, result: dict[str, Any], kill: bool
                   ) -> None:
        inst = self.core.instances.get(task_id)
        if inst is not None:
            self.record(inst, alive, result, kill)
            self.core._spawn(self.core.converge(inst.app_id))

    def record(self, inst: Instance, alive: bool, result: dict[str, Any] | None,
               kill: bool) -> None:
        """A check's verdict (``result``: Marathon's fields; None: the agent's
        ``healthy``); ``kill`` when the failures reached ``maxConsecutiveFailures``."""
        if result is not None:
            inst.health = result
        elif not inst.health or inst.health.get("alive") != alive:
            now = timestamp()
            inst.health = {"alive": alive, "consecutiveFailures": 0 if alive else 1,
                           "firstSuccess": now if alive else None,
                           "lastSuccess": now if alive else None,
                           "lastFailure": None if alive else now,
                           "lastFailureCause": None if alive else "Mesos health check failed"}
        if inst.healthy is not alive:
            inst.healthy = alive
            self.core.bus.publish("health_status_changed_event", appId=inst.app_id,
                                  taskId=inst.id, instanceId=inst.id, version=inst.version,
                                  alive=alive)
        if not alive:
            self.core.bus.publish("failed_health_check_event", appId=inst.app_id,
                                  taskId=inst.id, instanceId=inst.id, version=inst.version)
        if kill:
            state, actions = transition(inst.state, Event.UNHEALTHY)
            inst.state = state
            self.core._carry_out(inst, actions, {"message": "health checks failed",
                                                 "state": "TASK_KILLED"})
        self.core._dirty.add(inst.app_id)

    def _on_ready(self, task_id: str) -> None:
        inst = self.core.instances.get(task_id)
        if inst is not None:
            inst.ready = True
            self.core._spawn(self.core.converge(inst.app_id))
