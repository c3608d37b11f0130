"""Maintenance primitives: the schedule, machine modes and inverse offer answers.

As Mesos (include/mesos/v1/maintenance/maintenance.proto, docs/maintenance.md)::

                 UPDATE_MAINTENANCE_SCHEDULE          START_MAINTENANCE
        UP ─────────── (in a window) ─────► DRAINING ───────────────────► DOWN
         ▲  ◄──────── (out of every window) ───┘                          │
         └──────────────────────────── STOP_MAINTENANCE ──────────────────┘
                                   (also leaves the schedule)

* A machine is a ``MachineID{hostname, ip}``; an agent is on a machine when each field
  the machine names matches the agent's (hostnames compared in lower case, as Mesos
  stores them).
* The schedule is a list of windows, each ``{machine_ids, unavailability{start,
  duration}}``; a machine may appear in one window only, and a DOWN machine may not
  leave the schedule (STOP_MAINTENANCE first).
* Frameworks with tasks on a DRAINING machine's agents get inverse offers; their answers
  (ACCEPT or DECLINE) are kept per machine and shown in ``GET_MAINTENANCE_STATUS``.

This module is the model (pure data, validation, JSON); :mod:`.inverse_offers` carries
it out on the master.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable
from typing import Any

from mesonb.protocol.errors import BadRequest


class Mode(enum.StrEnum):
    UP = "UP"
    DRAINING = "DRAINING"
    DOWN = "DOWN"


@dataclasses.dataclass(frozen=True, order=True)
class MachineID:
    """``mesos.v1.MachineID``: a hostname, an IP, or both."""

    hostname: str | None = None
    ip: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "machine_id") -> MachineID:
        if not isinstance(data, dict):
            raise BadRequest(f"Expecting '{where}' to be an object with 'hostname' or 'ip'")
        hostname, ip = data.get("hostname"), data.get("ip")
        if hostname is not None and not isinstance(hostname, str):
            raise BadRequest(f"Expecting '{where}.hostname' to be a string")
        if ip is not None and not isinstance(ip, str):
            raise BadRequest(f"Expecting '{where}.ip' to be a string")
        hostname, ip = hostname or None, ip or None
        if hostname is None and ip is None:
            raise BadRequest(f"Invalid MachineID '{where}': one of 'hostname' or 'ip' must "
                             "be provided")
        if ip is not None:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise BadRequest(f"Invalid MachineID '{where}': '{ip}' is not an IP "
                                 "address") from None
        return cls(hostname.lower() if hostname else None, ip)

    def to_json(self) -> dict[str, str]:
        out = {}
        if self.hostname is not None:
            out["hostname"] = self.hostname
        if self.ip is not None:
            out["ip"] = self.ip
        return out

    def matches(self, hostname: str | None, ip: str | None) -> bool:
        """True when an agent with this hostname and ip is on this machine."""
        if self.hostname is not None and self.hostname != (hostname or "").lower():
            return False
        return self.ip is None or self.ip == ip

    def __str__(self) -> str:
        return f"{self.hostname or ''}@{self.ip or ''}" if self.ip else self.hostname or ""


@dataclasses.dataclass(frozen=True)
class Window:
    """``mesos.v1.maintenance.Window``: machines and when they will be unavailable."""

    machines: tuple[MachineID, ...]
    start_ns: int
    duration_ns: int | None = None

    def unavailability_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"start": {"nanoseconds": self.start_ns}}
        if self.duration_ns is not None:
            out["duration"] = {"nanoseconds": self.duration_ns}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"machine_ids": [m.to_json() for m in self.machines],
                "unavailability": self.unavailability_json()}

    @classmethod
    def from_json(cls, data: Any, where: str) -> Window:
        if not isinstance(data, dict):
            raise BadRequest(f"Expecting '{where}' to be an object")
        ids = data.get("machine_ids")
        if not isinstance(ids, list) or not ids:
            raise BadRequest(f"Invalid Window '{where}': 'machine_ids' must be a non-empty "
                             "list")
        machines = tuple(MachineID.from_json(m, f"{where}.machine_ids[{i}]")
                         for i, m in enumerate(ids))
        unavailability = data.get("unavailability")
        if not isinstance(unavailability, dict):
            raise BadRequest(f"Expecting '{where}.unavailability' to be present")
        start = _nanos(unavailability.get("start"), f"{where}.unavailability.start")
        if start is None:
            raise BadRequest(f"Expecting '{where}.unavailability.start' to be present")
        duration = _nanos(unavailability.get("duration"), f"{where}.unavailability.duration")
        if duration is not None and duration < 0:
            raise BadRequest(f"Invalid Window '{where}': the unavailability's duration is "
                             "negative")
        return cls(machines, start, duration)


def _nanos(data: Any, where: str) -> int | None:
    if data is None:
        return None
    value = data.get("nanoseconds") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
        raise BadRequest(f"Expecting '{where}.nanoseconds' to be a 64-bit integer")
    return value


def parse_schedule(data: Any, where: str = "schedule") -> list[Window]:
    """``mesos.v1.maintenance.Schedule``; a machine may be in one window only."""
    if not isinstance(data, dict):
        raise BadRequest(f"Expecting '{where}' to be an object with 'windows'")
    items = data.get("windows", [])
    if not isinstance(items, list):
        raise BadRequest(f"Expecting '{where}.windows' to be a list")
    windows = [Window.from_json(w, f"{where}.windows[{i}]") for i, w in enumerate(items)]
    seen: set[MachineID] = set()
    for window in windows:
        for machine in window.machines:
            if machine in seen:
                raise BadRequest(f"Invalid Schedule: machine '{machine}' appears more than "
                                 "once in the schedule")
            seen.add(machine)
    return windows


def parse_machines(data: Any, where: str) -> list[MachineID]:
    """A list of MachineIDs (START/STOP_MAINTENANCE, ``/machine/down``, ``/machine/up``)."""
    if not isinstance(data, list) or not data:
        raise BadRequest(f"Expecting '{where}' to be a non-empty list of machine ids")
    machines = [MachineID.from_json(m, f"{where}[{i}]") for i, m in enumerate(data)]
    if len(set(machines)) != len(machines):
        raise BadRequest(f"Invalid '{where}': a machine appears more than once")
    return machines


@dataclasses.dataclass(frozen=True)
class Answer:
    """``InverseOfferStatus``: a framework's answer to the inverse offers of a machine."""

    framework_id: str
    status: str  # ACCEPT, DECLINE, or UNKNOWN while unanswered
    timestamp: float

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "framework_id": {"value": self.framework_id},
                "timestamp": {"nanoseconds": int(self.timestamp * 1e9)}}


class Schedule:
    """The schedule, the machines that are DOWN, and the frameworks' answers."""

    def __init__(self) -> None:
        self._windows: list[Window] = []
        # machines by hostname, and the ones named by ip alone by ip: agent lookups
        self._by_host: dict[str, list[MachineID]] = {}
        self._by_ip: dict[str, list[MachineID]] = {}
        self.down: set[MachineID] = set()
        # machine -> framework id -> its latest answer
        self.answers: dict[MachineID, dict[str, Answer]] = {}

    @property
    def windows(self) -> list[Window]:
        return self._windows

    @windows.setter
    def windows(self, windows: list[Window]) -> None:
        self._windows = list(windows)
        self._by_host, self._by_ip = {}, {}
        for machine in self.machines():
            if machine.hostname is not None:
                self._by_host.setdefault(machine.hostname, []).append(machine)
            elif machine.ip is not None:
                self._by_ip.setdefault(machine.ip, []).append(machine)

    def window_of(self, machine: MachineID) -> Window | None:
        for window in self.windows:
            if machine in window.machines:
                return window
        return None

    def machines(self) -> list[MachineID]:
        return [m for w in self.windows for m in w.machines]

    def mode(self, machine: MachineID) -> Mode:
        if machine in self.down:
            return Mode.DOWN
        return Mode.DRAINING if self.window_of(machine) is not None else Mode.UP

    def machine_of(self, hostname: str | None, ip: str | None) -> MachineID | None:
        """The scheduled machine an agent with this hostname and ip is on, if any."""
        for machine in self._by_host.get((hostname or "").lower(), ()):
            if machine.ip is None or machine.ip == ip:
                return machine
        found = self._by_ip.get(ip or "")
        return found[0] if found else None

    def update(self, windows: list[Window]) -> set[MachineID]:
        """Replace the schedule; returns the machines whose window changed or that left
        it (their inverse offers are rescinded and answers forgotten)."""
        new = {m: w for w in windows for m in w.machines}
        for machine in self.down:
            if machine not in new:
                raise BadRequest(f"Invalid Schedule: machine '{machine}' is DOWN and cannot "
                                 "be removed from the schedule (STOP_MAINTENANCE it first)")
        old = {m: w for w in self.windows for m in w.machines}
        changed = {m for m, w in old.items()
                   if m not in new or new[m].unavailability_json() != w.unavailability_json()}
        self.windows = list(windows)
        for machine in changed:
            self.answers.pop(machine, None)
        return changed

    def check_start(self, machines: Iterable[MachineID]) -> None:
        for machine in machines:
            if self.window_of(machine) is None:
                raise BadRequest(f"Machine '{machine}' is not part of a maintenance schedule")
            if machine in self.down:
                raise BadRequest(f"Machine '{machine}' is already DOWN")

    def start(self, machines: Iterable[MachineID]) -> None:
        for machine in machines:
            self.down.add(machine)
            self.answers.pop(machine, None)

    def check_stop(self, machines: Iterable[MachineID]) -> None:
        for machine in machines:
            if machine not in self.down:
                raise BadRequest(f"Machine '{machine}' is not in DOWN mode and cannot be "
                                 "brought up")

    def stop(self, machines: Iterable[MachineID]) -> None:
        """The machines come UP and leave the schedule (empty windows go too)."""
        gone = set(machines)
        self.down -= gone
        windows = []
        for window in self.windows:
            left = tuple(m for m in window.machines if m not in gone)
            if left:
                windows.append(dataclasses.replace(window, machines=left))
        self.windows = windows

    def answer(self, machine: MachineID, answer: Answer) -> None:
        self.answers.setdefault(machine, {})[answer.framework_id] = answer

    # -- JSON ------------------------------------------------------------------------
    def schedule_json(self) -> dict[str, Any]:
        return {"windows": [w.to_json() for w in self.windows]}

    def status_json(self, pending: dict[MachineID, list[Answer]]) -> dict[str, Any]:
        """``ClusterStatus``: draining machines with the frameworks' answers (``pending``:
        UNKNOWN answers of inverse offers not answered yet), and the DOWN machines."""
        draining = []
        for machine in self.machines():
            if machine in self.down:
                continue
            statuses = {a.framework_id: a for a in pending.get(machine, ())}
            statuses.update(self.answers.get(machine, {}))
            draining.append({"id": machine.to_json(), "statuses": [
                a.to_json() for _, a in sorted(statuses.items())]})
        return {"draining_machines": draining,
                "down_machines": [m.to_json() for m in sorted(self.down, key=str)]}

    # -- the registry record ---------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        return {"schedule": self.schedule_json(),
                "down": [m.to_json() for m in sorted(self.down, key=str)]}

    def restore(self, record: dict[str, Any]) -> None:
        self.windows = parse_schedule(record.get("schedule") or {})
        self.down = {MachineID.from_json(m) for m in record.get("down") or ()}
        self.answers = {}
