"""Building the status updates and events the master sends to frameworks."""

from __future__ import annotations

from typing import Any

from mesonb.protocol.mesos import TaskStatus
from mesonb.protocol.states import (
    LOST_TO_OLD_FRAMEWORKS,
    Reason,
    Source,
    TaskState,
    for_framework,
)

from .book import Framework, Task


def master_status(
    task_id: str,
    state: TaskState,
    now: float,
    *,
    reason: Reason | None = None,
    message: str | None = None,
    agent_id: str | None = None,
    executor_id: str | None = None,
    unreachable_time: float | None = None,
) -> TaskStatus:
    """A status the master makes itself (source SOURCE_MASTER, no uuid: not retried)."""
    status = TaskStatus(
        task_id=task_id,
        state=state,
        source=Source.SOURCE_MASTER,
        reason=reason,
        message=message,
        agent_id=agent_id,
        executor_id=executor_id,
        timestamp=now,
    )
    if unreachable_time is not None:
        status.unreachable_time = {"nanoseconds": int(unreachable_time * 1e9)}
    return status


def update_event(framework: Framework, status: TaskStatus) -> dict[str, Any]:
    """An UPDATE event for ``framework``, with partition-aware states mapped for it."""
    state = status.state
    if state in LOST_TO_OLD_FRAMEWORKS:  # (whether it is partition-aware matters then only)
        state = for_framework(state, framework.partition_aware)
    if state is not status.state:
        status = _copy(status, state=state)
    # Event(type=UPDATE, update=Update(status=status)).to_json(), without building the two
    # messages around the status for the generic encoder to take apart again
    return {"type": "UPDATE", "update": {"status": status.to_json()}}


def offers_event(offers: list[dict[str, Any]]) -> dict[str, Any]:
    """An OFFERS event for ``offers`` (ready Offer JSON, at least one): what
    ``Event(type=OFFERS, offers=Offers(offers=offers)).to_json()`` makes, the list not
    copied (it is the event's own)."""
    return {"type": "OFFERS", "offers": {"offers": offers}}


def reconciliation_status(task: Task, now: float) -> TaskStatus:
    """Mesos's reconciliation answer: the latest status without data and message, in the
    state of the status update being delivered when there is one (the agent may already
    report a later state in ``latest_state``), as Mesos's ``_reconcileTasks`` does."""
    latest = task.latest_status
    state = task.status_update_state or task.state
    return master_status(
        task.id,
        state,
        now,
        reason=Reason.REASON_RECONCILIATION,
        agent_id=task.agent_id,
        executor_id=task.executor_id,
        unreachable_time=task.unreachable_time,
    ) if latest is None else _copy(
        latest,
        state=state,
        reason=Reason.REASON_RECONCILIATION,
        source=Source.SOURCE_MASTER,
        message=None,
        data=None,
        uuid=None,
        timestamp=now,
    )


def _copy(status: TaskStatus, **changes: Any) -> TaskStatus:
    fields = {name: getattr(status, name) for name in status.__dataclass_fields__}
    fields.update(changes)
    return TaskStatus(**fields)
