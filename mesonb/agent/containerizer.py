"""Executor containers: a process in its own session, inside its sandbox.

This is Mesos's POSIX launcher in miniature. Each executor runs in a new session
(``setsid``), so its session id equals its pid and everything it starts — tasks in their
own process groups included — stays in that session unless it calls ``setsid`` itself.
Destroying a container kills every process of the session, so nothing is left behind.

Resource limits (cgroups v2 or psutil watching) are a later issue; :class:`Container` is
where they will hook in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class LaunchSpec:
    """How to start an executor."""

    argv: list[str]
    env: dict[str, str]
    sandbox: Path
    executable: str | None = None  # exec this instead of argv[0] (CommandInfo shell=false)


@dataclass
class Container:
    """A launched executor process and its session."""

    container_id: str
    pid: int
    sandbox: Path
    process: asyncio.subprocess.Process = field(repr=False)
    returncode: int | None = None

    @property
    def running(self) -> bool:
        return self.returncode is None

    async def wait(self) -> int:
        """Wait for the executor process; its ``returncode`` (negative: killed by signal)."""
        rc = await self.process.wait()
        self.returncode = rc
        return rc

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the executor's process group (not the whole session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_session(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to every process of the container's session; how many were hit."""
        return kill_session(self.pid, sig)


def session_members(sid: int) -> list[int]:
    """Pids whose session id is ``sid`` (Linux: via /proc; elsewhere via psutil)."""
    pids: list[int] = []
    try:
        candidates = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except FileNotFoundError:  # pragma: no cover - not Linux
        import psutil

        candidates = psutil.pids()
    for pid in candidates:
        try:
            if os.getsid(pid) == sid:
                pids.append(pid)
        except (ProcessLookupError, PermissionError, OSError):
            continue
    return pids


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    """Signal every process in session ``sid`` (process groups first, then stragglers)."""
    hit = 0
    groups: set[int] = set()
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            groups.add(os.getpgid(pid))
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
            hit += 1
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            hit += 1
    return hit


async def launch(container_id: str, spec: LaunchSpec) -> Container:
    """Start an executor in ``spec.sandbox`` with stdout/stderr going to files there.

    Raises OSError when the process cannot be started (e.g. the executable is missing).
    """
    spec.sandbox.mkdir(parents=True, exist_ok=True)
    with open(spec.sandbox / "stdout", "ab") as out, open(spec.sandbox / "stderr", "ab") as err:
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            executable=spec.executable,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=str(spec.sandbox),
            env=spec.env,
            start_new_session=True,
        )
    log.info("launched container %s: pid %d, %s", container_id, process.pid, spec.argv)
    return Container(container_id, process.pid, spec.sandbox, process)


async def destroy(container: Container, timeout: float = 5.0) -> int | None:
    """SIGKILL the whole container and reap the executor; its return code."""
    container.kill_session(signal.SIGKILL)
    if container.running:
        try:
            await asyncio.wait_for(asyncio.shield(container.wait()), timeout)
        except TimeoutError:
            log.error("container %s (pid %d) did not die after SIGKILL",
                      container.container_id, container.pid)
    # Children that outlived the executor are still in its session: kill them too.
    container.kill_session(signal.SIGKILL)
    return container.returncode
