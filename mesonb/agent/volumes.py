"""The agent's reserved resources and persistent volumes.

* Static reservations come from ``--resources`` (``cpus(ads):2;mem(ads):512``); the agent
  reports them in its REGISTER with their role (``reservations`` of type STATIC).
* Dynamic reservations and persistent volumes are decided by the master, which sends the
  whole list in CHECKPOINT_RESOURCES after each change. The agent checkpoints it in
  ``<work_dir>/meta/resources/resources.json`` and reports it again when it (re-)registers
  after a restart, so they survive both an agent restart and a master failover.
* Each persistent volume is a directory ``<work_dir>/volumes/roles/<role>/<id>``, created
  when the volume appears in a checkpoint and deleted (with its data) when a DESTROY
  removes it. It outlives every task that uses it, and agent restarts.
* A task (or executor) whose resources hold a volume finds it in its sandbox at the
  volume's ``container_path``. As root the volume is **bind-mounted** there, as Mesos's
  ``filesystem/linux`` isolator does, and a ``mode: RO`` volume is remounted read-only (a
  write into it fails with EROFS). Not as root (or where the kernel refuses the mount)
  the agent falls back to a **symbolic link** to the volume's directory, and ``RO`` is
  recorded but not enforced. ``flags.persistent_volumes`` in the agent's ``/state``
  says which (``bind_mount`` or ``symlink``).
* A bind mount must never let a sandbox's removal empty the volume: the mounts are taken
  down when the container ends, every removal of a sandbox goes through
  :func:`mesonb.agent.mounts.remove_tree` (unmount first, never descend into a mount),
  and recovery unmounts what a killed agent left (:meth:`AgentVolumes.unmount_stale`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from mesonb.protocol.errors import BadRequest
from mesonb.protocol.reservations import (
    DYNAMIC,
    Portion,
    Volume,
    carved_from_static,
    parse_flag,
    render,
    split,
    static_portion,
)
from mesonb.protocol.resources import Resources

from . import mounts
from .checkpoint import write_json

log = logging.getLogger(__name__)


BIND, SYMLINK = "bind_mount", "symlink"


PLAIN_KEPT = 32  # distinct plain resource lists whose parse is kept


def _text_of(items: list[Any]) -> bytes | None:
    """A list's JSON text (orjson's: compact, keys in order, floats in their shortest
    exact form), None for what orjson does not write, or writes as ``null`` (which may
    be NaN or an infinity as well as None: texts that name one list only)."""
    try:
        text = orjson.dumps(items)
    except TypeError:
        return None
    return None if b"null" in text else text


def _all_plain(items: list[Any]) -> bool:
    """Every item a plain dict of role ``*`` (or none), neither reserved nor a disk: the
    test :func:`mesonb.protocol.reservations.split` passes such a list by, parsing it as
    it is."""
    for item in items:
        if (type(item) is not dict or "reservations" in item or "reservation" in item
                or "disk" in item or item.get("role", "*") != "*"):
            return False
    return True


def volume_dir(work_dir: Path, volume: Volume) -> Path:
    """Where a persistent volume's data lives on the agent."""
    role = urllib.parse.quote(volume.role, safe="")
    return Path(work_dir) / "volumes" / "roles" / role / volume.id


class AgentVolumes:
    """Static reservations, the checkpointed dynamic ones, and the volumes' directories."""

    def __init__(self, work_dir: Path, resources_flag: str | None) -> None:
        self.work_dir = Path(work_dir)
        self.static = static_portion(parse_flag(resources_flag)[1]) if resources_flag \
            else Portion()
        self.path = self.work_dir / "meta" / "resources" / "resources.json"
        self.checkpointed = self._read()
        self._sync_dirs()
        # bind mounts as root (as Mesos); symbolic links otherwise, or once refused
        self.mode = BIND if os.geteuid() == 0 else SYMLINK
        self._parsed: tuple[list[Any], Resources] | None = None  # invalid()'s last parse
        # invalid()'s parses of plain lists of scalars, by the lists' JSON text: the same
        # text is the same list, plain and parsed alike (a burst of calls has one or a few)
        self._plain: dict[bytes, Resources] = {}

    def _read(self) -> Portion:
        try:
            items = json.loads(self.path.read_text())
            return split(items, "checkpointed resources")[1]
        except FileNotFoundError:
            return Portion()
        except (ValueError, BadRequest) as exc:
            log.error("ignoring unreadable checkpointed resources %s: %s", self.path, exc)
            return Portion()

    def portion(self) -> Portion:
        """Static reservations (less the volumes and refinements carved out of them) and
        the checkpointed ones."""
        return (self.static - carved_from_static(self.checkpointed)) + self.checkpointed

    def resources_json(self, total: Resources) -> list[dict[str, Any]]:
        """The agent's ``resources`` for its REGISTER: unreserved, static, checkpointed."""
        portion = self.portion()
        return render(total - portion.total(), portion)

    def checkpoint(self, resources: list[dict[str, Any]]) -> None:
        """CHECKPOINT_RESOURCES: keep the master's list and make the volumes' directories
        match it (new volumes created, destroyed ones deleted)."""
        try:
            portion = split(resources, "checkpoint_resources.resources")[1]
        except BadRequest as exc:
            log.error("ignoring CHECKPOINT_RESOURCES: %s", exc.message)
            return
        portion = Portion({k: v for k, v in portion.reserved.items() if k.type == DYNAMIC},
                          portion.volumes)
        gone = [v for i, v in self.checkpointed.volumes.items() if i not in portion.volumes]
        write_json(self.path, portion.to_json())
        self.checkpointed = portion
        self._sync_dirs()
        for volume in gone:
            path = volume_dir(self.work_dir, volume)
            log.info("persistent volume %s destroyed: deleting %s", volume.id, path)
            shutil.rmtree(path, ignore_errors=True)

    def _sync_dirs(self) -> None:
        for volume in self.checkpointed.volumes.values():
            volume_dir(self.work_dir, volume).mkdir(parents=True, exist_ok=True)

    def invalid(self, resources: Any) -> str | None:
        """Why a task or executor with these resources cannot run here: a volume it names
        that this agent does not hold. A list of plain unreserved resources (the usual
        case) is parsed once for both: its parse is kept for :meth:`take_parsed`, and
        for the next list with the same JSON text, which gets the same (immutable)
        :class:`Resources` object without a parse."""
        if type(resources) is list:
            text = _text_of(resources)
            parsed = self._plain.get(text) if text is not None else None
            if parsed is not None:  # this very JSON was plain and parsed before
                self._parsed = (resources, parsed)
                return None
            if _all_plain(resources):
                try:  # what split() does with such a list: one parse, no volume named
                    parsed = Resources.from_json(resources, "task.resources")
                except BadRequest as exc:
                    return exc.message
                self._parsed = (resources, parsed)
                if text is not None and not parsed.ranges and not parsed.sets:
                    if len(self._plain) >= PLAIN_KEPT:
                        self._plain.clear()
                    self._plain[text] = parsed
                return None
        try:
            wanted = split(resources or [], "task.resources")[1].volumes
        except BadRequest as exc:
            return exc.message
        for vid in wanted:
            if vid not in self.checkpointed.volumes:
                return f"Persistent volume {vid!r} does not exist on this agent"
        return None

    def take_parsed(self, resources: Any) -> Resources | None:
        """The parse :meth:`invalid` made of this very list (``is``), handed out once;
        None when it made none (a task's ``Task.resources`` then parses the list)."""
        kept = self._parsed
        if kept is None or kept[0] is not resources:
            return None
        self._parsed = None
        return kept[1]

    def mount(self, sandbox: Path, resources: Any) -> None:
        """Put each volume in ``resources`` into ``sandbox`` at its container_path: a bind
        mount (read-only for RO) as root, else a symbolic link."""
        if not self.checkpointed.volumes:
            return  # none to mount (the common case: no parse)
        try:
            wanted = split(resources or [], "task.resources")[1].volumes
        except BadRequest:
            return
        for vid in wanted:
            volume = self.checkpointed.volumes.get(vid)
            if volume is None:
                continue
            source = volume_dir(self.work_dir, volume)
            source.mkdir(parents=True, exist_ok=True)
            target = Path(sandbox) / volume.container_path
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.mode == BIND and self._bind(vid, volume, source, target):
                continue
            self._link(vid, source, target)

    def _bind(self, vid: str, volume: Volume, source: Path, target: Path) -> bool:
        """Bind-mount the volume; False when it must be linked instead."""
        if target.is_symlink():
            target.unlink()
        if mounts.mount_points(target)[-1:] == [Path(os.path.realpath(target))]:
            return True  # already there (a second task of the same executor)
        try:
            target.mkdir(exist_ok=True)
        except OSError as exc:
            log.error("cannot mount volume %s at %s: %s", vid, target, exc)
            return True
        try:
            mounts.bind(source, target, read_only=volume.mode == "RO")
        except OSError as exc:
            log.warning("cannot bind-mount persistent volume %s (%s): linking volumes into"
                        " sandboxes from now on (mode RO is then not enforced)", vid, exc)
            self.mode = SYMLINK
            with contextlib.suppress(OSError):
                target.rmdir()
            return False
        log.info("persistent volume %s mounted at %s (%s)", vid, target, volume.mode)
        return True

    @staticmethod
    def _link(vid: str, source: Path, target: Path) -> None:
        if target.is_symlink():
            if os.readlink(target) == str(source):
                return
            target.unlink()
        elif target.exists():
            log.error("cannot mount volume %s at %s: the path exists", vid, target)
            return
        target.symlink_to(source, target_is_directory=True)
        log.info("persistent volume %s linked at %s", vid, target)

    def unmount_stale(self, live: list[Path]) -> list[Path]:
        """At recovery: unmount the mounts under the work directory's sandboxes that are
        not in a ``live`` sandbox (a killed agent left them)."""
        done = mounts.unmount_stale(self.work_dir / "slaves", live)
        if done:
            log.info("unmounted %d stale persistent volume mounts: %s", len(done),
                     ", ".join(map(str, done)))
        return done

    def state_json(self, total: Resources) -> dict[str, Any]:
        """``reserved_resources`` (role -> flat), ``unreserved_resources`` and
        ``reserved_resources_full`` of the agent's ``/state``, as Mesos shows them."""
        portion = self.portion()
        roles = sorted(portion.roles())
        return {
            "reserved_resources": {r: portion.for_role(r).total().to_flat() for r in roles},
            "unreserved_resources": (total - portion.total()).to_flat(),
            "reserved_resources_full": {r: portion.for_role(r).to_json() for r in roles},
        }
