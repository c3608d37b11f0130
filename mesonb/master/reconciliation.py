"""Reconciliation and acknowledgements: what the master answers about a framework's tasks.

Mesos's ``Master::reconcile`` (src/master/master.cpp): implicit reconciliation (no tasks
named) answers every task the master knows for the framework; explicit reconciliation
answers each named task by the six cases of reference §4. A task whose terminal update
the framework has not acknowledged yet is still known, as in Mesos.
"""

from __future__ import annotations

from typing import Any

from mesonb.clock import Clock
from mesonb.protocol.scheduler import ReconcileTask
from mesonb.protocol.states import Reason, TaskState

from .agent_fsm import AgentState
from .book import Book, Framework, Task
from .outbox import Outbox
from .updates import master_status, reconciliation_status


class Reconciler:
    """Answers reconciliation; ``recovered_agents`` are the agents a new leader waits for."""

    def __init__(self, book: Book, out: Outbox, clock: Clock,
                 recovered_agents: dict[str, Any]) -> None:
        self.book = book
        self.out = out
        self.clock = clock
        self.recovered_agents = recovered_agents

    @staticmethod
    def acknowledged_terminal(framework: Framework, task_id: str, uuid: bytes) -> None:
        """An ACKNOWLEDGE for a task that ended: once its terminal update is acknowledged
        the master forgets it, as Mesos's does (``removeTask`` on that acknowledgement).

        A task that ended while the agent was still retrying an older update (the update
        carried ``latest_state``) waits for the next acknowledgement: the master does not
        follow the updates of an ended task, so that one is taken as the terminal one."""
        task = framework.unacknowledged.get(task_id)
        if task is None:
            return
        state = task.status_update_state
        if uuid != task.status_update_uuid or (state is not None and state.terminal):
            del framework.unacknowledged[task_id]
        else:
            task.status_update_uuid = None  # the older update; the terminal one comes next

    def known_tasks(self, framework: Framework) -> list[Task]:
        """What Mesos's master has in ``Framework::tasks``: the live tasks on reachable
        agents and the ended ones whose terminal update is not acknowledged yet. Tasks on
        unreachable agents are not among them; neither are acknowledged terminal ones."""
        ended = [t for t in list(framework.unacknowledged.values()) if self._still_known(t)]
        return [*framework.tasks.values(), *ended]

    def known_task(self, framework: Framework, task_id: str) -> Task | None:
        task = framework.tasks.get(task_id)
        if task is None:
            task = framework.unacknowledged.get(task_id)
            if task is not None and not self._still_known(task):
                task = None
        return task

    def _still_known(self, task: Task) -> bool:
        """An ended, unacknowledged task stays known while its agent is registered (Mesos
        drops it with the agent when that is removed or becomes unreachable)."""
        agent = self.book.agents.get(task.agent_id)
        if agent is not None and agent.state is not AgentState.UNREACHABLE:
            return True
        framework = self.book.frameworks.get(task.framework_id)
        if framework is not None:
            framework.unacknowledged.pop(task.id, None)
        return False

    def reconcile(self, framework: Framework, tasks: list[ReconcileTask] | None) -> None:
        """Mesos's ``Master::reconcile`` (src/master/master.cpp): implicit reconciliation
        answers every known task (see :meth:`known_tasks`), explicit the six cases."""
        now = self.clock.time()
        if not tasks:
            for task in self.known_tasks(framework):
                self.out.status(framework, reconciliation_status(task, now))
            return
        for item in tasks:
            self.reconcile_one(framework, item)

    def reconcile_one(self, framework: Framework, item: ReconcileTask) -> None:
        """Mesos's explicit reconciliation cases (reference §4): (1) a known task (live, or
        ended and not acknowledged): its latest state; otherwise by what the master knows
        of the agent. A task that ended and was acknowledged is unknown, as in Mesos."""
        now = self.clock.time()
        task = self.known_task(framework, item.task_id)
        if task is not None:
            self.out.status(framework, reconciliation_status(task, now))
            return
        recovered = self.recovered_agents
        if item.agent_id in recovered or (item.agent_id is None and recovered):
            return  # case 2: the agent may still re-register after a failover; no answer
        agent = self.book.agents.get(item.agent_id) if item.agent_id else None
        unreachable_time = None
        if item.agent_id is None:
            state = TaskState.TASK_UNKNOWN
        elif item.agent_id in self.book.gone_agents:
            state = TaskState.TASK_GONE_BY_OPERATOR
        elif agent is None:
            state = TaskState.TASK_UNKNOWN
        elif agent.state is AgentState.UNREACHABLE:
            state, unreachable_time = TaskState.TASK_UNREACHABLE, agent.unreachable_time
        else:
            state = TaskState.TASK_GONE
        status = master_status(item.task_id, state, now, reason=Reason.REASON_RECONCILIATION,
                               agent_id=item.agent_id, unreachable_time=unreachable_time)
        self.out.status(framework, status)
