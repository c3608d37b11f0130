"""Health checks and checks of a running task, as Mesos's built-in executors run them.

``TaskInfo.health_check`` (mesos.proto ``HealthCheck``; docs/health-checks.md):

* ``type`` ``COMMAND`` (``command``: a CommandInfo run in the task's sandbox with its
  environment; healthy when it exits 0), ``HTTP`` (``http: {scheme, port, path,
  statuses}``: a GET to 127.0.0.1, healthy on one of ``statuses``, else on 200-399) or
  ``TCP`` (``tcp: {port}``: healthy when a connection opens);
* ``delay_seconds`` 15, ``interval_seconds`` 10, ``timeout_seconds`` 20,
  ``consecutive_failures`` 3, ``grace_period_seconds`` 10 (Mesos's defaults);
* failures inside the grace period (counted from the launch) are ignored until the first
  success; every unhealthy result and the first healthy one (after a start or after
  unhealthy ones) are reported; after ``consecutive_failures`` in a row the task is killed.

``TaskInfo.check`` (``CheckInfo``, the same types without kills, ``delay_seconds`` 15,
``interval_seconds`` 10, ``timeout_seconds`` 20): a change of result is reported as
``check_status`` (``{"type": "COMMAND", "command": {"exit_code": 0}}``, ``{"http":
{"status_code": 200}}``, ``{"tcp": {"succeeded": true}}``).

The owner (an executor, or the agent running a command task itself) gives callbacks; one
asyncio task per check, so a thousand TCP checks a second cost little. An executor of many
tasks (the functions executor: a call per task) keeps them in a :class:`TaskChecks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mesonb.protocol.checks import describe_check
from mesonb.protocol.mesos import CommandInfo, TaskStatus
from mesonb.protocol.states import Reason, TaskState
from mesonb.tasks import spawn

log = logging.getLogger(__name__)

HEALTH_DEFAULTS = {"delay_seconds": 15.0, "interval_seconds": 10.0, "timeout_seconds": 20.0,
                   "consecutive_failures": 3, "grace_period_seconds": 10.0}
CHECK_DEFAULTS = {"delay_seconds": 15.0, "interval_seconds": 10.0, "timeout_seconds": 20.0}


@dataclass(frozen=True)
class Probe:
    """What one check does: its type and target."""

    kind: str  # COMMAND, HTTP or TCP
    command: CommandInfo | None = None
    port: int = 0
    scheme: str = "http"
    path: str = "/"
    statuses: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Probe:
        kind = str(obj.get("type") or ("COMMAND" if obj.get("command") else "")).upper()
        if kind == "COMMAND":
            command = obj.get("command") or {}
            if isinstance(command.get("command"), dict):  # CheckInfo.Command wraps it
                command = command["command"]
            return cls(kind, command=CommandInfo.from_json(command, "health_check.command"))
        if kind == "HTTP":
            http = obj.get("http") or {}
            return cls(kind, port=int(http.get("port", 0)),
                       scheme=str(http.get("scheme") or "http"),
                       path=str(http.get("path") or "/"),
                       statuses=tuple(int(s) for s in http.get("statuses") or ()))
        if kind == "TCP":
            return cls(kind, port=int((obj.get("tcp") or {}).get("port", 0)))
        raise ValueError(f"unsupported check type {obj.get('type')!r}")


@dataclass(frozen=True)
class Schedule:
    delay: float
    interval: float
    timeout: float
    consecutive_failures: int = 3
    grace: float = 0.0

    @classmethod
    def from_json(cls, obj: dict[str, Any], defaults: Mapping[str, float]) -> Schedule:
        def get(name: str) -> float:
            value = obj.get(name)
            return float(defaults.get(name, 0.0) if value is None else value)

        return cls(get("delay_seconds"), max(get("interval_seconds"), 0.01),
                   get("timeout_seconds"), int(get("consecutive_failures") or 3),
                   get("grace_period_seconds"))


async def run_probe(probe: Probe, timeout: float, env: Mapping[str, str], cwd: str
                    ) -> tuple[bool, dict[str, Any]]:
    """``(succeeded, check_status body)`` of one probe."""
    if probe.kind == "TCP":  # a bare non-blocking connect: the cheapest probe there is
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", probe.port))
        except (OSError, TimeoutError):
            return False, {"tcp": {"succeeded": False}}
        finally:
            sock.close()
        return True, {"tcp": {"succeeded": True}}
    if probe.kind == "HTTP":
        code = await _http_status(probe, timeout)
        ok = code in probe.statuses if probe.statuses else 200 <= (code or 0) < 400
        return ok, {"http": {"status_code": code} if code else {}}
    from .process import command_argv

    assert probe.command is not None
    argv, executable = command_argv(probe.command)
    environment = dict(env)
    for var in (probe.command.environment.variables or ()) if probe.command.environment else ():
        environment[var.name] = var.value
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, executable=executable, cwd=cwd, env=environment,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return False, {"command": {}}
    try:
        code = await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return False, {"command": {}}
    return code == 0, {"command": {"exit_code": code}}


async def _http_status(probe: Probe, timeout: float) -> int | None:
    """The status code of ``GET path`` on 127.0.0.1 (None when there was no answer)."""
    try:
        ssl = probe.scheme.lower() == "https" or None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", probe.port, ssl=_insecure() if ssl else None),
            timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {probe.path} HTTP/1.0\r\nHost: 127.0.0.1:{probe.port}\r\n"
                     "User-Agent: mesonb-health-check\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()


def _insecure() -> Any:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # Mesos does not verify health check endpoints
    return context


class HealthChecker:
    """Runs one task's health check; ``report(healthy)`` and ``kill()`` are the owner's."""

    def __init__(self, spec: dict[str, Any], env: Mapping[str, str], cwd: str,
                 report: Callable[[bool], None], kill: Callable[[], None]) -> None:
        self.spec = spec
        self.probe = Probe.from_json(spec)
        self.schedule = Schedule.from_json(spec, HEALTH_DEFAULTS)
        self.env, self.cwd = dict(env), cwd
        self.report, self.kill = report, kill
        self.started = time.monotonic()
        self.failures = 0
        self.reported: bool | None = None
        self.succeeded_once = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def why(self) -> str:
        """Why the task is (to be) killed, naming the check: ``health check TCP port 8080
        failed 3 times in a row``."""
        return f"health check {describe_check(self.spec)} failed {self.failures} times in a row"

    async def _run(self) -> None:
        s = self.schedule
        await asyncio.sleep(s.delay)
        while True:
            ok, _ = await run_probe(self.probe, s.timeout, self.env, self.cwd)
            if self.result(ok, time.monotonic()):
                return
            await asyncio.sleep(s.interval)

    def result(self, ok: bool, now: float) -> bool:
        """Take one result; True once the task is to be killed."""
        if ok:
            self.failures = 0
            self.succeeded_once = True
            if self.reported is not True:
                self.reported = True
                self.report(True)
            return False
        if not self.succeeded_once and now - self.started < self.schedule.grace:
            return False  # still starting: failures in the grace period do not count
        self.failures += 1
        self.reported = False
        self.report(False)
        if self.failures >= self.schedule.consecutive_failures:
            log.info("%s: killing the task", self.why())
            self.kill()
            return True
        return False


class Checker:
    """Runs one task's (non-killing) check; ``report(check_status)`` on each change."""

    def __init__(self, spec: dict[str, Any], env: Mapping[str, str], cwd: str,
                 report: Callable[[dict[str, Any]], None]) -> None:
        self.probe = Probe.from_json(spec)
        self.schedule = Schedule.from_json(spec, CHECK_DEFAULTS)
        self.env, self.cwd, self.report = dict(env), cwd, report
        self.last: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        s = self.schedule
        await asyncio.sleep(s.delay)
        while True:
            _, body = await run_probe(self.probe, s.timeout, self.env, self.cwd)
            status = {"type": self.probe.kind, **body}
            if status != self.last:
                self.last = status
                self.report(status)
            await asyncio.sleep(s.interval)


def check_update(task: Any, check_status: dict[str, Any]) -> TaskStatus:
    """A TASK_RUNNING update carrying ``check_status`` (REASON_TASK_CHECK_STATUS_UPDATED)."""
    status = TaskStatus(task_id=task.task_id, state=TaskState.TASK_RUNNING,
                        reason=Reason.REASON_TASK_CHECK_STATUS_UPDATED)
    status.extra["check_status"] = check_status
    return status


def start_checks(task: Any, env: Mapping[str, str], cwd: str,
                 report_health: Callable[[bool], None], kill: Callable[[], None],
                 report_check: Callable[[dict[str, Any]], None]) -> list[Any]:
    """Start the health check and the check a TaskInfo asks for; the running ones (each
    with ``stop()``). A malformed one is logged and skipped."""
    running: list[Any] = []
    extra = getattr(task, "extra", {}) or {}
    for key, make in (("health_check", lambda spec: HealthChecker(
            spec, env, cwd, report_health, kill)),
                      ("check", lambda spec: Checker(spec, env, cwd, report_check))):
        spec = extra.get(key)
        if not isinstance(spec, dict):
            continue
        try:
            checker = make(spec)
        except (ValueError, TypeError, Exception) as exc:  # a bad spec must not kill the task
            log.warning("task %s: ignoring its %s: %s", task.task_id, key, exc)
            continue
        checker.start()
        running.append(checker)
    return running


class TaskChecks:
    """The checks of the tasks of one multi-task executor (the functions executor runs a
    call per task): each task's health check and check run while it does, their updates
    go through the executor's driver (as Mesos's built-in executors send them), and
    ``kill(task_id, why)`` is called once a task's health check failed
    ``consecutive_failures`` times in a row (``why`` names the check)."""

    def __init__(self, kill: Callable[[str, str], Any], env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.kill = kill
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd or os.getcwd()
        self.running: dict[str, list[Any]] = {}
        self.sick: set[str] = set()  # tasks killed by their health check
        self._updates: dict[str, set[asyncio.Future[Any]]] = {}

    def start(self, driver: Any, task: Any) -> None:
        """Start what ``task`` asks for (nothing when it asks for no check)."""
        task_id = task.task_id
        checkers: list[Any] = []

        def later(coro: Any) -> None:
            spawn(coro, self._updates.setdefault(task_id, set()), "a check's update",
                  logger=log)

        def kill() -> None:
            self.sick.add(task_id)
            health = next((c for c in checkers if isinstance(c, HealthChecker)), None)
            self.kill(task_id, health.why() if health else "its health check failed")

        checkers += start_checks(
            task, self.env, self.cwd,
            lambda healthy: later(driver.update(
                task_id, TaskState.TASK_RUNNING, healthy=healthy,
                reason=Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED)),
            kill, lambda status: later(driver.send_status(check_update(task, status))))
        if checkers:
            self.running[task_id] = checkers

    async def stop(self, task_id: str) -> None:
        """The task ended: stop its checks; return once their updates went out (the
        terminal update must not overtake them)."""
        for checker in self.running.pop(task_id, ()):
            checker.stop()
        pending = self._updates.pop(task_id, None)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def unhealthy(self, task_id: str) -> bool | None:
        """``False`` for a task its health check killed (its terminal update says so),
        else None."""
        if task_id in self.sick:
            self.sick.discard(task_id)
            return False
        return None
