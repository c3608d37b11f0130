"""A Marathon deployment: its steps and its state machine, events in, actions out.

::

    WAITING ──start──► RUNNING ──step done (more steps)──► RUNNING (next step)
       │                  │ ──last step done──► SUCCEEDED   (deployment_success)
       │                  │ ──deadline passed─► FAILED      (deployment_failed, reason)
       └──cancel/superseded──┴──cancel/superseded► CANCELED (deployment_failed)

A deployment changes one or more apps; its steps run one after another (an app's
dependencies go in earlier steps), the actions of a step at once. Whether a step is done
is the app controller's judgement (instances of the new version running, healthy and
ready, the old ones gone); the machine here only orders the steps and the outcome.
A deployment with a deadline (label ``MESONB_DEPLOY_TIMEOUT`` on an app) fails when it
passes, instead of hanging forever.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from typing import Any


class DeploymentState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (DeploymentState.SUCCEEDED, DeploymentState.FAILED,
                        DeploymentState.CANCELED)


class Event(enum.Enum):
    START = "start"
    STEP_DONE = "step-done"  # the current step is done and another follows
    LAST_STEP_DONE = "last-step-done"
    DEADLINE = "deadline"
    CANCEL = "cancel"  # DELETE /v2/deployments/{id}
    SUPERSEDE = "supersede"  # a forced change took the deployment's apps


class Action(enum.Enum):
    EMIT_INFO = "deployment_info"
    BEGIN_STEP = "begin-step"  # let the apps of the new current step launch
    EMIT_STEP_SUCCESS = "deployment_step_success"
    EMIT_STEP_FAILURE = "deployment_step_failure"
    EMIT_SUCCESS = "deployment_success"
    EMIT_FAILED = "deployment_failed"
    REMOVE = "remove"  # drop it from /v2/deployments (and the store)


S, A = DeploymentState, Action
TRANSITIONS: dict[tuple[DeploymentState, Event], tuple[DeploymentState, tuple[Action, ...]]] = {
    (S.WAITING, Event.START): (S.RUNNING, (A.EMIT_INFO, A.BEGIN_STEP)),
    (S.WAITING, Event.CANCEL): (S.CANCELED, (A.EMIT_FAILED, A.REMOVE)),
    (S.WAITING, Event.SUPERSEDE): (S.CANCELED, (A.EMIT_FAILED, A.REMOVE)),
    (S.RUNNING, Event.STEP_DONE): (S.RUNNING, (A.EMIT_STEP_SUCCESS, A.BEGIN_STEP)),
    (S.RUNNING, Event.LAST_STEP_DONE): (S.SUCCEEDED,
                                        (A.EMIT_STEP_SUCCESS, A.EMIT_SUCCESS, A.REMOVE)),
    (S.RUNNING, Event.DEADLINE): (S.FAILED, (A.EMIT_STEP_FAILURE, A.EMIT_FAILED, A.REMOVE)),
    (S.RUNNING, Event.CANCEL): (S.CANCELED, (A.EMIT_FAILED, A.REMOVE)),
    (S.RUNNING, Event.SUPERSEDE): (S.CANCELED, (A.EMIT_FAILED, A.REMOVE)),
}
"""``(state, event) -> (next state, actions)``; any other pair changes nothing."""


@dataclasses.dataclass
class Deployment:
    """One deployment plan (Marathon's ``/v2/deployments`` item) and where it stands."""

    version: str
    steps: list[list[tuple[str, str]]]  # each step: [(action, app id)]
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    state: DeploymentState = DeploymentState.WAITING
    current_step: int = 0  # 0 before start, then 1-based as Marathon counts
    deadline: float | None = None  # monotonic seconds; None: no deadline
    reason: str = ""
    started_at: float = 0.0

    @property
    def affected_apps(self) -> list[str]:
        seen: list[str] = []
        for step in self.steps:
            for _action, app in step:
                if app not in seen:
                    seen.append(app)
        return seen

    def current_actions(self) -> list[tuple[str, str]]:
        if 1 <= self.current_step <= len(self.steps):
            return self.steps[self.current_step - 1]
        return []

    def step_of(self, app_id: str) -> int:
        """The 1-based step in which ``app_id`` changes (0 if it does not)."""
        for i, step in enumerate(self.steps, 1):
            if any(app == app_id for _a, app in step):
                return i
        return 0

    def handle(self, event: Event) -> tuple[Action, ...]:
        """Apply ``event``; the actions the owner must carry out (none if it does not apply).

        >>> d = Deployment("v1", [[("StartApplication", "/a")]])
        >>> d.handle(Event.START)
        (<Action.EMIT_INFO: 'deployment_info'>, <Action.BEGIN_STEP: 'begin-step'>)
        >>> d.current_step
        1
        """
        row = TRANSITIONS.get((self.state, event))
        if row is None:
            return ()
        self.state, actions = row
        if Action.BEGIN_STEP in actions:
            self.current_step += 1
        return actions

    def event_for_step_done(self) -> Event:
        return Event.LAST_STEP_DONE if self.current_step >= len(self.steps) else Event.STEP_DONE

    def to_json(self) -> dict[str, Any]:
        """Marathon's deployment JSON (only the fields marathon-python knows)."""
        pods = {app for step in self.steps for a, app in step if a.endswith("Pod")}
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": [a for a in self.affected_apps if a not in pods],
            "affectedPods": sorted(pods),
            "steps": [{"actions": [_action(a, app) for a, app in step]}
                      for step in self.steps],
            "currentActions": [{**_action(a, app), "readinessCheckResults": []}
                               for a, app in self.current_actions()],
            "currentStep": self.current_step,
            "totalSteps": len(self.steps),
        }

    def plan_json(self) -> dict[str, Any]:
        """The ``plan`` of deployment events (marathon-python's MarathonDeploymentPlan)."""
        apps = [{"id": app} for app in self.affected_apps]
        return {"id": self.id, "version": self.version,
                "original": {"id": "/", "apps": apps, "groups": [], "dependencies": [],
                             "version": self.version},
                "target": {"id": "/", "apps": apps, "groups": [], "dependencies": [],
                           "version": self.version},
                "steps": self.to_json()["steps"]}

    def to_store(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "steps": self.steps,
                "state": self.state.value, "current_step": self.current_step}

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> Deployment:
        return cls(version=data["version"], id=data["id"],
                   steps=[[(a, app) for a, app in step] for step in data["steps"]],
                   state=DeploymentState(data["state"]), current_step=data["current_step"])


def _action(action: str, path: str) -> dict[str, str]:
    """One action of a step: ``{"action", "app"}``, or ``"pod"`` for a pod's."""
    return {"action": action, "pod" if action.endswith("Pod") else "app": path}
