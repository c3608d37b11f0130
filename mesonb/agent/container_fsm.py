"""An executor's container on the agent, as a pure state machine.

One container run per executor (keyed by its container id). The process is started,
waits for the executor's SUBSCRIBE, runs, is told to shut down or destroyed, and exits;
an agent that restarts finds the containers of its earlier run again (:meth:`recovered`)
and waits a short while for them to re-subscribe. This module holds no sockets, timers,
processes or files: events come in with the time as a value, :class:`Action` values come
out for the owner (:class:`mesonb.agent.lifecycle.Lifecycle`) to carry out, and the
registration, re-registration and shutdown-grace deadlines fire from :meth:`tick`::

                launched                 subscribed
   LAUNCHING ────────────► REGISTERING ────────────► RUNNING ◄─┐ subscribed
       │                     ▲     │                  │  │ └────┘ (again)
       │     recovered(alive)┘     │ tick (registration│  │
       │                           │ timeout) / kill / │  │ shutdown: SendShutdown,
       │ shutdown / kill           │ shutdown          │  │ grace deadline
       ▼                           ▼                   │  ▼
   TERMINATING ◄──────────────────────────────────────┘ TERMINATING
       │  Destroy (now, once launched, or when the grace period is over)
       │
       │ exited / launch_failed         recovered(dead)
       ▼                                      │
   TERMINATED ◄───────────────────────────────┘
       │ complete (no task left)
       ▼
   (forgotten: Completed)

Transitions (:data:`TRANSITIONS` holds the same rows, which the unit tests walk; "live"
is any state but TERMINATED):

===========  =========================  ===========  ========================================
from         event                      to           actions
===========  =========================  ===========  ========================================
(none)       launch                     LAUNCHING    Launch
(none)       recovered(alive)           REGISTERING  Watch; re-registration deadline
(none)       recovered(cleanup)         TERMINATING  Watch, Destroy (termination: cleanup)
(none)       recovered(dead)            TERMINATED   Release, FailTasks, ReportExit
(none)       recovered(dead, no task)   (none)       Completed
LAUNCHING    launched                   REGISTERING  (registration deadline)
RUNNING      launched                   RUNNING      (subscribed before the launch returned)
TERMINATING  launched                   TERMINATING  Destroy (shut down while launching)
live         launch_failed              TERMINATED   Release, FailTasks (LAUNCH_FAILED)
LAUNCHING    subscribed                 RUNNING      SendSubscribed
REGISTERING  subscribed                 RUNNING      SendSubscribed (deadline cleared)
RUNNING      subscribed                 RUNNING      SendSubscribed (a new stream)
TERMINATING  subscribed                 TERMINATING  SendShutdown
TERMINATED   subscribed                 TERMINATED   Refuse
(none)       subscribed                 (none)       Refuse
LAUNCHING    shutdown                   TERMINATING  Destroy (again once launched)
REGISTERING  shutdown                   TERMINATING  Destroy
RUNNING      shutdown(connected)        TERMINATING  SendShutdown (grace deadline)
RUNNING      shutdown(not connected)    TERMINATING  Destroy
TERMINATING  shutdown                   TERMINATING  (nothing)
TERMINATING  shutdown_unsent            TERMINATING  Destroy (deadline cleared)
live         kill                       TERMINATING  Destroy (the last queued task killed,
                                                     --recover=cleanup: its termination)
live         limited                    TERMINATING  FailTasks, Destroy (a container limit:
                                                     its tasks fail before the executor
                                                     can report them)
REGISTERING  tick                       TERMINATING  Destroy (REGISTRATION_TIMEOUT, or
                                                     REREGISTRATION_TIMEOUT if recovered)
TERMINATING  tick                       TERMINATING  Destroy (grace period over)
live         exited(returncode)         TERMINATED   Release, FailTasks, ReportExit
live         exited(unknown)            TERMINATED   Release, FailTasks (ReportExit if recovered)
live         exited(not failing)        TERMINATED   Release, ReportExit
TERMINATED   complete                   (none)       Completed
TERMINATED   exited                     TERMINATED   (nothing)
TERMINATED   kill                       TERMINATED   (nothing)
TERMINATED   limited                    TERMINATED   (nothing)
===========  =========================  ===========  ========================================

FailTasks carries the pending termination (or TASK_FAILED / EXECUTOR_TERMINATED, "Executor
terminated: <how>"); "not failing" is an exit while the framework or the agent shuts down,
whose tasks are not failed. ``tick`` fires only deadlines that are due (``now`` ≥ due).
Any other event in any other state changes nothing and yields no action.
"""

from __future__ import annotations

import enum
import heapq
import itertools
from dataclasses import dataclass

from mesonb.protocol.states import Reason, TaskState


class ContainerState(enum.Enum):
    LAUNCHING = "LAUNCHING"  # the process is being started
    REGISTERING = "REGISTERING"  # started (or recovered); waiting for its SUBSCRIBE
    RUNNING = "RUNNING"  # subscribed
    TERMINATING = "TERMINATING"  # told to shut down, or being destroyed
    TERMINATED = "TERMINATED"  # the process is gone

    @property
    def live(self) -> bool:
        return self is not ContainerState.TERMINATED


@dataclass
class Termination:
    """Why the agent ended an executor: what its unfinished tasks become."""

    state: TaskState
    reason: Reason
    message: str


@dataclass
class ContainerLife:
    """What the machine knows of one container run."""

    container_id: str
    state: ContainerState = ContainerState.LAUNCHING
    recovered: bool = False  # found again by a restarted agent
    termination: Termination | None = None
    due: float | None = None  # registration, re-registration or grace deadline


# -- actions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Launch:
    """Start the executor's process."""

    container_id: str


@dataclass(frozen=True)
class Watch:
    """Wait for a recovered container's process to exit (then send :meth:`exited`)."""

    container_id: str


@dataclass(frozen=True)
class SendSubscribed:
    """Answer the SUBSCRIBE (SUBSCRIBED, then the queued tasks' LAUNCHes)."""

    container_id: str


@dataclass(frozen=True)
class SendShutdown:
    """Send the SHUTDOWN event (report :meth:`shutdown_unsent` when it cannot go out)."""

    container_id: str


@dataclass(frozen=True)
class Destroy:
    """Kill the container's processes now (its exit comes back as :meth:`exited`)."""

    container_id: str


@dataclass(frozen=True)
class Refuse:
    """Refuse the executor's call: it has terminated."""

    container_id: str
    why: str


@dataclass(frozen=True)
class Release:
    """The process is gone: close its event stream, forget its token, kill what it left."""

    container_id: str


@dataclass(frozen=True)
class FailTasks:
    """End every task of the executor that is not terminal yet."""

    container_id: str
    termination: Termination


@dataclass(frozen=True)
class ReportExit:
    """Tell the master (EXECUTOR_EXITED); ``returncode`` None when unknown."""

    container_id: str
    returncode: int | None


@dataclass(frozen=True)
class Completed:
    """Move the executor to its framework's completed executors."""

    container_id: str


Action = (Launch | Watch | SendSubscribed | SendShutdown | Destroy | Refuse | Release
          | FailTasks | ReportExit | Completed)

S = ContainerState

# (from, event, to, actions): the table above, row by row ("live" is every state but
# TERMINATED; "(none)": no such container).
TRANSITIONS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("(none)", "launch", "LAUNCHING", ("Launch",)),
    ("(none)", "recovered(alive)", "REGISTERING", ("Watch",)),
    ("(none)", "recovered(cleanup)", "TERMINATING", ("Watch", "Destroy")),
    ("(none)", "recovered(dead)", "TERMINATED", ("Release", "FailTasks", "ReportExit")),
    ("(none)", "recovered(dead, no task)", "(none)", ("Completed",)),
    ("LAUNCHING", "launched", "REGISTERING", ()),
    ("RUNNING", "launched", "RUNNING", ()),
    ("TERMINATING", "launched", "TERMINATING", ("Destroy",)),
    ("live", "launch_failed", "TERMINATED", ("Release", "FailTasks")),
    ("LAUNCHING", "subscribed", "RUNNING", ("SendSubscribed",)),
    ("REGISTERING", "subscribed", "RUNNING", ("SendSubscribed",)),
    ("RUNNING", "subscribed", "RUNNING", ("SendSubscribed",)),
    ("TERMINATING", "subscribed", "TERMINATING", ("SendShutdown",)),
    ("TERMINATED", "subscribed", "TERMINATED", ("Refuse",)),
    ("(none)", "subscribed", "(none)", ("Refuse",)),
    ("LAUNCHING", "shutdown", "TERMINATING", ("Destroy",)),
    ("REGISTERING", "shutdown", "TERMINATING", ("Destroy",)),
    ("RUNNING", "shutdown(connected)", "TERMINATING", ("SendShutdown",)),
    ("RUNNING", "shutdown(not connected)", "TERMINATING", ("Destroy",)),
    ("TERMINATING", "shutdown", "TERMINATING", ()),
    ("TERMINATING", "shutdown_unsent", "TERMINATING", ("Destroy",)),
    ("live", "kill", "TERMINATING", ("Destroy",)),
    ("live", "limited", "TERMINATING", ("FailTasks", "Destroy")),
    ("REGISTERING", "tick", "TERMINATING", ("Destroy",)),
    ("TERMINATING", "tick", "TERMINATING", ("Destroy",)),
    ("live", "exited(returncode)", "TERMINATED", ("Release", "FailTasks", "ReportExit")),
    ("live", "exited(unknown)", "TERMINATED", ("Release", "FailTasks")),
    ("live", "exited(not failing)", "TERMINATED", ("Release", "ReportExit")),
    ("TERMINATED", "complete", "(none)", ("Completed",)),
    ("TERMINATED", "exited", "TERMINATED", ()),
    ("TERMINATED", "kill", "TERMINATED", ()),
    ("TERMINATED", "limited", "TERMINATED", ()),
)


class ContainerMachine:
    """The containers of one agent, each a :class:`ContainerLife`.

    >>> m = ContainerMachine(registration_timeout=60, reregistration_timeout=2,
    ...                      shutdown_grace=5)
    >>> m.launch("c1", now=0.0)
    [Launch(container_id='c1')]
    >>> m.launched("c1", now=1.0), m.next_deadline()
    ([], 61.0)
    >>> [type(a).__name__ for a in m.tick(now=61.0)], m.state("c1")
    (['Destroy'], <ContainerState.TERMINATING: 'TERMINATING'>)
    """

    def __init__(self, registration_timeout: float, reregistration_timeout: float,
                 shutdown_grace: float) -> None:
        self.registration_timeout = registration_timeout
        self.reregistration_timeout = reregistration_timeout
        self.shutdown_grace = shutdown_grace
        self._lives: dict[str, ContainerLife] = {}
        # Deadlines, earliest first: (due, n, container id). An entry whose container is
        # gone or has another due since is stale and skipped, so none is ever removed.
        self._dues: list[tuple[float, int, str]] = []
        self._order = itertools.count()

    # -- queries --------------------------------------------------------------------
    def life(self, container_id: str) -> ContainerLife | None:
        return self._lives.get(container_id)

    def state(self, container_id: str) -> ContainerState | None:
        life = self._lives.get(container_id)
        return life.state if life else None

    def __len__(self) -> int:
        return len(self._lives)

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`tick` has work to do, or None."""
        dues = self._dues
        while dues and not self._current(dues[0]):
            heapq.heappop(dues)
        return dues[0][0] if dues else None

    def _current(self, entry: tuple[float, int, str]) -> bool:
        life = self._lives.get(entry[2])
        return life is not None and life.due == entry[0]

    # -- events ---------------------------------------------------------------------
    def launch(self, container_id: str, now: float) -> list[Action]:
        """A new container run; its life is :meth:`life` from now on."""
        if container_id in self._lives:
            raise ValueError(f"container {container_id} exists already")
        self._lives[container_id] = ContainerLife(container_id)
        return [Launch(container_id)]

    def recovered(self, container_id: str, now: float, alive: bool, cleanup: bool = False,
                  has_tasks: bool = True, why: str = "its process is gone") -> list[Action]:
        """A restarted agent found this container in its checkpoints."""
        life = ContainerLife(container_id, recovered=True)
        self._lives[container_id] = life
        if alive and cleanup:
            life.state = S.TERMINATING
            life.termination = Termination(
                TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED,
                "Executor killed: the agent was started with --recover=cleanup")
            return [Watch(container_id), Destroy(container_id)]
        if alive:
            life.state = S.REGISTERING
            self._set_due(life, now + self.reregistration_timeout)
            return [Watch(container_id)]
        if has_tasks:
            return self.exited(container_id, None, now,
                               f"exited while the agent was down ({why})")
        life.state = S.TERMINATED
        return self.complete(container_id)

    def launched(self, container_id: str, now: float) -> list[Action]:
        """The process started."""
        life = self._lives.get(container_id)
        if life is None:
            return []
        if life.state is S.LAUNCHING:
            life.state = S.REGISTERING
            self._set_due(life, now + self.registration_timeout)
        elif life.state is S.TERMINATING:
            return [Destroy(container_id)]
        return []

    def launch_failed(self, container_id: str, now: float, message: str,
                      fail_tasks: bool = True) -> list[Action]:
        """The process could not be started."""
        life = self._lives.get(container_id)
        if life is None or not life.state.live:
            return []
        life.termination = Termination(TaskState.TASK_FAILED,
                                       Reason.REASON_CONTAINER_LAUNCH_FAILED, message)
        return self.exited(container_id, None, now, "never started", fail_tasks)

    def subscribed(self, container_id: str, now: float) -> list[Action]:
        """The executor subscribed (its first SUBSCRIBE or a new one)."""
        life = self._lives.get(container_id)
        if life is None or life.state is S.TERMINATED:
            return [Refuse(container_id, "terminated")]
        if life.state is S.TERMINATING:
            return [SendShutdown(container_id)]
        life.state = S.RUNNING
        life.due = None
        return [SendSubscribed(container_id)]

    def shutdown(self, container_id: str, now: float, connected: bool) -> list[Action]:
        """Shut the executor down: gracefully (SHUTDOWN, then Destroy after the grace
        period) when it is subscribed and ``connected``, else destroy it now."""
        life = self._lives.get(container_id)
        if life is None or life.state in (S.TERMINATING, S.TERMINATED):
            return []
        graceful = life.state is S.RUNNING and connected
        life.state = S.TERMINATING
        if graceful:
            self._set_due(life, now + self.shutdown_grace)
            return [SendShutdown(container_id)]
        life.due = None
        return [Destroy(container_id)]

    def shutdown_unsent(self, container_id: str, now: float) -> list[Action]:
        """The SHUTDOWN event could not be sent: destroy without waiting."""
        life = self._lives.get(container_id)
        if life is None or life.state is not S.TERMINATING:
            return []
        life.due = None
        return [Destroy(container_id)]

    def kill(self, container_id: str, now: float,
             termination: Termination | None = None) -> list[Action]:
        """Destroy now, without a grace period; ``termination`` says what its unfinished
        tasks become."""
        life = self._lives.get(container_id)
        if life is None or not life.state.live:
            return []
        if termination is not None:
            life.termination = termination
        life.state = S.TERMINATING
        life.due = None
        return [Destroy(container_id)]

    def limited(self, container_id: str, now: float,
                termination: Termination) -> list[Action]:
        """The container went over a limit (memory, disk, ...): its tasks end as
        ``termination`` says at once, before the executor can report them, and it is
        destroyed."""
        life = self._lives.get(container_id)
        if life is None or not life.state.live:
            return []
        return [FailTasks(container_id, termination),
                *self.kill(container_id, now, termination)]

    def tick(self, now: float) -> list[Action]:
        """Fire every deadline that is due."""
        actions: list[Action] = []
        dues = self._dues
        while dues and dues[0][0] <= now:
            entry = heapq.heappop(dues)
            if not self._current(entry):
                continue
            life = self._lives[entry[2]]
            life.due = None
            if life.state is S.REGISTERING:
                if life.recovered:
                    timeout, reason = (self.reregistration_timeout,
                                       Reason.REASON_EXECUTOR_REREGISTRATION_TIMEOUT)
                    message = f"Executor did not re-register within {timeout:g}secs"
                else:
                    timeout, reason = (self.registration_timeout,
                                       Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT)
                    message = f"Executor did not register within {timeout:g}secs"
                actions.extend(self.kill(life.container_id, now, Termination(
                    TaskState.TASK_FAILED, reason, message)))
            elif life.state is S.TERMINATING:
                actions.append(Destroy(life.container_id))
        return actions

    def exited(self, container_id: str, returncode: int | None, now: float, how: str,
               fail_tasks: bool = True) -> list[Action]:
        """The process exited (``how`` says how, for the tasks' message)."""
        life = self._lives.get(container_id)
        if life is None or not life.state.live:
            return []
        life.state = S.TERMINATED
        life.due = None
        actions: list[Action] = [Release(container_id)]
        if fail_tasks:
            actions.append(FailTasks(container_id, life.termination or Termination(
                TaskState.TASK_FAILED, Reason.REASON_EXECUTOR_TERMINATED,
                f"Executor terminated: {how}")))
        if returncode is not None or life.recovered:
            actions.append(ReportExit(container_id, returncode))
        return actions

    def complete(self, container_id: str) -> list[Action]:
        """No task of the terminated executor is left: forget it."""
        life = self._lives.get(container_id)
        if life is None or life.state is not S.TERMINATED:
            return []
        del self._lives[container_id]
        return [Completed(container_id)]

    # -- internals ------------------------------------------------------------------
    def _set_due(self, life: ContainerLife, due: float) -> None:
        life.due = due
        heapq.heappush(self._dues, (due, next(self._order), life.container_id))
