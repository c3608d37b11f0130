"""A task on the agent, as a pure state machine.

A task's life on the agent has a *phase* (where it is: queued until its executor
subscribes, launched once the executor has its LAUNCH, completed once the framework
acknowledged its terminal update) and a Mesos *state* (what its last status update says).
This module holds no sockets or files: events come in on a :class:`TaskLife` (the book's
:class:`~mesonb.agent.book.Task` is one), :class:`Action` values come out for the owner
to carry out (send a LAUNCH or KILL, record an update, move the task)::

                  deliver                update(STARTING)        update(RUNNING)
   QUEUED/STAGING ───────► LAUNCHED/STAGING ─────► LAUNCHED/STARTING ─────► LAUNCHED/RUNNING
        │                        │  kill: SendKill          │                     │
        │ kill: KILLED           │                          ▼ update(KILLING)     │
        │ (KILLED_DURING_LAUNCH) └──────────────────► LAUNCHED/KILLING ◄──────────┘
        │                                                   │
        │   update(terminal) / executor_terminated /        │
        │   unknown_to_executor (recovered STAGING)         │
        ▼                                                   ▼
   LAUNCHED/terminal ◄──────────────────────────────────────┘
        │ acknowledged (the framework acknowledged the terminal update)
        ▼
   COMPLETED/terminal

Transitions (:data:`TRANSITIONS` holds the same rows, which the unit tests walk). A start
is ``phase/state``: "active" is QUEUED or LAUNCHED, "live" any state that is not terminal,
"started" STARTING, RUNNING or KILLING; in the end column "same" keeps the phase, ``s`` is
the update's state and ``term`` the termination's:

====================  ==========================  ================  ========================
from                  event                       to                actions
====================  ==========================  ================  ========================
(none)                run(executor running)       LAUNCHED/STAGING  Deliver
(none)                run(executor not running)   QUEUED/STAGING    (queued)
(none)                refuse                      (none)            AgentUpdate*
QUEUED/STAGING        deliver                     LAUNCHED/STAGING  Deliver
LAUNCHED/live         deliver                     unchanged         (nothing)
QUEUED/STAGING        kill                        LAUNCHED/KILLED   AgentUpdate
                                                                    (KILLED_DURING_LAUNCH)
LAUNCHED/live         kill(executor running)      unchanged         SendKill
LAUNCHED/live         kill(executor not running)  unchanged         Ignored
any/terminal          kill                        unchanged         Ignored
active/live           update(s)                   same/s            Record
active/terminal       update(same state)          unchanged         Invalid (a second one)
active/terminal       update(other state)         unchanged         Invalid
COMPLETED/terminal    update                      unchanged         Invalid
active/live           executor_terminated         same/term         AgentUpdate(term)
any/terminal          executor_terminated         unchanged         (nothing)
LAUNCHED/STAGING      unknown_to_executor         LAUNCHED/DROPPED  AgentUpdate
                                                                    (AGENT_RESTARTED)*
LAUNCHED/started      unknown_to_executor         unchanged         (nothing)
active/any            acknowledged                COMPLETED/same    Complete
COMPLETED/terminal    acknowledged                unchanged         (nothing)
====================  ==========================  ================  ========================

``*`` TASK_LOST instead of DROPPED (and of the other new states) for a framework that is
not partition aware. ``acknowledged`` is the framework's acknowledgement of the task's
terminal update (the status update manager closed its stream). An executor's updates are
checked for duplicates (the status update manager's uuids) before they get here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from mesonb.protocol.mesos import KillPolicy, TaskStatus
from mesonb.protocol.states import Reason, TaskState, for_framework


class TaskPhase(enum.Enum):
    QUEUED = "QUEUED"  # waiting for its executor to subscribe
    LAUNCHED = "LAUNCHED"  # the executor has it (or had it: terminal, unacknowledged)
    COMPLETED = "COMPLETED"  # its terminal update was acknowledged


class TaskLife(Protocol):
    """What the machine reads and changes of a task."""

    phase: TaskPhase
    state: TaskState


@dataclass
class BareTask:
    """A :class:`TaskLife` with nothing else (tests, and tasks refused at the door)."""

    phase: TaskPhase = TaskPhase.QUEUED
    state: TaskState = TaskState.TASK_STAGING


# -- actions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Deliver:
    """Send the task to its executor (LAUNCH, or LAUNCH_GROUP for a group)."""


@dataclass(frozen=True)
class SendKill:
    """Send KILL for the task to its executor (the executor reports the outcome)."""

    kill_policy: KillPolicy | None


@dataclass(frozen=True)
class AgentUpdate:
    """Record and forward an update the agent itself writes (source SOURCE_AGENT)."""

    state: TaskState
    reason: Reason
    message: str


@dataclass(frozen=True)
class Record:
    """Record and forward the executor's update ``status``."""

    status: TaskStatus


@dataclass(frozen=True)
class Invalid:
    """An executor's update that is dropped (counted in ``invalid_status_updates``)."""

    why: str


@dataclass(frozen=True)
class Ignored:
    """A command that changes nothing, and why (for the log)."""

    why: str


@dataclass(frozen=True)
class Complete:
    """Move the task to its executor's completed tasks."""


Action = Deliver | SendKill | AgentUpdate | Record | Invalid | Ignored | Complete
_DELIVER, _COMPLETE = Deliver(), Complete()  # (they carry nothing: one of each will do)

KILLED_DURING_LAUNCH = "Killed before delivery to the executor"

# (from, event, to, actions): the table above, row by row.
TRANSITIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("(none)", "run(executor running)", "LAUNCHED/STAGING", ("Deliver",)),
    ("(none)", "run(executor not running)", "QUEUED/STAGING", ()),
    ("(none)", "refuse", "(none)", ("AgentUpdate",)),
    ("QUEUED/STAGING", "deliver", "LAUNCHED/STAGING", ("Deliver",)),
    ("LAUNCHED/live", "deliver", "unchanged", ()),
    ("QUEUED/STAGING", "kill", "LAUNCHED/KILLED", ("AgentUpdate",)),
    ("LAUNCHED/live", "kill(executor running)", "unchanged", ("SendKill",)),
    ("LAUNCHED/live", "kill(executor not running)", "unchanged", ("Ignored",)),
    ("any/terminal", "kill", "unchanged", ("Ignored",)),
    ("active/live", "update(s)", "same/s", ("Record",)),
    ("active/terminal", "update(same state)", "unchanged", ("Invalid",)),
    ("active/terminal", "update(other state)", "unchanged", ("Invalid",)),
    ("COMPLETED/terminal", "update", "unchanged", ("Invalid",)),
    ("active/live", "executor_terminated", "same/term", ("AgentUpdate",)),
    ("any/terminal", "executor_terminated", "unchanged", ()),
    ("LAUNCHED/STAGING", "unknown_to_executor", "LAUNCHED/DROPPED", ("AgentUpdate",)),
    ("LAUNCHED/started", "unknown_to_executor", "unchanged", ()),
    ("active/any", "acknowledged", "COMPLETED/same", ("Complete",)),
    ("COMPLETED/terminal", "acknowledged", "unchanged", ()),
)


# -- events ----------------------------------------------------------------------------
def run(task: TaskLife, executor_running: bool) -> list[Action]:
    """A RUN_TASK (or a task of a RUN_TASK_GROUP) the agent accepted."""
    task.phase, task.state = TaskPhase.QUEUED, TaskState.TASK_STAGING
    return deliver(task) if executor_running else []


def refuse(state: TaskState, reason: Reason, message: str,
           partition_aware: bool) -> list[Action]:
    """A task the agent does not run (invalid, unknown, framework terminating...)."""
    return [AgentUpdate(for_framework(state, partition_aware), reason, message)]


def deliver(task: TaskLife) -> list[Action]:
    """The executor is subscribed: hand it the queued task."""
    if task.phase is not TaskPhase.QUEUED:
        return []
    task.phase = TaskPhase.LAUNCHED
    return [_DELIVER]


def kill(task: TaskLife, executor_running: bool,
         kill_policy: KillPolicy | None = None) -> list[Action]:
    """The framework asked to kill the task."""
    if task.state.terminal:
        return [Ignored(f"already {task.state.value}")]
    if task.phase is TaskPhase.QUEUED:
        task.phase, task.state = TaskPhase.LAUNCHED, TaskState.TASK_KILLED
        return [AgentUpdate(TaskState.TASK_KILLED, Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                            KILLED_DURING_LAUNCH)]
    if not executor_running:
        return [Ignored("its executor is not running")]
    return [SendKill(kill_policy)]


def update(task: TaskLife, status: TaskStatus) -> list[Action]:
    """An update the executor sent for the task (not a duplicate)."""
    if task.phase is TaskPhase.COMPLETED:
        return [Invalid("not active here")]
    if task.state.terminal:  # Mesos: "Task is already terminated", a second one too
        return [Invalid(f"already {task.state.value}")]
    task.state = status.state
    return [Record(status)]


def executor_terminated(task: TaskLife, state: TaskState, reason: Reason,
                        message: str) -> list[Action]:
    """The executor is gone (or never came): the task ends as the termination says."""
    if task.state.terminal:
        return []
    task.state = state
    return [AgentUpdate(state, reason, message)]


def unknown_to_executor(task: TaskLife, partition_aware: bool) -> list[Action]:
    """A recovered executor re-subscribed without listing this task: it was launched while
    the agent went down and never reached the executor (Mesos drops it)."""
    if task.phase is not TaskPhase.LAUNCHED or task.state is not TaskState.TASK_STAGING:
        return []
    state = for_framework(TaskState.TASK_DROPPED, partition_aware)
    task.state = state
    return [AgentUpdate(state, Reason.REASON_AGENT_RESTARTED,
                        "Task launched during agent restart")]


def acknowledged(task: TaskLife) -> list[Action]:
    """The framework acknowledged the task's terminal update."""
    if task.phase is TaskPhase.COMPLETED:
        return []
    task.phase = TaskPhase.COMPLETED
    return [_COMPLETE]
