"""What the master sends: commands to agents, events to frameworks, operator events.

The scheduler-call and agent-message handlers write through an :class:`Outbox` rather than
calling back into the :class:`~.master.Master`: sending is all they need of it. A message
for a peer with no live link is dropped and counted (``dropped_messages``), as Mesos's
master drops messages to a disconnected framework or agent.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import Any

from mesonb.protocol.agent import MasterCommand
from mesonb.protocol.mesos import TaskStatus

from .book import Agent, Book, Framework, Task
from .metrics_framework import count_event
from .updates import update_event
from .views import framework_json

log = logging.getLogger(__name__)
Observer = Callable[[dict[str, Any]], None]


class Outbox:
    """Sends for the master; ``observers`` are the operator API's SUBSCRIBE streams."""

    def __init__(self, book: Book, counters: collections.Counter[str],
                 observers: list[Observer]) -> None:
        self.book = book
        self.counters = counters
        self.observers = observers

    # -- peers ---------------------------------------------------------------------------
    def to_framework(self, framework: Framework, event: dict[str, Any]) -> bool:
        """Send a scheduler event (JSON) on the framework's stream; False: dropped."""
        if framework.send is None:
            self.counters["dropped_messages"] += 1
            return False
        framework.send(event)
        count_event(framework.metrics, event)
        return True

    def to_agent(self, agent: Agent, command: MasterCommand) -> bool:
        """Send a command on the agent's link; False: dropped."""
        if agent.send is None:
            self.counters["dropped_messages"] += 1
            return False
        agent.send(command)  # a link encodes it; one in this process hands it over as is
        return True

    def status(self, framework: Framework, status: TaskStatus) -> None:
        """An UPDATE event with ``status`` (its state as the framework understands it)."""
        self.to_framework(framework, update_event(framework, status))

    # -- operator API subscribers ----------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> None:
        for observer in list(self.observers):
            try:
                observer(event)
            except Exception:  # an observer's failure must not hurt the master
                log.exception("operator event observer failed; removing it")
                if observer in self.observers:
                    self.observers.remove(observer)

    def emit_framework_updated(self, framework: Framework) -> None:
        if self.observers:
            self.emit({"type": "FRAMEWORK_UPDATED", "framework_updated": {
                "framework": framework_json(framework, self.book)}})

    def emit_task_updated(self, task: Task, status: TaskStatus) -> None:
        if self.observers:
            self.emit({"type": "TASK_UPDATED", "task_updated": {
                "framework_id": {"value": task.framework_id},
                "status": status.to_json(),
                "state": task.state.value,
            }})
