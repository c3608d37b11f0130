"""An ACCEPT's operations, carried out in order on the pool of the accepted offers.

Nothing is accepted and then dropped:

* LAUNCH and LAUNCH_GROUP launch through :mod:`.launch`; a task whose reserved resources
  or persistent volumes are not in the pool gets ``TASK_ERROR`` with the reason.
* RESERVE, UNRESERVE, CREATE, DESTROY, GROW_VOLUME and SHRINK_VOLUME go through
  :mod:`.operations`; CREATE_DISK and DESTROY_DISK are refused (no storage resource
  providers here).
* An operation with an ``id`` is reported: ``OPERATION_PENDING`` then
  ``OPERATION_FINISHED`` or ``OPERATION_ERROR`` with the reason (:mod:`.operation_status`).
  One without an id that cannot be carried out fails the whole ACCEPT before anything
  happens: :meth:`OfferOperations.check` answers 400 (403 when the ACLs refuse it) and the
  offers stay outstanding.

After a change of reservations or volumes, :func:`commit` writes the agent's resources to
the registry, sends them to the agent to checkpoint (it creates and deletes the volumes'
directories) and lets the allocator offer the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mesonb.protocol.agent import CheckpointResources, MasterCommand, MasterCommandType
from mesonb.protocol.errors import BadRequest, Forbidden
from mesonb.protocol.mesos import OperationType, TaskInfo
from mesonb.protocol.reservations import Portion, split
from mesonb.protocol.resources import EMPTY, Resources
from mesonb.protocol.states import Reason
from mesonb.security.acls import Acls, Action

from . import operation_status as st
from .book import Agent, Framework
from .launch import Launcher
from .operations import (
    RESOURCE_OPERATIONS,
    Context,
    OperationError,
    Pool,
    apply,
    body_of,
    converted,
)
from .reservations import agent_resources_json
from .services import MasterServices

log = logging.getLogger(__name__)


def authorizer(acls: Acls) -> Callable[[Action, str | None, str | None], str | None]:
    """An :data:`~.operations.Authorize` over the master's ACLs."""

    def check(action: Action, principal: str | None, obj: str | None) -> str | None:
        return None if acls.allowed(action, principal, obj) else acls.explain(
            action, principal, obj)

    return check


def commit(master: MasterServices, agent: Agent) -> None:
    """Make a change of ``agent.ledger`` durable and known: registry, agent, allocator."""
    resources = agent_resources_json(agent.total, agent.ledger)
    agent.info.resources = resources
    if master.registry is not None:
        master.persist(master.registry.admit_agent(agent.id, agent.info.to_json()),
                       f"agent {agent.id} resources")
    if agent.send is not None:
        master.out.to_agent(agent, MasterCommand(
            type=MasterCommandType.CHECKPOINT_RESOURCES,
            checkpoint_resources=CheckpointResources(resources=agent.ledger.to_json())))
    master.resources_changed(agent.id)


class OfferOperations:
    """Carries out the operations of ACCEPT calls."""

    def __init__(self, master: MasterServices, launcher: Launcher,
                 statuses: st.OperationStatuses) -> None:
        self.master = master
        self.book = master.book
        self.launcher = launcher
        self.statuses = statuses

    def _context(self, framework: Framework, role: str) -> Context:
        return Context(role, framework.info.principal, authorizer(self.master.acls))

    def pool_of(self, framework: Framework, offer_ids: list[str]) -> tuple[Agent, str, Pool]:
        """The pool of outstanding offers (BadRequest when one is not valid)."""
        offers = []
        for offer_id in offer_ids:
            offer = self.book.offers.get(offer_id)
            if offer is None or offer.framework_id != framework.id:
                raise BadRequest(f"Offer {offer_id} is no longer valid")
            offers.append(offer)
        if not offers or len({o.agent_id for o in offers}) != 1:
            raise BadRequest("The offers of an ACCEPT must all be of one agent")
        portion, total = Portion(), Resources()
        for offer in offers:
            total = total + offer.resources
            if offer.portion:
                portion = portion + offer.portion
        agent = self.book.agents[offers[0].agent_id]
        return agent, offers[-1].role, Pool(total - portion.total(), portion)

    def check(self, framework: Framework, offer_ids: list[str], operations: list[Any]) -> None:
        """Refuse (400/403) an ACCEPT with an operation without an id that cannot be
        carried out; nothing has happened yet."""
        if not any(op.type in RESOURCE_OPERATIONS and op.id is None for op in operations):
            return
        try:
            agent, role, pool = self.pool_of(framework, offer_ids)
        except BadRequest as exc:
            raise BadRequest(f"ACCEPT refused: {exc.message}") from None
        reserved = agent.ledger.reserved.copy()
        ctx = self._context(framework, role)
        for i, op in enumerate(operations):
            if op.type not in RESOURCE_OPERATIONS:
                _take_launch(op, pool)  # what a launch before a RESERVE would take
                continue
            try:
                apply(op.type, body_of(op), pool, reserved, ctx)
            except OperationError as exc:
                if op.id is not None:
                    continue  # reported with OPERATION_ERROR when carried out
                message = f"ACCEPT refused: operations[{i}] ({op.type.value}): {exc.message}"
                raise (Forbidden(message) if exc.forbidden else BadRequest(message)) from None

    def carry_out(self, framework: Framework, agent: Agent, role: str, bag: Resources,
                  portion: Portion, operations: list[Any]) -> Resources:
        """Carry out ``operations`` in order; returns what of the pool is left."""
        pool = Pool(bag - portion.total(), portion)
        changed = False
        ctx = self._context(framework, role)
        for op in operations:
            if op.type in (OperationType.LAUNCH, OperationType.LAUNCH_GROUP):
                if changed:  # the agent checkpoints its new volumes before it runs the task
                    commit(self.master, agent)
                    changed = False
                self._launch(framework, agent, role, op, pool)
                continue
            record = None
            if op.id is not None:
                record = self.statuses.start(framework.id, agent.id, op.id, op.to_json())
                self._tell(framework, st.OperationStatuses.status(record, st.PENDING))
            try:
                if op.type not in RESOURCE_OPERATIONS:
                    raise OperationError(f"Unknown operation type {op.type.value}")
                apply(op.type, body_of(op), pool, agent.ledger.reserved, ctx)
            except OperationError as exc:
                self.master.counters["operations_error"] += 1
                self.master.counters[f"operations/{op.type.value.lower()}/error"] += 1
                log.info("framework %s: %s operation refused: %s", framework.id,
                         op.type.value, exc.message)
                if record is not None:
                    self._tell(framework, st.OperationStatuses.status(
                        record, st.ERROR, exc.message))
                continue
            changed = True
            self.master.counters["operations_finished"] += 1
            self.master.counters[f"operations/{op.type.value.lower()}/finished"] += 1
            if record is not None:
                self._tell(framework, st.OperationStatuses.status(
                    record, st.FINISHED, converted=converted(op.type, body_of(op))))
        if changed:
            commit(self.master, agent)
        return pool.total()

    def drop(self, framework: Framework, operations: list[Any], agent_id: str | None,
             message: str) -> None:
        """The offers were not valid: each resource operation with an id is DROPPED."""
        for op in operations:
            if op.type in RESOURCE_OPERATIONS:
                self.master.counters[f"operations/{op.type.value.lower()}/dropped"] += 1
            if op.id is not None and op.type in RESOURCE_OPERATIONS:
                record = self.statuses.start(framework.id, agent_id or "", op.id, op.to_json())
                self._tell(framework, st.OperationStatuses.status(record, st.DROPPED, message))

    def _tell(self, framework: Framework, event: dict[str, Any]) -> None:
        self.master.out.to_framework(framework, event)

    # -- launches -----------------------------------------------------------------------
    def _launch(self, framework: Framework, agent: Agent, role: str, op: Any,
                pool: Pool) -> None:
        group = op.launch_group
        tasks: list[TaskInfo] = (list(op.launch.task_infos) if op.launch is not None
                                 else list(group.task_group.tasks) if group is not None else [])
        reason = (Reason.REASON_TASK_GROUP_INVALID if group is not None
                  else Reason.REASON_TASK_INVALID)
        if op.id is not None:
            for task in tasks:
                self.launcher.task_error(framework, task, "An operation id is not supported"
                                         f" on {op.type.value} operations", reason)
            return
        if group is None:
            for task in tasks:
                self._launch_one(framework, agent, role, [task], task.executor, None, pool)
        else:
            self._launch_one(framework, agent, role, tasks, group.executor, group, pool)

    def _launch_one(self, framework: Framework, agent: Agent, role: str,
                    tasks: list[TaskInfo], executor: Any, group: Any, pool: Pool) -> None:
        """One task (LAUNCH) or one task group: its reserved resources and volumes must
        be in the pool's reserved portion, its other resources in the unreserved part."""
        # (the usual task reserves nothing: its empty portions are neither added nor
        # subtracted, which would only copy the pool's own portion)
        plain, part = EMPTY, Portion()
        problem = None
        parsed: Resources | None = None  # a lone task's resources, read once
        try:
            for task in tasks:
                bag, mine = split(task.resources or [], "task.resources")
                plain = plain + bag
                if mine:
                    part = part + mine
                elif task.resources is not None:
                    parsed = bag  # what Resources.from_json(task.resources) reads
            if executor is not None and executor.executor_id not in (
                    agent.executors.get(framework.id) or {}):
                bag, mine = split(executor.resources or [], "executor.resources")
                plain = plain + bag
                if mine:
                    part = part + mine
        except BadRequest as exc:
            problem = exc.message
        if problem is None and part:
            missing = pool.portion.missing(part)
            if missing is not None:
                problem = f"Task uses reserved resources the offers do not hold: {missing}"
        if problem is None and pool.portion and not pool.unreserved.contains(plain):
            problem = (f"Task uses unreserved resources {plain} but the offers hold"
                       f" {pool.unreserved} unreserved")
        if problem is not None:
            reason = (Reason.REASON_TASK_GROUP_INVALID if group is not None
                      else Reason.REASON_TASK_INVALID)
            for task in tasks:
                self.launcher.task_error(framework, task, problem, reason)
            return
        total = pool.total()
        if group is not None:
            left = self.launcher.launch_group(framework, agent, role, group, total)
        else:
            left = self.launcher.launch(framework, agent, role, tasks[0], None, total,
                                        parsed)
        if left is not total and part:  # launched: what it took is no longer in the pool
            pool.portion = pool.portion - part
        pool.unreserved = left - pool.portion.total() if pool.portion else left


def _take_launch(op: Any, pool: Pool) -> None:
    """Take a LAUNCH's or LAUNCH_GROUP's resources out of a dry run's pool (best effort:
    a malformed task fails on its own when carried out)."""
    tasks = (list(op.launch.task_infos) if op.launch is not None else
             list(op.launch_group.task_group.tasks) if op.launch_group is not None else [])
    for task in tasks:
        try:
            plain, part = split(task.resources or [], "task.resources")
        except BadRequest:
            continue
        pool.unreserved = pool.unreserved - plain
        pool.portion = pool.portion - part
