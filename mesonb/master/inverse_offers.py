"""Maintenance carried out on the master: inverse offers, machines going DOWN and UP.

:class:`MaintenanceService` owns the :class:`~.maintenance.Schedule` and the outstanding
inverse offers:

* every master tick (and right after a schedule update) each framework with tasks,
  executors or outstanding offers (all allocated to it, in Mesos's allocator) on an agent
  of a DRAINING machine, and neither an outstanding inverse offer
  for that agent nor a filter from its last answer, gets an ``INVERSE_OFFERS`` event
  (``{"inverse_offers": {"inverse_offers": [{id, framework_id, agent_id,
  unavailability, resources: []}]}}``, nested as the proto);
* ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS from the framework record its answer for
  the machine (``GET_MAINTENANCE_STATUS`` shows it) and, as Mesos, filter that agent's
  inverse offers to the framework for ``filters.refuse_seconds`` (5 s by default): then
  it is asked again, while it still holds resources there;
* a machine leaving the schedule, changing its window or going DOWN takes its outstanding
  inverse offers back (``RESCIND_INVERSE_OFFER``);
* START_MAINTENANCE removes the machines' agents, as Mesos's ``removeSlave`` does: the
  agent is told to shut down, its tasks end TASK_GONE (TASK_LOST for frameworks that are
  not partition-aware) with REASON_AGENT_REMOVED, frameworks get FAILURE; an agent on a
  DOWN machine that tries to register is told to shut down. STOP_MAINTENANCE brings the
  machines UP (they leave the schedule) and their agents may register again.

The schedule and the DOWN machines are kept in the registry (:mod:`.settings`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any, Protocol

from mesonb.clock import Clock
from mesonb.protocol.agent import MasterCommand, MasterCommandType, Notice
from mesonb.protocol.states import Reason, TaskState

from .agents import AgentMessages
from .book import Agent, Book, Framework
from .maintenance import Answer, MachineID, Mode, Schedule, Window
from .settings import MAINTENANCE, SettingsHost, save

log = logging.getLogger(__name__)


class MaintenanceHost(SettingsHost, Protocol):
    """What maintenance uses of the master."""

    book: Book
    clock: Clock
    agents: AgentMessages

    def new_id(self, kind: str) -> str: ...

    def send_to_agent(self, agent: Agent, command: MasterCommand) -> bool: ...

    def send_to_framework(self, framework: Framework, event: dict[str, Any]) -> bool: ...


@dataclasses.dataclass(frozen=True)
class InverseOffer:
    id: str
    framework_id: str
    agent_id: str
    machine: MachineID
    window: Window
    made: float

    def to_json(self) -> dict[str, Any]:
        return {"id": {"value": self.id}, "framework_id": {"value": self.framework_id},
                "agent_id": {"value": self.agent_id},
                "unavailability": self.window.unavailability_json(), "resources": []}


def agent_ip(upid: str | None) -> str | None:
    """The ip of an agent's ``slave(1)@ip:port`` pid."""
    if not upid or "@" not in upid:
        return None
    return upid.rsplit("@", 1)[1].rsplit(":", 1)[0] or None


class MaintenanceService:
    """The master's maintenance: the schedule and the inverse offers it leads to."""

    def __init__(self, master: MaintenanceHost) -> None:
        self.master = master
        self.schedule = Schedule()
        self.outstanding: dict[str, InverseOffer] = {}
        # (framework id, agent id) -> monotonic time before which it is not asked again
        self.filters: dict[tuple[str, str], float] = {}
        self._next_sweep = 0.0  # monotonic: the agents are swept at most once a second

    # -- where agents are ---------------------------------------------------------------
    def machine_of(self, agent: Agent) -> MachineID | None:
        return self.schedule.machine_of(agent.hostname, agent_ip(agent.upid))

    def annotate(self, offer: dict[str, Any], agent: Agent) -> None:
        """Give an offer of an agent on a DRAINING machine its ``unavailability``, as Mesos
        does, so frameworks can avoid placing long tasks there."""
        machine = self.machine_of(agent)
        if machine is None or self.schedule.mode(machine) is not Mode.DRAINING:
            return
        window = self.schedule.window_of(machine)
        if window is not None:
            offer["unavailability"] = window.unavailability_json()

    def refusal(self, hostname: str, upid: str | None) -> str | None:
        """Why an agent may not register (its machine is DOWN), or None."""
        machine = self.schedule.machine_of(hostname, agent_ip(upid))
        if machine is not None and self.schedule.mode(machine) is Mode.DOWN:
            return f"Agent attempted to register while its machine '{machine}' is DOWN"
        return None

    def agents_on(self, machines: set[MachineID]) -> list[Agent]:
        return [a for a in list(self.master.book.agents.values())
                if any(m.matches(a.hostname, agent_ip(a.upid)) for m in machines)]

    # -- operator calls -----------------------------------------------------------------
    def update_schedule(self, windows: list[Window]) -> None:
        changed = self.schedule.update(windows)
        self._rescind(lambda io: io.machine in changed)
        moved = {a.id for a in self.agents_on(changed)}  # a new window: ask afresh
        self.filters = {k: t for k, t in self.filters.items() if k[1] not in moved}
        self.persist()
        self.tick(force=True)

    def start(self, machines: list[MachineID]) -> None:
        self.schedule.check_start(machines)
        down = set(machines)
        self.schedule.start(down)
        self._rescind(lambda io: io.machine in down)
        self.persist()
        for agent in self.agents_on(down):
            message = "Operator initiated 'Machine DOWN'"
            self.master.send_to_agent(agent, MasterCommand(
                type=MasterCommandType.SHUTDOWN, shutdown=Notice(message=message)))
            self.master.agents.remove(agent, message, TaskState.TASK_GONE,
                                      Reason.REASON_AGENT_REMOVED)

    def stop(self, machines: list[MachineID]) -> None:
        self.schedule.check_stop(machines)
        self.schedule.stop(machines)
        self.persist()

    def persist(self) -> None:
        save(self.master, MAINTENANCE)

    # -- inverse offers -------------------------------------------------------------------
    def tick(self, force: bool = False) -> None:
        """Send inverse offers where they are due (see the module docstring); the master
        calls this every tick, the sweep runs at most once a second unless ``force``."""
        mono = self.master.clock.monotonic()
        if not force and mono < self._next_sweep:
            return
        self._next_sweep = mono + 1.0
        schedule, book = self.schedule, self.master.book
        for io_id, io in list(self.outstanding.items()):
            framework = book.frameworks.get(io.framework_id)
            if framework is None or not framework.connected or io.agent_id not in book.agents:
                del self.outstanding[io_id]
        if not schedule.windows:
            return
        have = {(io.framework_id, io.agent_id) for io in self.outstanding.values()}
        now = self.master.clock.time()
        if self.filters:
            self.filters = {k: t for k, t in self.filters.items() if t > mono}
        batches: dict[str, list[dict[str, Any]]] = {}
        for agent in book.agents.values():
            machine = self.machine_of(agent)
            if machine is None or schedule.mode(machine) is not Mode.DRAINING:
                continue
            window = schedule.window_of(machine)
            assert window is not None
            holders = {fw_id for fw_id, _ in agent.tasks} | set(agent.executors)
            holders.update(book.offers[o].framework_id for o in agent.offers if o in book.offers)
            for fw_id in sorted(holders):
                framework = book.frameworks.get(fw_id)
                if (framework is None or not framework.connected
                        or (fw_id, agent.id) in have or (fw_id, agent.id) in self.filters):
                    continue
                io = InverseOffer(self.master.new_id("O"), fw_id, agent.id, machine, window, now)
                self.outstanding[io.id] = io
                batches.setdefault(fw_id, []).append(io.to_json())
        for fw_id, offers in batches.items():
            log.info("inverse offers to framework %s: %d", fw_id, len(offers))
            self.master.send_to_framework(book.frameworks[fw_id], {
                "type": "INVERSE_OFFERS", "inverse_offers": {"inverse_offers": offers}})

    def answer(self, framework: Framework, ids: list[str], accepted: bool,
               refuse_seconds: float = 5.0) -> None:
        """ACCEPT_INVERSE_OFFERS / DECLINE_INVERSE_OFFERS: recorded per machine, the agent's
        inverse offers to the framework filtered for ``refuse_seconds``; ids that are not
        this framework's outstanding inverse offers are ignored (logged)."""
        now, mono = self.master.clock.time(), self.master.clock.monotonic()
        for io_id in ids:
            io = self.outstanding.get(io_id)
            if io is None or io.framework_id != framework.id:
                log.warning("framework %s answered unknown inverse offer %s", framework.id,
                            io_id)
                continue
            del self.outstanding[io_id]
            self.filters[(framework.id, io.agent_id)] = mono + refuse_seconds
            status = "ACCEPT" if accepted else "DECLINE"
            self.schedule.answer(io.machine, Answer(framework.id, status, now))

    def _rescind(self, which: Callable[[InverseOffer], bool]) -> None:
        book = self.master.book
        for io_id, io in list(self.outstanding.items()):
            if not which(io):
                continue
            del self.outstanding[io_id]
            framework = book.frameworks.get(io.framework_id)
            if framework is not None:
                self.master.send_to_framework(framework, {
                    "type": "RESCIND_INVERSE_OFFER",
                    "rescind_inverse_offer": {"inverse_offer_id": {"value": io_id}}})

    def status_json(self) -> dict[str, Any]:
        pending: dict[MachineID, list[Answer]] = {}
        for io in self.outstanding.values():
            pending.setdefault(io.machine, []).append(
                Answer(io.framework_id, "UNKNOWN", io.made))
        return self.schedule.status_json(pending)

    def framework_inverse_offers(self, framework_id: str) -> list[dict[str, Any]]:
        return [io.to_json() for io in self.outstanding.values()
                if io.framework_id == framework_id]
