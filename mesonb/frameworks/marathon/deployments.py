"""Carrying out deployments: the actions of :mod:`.deployment_fsm` on the core's apps.

A :class:`DeploymentRunner` belongs to one :class:`~.core.MarathonCore`. It starts
deployments (holding back the apps of later steps, so that dependencies start first),
turns "the current step's apps reached their targets" into the machine's events, emits
Marathon's deployment events, persists running deployments and removes an app whose
``StopApplication`` step is done.
"""

from __future__ import annotations

from . import controller
from .deployment_fsm import Action as DAction
from .deployment_fsm import Deployment
from .deployment_fsm import Event as DEvent
from .storage import key_part
from .surface import CoreSurface


class DeploymentRunner:
    """The owner of a core's deployments' actions (see the module docstring)."""

    def __init__(self, core: CoreSurface) -> None:
        self.core = core

    async def start(self, dep: Deployment, timeout: float | None = None) -> None:
        dep.started_at = self.core.clock()
        if timeout is not None:
            dep.deadline = dep.started_at + timeout
        self.core.deployments[dep.id] = dep
        self.hold_later_steps(dep)
        await self.event(dep, DEvent.START)

    def hold_later_steps(self, dep: Deployment) -> None:
        for app_id in dep.affected_apps:
            state = self.core.apps.get(app_id)
            if state is not None:
                state.held = dep.step_of(app_id) > max(dep.current_step, 1)

    async def event(self, dep: Deployment, event: DEvent) -> None:
        actions = dep.handle(event)
        if not actions:
            return
        plan = dep.plan_json()
        for action in actions:
            if action is DAction.EMIT_INFO:
                self.core.bus.publish("deployment_info", plan=plan,
                                 currentStep={"actions": dep.to_json()["currentActions"]})
            elif action is DAction.BEGIN_STEP:
                for _a, app_id in dep.current_actions():
                    state = self.core.apps.get(app_id)
                    if state is not None:
                        state.held = False
                        self.core._spawn(self.core.converge(app_id))
            elif action is DAction.EMIT_STEP_SUCCESS:
                self.core.bus.publish("deployment_step_success", plan=plan,
                                 currentStep={"actions": dep.to_json()["currentActions"]})
            elif action is DAction.EMIT_STEP_FAILURE:
                self.core.bus.publish("deployment_step_failure", plan=plan,
                                 currentStep={"actions": dep.to_json()["currentActions"]})
            elif action is DAction.EMIT_SUCCESS:
                self.core.counters["deployments_succeeded"] += 1
                self.core.bus.publish("deployment_success", id=dep.id, plan=plan)
            elif action is DAction.EMIT_FAILED:
                self.core.counters["deployments_failed"] += 1
                self.core.bus.publish("deployment_failed", id=dep.id, plan=plan,
                                 reason=dep.reason or dep.state.value)
            elif action is DAction.REMOVE:
                self.core.deployments.pop(dep.id, None)
                for app_id in dep.affected_apps:
                    state = self.core.apps.get(app_id)
                    if state is not None and state.held and not self.core.locks(app_id):
                        state.held = False
                self.core._spawn(self.core.store.delete(f"deployments/{dep.id}"))
        if not dep.state.finished:
            self.core._spawn(self.core.store.put(f"deployments/{dep.id}", dep.to_store()))
        self.core._changed()

    async def check(self) -> None:
        for dep in list(self.core.deployments.values()):
            while not dep.state.finished and dep.current_step and self._step_done(dep):
                await self.event(dep, dep.event_for_step_done())

    def _step_done(self, dep: Deployment) -> bool:
        for action, app_id in dep.current_actions():
            state = self.core.apps.get(app_id)
            instances = self.core.app_instances(app_id)
            if action in ("StopApplication", "StopPod"):
                if instances:
                    return False
                if state is not None and state.deleting:
                    self._forget_app(app_id)
                continue
            if state is None or not controller.step_done(action, state.definition, instances):
                return False
        return True

    def _forget_app(self, app_id: str) -> None:
        self.core.apps.pop(app_id, None)
        part = key_part(app_id)
        for key in (f"apps/{part}", f"versionlist/{part}", f"versions/{part}"):
            self.core._spawn(self.core.store.delete(key))
        self.core._spawn(self.core.instance_store.forget(app_id))
        self.core.bus.publish("app_terminated_event", appId=app_id)
