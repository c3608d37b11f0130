"""Executor containers: a process in its own session, inside its sandbox.

This is Mesos's POSIX launcher in miniature. Each executor runs in a new session
(``setsid``), so its session id equals its pid and everything it starts — tasks in their
own process groups included — stays in that session unless it calls ``setsid`` itself.
Destroying a container kills every process of the session, so nothing is left behind.

A container may also carry its isolation (``isolator`` and ``handle``, set by
:class:`mesonb.agent.containers.Containerizer`): its processes are then its cgroup's, and
once it has exited :meth:`Container.cleanup` kills what is left and removes the cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from .isolation import Handle, Isolator

log = logging.getLogger(__name__)

# Containerizers that re-attach the isolation of a recovered container (True when one did).
ADOPTERS: list[Callable[[Container], bool]] = []


@dataclass
class LaunchSpec:
    """How to start an executor."""

    argv: list[str]
    env: dict[str, str]
    sandbox: Path
    executable: str | None = None  # exec this instead of argv[0] (CommandInfo shell=false)


@dataclass
class Container:
    """A launched executor process and its session.

    ``process`` is None for a container *recovered* by a restarted agent: the executor is
    not this process's child, so its exit is watched through a pidfd and its exit status
    is unknown (``returncode`` stays None once it has exited).
    """

    container_id: str
    pid: int
    sandbox: Path
    process: asyncio.subprocess.Process | None = field(repr=False)
    returncode: int | None = None
    exited: bool = False
    _pidfd: int | None = field(default=None, repr=False)
    _watch: asyncio.Future[None] | None = field(default=None, repr=False)
    isolator: Isolator | None = field(default=None, repr=False)
    handle: Handle | None = field(default=None, repr=False)
    _cleanup: asyncio.Future[None] | None = field(default=None, repr=False)
    finalizers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def running(self) -> bool:
        return not self.exited

    @property
    def recovered(self) -> bool:
        return self.process is None

    async def wait(self) -> int | None:
        """Wait for the executor process; its ``returncode`` (negative: killed by signal;
        None for a recovered container, whose status cannot be known)."""
        if self.process is not None:
            rc = await self.process.wait()
            self.returncode = rc
        elif not self.exited:
            if self._watch is None:  # one watcher however many wait
                self._watch = asyncio.ensure_future(_wait_foreign(self.pid, self._pidfd))
            await asyncio.shield(self._watch)
        self.exited = True
        await self.cleanup()
        return self.returncode

    async def cleanup(self) -> None:
        """Kill whatever is left in the container and remove its isolation (once)."""
        if self.isolator is None or self.handle is None:
            return
        if self._cleanup is None:
            for finalize in self.finalizers:
                finalize()
            self._cleanup = asyncio.ensure_future(self.isolator.destroy(self.handle))
        await asyncio.shield(self._cleanup)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the executor's process group (not the whole session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def kill_session(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to every process of the container (its cgroup's, else its
        session's); how many were hit."""
        if self.isolator is None or self.handle is None or \
                self.isolator.procs_file(self.handle) is None:
            return kill_session(self.pid, sig)
        hit = 0
        for pid in container_pids(self):  # a removed cgroup: everything in it is dead
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
                hit += 1
        return hit


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


def is_alive(pid: int) -> bool:
    """True when ``pid`` is a live process (a zombie is dead: nobody may reap it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def recover(container_id: str, pid: int, sandbox: Path) -> Container | None:
    """Re-attach to an executor started by an earlier run of the agent; None when it is
    gone. The pid must still lead its own session with the sandbox as working directory,
    so a recycled pid is not mistaken for the executor."""
    if not is_alive(pid):
        return None
    try:
        if os.getsid(pid) != pid:
            return None
        cwd = psutil.Process(pid).cwd()
    except (OSError, psutil.Error):
        return None
    if cwd and Path(cwd) != sandbox and Path(cwd).resolve() != sandbox.resolve():
        return None
    pidfd = None
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(pid)
    log.info("recovered container %s: pid %d", container_id, pid)
    container = Container(container_id, pid, sandbox, None, _pidfd=pidfd)
    for adopt in ADOPTERS:  # an agent's containerizer takes its isolation back
        if adopt(container):
            break
    return container


def orphans(root: Path, known: set[int]) -> list[int]:
    """Session leaders working in a sandbox under ``root`` that no container owns: the
    executors of frameworks that do not checkpoint, left behind by a crashed agent."""
    found = []
    prefix = str(root.resolve()) + os.sep
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if proc.pid in known or not cwd.startswith(prefix):
            continue
        with contextlib.suppress(OSError):
            if os.getsid(proc.pid) == proc.pid and is_alive(proc.pid):
                found.append(proc.pid)
    return found


async def _wait_foreign(pid: int, pidfd: int | None) -> None:
    """Wait for a process that is not our child to exit."""
    if pidfd is None:
        while is_alive(pid):
            await asyncio.sleep(0.5)
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(done), 1.0)
                return
            except TimeoutError:
                if not is_alive(pid):  # a zombie nobody reaps still signals; belt and braces
                    return
    finally:
        loop.remove_reader(pidfd)
        with contextlib.suppress(OSError):
            os.close(pidfd)


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
    runner = getattr(container, "runner", None)
    if runner is not None:  # an in-agent command executor (command_runner)
        runner.stop()
    container.kill_session(signal.SIGKILL)
    await container.cleanup()
    if container.running:
        try:
            await asyncio.wait_for(asyncio.shield(container.wait()), timeout)
        except TimeoutError:
            log.error("container %s (pid %d) did not die after SIGKILL",
                      container.container_id, container.pid)
    # Children that outlived the executor are still in its session: kill them too.
    container.kill_session(signal.SIGKILL)
    return container.returncode


def container_pids(container: Container) -> list[int]:
    """The processes of ``container``: its cgroup's, else its session's."""
    procs = container.isolator.procs_file(container.handle) if (
        container.isolator is not None and container.handle is not None) else None
    if procs is None:
        return session_members(container.pid)
    try:
        with open(procs) as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []
