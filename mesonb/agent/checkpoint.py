"""Writing and reading the agent's checkpoints (layout in :mod:`mesonb.agent.paths`).

Only what a later agent recovery needs is written: the agent id (so a restart on the same
work dir re-registers with the same id), framework/executor/task infos and the
``task.updates`` journal of frameworks that asked for ``checkpoint=true``.

As Mesos's agent (``state::checkpoint`` with ``sync=false`` by default, its status update
streams a plain ``protobuf::write``), writes are atomic (a temporary file renamed) or
appends, without fsync: what a killed or crashed agent wrote is in the page cache and the
next agent reads it; only a machine crash can lose the last writes, and after a reboot no
executor is recovered anyway. An fsync per write was over half of an agent's busy time
when hundreds of tasks start (six checkpoint writes each).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from . import paths

log = logging.getLogger(__name__)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)


def append_json_line(path: Path, obj: Any) -> None:
    """Append one JSON record to a journal such as ``task.updates``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(obj, separators=(",", ":")) + "\n")


def read_json_lines(path: Path) -> list[Any]:
    """The records of a journal; a torn last line (crash mid-write) is skipped."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    log.warning("skipping a torn record in %s", path)
    except FileNotFoundError:
        pass
    return out


def read_agent_id(work_dir: Path) -> str | None:
    """The agent id checkpointed by an earlier run on this work dir, if any."""
    link = paths.latest_agent_link(work_dir)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    agent_id = Path(target).name
    return agent_id if paths.is_safe_id(agent_id) else None


def write_agent_id(work_dir: Path, agent_id: str, agent_info: dict[str, Any]) -> None:
    """Record ``agent_id`` as this work dir's agent (``meta/slaves/latest``)."""
    if not paths.is_safe_id(agent_id):
        raise ValueError(f"agent id {agent_id!r} cannot be used as a path component")
    write_json(paths.agent_info_path(work_dir, agent_id), agent_info)
    link = paths.latest_agent_link(work_dir)
    tmp = link.with_name(".latest.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(agent_id, tmp)
    os.replace(tmp, link)


def forget_agent_id(work_dir: Path) -> None:
    """Remove ``meta/slaves/latest`` so the next registration is a fresh one."""
    with contextlib.suppress(FileNotFoundError):
        paths.latest_agent_link(work_dir).unlink()
