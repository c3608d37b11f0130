"""The agent's containers: isolation chosen at start-up, then each container's life.

:class:`Containerizer` (one per agent) refuses container images, fetches a container's
URIs (:mod:`.fetcher`), prepares its isolation with the limits of its executor and tasks
(:mod:`.isolation`), starts the executor inside it — or, for a command task, the task
itself with the agent as its executor (:mod:`.command_runner`) —, watches its limits
(memory, disk/du, network/ports), raises them as tasks arrive, and reports a
:class:`~.isolation.Limitation` to the agent. The process side (sessions, launch,
destroy, recovery) is :mod:`.containerizer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesonb.executor.process import command_argv, task_environment, task_ports
from mesonb.protocol.checks import validate_check
from mesonb.protocol.mesos import ExecutorType

from . import command_runner
from .command_runner import SPAWNER
from .containerizer import ADOPTERS, Container, LaunchSpec, container_pids, launch
from .fetcher import Fetcher, FetcherCache, FetchFailed, FetchURI, uris_of
from .gpus import Gpu, GpuAllocator, device_rules, invalid_gpus, visible_env
from .gpus import detect as detect_gpus
from .isolation import ContainerizerConfig, Handle, Limitation, Limits, choose
from .isolation.base import UpdateFailed
from .isolation.disk import DiskWatcher
from .isolation.ports import PortsWatcher
from .limits_memo import LimitsMemo, at_least
from .mounts import release as release_mounts
from .reaper import Reaper
from .sandbox_gc import Leftovers, LogRotator, SandboxGC, leftovers

if TYPE_CHECKING:
    from .book import Executor, Task
    from .executors import Executors

log = logging.getLogger(__name__)

# Seconds after a task of a multi-task executor ends within which its container's limits
# drop (Containerizer.task_ended): ends in a burst are applied once.
SETTLE_LIMITS = 0.2
_EPSILON = 1e-9  # sums of CPU shares compared as floats

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

    _memo: LimitsMemo | None = None  # made at first use

    def __init__(self, config: ContainerizerConfig | None = None,
                 work_dir: Path | None = None,
                 executors: Callable[[], Executors] | None = None,
                 agent_ports: Callable[[], list[tuple[int, int]]] | None = None) -> None:
        self.config = c = config or ContainerizerConfig()
        self.executors = executors  # for the in-agent command executor
        self.agent_ports = agent_ports or (lambda: [])  # the agent's ``ports`` ranges
        self.reaper = Reaper()
        self._settling: set[str] = set()  # containers whose limits drop soon
        self._peaks: dict[str, Limits] = {}  # their highest limits since
        self._most: dict[str, int] = {}  # and the most tasks they ran at once, over two
        self.isolator, self.isolation = choose(c)
        self.disk = DiskWatcher(c.container_disk_watch_interval,
                                c.enforce_container_disk_quota) if (
            "disk/du" in self.isolation) else None
        self.ports = PortsWatcher(self._agent_ports) if (
            "network/ports" in self.isolation) else None
        self.gc = SandboxGC(Path(work_dir or "."), c.gc_delay, c.gc_disk_headroom,
                            c.disk_watch_interval)
        self.logs = LogRotator(c.logrotate_max_size, c.logrotate_max_files) if (
            c.logrotate_max_size) else None
        self.gpus = GpuAllocator(detect_gpus(c.nvidia_gpu_devices))
        self.work_dir = Path(work_dir or ".").resolve()
        ADOPTERS.append(self._adopt)
        if self.gpus.gpus and "gpu/nvidia" not in self.isolation:
            self.isolation.append("gpu/nvidia")
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
            "gc_delay": f"{c.gc_delay:g}secs",
            "gc_disk_headroom": f"{c.gc_disk_headroom:g}",
            "logrotate_max_size": f"{c.logrotate_max_size or 0}B",
        }

    def limits(self, executor: Executor, live: list[Task] | None = None) -> Limits:
        """The limits of ``executor``'s container: its resources plus its live tasks'
        (``live``, when the caller has them)."""
        if live is None:
            live = [t for t in executor.tasks() if not t.state.terminal]
        memo = self._memo
        if memo is None:
            memo = self._memo = LimitsMemo()
        c = self.config
        return memo.limits(executor.resources, live, enable_cfs=c.cgroups_enable_cfs,
                           pids_max=c.container_pids_limit,
                           enforce_disk=c.enforce_container_disk_quota)

    async def launch(self, executor: Executor, spec: LaunchSpec,
                     on_limitation: Callable[[Limitation], None]) -> Container:
        """Start ``executor`` inside its isolation; OSError when it cannot be started."""
        refuse_images(executor)
        limits = self.limits(executor)
        try:
            gpus = self.gpus.allocate(executor.container_id, limits.gpus)
        except ValueError as exc:
            raise ContainerLaunchFailed(str(exc)) from None
        spec.env.update(visible_env(gpus) if gpus else {})
        try:
            return await self._launch(executor, spec, on_limitation, limits, gpus)
        except BaseException:
            self.gpus.release(executor.container_id)
            raise

    async def _launch(self, executor: Executor, spec: LaunchSpec,
                      on_limitation: Callable[[Limitation], None], limits: Limits,
                      gpus: list[Gpu]) -> Container:
        try:
            await self.fetcher.fetch(uris_to_fetch(executor), spec.sandbox)
        except FetchFailed as exc:
            raise ContainerLaunchFailed(str(exc)) from None
        isolator = self.isolator
        # Making cgroups is the kernel's slowest step of a launch: off the event loop.
        handle = await asyncio.get_running_loop().run_in_executor(
            SPAWNER, isolator.prepare, executor.container_id, limits)
        try:
            if gpus:
                isolator.restrict_devices(handle, *device_rules(gpus))
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
            self._watch_extras(executor, container, on_limitation)
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
        if framework is None or (framework.checkpoint
                                 and not command_runner.asks_in_agent(framework.info)):
            return False
        command = executor.tasks()[0].info.command
        try:  # a missing program: the executor process reports it as Mesos's does
            argv, executable = command_argv(command) if command else ([], None)
        except ValueError:
            return False
        return bool(argv) and _findable(executable or argv[0], os.environ, Path("."))

    async def _start_command(self, executor: Executor, spec: LaunchSpec, handle: Handle,
                       on_limitation: Callable[[Limitation], None]) -> Container:
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
        self._watch_extras(executor, container, on_limitation)
        container.runner.limited = lambda: handle.limited is not None
        framework = self.executors().frameworks.get(executor.framework_id)
        if framework is None or not framework.checkpoint:  # those outlive the agent
            session = container.pid
            self.reaper.add(session, self.isolator.procs_file(handle))
            container.runner.finished.add_done_callback(lambda _: self.reaper.remove(session))
        container.subscribe()
        return container

    def adopt_task(self, executor: Executor, found: Container) -> Container:
        """A restarted agent's in-agent command task that outlived the agent (see
        :func:`.command_runner.adopt`); unchanged without the executors to report to."""
        if self.executors is None:
            return found
        return command_runner.adopt(self.executors, executor, found)

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

    def _watch_extras(self, executor: Executor, container: Container,
                      on_limitation: Callable[[Limitation], None]) -> None:
        """disk/du and network/ports for a started container."""
        handle, cid = container.handle, container.container_id
        allocator, gc, sandbox = self.gpus, self.gc, container.sandbox
        container.finalizers.append(lambda: allocator.release(cid))
        container.finalizers.append(lambda: release_mounts(sandbox))  # its volumes
        container.finalizers.append(lambda: gc.schedule(sandbox))
        if self.logs is not None:
            logs = self.logs
            logs.watch(cid, sandbox)
            container.finalizers.append(lambda: logs.forget(cid))
        if handle is None:
            return
        if self.disk is not None:
            disk = self.disk
            disk.watch(handle, container.sandbox, on_limitation)
            container.finalizers.append(lambda: disk.forget(cid))
        if self.ports is not None:
            ports = self.ports

            def allowed() -> set[int]:
                given = {p for b, e in executor.resources.ranges.get("ports", ())
                         for p in range(b, e + 1)}
                for task in executor.tasks():
                    given.update(task_ports(task.info))
                return given

            ports.watch(handle, lambda: container_pids(container), allowed, on_limitation)
            container.finalizers.append(lambda: ports.forget(cid))

    def _agent_ports(self) -> list[tuple[int, int]]:
        return list(self.agent_ports())

    @staticmethod
    def invalid(task: Any) -> str | None:
        """Why a task cannot run here at all (TASK_ERROR): fractional ``gpus``, a malformed
        ``health_check`` or ``check`` (Mesos's master refuses those)."""
        for resource in task.resources or ():
            if resource.get("name") == "gpus":
                problem = invalid_gpus(float((resource.get("scalar") or {}).get("value", 0)))
                if problem:
                    return problem
        extra = getattr(task, "extra", None) or {}
        for key, health, words in (("health_check", True, "health check"),
                                   ("check", False, "check")):
            if extra.get(key) is not None:
                try:
                    validate_check(extra[key], key, health)
                except ValueError as exc:
                    return f"Task's {words} is invalid: {exc}"
        return None

    def update(self, executor: Executor, settled: bool = False) -> None:
        """Tasks came or went: the container's limits follow (memory only rises). Limits
        equal to those applied write nothing: each cgroup write costs the agent's loop
        tens of microseconds. A task joining others only raises them (what ended
        meanwhile is taken off when ends settle, :meth:`task_ended`), so a burst of
        short calls ending and starting mostly finds nothing to write. A task alone in
        its container (or ``settled``) gets the exact limits of the tasks running, except
        that limits no higher than those of as many tasks like it as ran at once since
        ends last settled (two at least) stay until ends settle: a burst going between
        one call and more would lower and raise them at each call. A small task after
        bigger ones gets its own at once."""
        container = executor.container
        if container is not None and container.handle is not None and container.running:
            assert container.isolator is not None
            handle = container.handle
            live = [t for t in executor.tasks() if not t.state.terminal]
            limits = self.limits(executor, live)
            cid = executor.container_id
            most = self._most.get(cid, 2)
            if len(live) > most:  # (two or fewer: nothing kept, nothing to forget)
                self._most[cid] = most = len(live)
            if not settled and len(live) > 1:
                # lowered when ends settle; until then, straight back to the peak they
                # had since the last settling (a burst rises again after a task alone)
                assert self._memo is not None  # (made by self.limits)
                wanted = self._memo.joined(handle.limits, limits, self._peaks.get(cid))
            else:
                wanted = handle.limits.raised_to(limits)
                if not settled and live and wanted != handle.limits and self._as_if_copies(
                        executor, live, handle.limits, most):
                    # a task alone keeps what as many like it as ran since the last
                    # settling would have: a burst going between one call and more
                    # writes nothing
                    wanted = at_least(wanted, handle.limits)
            if wanted != handle.limits:
                peak = self._peaks.get(cid)
                self._peaks[cid] = wanted if peak is None else at_least(peak, wanted)
                container.isolator.update(handle, wanted)

    def _as_if_copies(self, executor: Executor, live: list[Task], applied: Limits,
                      copies: int) -> bool:
        """Whether ``applied`` CPU limits are no higher than those of ``copies`` tasks
        like the one of ``live``."""
        copied = self.limits(executor, live * copies)
        if applied.cpus > copied.cpus + _EPSILON:
            return False
        if copied.cpus_cap is None or applied.cpus_cap is None:
            return copied.cpus_cap is None
        return applied.cpus_cap <= copied.cpus_cap + _EPSILON

    def task_ended(self, executor: Executor | None) -> None:
        """A task of a multi-task executor ended: its share of the CPU cap goes (memory
        stays: lowering a hard limit under the usage would start the OOM killer), at
        most :data:`SETTLE_LIMITS` seconds later. Ends are coalesced: a burst of short
        calls ending and starting mostly finds the limits unchanged and writes no cgroup
        file (a start raises them at once, before its task runs: :meth:`update`)."""
        container = executor.container if executor is not None else None
        if container is None or getattr(container, "runner", None) is not None:
            return
        assert executor is not None
        if executor.container_id in self._settling:
            return
        self._settling.add(executor.container_id)

        def settle() -> None:
            self._settling.discard(executor.container_id)
            self._peaks.pop(executor.container_id, None)
            self._most.pop(executor.container_id, None)
            with contextlib.suppress(UpdateFailed):  # lowering them: logged, kept higher
                self.update(executor, settled=True)

        asyncio.get_running_loop().call_later(SETTLE_LIMITS, settle)

    async def collect_leftovers(self, agent_id: str | None, live: set[Path]) -> Leftovers:
        """At start-up, after recovery: what an earlier run of the agent left whose
        containers are gone (``live``: the sandboxes of those running now) is scheduled
        for garbage collection (:func:`.sandbox_gc.leftovers`), their cgroups are
        destroyed (with any process still in them), and the fetcher cache, whose index
        an earlier run kept in memory, is emptied."""
        found = Leftovers()
        loop = asyncio.get_running_loop()

        def look() -> tuple[Leftovers, list[Handle]]:  # disk reads only: on a thread
            found = leftovers(self.work_dir, agent_id, live)
            return found, [h for h in map(lambda c: self.isolator.adopt(c, 0),
                                          found.container_ids) if h is not None]

        try:
            found, handles = await loop.run_in_executor(None, look)
            for handle in handles:
                log.info("destroying the cgroups of container %s, left by an earlier run",
                         handle.container_id)
                await self.isolator.destroy(handle)
            self.gc.schedule_leftovers(found)
            removed = await loop.run_in_executor(None, self.fetcher.cache.clear_leftovers)
            if removed:
                log.info("removed %d fetcher cache files of an earlier run", removed)
        except Exception:  # what is left stays; the agent must start all the same
            log.exception("collecting what an earlier run of the agent left failed")
        return found

    def metrics(self) -> dict[str, float]:
        """The containerizer's entries of the agent's ``/metrics/snapshot`` (Mesos's)."""
        cache = self.fetcher.cache
        return {"gc/path_removals_pending": float(len(self.gc.scheduled)),
                "gc/path_removals_succeeded": float(self.gc.removed),
                "containerizer/fetcher/task_fetches_succeeded": float(self.fetcher.succeeded),
                "containerizer/fetcher/task_fetches_failed": float(self.fetcher.failed),
                "containerizer/fetcher/cache_size_total_bytes": float(cache.size),
                "containerizer/fetcher/cache_size_used_bytes": float(cache.used())}

    def _adopt(self, container: Container) -> bool:
        """A container recovered from an earlier run of this agent: watch its cgroups
        again (at its memory limit, it waited for us)."""
        if self.work_dir not in container.sandbox.resolve().parents:
            return False
        handle = self.isolator.adopt(container.container_id, container.pid)
        if handle is None:
            return False
        container.isolator, container.handle = self.isolator, handle
        cid, gc, sandbox = container.container_id, self.gc, container.sandbox
        self.isolator.watch(handle, container.pid, lambda lim: self._limited(cid, lim))
        container.finalizers.append(lambda: release_mounts(sandbox))  # its volumes
        container.finalizers.append(lambda: gc.schedule(sandbox))
        return True

    def _limited(self, container_id: str, limitation: Limitation) -> None:
        executors = self.executors() if self.executors is not None else None
        for executor in executors.all_executors() if executors is not None else ():
            if executor.container_id == container_id:
                assert executors is not None
                executors.lifecycle.limited(executor, limitation.reason, limitation.message)
                return

    def close(self) -> None:
        if self._adopt in ADOPTERS:
            ADOPTERS.remove(self._adopt)
        self.isolator.close()
        if self.disk is not None:
            self.disk.close()
        if self.ports is not None:
            self.ports.close()
        if self.logs is not None:
            self.logs.close()
        self.gc.close()
        self.reaper.close()
