"""Reserved resources and persistent volumes: Mesos's ``Resource.reservations`` and
``Resource.disk`` read from and written to JSON.

A plain :class:`~mesonb.protocol.resources.Resources` bag has no roles. What is reserved
travels beside it as a :class:`Portion`: per :class:`Reservation` the resources reserved
to it, and the persistent :class:`Volume` s (each a reserved disk with a
``disk.persistence.id``). :func:`split` reads a JSON ``Resource`` list into the unreserved
bag and the portion; :func:`render` writes both back, in Mesos's refined format
(``reservations: [{"type": "DYNAMIC", "role": ..., "principal": ..., "labels": ...}]``)
with the legacy ``role`` (and ``reservation`` for a dynamic one) filled in as Mesos does
(mesos.proto ``Resource``; docs/reservation.md, docs/persistent-volume.md).

Static reservations come from the agent flag: ``cpus(ads):2;mem(ads):512`` (see
:func:`parse_flag`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import BadRequest
from .resources import EMPTY, Resources

STATIC, DYNAMIC = "STATIC", "DYNAMIC"
VOLUME_MODES = ("RW", "RO")
_ROLE_IN_NAME = re.compile(r"^\s*([^()\s]+)\s*\(\s*([^()]*?)\s*\)\s*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    """``Resource.ReservationInfo``: who a reservation is for, and who made it.

    A *refined* (hierarchical) reservation sits on a stack: ``parents`` are the
    reservations below it, oldest first (``reservations: [eng, eng/dev]`` is
    ``Reservation("eng/dev", parents=(Reservation("eng"),))``), each for an ancestor
    role of the next. A RESERVE pushes one, an UNRESERVE pops the last (:meth:`popped`).
    """

    role: str
    type: str = DYNAMIC
    principal: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    parents: tuple[Reservation, ...] = ()

    def popped(self) -> Reservation | None:
        """The reservation below this one on its stack (None: the resources become
        unreserved when this one goes)."""
        if not self.parents:
            return None
        return dataclasses.replace(self.parents[-1], parents=self.parents[:-1])

    def stack_json(self) -> list[dict[str, Any]]:
        """``Resource.reservations``: the whole stack, this one last."""
        return [*(p.to_json() for p in self.parents), self.to_json()]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.principal is not None:
            out["principal"] = self.principal
        if self.labels:
            out["labels"] = {"labels": [{"key": k, "value": v} for k, v in self.labels]}
        return out

    @classmethod
    def from_json(cls, data: Any, where: str, legacy_role: str | None = None) -> Reservation:
        if not isinstance(data, dict):
            raise BadRequest(f"{where}: expected a ReservationInfo object")
        role = data.get("role", legacy_role)
        if not isinstance(role, str) or not role or role == "*":
            raise BadRequest(f"{where}: a reservation needs a 'role' other than '*'")
        kind = data.get("type", DYNAMIC)
        if kind not in (STATIC, DYNAMIC):
            raise BadRequest(f"{where}: reservation type {kind!r} is not STATIC or DYNAMIC")
        principal = data.get("principal")
        if principal is not None and not isinstance(principal, str):
            raise BadRequest(f"{where}.principal: expected a string")
        return cls(role, kind, principal, _labels(data.get("labels"), f"{where}.labels"))

    def describe(self) -> str:
        who = f" by {self.principal!r}" if self.principal else ""
        below = f" (refining {' > '.join(p.role for p in self.parents)})" if self.parents \
            else ""
        return f"{self.type.lower()} reservation for role {self.role!r}{who}{below}"


def _labels(data: Any, where: str) -> tuple[tuple[str, str], ...]:
    if data is None:
        return ()
    items = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise BadRequest(f"{where}: expected {{\"labels\": [{{\"key\": ..., \"value\": ...}}]}}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise BadRequest(f"{where}.labels[{i}]: expected an object with a 'key'")
        out.append((item["key"], str(item.get("value", ""))))
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class Volume:
    """A persistent volume: ``disk`` MB of reserved disk with a persistence id, mounted
    at ``container_path`` in the sandbox of a task that uses it."""

    id: str
    reservation: Reservation
    disk: float
    container_path: str
    mode: str = "RW"
    principal: str | None = None  # the persistence principal (who created it)

    @property
    def role(self) -> str:
        return self.reservation.role

    def to_json(self, allocation_role: str | None = None) -> dict[str, Any]:
        out = _resources_json(Resources({"disk": self.disk}), self.reservation,
                              allocation_role)[0]
        persistence: dict[str, Any] = {"id": self.id}
        if self.principal is not None:
            persistence["principal"] = self.principal
        out["disk"] = {"persistence": persistence,
                       "volume": {"container_path": self.container_path, "mode": self.mode}}
        return out

    def resized(self, disk: float) -> Volume:
        return dataclasses.replace(self, disk=disk)


@dataclasses.dataclass(slots=True)
class Portion:
    """The reserved part of some resources: per reservation, and the volumes by id."""

    reserved: dict[Reservation, Resources] = dataclasses.field(default_factory=dict)
    volumes: dict[str, Volume] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reserved or self.volumes)

    def copy(self) -> Portion:
        return Portion(dict(self.reserved), dict(self.volumes))

    def total(self) -> Resources:
        """Everything in it as one bag (volumes count as disk)."""
        out = EMPTY
        for res in self.reserved.values():
            out = out + res
        disk = sum(v.disk for v in self.volumes.values())
        return out + Resources({"disk": disk}) if disk else out

    def roles(self) -> set[str]:
        return {r.role for r in self.reserved} | {v.role for v in self.volumes.values()}

    def for_role(self, role: str) -> Portion:
        return Portion({k: v for k, v in self.reserved.items() if k.role == role},
                       {i: v for i, v in self.volumes.items() if v.role == role})

    def add(self, reservation: Reservation, resources: Resources) -> None:
        if resources:
            self.reserved[reservation] = self.reserved.get(reservation, EMPTY) + resources

    def take(self, reservation: Reservation, resources: Resources) -> None:
        left = self.reserved.get(reservation, EMPTY) - resources
        if left:
            self.reserved[reservation] = left
        else:
            self.reserved.pop(reservation, None)

    def __add__(self, other: Portion) -> Portion:
        out = self.copy()
        for k, res in other.reserved.items():
            out.add(k, res)
        out.volumes.update(other.volumes)
        return out

    def __sub__(self, other: Portion) -> Portion:
        out = self.copy()
        for k, res in other.reserved.items():
            out.take(k, res)
        for vid in other.volumes:
            out.volumes.pop(vid, None)
        return out

    def missing(self, other: Portion) -> str | None:
        """Why ``other`` does not fit in this portion, or None when it does."""
        for k, res in other.reserved.items():
            if not self.reserved.get(k, EMPTY).contains(res):
                return f"{res} of the {k.describe()} is not available"
        for vid, volume in other.volumes.items():
            have = self.volumes.get(vid)
            if have is None:
                return f"persistent volume {vid!r} is not available"
            if have.disk != volume.disk or have.reservation != volume.reservation:
                return f"persistent volume {vid!r} does not match the one offered"
        return None

    def to_json(self, allocation_role: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for k, res in self.reserved.items():
            out.extend(_resources_json(res, k, allocation_role))
        out.extend(v.to_json(allocation_role) for v in self.volumes.values())
        return out


def _resources_json(res: Resources, reservation: Reservation | None,
                    allocation_role: str | None) -> list[dict[str, Any]]:
    items = res.to_json("*" if reservation is None else reservation.role, allocation_role)
    if reservation is not None:
        for item in items:
            item["reservations"] = reservation.stack_json()
            if reservation.type == DYNAMIC:
                legacy: dict[str, Any] = {}
                if reservation.principal is not None:
                    legacy["principal"] = reservation.principal
                if reservation.labels:
                    legacy["labels"] = reservation.to_json()["labels"]
                item["reservation"] = legacy
    return items


def render(unreserved: Resources, portion: Portion | None,
           allocation_role: str | None = None) -> list[dict[str, Any]]:
    """The ``Resource`` list for an unreserved bag plus a reserved portion."""
    out = unreserved.to_json("*", allocation_role)
    if portion:
        out.extend(portion.to_json(allocation_role))
    return out


def _special(item: Any) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("reservations") or item.get("reservation") is not None or item.get("disk"):
        return True
    role = item.get("role")
    return isinstance(role, str) and role not in ("", "*")


def _any_special(items: list[Any]) -> bool:
    """Whether any item is reserved, a volume or of a role: :func:`_special` of each,
    with its usual answer (a plain dict of role ``*`` or none) read inline."""
    for item in items:
        if type(item) is dict and "reservations" not in item and "reservation" not in item \
                and "disk" not in item and item.get("role", "*") == "*":
            continue
        if _special(item):
            return True
    return False


def reservation_of(item: dict[str, Any], where: str) -> Reservation | None:
    """The effective (last) reservation of one JSON ``Resource``, with the ones below it
    on its stack as ``parents``, or None: unreserved."""
    stack = item.get("reservations")
    if stack:
        if not isinstance(stack, list):
            raise BadRequest(f"{where}.reservations: expected an array")
        entries = [Reservation.from_json(e, f"{where}.reservations[{i}]")
                   for i, e in enumerate(stack)]
        for i in range(1, len(entries)):
            below, above = entries[i - 1], entries[i]
            if not above.role.startswith(below.role + "/"):
                raise BadRequest(
                    f"{where}.reservations[{i}]: a refined reservation's role must be a"
                    f" sub-role of the one below it, but {above.role!r} is not a sub-role"
                    f" of {below.role!r}")
            if above.type == STATIC:
                raise BadRequest(f"{where}.reservations[{i}]: only the first (bottom)"
                                 " reservation may be STATIC")
        if len(entries) == 1:
            return entries[0]
        return dataclasses.replace(entries[-1], parents=tuple(entries[:-1]))
    role = item.get("role")
    if not isinstance(role, str) or role in ("", "*"):
        if item.get("reservation") is not None:
            raise BadRequest(f"{where}: 'reservation' given for an unreserved resource")
        return None
    legacy = item.get("reservation")
    if legacy is None:
        return Reservation(role, STATIC)
    return Reservation.from_json({**legacy, "type": DYNAMIC, "role": role}, f"{where}.reservation")


def volume_of(item: dict[str, Any], reservation: Reservation | None, where: str) -> Volume | None:
    """The persistent volume one JSON ``Resource`` describes, or None."""
    disk = item.get("disk")
    if not disk:
        return None
    if not isinstance(disk, dict):
        raise BadRequest(f"{where}.disk: expected a DiskInfo object")
    if disk.get("source") is not None:
        raise BadRequest(f"{where}.disk.source: disk sources (MOUNT, PATH, BLOCK, RAW) need a"
                         " storage resource provider, which mesonb agents do not have")
    persistence = disk.get("persistence")
    if persistence is None:
        return None
    if item.get("name") != "disk":
        raise BadRequest(f"{where}: only 'disk' resources can be persistent volumes")
    pid = persistence.get("id") if isinstance(persistence, dict) else None
    if not isinstance(pid, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", pid):
        raise BadRequest(f"{where}.disk.persistence.id: expected a non-empty id of letters,"
                         " digits, '.', '_' or '-'")
    if reservation is None:
        raise BadRequest(f"{where}: persistent volume {pid!r} must be created on reserved disk")
    volume = disk.get("volume") if isinstance(disk.get("volume"), dict) else None
    path = volume.get("container_path") if volume else None
    if not isinstance(path, str) or not path.strip():
        raise BadRequest(f"{where}.disk.volume.container_path: a persistent volume needs one")
    if path.startswith("/") or ".." in path.split("/"):
        raise BadRequest(f"{where}.disk.volume.container_path {path!r}: must be a relative"
                         " path inside the sandbox (mesonb containers have no image)")
    assert volume is not None
    mode = volume.get("mode", "RW")
    if mode not in VOLUME_MODES:
        raise BadRequest(f"{where}.disk.volume.mode: expected RW or RO, not {mode!r}")
    try:
        size = float(item["scalar"]["value"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest(f"{where}: a persistent volume needs a disk size") from None
    principal = persistence.get("principal")
    return Volume(pid, reservation, round(size * 1000) / 1000, path, mode,
                  principal if isinstance(principal, str) else None)


def split(items: Any, path: str = "resources") -> tuple[Resources, Portion]:
    """A JSON ``Resource`` list as (unreserved bag, reserved portion); BadRequest when
    malformed. The common case (nothing reserved) costs one scan of the list."""
    if not isinstance(items, list) or not _any_special(items):
        return Resources.from_json(items, path), Portion()
    plain: list[Any] = []
    portion = Portion()
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not _special(item):
            plain.append(item)
            continue
        reservation = reservation_of(item, where)
        volume = volume_of(item, reservation, where)
        if volume is not None:
            if volume.id in portion.volumes:
                raise BadRequest(f"{where}: persistent volume {volume.id!r} appears twice")
            portion.volumes[volume.id] = volume
            continue
        bare = {k: v for k, v in item.items()
                if k not in ("role", "reservation", "reservations", "disk",
                             "allocation_info")}
        if reservation is None:
            plain.append(bare)
        else:
            portion.add(reservation, Resources.from_json([bare], where))
    return Resources.from_json(plain, path), portion


def portion_of(items: Any) -> Portion:
    """The reserved portion of a JSON ``Resource`` list (empty when malformed: the list
    was validated where it came in)."""
    if not isinstance(items, list) or not _any_special(items):
        return Portion()
    try:
        return split(items)[1]
    except BadRequest:
        return Portion()


def parse_flag(text: str) -> tuple[Resources, dict[str, Resources]]:
    """The agent flag ``cpus:4;cpus(ads):2;mem(ads):512`` as (all resources as one bag,
    the static reservations per role)."""
    reserved: dict[str, list[str]] = {}
    plain: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, value = part.partition(":")
        m = _ROLE_IN_NAME.match(name)
        if m is None:
            plain.append(part)
            continue
        role = m[2] or "*"
        if role == "*":
            plain.append(f"{m[1]}{sep}{value}")
        else:
            reserved.setdefault(role, []).append(f"{m[1]}{sep}{value}")
    static = {role: Resources.parse(";".join(parts)) for role, parts in reserved.items()}
    return Resources.parse(text), static


def static_base(reservation: Reservation) -> Reservation | None:
    """The STATIC reservation at the bottom of ``reservation``'s stack, if any."""
    bottom = reservation.parents[0] if reservation.parents else reservation
    return dataclasses.replace(bottom, parents=()) if bottom.type == STATIC else None


def carved_from_static(dynamic: Portion) -> Portion:
    """What of the agent's static reservations ``dynamic`` (the checkpointed part) took:
    volumes made on statically reserved disk and refinements of static reservations."""
    out = Portion()
    for k, res in dynamic.reserved.items():
        base = static_base(k) if k.parents else None
        if base is not None:
            out.add(base, res)
    for volume in dynamic.volumes.values():
        base = static_base(volume.reservation)
        if base is not None:
            out.add(base, Resources({"disk": volume.disk}))
    return out


def static_portion(static: Mapping[str, Resources]) -> Portion:
    return Portion({Reservation(role, STATIC): res for role, res in static.items() if res})


def volumes_in(items: Iterable[Any] | None) -> list[Volume]:
    """The persistent volumes named in a JSON ``Resource`` list (tasks, executors)."""
    return list(portion_of(list(items or ())).volumes.values())


def flag_to_json(text: str) -> list[dict[str, Any]]:
    """The ``Resource`` list of an agent flag, its static reservations with their role."""
    total, static = parse_flag(text)
    portion = static_portion(static)
    return render(total - portion.total(), portion)
