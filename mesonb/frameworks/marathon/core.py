"""The framework's core: apps, their instances and deployments, driven by Mesos events.

It is the scheduler handler of :class:`~mesonb.frameworks.driver.SchedulerDriver`
(``on_offers``, ``on_update``, ...) and the one owner of the state machines: instances
(:mod:`.instance_fsm`) and deployments (:mod:`.deployment_fsm`), whose actions it
carries out (launch, kill, events, persistence). After any change it *converges* the
app concerned: :func:`.controller.plan` says what to launch and kill, and the launcher
places launches on the next offers (REVIVE when there is demand, SUPPRESS when none).
The REST API changes apps through :mod:`.operations`; nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from mesonb.tasks import spawn

from . import controller, launcher, pods, unreachable
from .appstate import AppState
from .checks import HealthRecorder
from .deployment_fsm import Deployment
from .deployment_fsm import Event as DEvent
from .deployments import DeploymentRunner
from .events import EventBus
from .health import TaskChecks
from .instance_fsm import Action, Event, InstanceState, event_of, transition
from .instance_store import InstanceStore
from .instances import Instance, app_of_task, new_task_id, service_ports
from .model import AppDefinition, timestamp
from .storage import MemoryStore, Store
from .taskinfo import environment, shared_executor_groups, task_info

log = logging.getLogger(__name__)
DECLINE_SECONDS = 120.0  # Marathon's decline_offer_duration
TICK = 0.25
LEFTOVER_SECONDS = 1.0  # what an offer had left, or an offer that fit nothing, comes back
KILL_RETRY = 10.0
REVIVE_MIN_INTERVAL = 0.1
RECONCILE_EVERY = 600.0
SHARED_EXECUTOR = {"cpus": 0.01, "mem": 32.0}


class MarathonCore:
    """State and behaviour of the framework (see the module docstring)."""

    def __init__(self, store: Store | None = None, clock: Callable[[], float] | None = None,
                 role: str = "*", shared_executor: bool = False) -> None:
        self.store: Store = store or MemoryStore()
        self.instance_store = InstanceStore(self.store)
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.role = role
        self.bus = EventBus()
        self.apps: dict[str, AppState] = {}
        self.instances: dict[str, Instance] = {}
        self._by_app: dict[str, dict[str, Instance]] = {}  # the same, by app id
        self.deployments: dict[str, Deployment] = {}
        self.groups: dict[str, list[str]] = {}  # explicit groups -> their dependencies
        self.driver: Any = None
        self.framework_id: str | None = None
        self.suppressed = False  # the master holds offers back (SUPPRESS or long DECLINE)
        # Until then the master filters our offers (the refuse_seconds of our last declines
        # and launches): new demand revives (clearing them) instead of waiting them out.
        self.filtered_until = 0.0
        self.revived_at = float("-inf")
        self.hold_launches_until = 0.0
        self.reconciled_at = 0.0
        self.checks: dict[str, TaskChecks] = {}
        self.counters: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.on_change: Callable[[], None] | None = None  # widgets, tests
        self.runner = DeploymentRunner(self)
        self.health = HealthRecorder(self)
        # With shared_executor, every instance on an agent is a task group of one task in
        # one default executor per agent (as Marathon runs pods), not a command executor
        # process per task: the executor ids in use, per agent.
        self.shared_executor = shared_executor
        self.executors: dict[str, str] = {}
        # Instances expunged while unreachable (unreachableStrategy): killed if they return.
        self.expunged: dict[str, str] = {}  # task id -> agent id

    # -- life cycle ---------------------------------------------------------------------
    async def load(self) -> None:
        """Read the stored state (after a restart or on winning the election)."""
        now = self.clock()
        self.framework_id = await self.store.get("framework_id")
        self.groups = await self.store.get("groups") or {}
        for part in await self.store.children("apps"):
            data = await self.store.get(f"apps/{part}")
            if not data:
                continue
            app = AppDefinition.from_store(data)
            versions = await self.store.get(f"versionlist/{part}") or [app.version]
            self.apps[app.id] = AppState(app, versions, since=timestamp())
            for item in await self.instance_store.load(app.id):
                inst = Instance.from_store(item, now)
                self.add_instance(inst)
        for dep_id in await self.store.children("deployments"):
            data = await self.store.get(f"deployments/{dep_id}")
            if data:
                dep = Deployment.from_store(data)
                if not dep.state.finished:
                    self.deployments[dep.id] = dep
        for dep in self.deployments.values():
            self.runner.hold_later_steps(dep)
        if self.instances:
            self.hold_launches_until = now + 1.5  # until reconciliation has spoken

    def start(self, driver: Any) -> None:
        self.driver = driver
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="marathon-tick")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for checks in self.checks.values():
            checks.stop()
        self.checks.clear()
        await self.flush()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick()
            except Exception:
                log.exception("marathon tick failed")

    async def tick(self) -> None:
        """Deadlines, expired backoffs, kill retries and pending writes."""
        now = self.clock()
        for dep in list(self.deployments.values()):
            if dep.deadline is not None and now >= dep.deadline and not dep.state.finished:
                dep.reason = (f"deployment did not finish within its deadline "
                              f"({dep.deadline - dep.started_at:g}s, label MESONB_DEPLOY_TIMEOUT)")
                await self.runner.event(dep, DEvent.DEADLINE)
        for inst in list(self.instances.values()):
            if inst.state is InstanceState.KILLING and now - inst.kill_sent_at > KILL_RETRY:
                self._send_kill(inst)
            elif inst.unreachable_since is not None:
                await unreachable.check(self, inst, now)
        if self._demand(now) and self._should_revive(now, patient=True):
            await self._revive()
        if self.driver is not None and now - self.reconciled_at >= RECONCILE_EVERY:
            self.reconciled_at = now  # Marathon's reconciliation_interval
            self._spawn(self._reconcile(self._known_tasks()))
        await self.flush()

    async def flush(self) -> None:
        """Write the instances of apps that changed (the shards that changed)."""
        dirty, self._dirty = self._dirty, set()
        for app_id in dirty:
            instances = self.app_instances(app_id)
            try:
                if instances or app_id in self.apps:
                    await self.instance_store.save(app_id, instances)
                else:
                    await self.instance_store.forget(app_id)
            except Exception:
                log.exception("storing the instances of %s failed", app_id)
                self._dirty.add(app_id)

    # -- driver events ------------------------------------------------------------------
    async def on_subscribed(self, body: dict[str, Any]) -> None:
        fid = body["framework_id"]["value"]
        if fid != self.framework_id:
            self.framework_id = fid
            await self.store.put("framework_id", fid)
        self.suppressed = False
        known = self._known_tasks()
        self.reconciled_at = self.clock()
        self._spawn(self._reconcile(known))

    def _known_tasks(self) -> list[tuple[str, str | None]]:
        return [(task_id, i.agent_id or None) for i in self.instances.values()
                for task_id in self._task_ids(i)]

    async def _reconcile(self, known: list[tuple[str, str | None]]) -> None:
        if self.driver is None:
            return
        with contextlib.suppress(Exception):
            if known:
                await self.driver.reconcile(known)
            await self.driver.reconcile([])

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        now = self.clock()
        self.counters["offers"] += len(offers)
        demands = self._demand(now)
        if not demands:
            # nothing to launch now: decline for long (the master holds offers back until
            # we revive, as soon as something waits again) and suppress if nothing waits
            await self._decline([o["id"]["value"] for o in offers], DECLINE_SECONDS)
            self.suppressed = True
            if not self._waiting(now):
                await self._suppress()
            return
        overhead = SHARED_EXECUTOR if self.shared_executor else None
        result = launcher.match(offers, demands, overhead=overhead,
                                overhead_done=frozenset(self.executors))
        by_offer: dict[str, list[dict[str, Any]]] = {}
        groups: dict[str, list[dict[str, Any]]] = {}  # pods' LAUNCH_GROUP operations
        stamp = timestamp()
        for p in result.placements:
            app = p.app
            inst = Instance(new_task_id(app.id), app.id, app.last_config_change_at or app.version,
                            app.version, p.agent_id, p.host, p.ip, p.ports, p.role,
                            staged_at=stamp, launched_at=now, fields=p.fields,
                            service_ports=service_ports(app.id, app.ports, len(p.ports)))
            inst.ready = not app.readiness_checks
            self.add_instance(inst)
            self._dirty.add(app.id)
            if app.pod is not None:  # a pod instance: one task group
                groups.setdefault(p.offer_id, []).append(pods.launch_group(
                    app, inst.id, p.agent_id, p.host, p.role,
                    environment(app, inst.id, p.host, [])))
                by_offer.setdefault(p.offer_id, [])
            else:
                by_offer.setdefault(p.offer_id, []).append(
                    task_info(app, inst.id, p.agent_id, p.host, p.ports, p.role))
            self.apps[app.id].offers.last_used_at = stamp
        for demand in demands:
            app_id = demand.app.id
            self.apps[app_id].offers.record(len(offers), result.rejections.get(app_id),
                                            result.unused_detail.get(app_id, []), stamp)
        self.counters["launched"] += len(result.placements)
        if by_offer:  # what the launches leave of those offers is filtered as long
            self.filtered_until = max(self.filtered_until, now + LEFTOVER_SECONDS)
        roles = {p.offer_id: p.role for p in result.placements}
        outcomes = await asyncio.gather(*(self._launch(oid, tasks, roles[oid],
                                                       groups.get(oid, []))
                                          for oid, tasks in by_offer.items()),
                                        return_exceptions=True)
        for oid, outcome in zip(by_offer, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # the master never got them
                ids = [t["task_id"]["value"] for t in by_offer[oid]] + [
                    pods.split_task_id(g["launch_group"]["task_group"]["tasks"][0]["task_id"][
                        "value"])[0] for g in groups.get(oid, [])]
                log.warning("launching %d tasks failed (%s); they go back to the queue",
                            len(ids), outcome)
                for task_id in ids:
                    lost = self.instances.get(task_id)
                    if lost is not None:
                        self.remove_instance(lost)
                        self._spawn(self.converge(lost.app_id))
        if result.unused_offers:
            await self._decline(result.unused_offers, LEFTOVER_SECONDS)
        self._changed()

    async def _launch(self, offer_id: str, tasks: list[dict[str, Any]], role: str,
                      groups: list[dict[str, Any]] | None = None) -> None:
        """Launch an offer's tasks (plain command tasks, or one-task groups in the shared
        executor) and pods' task groups (``groups``: LAUNCH_GROUP operations)."""
        if not self.shared_executor and not groups:
            await self.driver.launch([offer_id], tasks, LEFTOVER_SECONDS)
            return
        operations: list[dict[str, Any]] = []
        if tasks and not self.shared_executor:
            operations.append({"type": "LAUNCH", "launch": {"task_infos": tasks}})
        elif tasks:
            agent_id = tasks[0]["agent_id"]["value"]
            executor_id = self.executors.get(agent_id)
            if executor_id is None:
                executor_id = self.executors[agent_id] = f"marathon-{uuid.uuid4().hex[:12]}"
            operations.extend(shared_executor_groups(tasks, executor_id, SHARED_EXECUTOR,
                                                     role))
        operations.extend(groups or ())
        await self.driver.accept([offer_id], operations, LEFTOVER_SECONDS)

    async def on_failure(self, body: dict[str, Any]) -> None:
        """An executor ended: the next instance on that agent starts a new one."""
        executor_id = (body.get("executor_id") or {}).get("value")
        agent_id = (body.get("agent_id") or {}).get("value")
        if executor_id and agent_id and self.executors.get(agent_id) == executor_id:
            del self.executors[agent_id]

    async def on_rescind(self, offer_id: str) -> None:
        return

    async def on_update(self, status: dict[str, Any]) -> None:
        task_id = status["task_id"]["value"]
        inst = self.instances.get(task_id)
        try:
            reported = InstanceState(status["state"])
        except ValueError:
            return
        if status.get("reason") == "REASON_RECONCILIATION":
            self.counters["reconciled"] += 1
        pod = pods.container_update(self.instances, self.apps, task_id, reported) \
            if inst is None else None
        if pod is not None:  # a pod's container: its instance's state follows theirs
            self._dirty.add(pod[0].app_id)
            if pod[1] is None:
                return
            inst, reported = pod[0], pod[1]
        if inst is None:
            if not unreachable.came_back(self, task_id, reported):
                self._unknown_task(task_id, status, reported)
            return
        if "agent_id" in status and not inst.agent_id:
            inst.agent_id = status["agent_id"]["value"]
        state, actions = transition(inst.state, event_of(reported), reported)
        app_state = self.apps.get(inst.app_id)
        app = app_state.definition if app_state else None
        was_running = inst.state is InstanceState.RUNNING
        inst.state = state
        unreachable.note_state(inst, app, self.clock())
        if state is InstanceState.RUNNING and not was_running:
            inst.started_at = inst.started_at or timestamp()
            inst.running_since = self.clock()
            if app is not None:
                self.health.start(app, inst)
        if "healthy" in status and status["healthy"] is not None:
            self.health.record(inst, bool(status["healthy"]), None, kill=False)
        self._carry_out(inst, actions, status)
        self._dirty.add(inst.app_id)
        await self.converge(inst.app_id)

    def _unknown_task(self, task_id: str, status: dict[str, Any], reported: InstanceState
                      ) -> None:
        """A task reconciliation found that the framework does not remember."""
        if reported.terminal:
            return
        app_id = app_of_task(task_id)
        state = self.apps.get(app_id or "")
        agent_id = (status.get("agent_id") or {}).get("value", "")
        if state is None or state.deleting:
            self._spawn(self.driver.kill(task_id, agent_id or None))
            return
        app = state.definition
        inst = Instance(task_id, app.id, app.last_config_change_at or app.version, app.version,
                        agent_id, state=reported, staged_at=timestamp(),
                        launched_at=self.clock())
        inst.ready = True
        self.add_instance(inst)
        self._dirty.add(app.id)

    def _carry_out(self, inst: Instance, actions: tuple[Action, ...],
                   status: dict[str, Any] | None = None) -> None:
        state = self.apps.get(inst.app_id)
        for action in actions:
            if action is Action.EMIT:
                self.bus.publish("status_update_event", slaveId=inst.agent_id,
                                 taskId=inst.id, taskStatus=inst.state.value,
                                 message=(status or {}).get("message", ""),
                                 appId=inst.app_id, host=inst.host, ports=inst.ports,
                                 version=inst.version,
                                 ipAddresses=[{"ipAddress": inst.ip, "protocol": "IPv4"}]
                                 if inst.ip else [])
            elif action is Action.RECORD_FAILURE and state is not None:
                app = state.definition
                state.backoff.failed(app.backoff_seconds, app.backoff_factor,
                                     app.max_launch_delay_seconds, self.clock())
                state.last_failure = {
                    "appId": inst.app_id, "host": inst.host, "taskId": inst.id,
                    "instanceId": inst.id, "slaveId": inst.agent_id,
                    "message": (status or {}).get("message") or "health checks failed",
                    "state": (status or {}).get("state", "TASK_KILLED"),
                    "timestamp": timestamp(), "version": inst.version}
                self.counters["failures"] += 1
            elif action is Action.EXPUNGE:
                self.remove_instance(inst)
                if self.shared_executor and not any(
                        i.agent_id == inst.agent_id for i in self.instances.values()):
                    self.executors.pop(inst.agent_id, None)  # it exits with its last task
                checks = self.checks.pop(inst.id, None)
                if checks is not None:
                    checks.stop()
            elif action is Action.SEND_KILL:
                self._send_kill(inst)
            elif action is Action.EMIT_UNHEALTHY_KILL:
                self.bus.publish("unhealthy_task_kill_event", appId=inst.app_id,
                                 taskId=inst.id, version=inst.version,
                                 reason="health checks failed", host=inst.host,
                                 slaveId=inst.agent_id)

    def _send_kill(self, inst: Instance) -> None:
        inst.kill_sent_at = self.clock()
        state = self.apps.get(inst.app_id)
        grace = state.definition.task_kill_grace_period_seconds if state else None
        if self.driver is not None:
            for task_id in self._task_ids(inst):
                self._spawn(self.driver.kill(task_id, inst.agent_id or None, grace))

    def _task_ids(self, inst: Instance) -> list[str]:
        """The Mesos tasks of an instance: itself, or a pod instance's containers."""
        state = self.apps.get(inst.app_id)
        if state is None or state.definition.pod is None:
            return [inst.id]
        return [pods.task_id(inst.id, name) for name in pods.container_names(state.definition)]

    def kill(self, inst: Instance) -> None:
        """The operator's kill (scale down, restart, delete, the tasks API)."""
        _state, actions = transition(inst.state, Event.KILL)
        inst.state = _state
        self._carry_out(inst, actions)
        self._dirty.add(inst.app_id)

    # -- converging apps ----------------------------------------------------------------
    def app_instances(self, app_id: str) -> list[Instance]:
        return list(self._by_app.get(app_id, {}).values())

    def add_instance(self, inst: Instance) -> None:
        self.instances[inst.id] = inst
        self._by_app.setdefault(inst.app_id, {})[inst.id] = inst

    def remove_instance(self, inst: Instance) -> None:
        self.instances.pop(inst.id, None)
        mine = self._by_app.get(inst.app_id)
        if mine is not None:
            mine.pop(inst.id, None)
            if not mine:
                del self._by_app[inst.app_id]

    def _target(self, state: AppState) -> AppDefinition:
        if state.deleting:
            return dataclasses.replace(state.definition, instances=0)
        return state.definition

    async def converge(self, app_id: str) -> None:
        """Kill what the app has too much of, ask for offers for what it lacks, and see
        whether deployments moved on."""
        state = self.apps.get(app_id)
        if state is not None:
            live = [i for i in self.app_instances(app_id) if i.active]
            plan = controller.plan(self._target(state), live)
            for inst in plan.kill:
                self.kill(inst)
            now = self.clock()
            if plan.launch and not state.held and state.backoff.ready(now) and \
                    self._should_revive(now, patient=False):
                await self._revive()
        await self.check_deployments()
        self._changed()

    def _demand(self, now: float) -> list[launcher.Demand]:
        """What apps wait for now (backoff and held steps respected)."""
        if now < self.hold_launches_until:
            return []
        out = []
        for state in self.apps.values():
            if state.held or state.deleting or not state.backoff.ready(now):
                continue
            app = state.definition
            instances = self.app_instances(app.id)
            live = [i for i in instances if i.active]
            plan = controller.plan(app, live)
            for inst in plan.kill:  # the launches assume these are gone: kill them now
                self.kill(inst)
            count = plan.launch
            if count > 0:
                placed = [{c[0]: self._field(i, c[0]) for c in app.constraints}
                          for i in live if i.active] if app.constraints else []
                roles = tuple(app.accepted_resource_roles or ("*", self.role))
                out.append(launcher.Demand(app, count, placed, roles))
        return out

    def _field(self, inst: Instance, field: str) -> str | None:
        if field in inst.fields:
            return inst.fields[field]
        return inst.host if field == "hostname" else None

    def _waiting(self, now: float) -> bool:
        """Whether some app waits (maybe delayed): do not suppress offers then."""
        for state in self.apps.values():
            live = [i for i in self.app_instances(state.definition.id) if i.active]
            if not state.held and controller.plan(self._target(state), live).launch:
                return True
        return False

    def _should_revive(self, now: float, patient: bool) -> bool:
        """Whether to revive for demand: always when suppressed; while filters of ours
        hold offers back, at most every REVIVE_MIN_INTERVAL for new demand (an app posted,
        a task ended) and every LEFTOVER_SECONDS for demand offers did not meet (``patient``:
        no more often than the filters would expire anyway)."""
        if self.suppressed:
            return True
        if now >= self.filtered_until:
            return False
        return now - self.revived_at >= (LEFTOVER_SECONDS if patient else REVIVE_MIN_INTERVAL)

    async def _revive(self) -> None:
        log.debug("reviving offers")
        self.suppressed = False
        self.filtered_until = 0.0
        self.revived_at = self.clock()
        if self.driver is not None:
            with contextlib.suppress(Exception):
                await self.driver.revive()

    async def _suppress(self) -> None:
        if self.driver is None:
            return
        self.suppressed = True
        log.debug("suppressing offers")
        with contextlib.suppress(Exception):
            await self.driver.suppress()

    async def _decline(self, offer_ids: list[str], seconds: float) -> None:
        if offer_ids:
            self.filtered_until = max(self.filtered_until, self.clock() + seconds)
        if offer_ids and self.driver is not None:
            with contextlib.suppress(Exception):
                await self.driver.decline(offer_ids, seconds)

    # -- deployments (carried out by .deployments.DeploymentRunner) ----------------------
    async def start_deployment(self, dep: Deployment, timeout: float | None = None) -> None:
        await self.runner.start(dep, timeout)

    async def check_deployments(self) -> None:
        await self.runner.check()

    def locks(self, app_id: str) -> list[Deployment]:
        """The running deployments that hold ``app_id``."""
        return self.lock_map().get(app_id, [])

    def lock_map(self) -> dict[str, list[Deployment]]:
        """App id -> the running deployments that hold it (for many apps at once)."""
        out: dict[str, list[Deployment]] = {}
        for dep in self.deployments.values():
            if not dep.state.finished:
                for app_id in dep.affected_apps:
                    out.setdefault(app_id, []).append(dep)
        return out

    async def cancel(self, dep: Deployment, reason: str, event: DEvent = DEvent.CANCEL
                     ) -> None:
        dep.reason = reason
        await self.runner.event(dep, event)

    # -- helpers ------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test's bare core): nothing can run it
            coro.close()
            return
        spawn(coro, self._background, "marathon work", logger=log)

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change()
