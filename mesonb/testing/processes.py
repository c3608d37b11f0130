"""Real master and agent processes for tests, stopped for sure.

Each daemon runs as ``python -m mesonb ...`` in its own session on a free loopback port
(``--port 0``; the daemon prints the port it got). :meth:`ProcessCluster.stop` sends
SIGTERM to each daemon's process group, then SIGKILL, and finally kills any process
still working inside the cluster's directory (executors and tasks run in their own
sessions with a sandbox as their working directory), so nothing outlives a test, even
a failed one::

    with ProcessCluster(tmp_path, agents=2) as cluster:
        requests.get(cluster.url + "/master/state")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil

from mesonb import tls

T = TypeVar("T")
_LISTENING = re.compile(r"listening on (https?)://([\d.]+|\[[^\]]+\]|[\w.-]+):(\d+)")


def wait_for(
    condition: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the condition may fail while a daemon starts
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or condition}"
                               f"{detail}")
        time.sleep(interval)


async def until(condition: Callable[[], T | None], what: str = "", timeout: float = 30.0,
                interval: float = 0.02) -> T:
    """:func:`wait_for` for a test running on an event loop: the loop keeps running (the
    daemons or drivers it hosts go on) between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or condition}")
        await asyncio.sleep(interval)


class Daemon:
    """One mesonb daemon process; its output goes to ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.args = args
        self.log_path = log_path
        self.port: int | None = None
        self.host: str | None = None
        self.scheme = "http"  # what the daemon said it listens on
        self._listening = threading.Event()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mesonb", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if not self._listening.is_set():
                    m = _LISTENING.search(line.decode(errors="replace"))
                    if m:
                        self.scheme, self.host, self.port = m[1], m[2], int(m[3])
                        self._listening.set()

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.proc.returncode}:\n"
                                   + self.output()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.args[0]} did not start:\n" + self.output()[-3000:])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the daemon's process group (a crash, for fault tests)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        self.signal(signal.SIGKILL)  # anything left in its group
        self._reader.join(2)
        return self.proc.returncode


def kill_processes_under(directory: Path) -> list[int]:
    """SIGKILL every process whose working directory is inside ``directory``."""
    root = str(directory.resolve())
    killed = []
    for proc in psutil.process_iter(["pid", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if proc.pid != os.getpid() and (cwd == root or cwd.startswith(root + os.sep)):
            with contextlib.suppress(psutil.Error):
                proc.kill()
                killed.append(proc.pid)
    return killed


def get_json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` as JSON. Without ``headers``, a local cluster's own secret is sent
    (``Cluster.local()`` and ``mesonb local`` require one: :mod:`mesonb.security.local_secret`)."""
    if headers is None:
        from mesonb.security import local_secret

        headers = local_secret.headers_for(url)
    request = urllib.request.Request(url, headers=headers)
    context = tls.client_context() if url.startswith("https:") else None
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read())


class ProcessCluster:
    """A master and agents as real processes under ``directory``."""

    def __init__(
        self,
        directory: Path,
        agents: int = 1,
        *,
        agent_resources: str = "cpus:2;mem:2048;disk:4096",
        master_args: list[str] | None = None,
        agent_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.agent_count = agents
        self.agent_resources = agent_resources
        self.master_args = master_args or []
        self.agent_args = agent_args or []
        self.env = env
        self.master: Daemon | None = None
        self.agents: list[Daemon] = []

    def start(self) -> ProcessCluster:
        try:
            self.master = Daemon(
                ["master", "--port", "0", "--work-dir", str(self.directory / "master"),
                 *self.master_args],
                self.directory / "master.log", self.env,
            )
            self.master.wait_listening()
            for i in range(self.agent_count):
                self.start_agent(i)
            self.wait_agents(self.agent_count)
        except BaseException:
            self.stop()
            raise
        return self

    def start_agent(self, index: int | None = None, work_dir: Path | None = None) -> Daemon:
        assert self.master is not None
        index = len(self.agents) if index is None else index
        first = 31000 + index * 100
        # an empty agent_resources leaves cpus, mem and disk to the agent's detection, as
        # a plain `mesonb agent` has them
        resources = ";".join(p for p in (self.agent_resources, f"ports:[{first}-{first + 99}]")
                             if p)
        agent = Daemon(
            ["agent", "--master", self.master.address, "--port", "0",
             "--work-dir", str(work_dir or self.directory / f"agent{index}"),
             "--resources", resources, *self.agent_args],
            self.directory / f"agent{index}.log", self.env,
        )
        self.agents.append(agent)
        agent.wait_listening()
        return agent

    @property
    def url(self) -> str:
        assert self.master is not None
        return self.master.url

    @property
    def address(self) -> str:
        assert self.master is not None
        return self.master.address

    def state(self) -> dict[str, Any]:
        secret = (self.env or {}).get("MESONB_SECRET")
        headers = {"Authorization": f"Bearer {secret}"} if secret else None
        return get_json(self.url + "/master/state", headers=headers)

    def wait_agents(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        def registered() -> list[dict[str, Any]] | None:
            slaves = [s for s in self.state()["slaves"] if s.get("active")]
            return slaves if len(slaves) >= count else None

        return wait_for(registered, timeout, what=f"{count} agents to register")

    def logs(self) -> str:
        daemons = ([self.master] if self.master else []) + self.agents
        return "\n".join(f"==== {d.log_path.name}\n{d.output()[-4000:]}" for d in daemons)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        if self.master is not None:
            self.master.stop()
        kill_processes_under(self.directory)

    def __enter__(self) -> ProcessCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
