"""Marathon-side health and readiness checks: the framework itself probes its tasks.

``HTTP``, ``HTTPS`` and ``TCP`` health checks (Marathon's own kind) are run here against
the task's host and port every ``intervalSeconds``; failures inside ``gracePeriodSeconds``
of the start do not count; ``maxConsecutiveFailures`` failures in a row make the task
unhealthy and have it killed (0: never killed). Readiness checks probe the port named by
``portName`` until one answers a status in ``httpStatusCodesForReady``. Results go back to
the owner through callbacks, so this module knows nothing of apps or deployments.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from .model import HEALTH_DEFAULTS, READINESS_DEFAULTS, timestamp

log = logging.getLogger(__name__)
FRAMEWORK_CHECKS = ("HTTP", "HTTPS", "TCP")


async def probe(protocol: str, host: str, port: int, path: str, timeout: float,
                ok_statuses: tuple[int, ...] | None = None, ignore_1xx: bool = False
                ) -> str | None:
    """One probe; None when healthy, else why not."""
    try:
        if protocol == "TCP":
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                     timeout)
            writer.close()
            return None
        context = None
        if protocol == "HTTPS":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context), timeout)
        try:
            writer.write(f"GET {path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                         "Connection: close\r\n\r\n".encode())
            line = await asyncio.wait_for(reader.readline(), timeout)
        finally:
            writer.close()
        parts = line.decode("latin-1").split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if ok_statuses is not None:
            return None if status in ok_statuses else f"HTTP {status}"
        if 200 <= status < 400 or (ignore_1xx and 100 <= status < 200):
            return None
        return f"HTTP {status}"
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return f"{type(exc).__name__}: {exc}".rstrip(": ")


class TaskChecks:
    """The Marathon-side checks of one task; stop() ends them."""

    def __init__(self, task_id: str, host: str, ports: list[int], checks: list[dict[str, Any]],
                 readiness: list[dict[str, Any]], port_names: list[str | None],
                 on_health: Callable[[str, bool, dict[str, Any], bool], None],
                 on_ready: Callable[[str], None]) -> None:
        self.task_id = task_id
        self.host = host
        self.ports = ports
        self._tasks: list[asyncio.Task[None]] = []
        self.on_health = on_health
        self.on_ready = on_ready
        self.result: dict[str, Any] = {"alive": False, "consecutiveFailures": 0,
                                       "firstSuccess": None, "lastFailure": None,
                                       "lastSuccess": None, "lastFailureCause": None}
        for check in checks:
            check = {**HEALTH_DEFAULTS, **check}
            if check.get("protocol", "HTTP") in FRAMEWORK_CHECKS:
                self._tasks.append(asyncio.create_task(self._health(check)))
        for check in readiness:
            check = {**READINESS_DEFAULTS, **check}
            name = check["portName"]
            index = port_names.index(name) if name in port_names else 0
            self._tasks.append(asyncio.create_task(self._readiness(check, index)))

    def _port(self, check: dict[str, Any]) -> int:
        if check.get("port"):
            return int(check["port"])
        index = check.get("portIndex") or 0
        return self.ports[index] if index < len(self.ports) else 0

    async def _health(self, check: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            problem = await probe(check["protocol"], self.host, self._port(check),
                                  check.get("path") or "/", float(check["timeoutSeconds"]),
                                  ignore_1xx=bool(check.get("ignoreHttp1xx")))
            now = timestamp()
            in_grace = loop.time() - started < float(check["gracePeriodSeconds"]) \
                and self.result["firstSuccess"] is None
            if problem is None:
                if self.result["firstSuccess"] is None:
                    self.result["firstSuccess"] = now
                self.result.update(alive=True, consecutiveFailures=0, lastSuccess=now)
                self.on_health(self.task_id, True, dict(self.result), False)
            elif not in_grace:
                failures = self.result["consecutiveFailures"] + 1
                self.result.update(alive=False, consecutiveFailures=failures, lastFailure=now,
                                   lastFailureCause=problem)
                limit = int(check["maxConsecutiveFailures"])
                self.on_health(self.task_id, False, dict(self.result),
                               bool(limit) and failures >= limit)
            await asyncio.sleep(float(check["intervalSeconds"]))

    async def _readiness(self, check: dict[str, Any], index: int) -> None:
        port = self.ports[index] if index < len(self.ports) else 0
        codes = tuple(int(c) for c in check["httpStatusCodesForReady"])
        while True:
            problem = await probe(check["protocol"], self.host, port, check["path"],
                                  float(check["timeoutSeconds"]), ok_statuses=codes)
            if problem is None:
                self.on_ready(self.task_id)
                return
            await asyncio.sleep(float(check["intervalSeconds"]))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
