"""Executor containers: a process in its own session, inside its sandbox.

This is Mesos's POSIX launcher in miniature. Each executor runs in a new session
(``setsid``), so its session id equals its pid and everything it starts — tasks in their
own process groups included — stays in that session unless it calls ``setsid`` itself.
Destroying a container kills every process of the session, so nothing is left behind.

Limits come from the isolation backend chosen when the agent starts
(:mod:`mesonb.agent.isolation`): :class:`Containerizer` prepares a container's cgroups (or
its posix monitor) before the executor starts, starts the executor already inside them,
raises the limits as tasks arrive, reports a :class:`~.isolation.Limitation` to the agent,
and removes the cgroups once everything in the container is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from mesonb.executor.process import command_argv, task_environment
from mesonb.protocol.mesos import ExecutorType

from .fetcher import Fetcher, FetcherCache, FetchFailed, FetchURI, uris_of
from .isolation import ContainerizerConfig, Handle, Isolator, Limitation, Limits, choose
from .isolation.disk import DiskWatcher
from .isolation.limits import container_limits
from .reaper import Reaper

if TYPE_CHECKING:
    from .book import Executor
    from .executors import Executors

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
        procs = self.isolator.procs_file(self.handle) if (
            self.isolator is not None and self.handle is not None) else None
        if procs is None:
            return kill_session(self.pid, sig)
        hit = 0
        try:
            with open(procs) as f:
                pids = [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            return 0  # the cgroup is gone: so is everything that was in it
        for pid in pids:
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
    return Container(container_id, pid, sandbox, None, _pidfd=pidfd)


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


IMAGES_UNSUPPORTED = "container images are not supported by this agent"


class ContainerLaunchFailed(OSError):
    """A container that this agent refuses or fails to set up (the tasks get TASK_FAILED
    with REASON_CONTAINER_LAUNCH_FAILED and this message)."""


def image_of(container: Any) -> str | None:
    """The image a ``ContainerInfo`` (raw JSON) asks for: any DOCKER container, or a MESOS
    one with an ``image``; None when it runs on the host."""
    if not isinstance(container, dict):
        return None
    kind = container.get("type")
    if kind == "DOCKER" or kind == 2:
        docker = container.get("docker") or {}
        return str(docker.get("image") or "a Docker container")
    mesos = container.get("mesos") or {}
    image = mesos.get("image") if isinstance(mesos, dict) else None
    if not image:
        return None
    if isinstance(image, dict):
        inner = image.get(str(image.get("type", "")).lower())
        if isinstance(inner, dict) and inner.get("name"):
            return str(inner["name"])
    return str(image)


def refuse_images(executor: Executor) -> None:
    """ContainerLaunchFailed when the executor or one of its tasks names an image: never
    run such a task on the host as if it had none."""
    infos = [executor.info.extra.get("container"),
             *(t.info.extra.get("container") for t in executor.tasks())]
    for container in infos:
        image = image_of(container)
        if image is not None:
            raise ContainerLaunchFailed(f"{IMAGES_UNSUPPORTED} (asked for {image})")


def uris_to_fetch(executor: Executor) -> list[FetchURI]:
    """What the fetcher gets for a new container: the executor's command URIs, and for
    the agent's own executors (command, default) those of their tasks' commands."""
    commands = [executor.info.command]
    if executor.command_executor or executor.info.type is ExecutorType.DEFAULT:
        commands += [t.info.command for t in executor.tasks()]
    try:
        return uris_of(c for c in commands if c is not None)
    except FetchFailed as exc:
        raise ContainerLaunchFailed(str(exc)) from None


def _findable(name: str, env: Mapping[str, str], cwd: Path) -> bool:
    """Whether ``exec`` would find ``name`` (so a missing command still fails the launch
    rather than the shell that joins the cgroups)."""
    if os.sep in name:
        path = cwd / name
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(name, path=env.get("PATH", os.defpath)) is not None


class Containerizer:
    """One agent's containers: the isolation backend and the limits of each container."""

    def __init__(self, config: ContainerizerConfig | None = None,
                 work_dir: Path | None = None,
                 executors: Callable[[], Executors] | None = None) -> None:
        self.config = c = config or ContainerizerConfig()
        self.executors = executors  # for the in-agent command executor
        self.reaper = Reaper()
        self.isolator, self.isolation = choose(c)
        self.disk = DiskWatcher(c.container_disk_watch_interval,
                                c.enforce_container_disk_quota) if (
            "disk/du" in self.isolation) else None
        cache_dir = Path(c.fetcher_cache_dir) if c.fetcher_cache_dir else (
            Path(work_dir or ".") / "fetch_cache")
        self.fetcher = Fetcher(FetcherCache(cache_dir, c.fetcher_cache_size),
                               c.fetcher_stall_timeout)

    def flags(self) -> dict[str, str]:
        """The containerizer's entries of the agent's ``/flags`` (Mesos's names)."""
        c = self.config
        return {
            "isolation": ",".join(self.isolation),
            "launcher": "linux" if self.isolator.name.startswith("cgroups") else "posix",
            "cgroups_root": c.cgroups_root,
            "cgroups_enable_cfs": str(c.cgroups_enable_cfs).lower(),
            "enforce_container_disk_quota": str(c.enforce_container_disk_quota).lower(),
            "container_disk_watch_interval": f"{c.container_disk_watch_interval:g}secs",
            "isolation_backend": self.isolator.name,
            "fetcher_cache_size": f"{c.fetcher_cache_size}B",
            "fetcher_cache_dir": str(self.fetcher.cache.directory),
            "fetcher_stall_timeout": f"{c.fetcher_stall_timeout:g}secs",
        }

    def limits(self, executor: Executor) -> Limits:
        """The limits of ``executor``'s container: its resources plus its live tasks'."""
        tasks = [(t.resources, t.info.extra.get("limits"))
                 for t in executor.tasks() if not t.state.terminal]
        c = self.config
        return container_limits(executor.resources, tasks, enable_cfs=c.cgroups_enable_cfs,
                                pids_max=c.container_pids_limit,
                                enforce_disk=c.enforce_container_disk_quota)

    async def launch(self, executor: Executor, spec: LaunchSpec,
                     on_limitation: Callable[[Limitation], None]) -> Container:
        """Start ``executor`` inside its isolation; OSError when it cannot be started."""
        refuse_images(executor)
        try:
            await self.fetcher.fetch(uris_to_fetch(executor), spec.sandbox)
        except FetchFailed as exc:
            raise ContainerLaunchFailed(str(exc)) from None
        isolator = self.isolator
        handle = isolator.prepare(executor.container_id, self.limits(executor))
        try:
            argv, executable, joined = isolator.wrap(handle, spec.argv, spec.executable)
            if argv is not spec.argv and not _findable(
                    spec.executable or spec.argv[0], spec.env, spec.sandbox):
                raise FileNotFoundError(
                    f"No such file or directory: {spec.executable or spec.argv[0]!r}")
            if self._in_agent(executor):
                return await self._start_command(executor, spec, handle, on_limitation)
            wrapped = LaunchSpec(argv, spec.env, spec.sandbox, executable)
            container = await launch(executor.container_id, wrapped)
            container.isolator, container.handle = isolator, handle
            if not joined:
                isolator.join(handle, container.pid)
            isolator.watch(handle, container.pid, on_limitation)
            self._watch_disk(container, on_limitation)
        except BaseException:
            await isolator.destroy(handle)
            raise
        return container

    def _in_agent(self, executor: Executor) -> bool:
        """Whether the agent itself runs this command task (see command_runner)."""
        if (not executor.command_executor or self.executors is None
                or self.config.command_executor != "agent" or len(executor.tasks()) != 1):
            return False
        framework = self.executors().frameworks.get(executor.framework_id)
        if framework is None or framework.checkpoint:
            return False
        command = executor.tasks()[0].info.command
        try:  # a missing program: the executor process reports it as Mesos's does
            argv, executable = command_argv(command) if command else ([], None)
        except ValueError:
            return False
        return bool(argv) and _findable(executable or argv[0], os.environ, Path("."))

    async def _start_command(self, executor: Executor, spec: LaunchSpec, handle: Handle,
                       on_limitation: Callable[[Limitation], None]) -> Container:
        from . import command_runner

        assert self.executors is not None
        task = executor.tasks()[0].info
        if task.command is None:
            raise ContainerLaunchFailed("the task has no command")
        try:
            argv, executable = command_argv(task.command)
        except ValueError as exc:
            raise ContainerLaunchFailed(str(exc)) from None
        env = task_environment(spec.env, task, str(spec.sandbox))
        wrapped, wrapped_exe, joined = self.isolator.wrap(handle, argv, executable)
        container = await command_runner.start(self.executors, executor, wrapped, wrapped_exe,
                                         env, spec.sandbox)
        container.isolator, container.handle = self.isolator, handle
        if not joined:
            self.isolator.join(handle, container.pid)
        self.isolator.watch(handle, container.pid, on_limitation)
        self._watch_disk(container, on_limitation)
        container.runner.limited = lambda: handle.limited is not None
        session = container.pid
        self.reaper.add(session, self.isolator.procs_file(handle))
        container.runner.finished.add_done_callback(lambda _: self.reaper.remove(session))
        container.subscribe()
        return container

    @staticmethod
    def disk_mb(executor: Executor) -> float:
        """The container's ``disk``: its executor's and its live tasks' (MB)."""
        container = executor.container
        handle = container.handle if container is not None else None
        cached = handle.extra.get("disk_mb") if handle is not None else None
        if cached is not None and cached[0] == len(executor.tasks()):
            return float(cached[1])
        disk = executor.resources.get("disk") + sum(
            t.resources.get("disk") for t in executor.tasks() if not t.state.terminal)
        if handle is not None:
            handle.extra["disk_mb"] = (len(executor.tasks()), disk)
        return disk

    def _watch_disk(self, container: Container,
                    on_limitation: Callable[[Limitation], None]) -> None:
        if self.disk is None or container.handle is None:
            return
        self.disk.watch(container.handle, container.sandbox, on_limitation)
        disk, cid = self.disk, container.container_id
        container.finalizers.append(lambda: disk.forget(cid))

    def update(self, executor: Executor) -> None:
        """Tasks came or went: the container's limits follow (memory only rises)."""
        container = executor.container
        if container is not None and container.handle is not None and container.running:
            assert container.isolator is not None
            container.isolator.update(container.handle, self.limits(executor))

    def close(self) -> None:
        self.isolator.close()
        if self.disk is not None:
            self.disk.close()
        self.reaper.close()
