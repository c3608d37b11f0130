"""Framework handlers for tests of a cluster: they record what the scheduler driver hands
them, so a test can wait on it (:func:`mesonb.testing.processes.wait_for`) and assert.

:class:`Tracker` launches the tasks it is given on the first offer and declines the
rest; :class:`Recorder` only records, every event in order and the offers and updates in
queues a test can await::

    tracker = Tracker([{"name": "t", "task_id": {"value": "t"}, "command": {"value": "true"},
                        "resources": Resources.parse("cpus:0.1;mem:32").to_json()}])
    tracker.driver = driver = SchedulerDriver(master, {"user": "me", "name": "t"}, tracker)
    await driver.start()
    ... wait until "TASK_FINISHED" in tracker.states("t")
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesonb.protocol.states import TERMINAL_STATE_NAMES

if TYPE_CHECKING:
    from mesonb.frameworks.driver import SchedulerDriver

DECLINE_FOR = 3600.0  # seconds an offer the tracker does not use is refused for


class Tracker:
    """Launches ``tasks`` on the first offer (each gets that offer's agent), declines the
    other offers, and records statuses, errors, failures and subscriptions."""

    def __init__(self, tasks: list[dict[str, Any]] | None = None) -> None:
        self.to_launch = list(tasks or [])
        self.statuses: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.failures: list[dict[str, Any]] = []
        self.subscriptions = 0
        self.driver: SchedulerDriver | None = None
        self._changed: asyncio.Event | None = None

    def on_subscribed(self, body: dict[str, Any]) -> None:
        self.subscriptions += 1

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None, "set tracker.driver before the driver starts"
        for offer in offers:
            if not self.to_launch:
                await self.driver.decline([offer["id"]["value"]], DECLINE_FOR)
                continue
            tasks, self.to_launch = self.to_launch, []
            for task in tasks:
                task["agent_id"] = offer["agent_id"]
            await self.driver.launch([offer["id"]["value"]], tasks)

    def on_update(self, status: dict[str, Any]) -> None:
        self.statuses.append(status)
        if self._changed is not None:
            self._changed.set()

    def on_error(self, message: str) -> None:
        self.errors.append(message)

    async def until(self, reached: Callable[[dict[str, Any]], bool], count: int,
                    timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` tasks had a status for which ``reached`` holds (e.g.
        ``lambda s: s["state"] == "TASK_RUNNING"``), counting a task that ended without
        it as done; returns those tasks' terminal statuses. TimeoutError at the deadline."""
        deadline = time.monotonic() + timeout
        self._changed = asyncio.Event()
        while True:
            good = {s["task_id"]["value"] for s in self.statuses if reached(s)}
            ended = {s["task_id"]["value"]: s for s in self.statuses
                     if s["state"] in TERMINAL_STATE_NAMES and s["task_id"]["value"] not in good}
            if len(good) + len(ended) >= count:
                return list(ended.values())
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(good)} of {count} tasks got there in {timeout:g}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def on_failure(self, body: dict[str, Any]) -> None:
        self.failures.append(body)

    def states(self, task_id: str) -> list[str]:
        """Every state reported for ``task_id``, in order."""
        return [s["state"] for s in self.statuses if s["task_id"]["value"] == task_id]

    def last(self, task_id: str) -> dict[str, Any]:
        """The latest status of ``task_id``."""
        return [s for s in self.statuses if s["task_id"]["value"] == task_id][-1]


class Recorder:
    """Records every event of the subscription in order (:attr:`events`, read by kind with
    :meth:`of`); offers and updates also go to queues, errors to a list; counts
    disconnections and the masters (MasterInfo ids) it subscribed with."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: list[str] = []
        self.masters: list[str] = []
        self.disconnects = 0

    def on_subscribed(self, body: dict[str, Any]) -> None:
        self.events.append(("SUBSCRIBED", body))
        master_id = (body.get("master_info") or {}).get("id")
        if master_id is not None:
            self.masters.append(master_id)

    def on_heartbeat(self) -> None:
        self.events.append(("HEARTBEAT", None))

    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        self.events.append(("OFFERS", offers))
        for offer in offers:
            self.offers.put_nowait(offer)

    def on_update(self, status: dict[str, Any]) -> None:
        self.events.append(("UPDATE", status))
        self.updates.put_nowait(status)

    def on_message(self, body: dict[str, Any]) -> None:
        self.events.append(("MESSAGE", body))

    def on_failure(self, body: dict[str, Any]) -> None:
        self.events.append(("FAILURE", body))

    def on_error(self, message: str) -> None:
        self.events.append(("ERROR", message))
        self.errors.append(message)

    def on_disconnected(self) -> None:
        self.disconnects += 1

    def of(self, kind: str) -> list[Any]:
        """The bodies of the events of one kind ("OFFERS", "UPDATE", ...), in order."""
        return [body for k, body in self.events if k == kind]

    def states(self, task_id: str) -> list[str]:
        """Every state reported for ``task_id``, in order."""
        return [s["state"] for s in self.of("UPDATE") if s["task_id"]["value"] == task_id]
