"""A real master, agents and ``mesonb marathon`` for the Marathon API tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from mesonb.testing.processes import Daemon, ProcessCluster, wait_for

SMALL = {"cpus": 0.01, "mem": 8}


class MarathonProcess:
    """``mesonb marathon`` as a process, restartable on the same work dir."""

    def __init__(self, directory: Path, master: str, extra: list[str] | None = None,
                 name: str = "marathon") -> None:
        self.directory = directory
        self.master = master
        self.extra = extra or []
        self.name = name
        self.daemon: Daemon | None = None
        self.starts = 0

    def start(self) -> MarathonProcess:
        self.starts += 1
        self.daemon = Daemon(["marathon", "--master", self.master, "--port", "0",
                              "--work-dir", str(self.directory / self.name), *self.extra],
                             self.directory / f"{self.name}-{self.starts}.log")
        self.daemon.wait_listening()
        return self

    @property
    def url(self) -> str:
        assert self.daemon is not None
        return self.daemon.url

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()

    def get(self, path: str, **kw: Any) -> Any:
        answer = requests.get(self.url + path, timeout=10, **kw)
        answer.raise_for_status()
        return answer.json()

    def request(self, method: str, path: str, body: Any = None, **kw: Any
                ) -> requests.Response:
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        return requests.request(method, self.url + path, data=data, timeout=10,
                                headers={"Content-Type": "application/json"}, **kw)

    def deployed(self, timeout: float = 20.0) -> None:
        wait_for(lambda: self.get("/v2/deployments") == [], timeout,
                 what="deployments to finish")

    def running(self, app_id: str, count: int, timeout: float = 20.0) -> list[dict]:
        def check() -> list[dict] | None:
            tasks = [t for t in self.get(f"/v2/apps{app_id}/tasks")["tasks"]
                     if t["state"] == "TASK_RUNNING"]
            return tasks if len(tasks) == count else None

        return wait_for(check, timeout, what=f"{count} running tasks of {app_id}")

    def logs(self) -> str:
        return self.daemon.output()[-4000:] if self.daemon else ""


@contextlib.contextmanager
def cluster_with_racks(directory: Path, agents: int = 2) -> Iterator[ProcessCluster]:
    """Agents ``host-0``, ``host-1``… with attribute ``rack:r0``, ``rack:r1``…"""
    cluster = ProcessCluster(directory, agents=1, agent_resources="cpus:4;mem:4096;disk:4096",
                             master_args=["--allocation-interval", "0.1"],
                             agent_args=["--hostname", "host-0", "--attributes", "rack:r0"])
    try:
        cluster.start()
        for i in range(1, agents):
            cluster.agent_args = ["--hostname", f"host-{i}", "--attributes", f"rack:r{i}"]
            cluster.start_agent(i)
        cluster.wait_agents(agents)
        yield cluster
    finally:
        cluster.stop()


def sse_events(url: str, types: list[str], stop: Any, timeout: float = 20.0
               ) -> list[dict]:
    """Read ``/v2/events`` until ``stop(events)`` is true."""
    events: list[dict] = []
    with requests.get(url + "/v2/events", params={"event_type": types}, stream=True,
                      headers={"Accept": "text/event-stream"}, timeout=timeout) as answer:
        for line in answer.iter_lines():
            if line.startswith(b"data:"):
                events.append(json.loads(line[5:]))
                if stop(events):
                    break
    return events
