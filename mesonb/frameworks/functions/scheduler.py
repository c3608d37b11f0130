"""The functions framework's scheduler: a queue of tasks placed on offers.

It is a handler for :class:`~mesonb.frameworks.driver.SchedulerDriver` and uses only the
v1 scheduler API. Offers are kept while work may come (up to :data:`HOLD_OFFERS` idle
seconds), so a new call is launched with one ACCEPT and no round of REVIVE and
allocation; every offer of an agent goes into one ACCEPT with as many queued tasks as
fit. When idle it declines and SUPPRESSes; new work REVIVEs.

Function tasks run in one long-lived executor per agent (``executor_id`` reused while
the master lists it in the offer's ``executor_ids``); command tasks are plain
CommandInfo tasks. Each task's outcome goes to ``spec.on_status``; retries are the
client's decision (it calls :meth:`FunctionsScheduler.enqueue` again).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import math
import sys
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mesonb import tls
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TERMINAL_STATE_NAMES
from mesonb.tasks import spawn

from .. import driver as driver_mod

log = logging.getLogger(__name__)
HOLD_OFFERS = 2.0
# Tasks that do not fit an agent's offers are passed over, keeping their place in the
# queue, up to this many; then the agent is done for this round. A long queue of tasks too
# big for what is offered costs a bounded scan, not one of the whole queue per offer.
LOOK_AHEAD = 64
# What a launch leaves of its offers is declined for this long: none of the queued tasks
# fit in it, and resources freed on that agent later make the filter lapse (Mesos
# offers an agent again once more is free than was declined). New work that finds no
# offer held REVIVEs, which clears the filters. Re-offering the rest at once (0 s) would
# cost an allocation run and an OFFERS event per launch for nothing.
REMAINDER_REFUSE = 5.0
# The functions executor's own resources: none are asked for. As with Mesos's command
# executor (whose 0.1 cpus and 32 MB the agent adds on top of the task's, uncharged), the
# executor's overhead must not make a call that fits an agent impossible: on an N-core
# machine ``cpus=N`` fits, and N ``cpus=1`` calls run at once. Each call's ``cpus`` and
# ``mem`` are its worker's; the executor process itself (an idle event loop, ~30 MB)
# is not counted.
EXECUTOR_RESOURCES = Resources()
# The functions framework's failover_timeout: how long the master keeps its tasks running
# while no scheduler is subscribed. A master failover disconnects every framework and a new
# leader learns frameworks from re-registering agents; with 0 it would remove the framework
# (killing its running calls) before the client re-subscribes. An hour covers failovers and
# network blips; Cluster.close() tears the framework down at once, so only a client that
# dies without closing leaves its tasks to run out this timeout.
FAILOVER_TIMEOUT = 3600.0
EXECUTOR_MODULE = "mesonb.frameworks.functions.executor"
# While tasks wait with no offer held, the client is told this often (on_starved).
STARVED_EVERY = 0.5
# A task of ours ended on an agent whose remainder we declined: the master offers that
# agent again (what is free now is more than was declined). New work waits this long for
# that offer before it REVIVEs: a call submitted when the last one returned (the usual
# loop of a script) then costs no REVIVE and no allocation run of its own.
OFFER_DUE = 0.05


@dataclass(eq=False)
class TaskSpec:
    """One task to launch: a function call (``data``) or a shell ``command``."""

    task_id: str
    name: str
    resources: Resources
    on_status: Callable[[TaskSpec, dict[str, Any]], Any]
    data: bytes | None = None
    command: str | None = None
    agent_id: str | None = None
    agent_url: str | None = None
    state: str = "QUEUED"
    extra: dict[str, Any] = field(default_factory=dict)
    health_check: dict[str, Any] | None = None  # Mesos's HealthCheck JSON, for the task


def fits(spec: Resources, free: Resources) -> bool:
    return free.contains(spec)


class FunctionsScheduler:
    """Queue, placement and status routing (see the module docstring)."""

    def __init__(self, executor_env: dict[str, str] | None = None) -> None:
        self.driver: driver_mod.SchedulerDriver | None = None
        self.queue: deque[TaskSpec] = deque()
        self.launched: dict[str, TaskSpec] = {}
        self.offers: dict[str, dict[str, Any]] = {}
        self.executor_ids: dict[str, str] = {}  # executor_key -> our executor id there
        self.executor_env = executor_env or {}
        self.suppressed = False
        # What launches left of agents' offers, declined for REMAINDER_REFUSE; an agent's
        # entry goes when it is offered again.
        self.declined: dict[str, Resources] = {}
        self._offer_resources: dict[str, Resources] = {}  # offer id -> its resources, parsed
        self._executor_info: dict[str, Any] | None = None  # the same for every call
        self._kicked = False
        self._waiter: asyncio.Future[None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self._idle_since: float | None = None
        self.on_disconnect: Callable[[], Any] | None = None
        self.on_fatal: Callable[[str], Any] | None = None
        # Called (at most every STARVED_EVERY seconds) while tasks wait and no offer is
        # held: the client asks its other frameworks to give back the offers they hold.
        self.on_starved: Callable[[], Any] | None = None
        self.on_launched: Callable[[TaskSpec], Any] | None = None  # sent to an agent
        # Called once the events of one read from the master were handled (their status
        # callbacks run, the placement of new work woken).
        self.after_events: Callable[[], Any] | None = None
        self._starved_at = -math.inf
        self._offer_due = -math.inf  # loop time until which an offer is on its way
        self._due_timer = False
        # Launches go out lazily (the driver reads their 202 when the loop is awake anyway)
        # and the placement goes on without waiting for it; a failure is met as before.
        self._lazy_launches = False

    def start(self, driver: driver_mod.SchedulerDriver) -> None:
        self.driver = driver
        self._lazy_launches = True
        self._loop_task = asyncio.create_task(self._placement_loop(), name="functions-placement")

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    # -- work ------------------------------------------------------------------------
    def enqueue(self, spec: TaskSpec) -> None:
        spec.state = "QUEUED"
        self.queue.append(spec)
        self._wake()

    def kill(self, task_id: str) -> bool:
        """Forget a queued task (True) or KILL a launched one."""
        for spec in self.queue:
            if spec.task_id == task_id:
                self.queue.remove(spec)
                return True
        launched = self.launched.get(task_id)
        if launched is not None and self.driver is not None:
            self._spawn(self.driver.kill(task_id, launched.agent_id))
        return False

    def _wake(self) -> None:
        self._kicked = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- driver callbacks ------------------------------------------------------------
    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        for offer in offers:
            self.declined.pop(offer["agent_id"]["value"], None)
            offer_id = offer["id"]["value"]
            self.offers[offer_id] = offer
            self._offer_resources[offer_id] = Resources.from_json(offer["resources"])
        self._wake()

    def on_rescind(self, offer_id: str) -> None:
        self.offers.pop(offer_id, None)
        self._offer_resources.pop(offer_id, None)

    def on_update(self, status: dict[str, Any]) -> None:
        task_id = status["task_id"]["value"]
        spec = self.launched.get(task_id)
        if spec is None:
            return
        state = status["state"]
        if state == "TASK_RUNNING":
            spec.state = "RUNNING"
        if state in driver_terminal():
            self.launched.pop(task_id, None)
            if spec.agent_id in self.declined:  # its agent is offered to us again
                self._offer_due = asyncio.get_running_loop().time() + OFFER_DUE
            if state != "TASK_FINISHED" and status.get("reason") in (
                    "REASON_EXECUTOR_TERMINATED", "REASON_EXECUTOR_UNREGISTERED",
                    "REASON_CONTAINER_LAUNCH_FAILED", "REASON_EXECUTOR_REGISTRATION_TIMEOUT"):
                self.executor_ids.pop(executor_key(spec.agent_id or "", spec), None)
        try:
            spec.on_status(spec, status)
        except Exception:
            log.exception("status callback for %s failed", task_id)

    def on_events_handled(self) -> None:
        if self.after_events is not None:
            self.after_events()

    def on_disconnected(self) -> None:
        self.offers.clear()
        self._offer_resources.clear()
        if self.on_disconnect is not None:
            self.on_disconnect()

    def on_subscribed(self, body: dict[str, Any]) -> None:
        self.suppressed = False
        self._wake()

    def on_error(self, message: str) -> None:
        log.error("the master ended this framework: %s", message)
        if self.on_fatal is not None:
            self.on_fatal(message)

    # -- placement -------------------------------------------------------------------
    async def _placement_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._kicked:  # wait for work or offers, at most HOLD_OFFERS
                self._waiter = waiter = loop.create_future()
                timer = loop.call_later(HOLD_OFFERS, _resolve, waiter)
                await waiter
                timer.cancel()
            self._kicked = False
            try:
                await self._place()
                if self.queue:
                    self._idle_since = None
                    if not self.offers:
                        self._starved(loop.time())
                    if not self.offers and not self.suppressed and \
                            loop.time() < self._offer_due:
                        if not self._due_timer:  # look again then (or when it comes)
                            self._due_timer = True
                            loop.call_later(self._offer_due - loop.time(), self._due)
                    elif not self.offers and (self.suppressed or self._declined_would_do()):
                        self.suppressed = False
                        self.declined.clear()
                        await self.driver.revive()  # type: ignore[union-attr]
                elif self.offers or not self.suppressed:
                    now = loop.time()
                    self._idle_since = self._idle_since or now
                    if now - self._idle_since >= HOLD_OFFERS:
                        await self._release_offers()
            except (ConnectionError, OSError, driver_mod.HTTPError) as exc:
                log.info("placement call failed (%s); retrying on the next offers", exc)
                self.offers.clear()
                self._offer_resources.clear()
            except Exception:
                log.exception("placement failed")

    def _starved(self, now: float) -> None:
        if self.on_starved is None or now - self._starved_at < STARVED_EVERY:
            return
        self._starved_at = now
        try:
            self.on_starved()
        except Exception:
            log.exception("on_starved failed")
        self._wake_later(STARVED_EVERY)  # look again then, offers or not

    def _due(self) -> None:
        self._due_timer = False
        self._wake_if_queued()

    def _wake_later(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._wake_if_queued)

    def _wake_if_queued(self) -> None:
        if self.queue and not self.offers:
            self._wake()

    def _declined_would_do(self) -> bool:
        """Would a queued task (of the first LOOK_AHEAD) fit in a declined remainder?"""
        if not self.declined:
            return False
        for spec in itertools.islice(self.queue, LOOK_AHEAD):
            if any(rest.contains(spec.resources) for rest in self.declined.values()):
                return True
        return False

    async def _release_offers(self) -> None:
        assert self.driver is not None
        offers, self.offers = list(self.offers), {}
        self._offer_resources.clear()
        if offers:
            await self.driver.decline(offers, refuse_seconds=30.0)
        await self.driver.suppress()
        self.suppressed = True

    async def _place(self) -> None:
        assert self.driver is not None
        if not self.queue or not self.offers:
            return
        by_agent: dict[str, list[dict[str, Any]]] = {}
        for offer in self.offers.values():
            by_agent.setdefault(offer["agent_id"]["value"], []).append(offer)
        calls = []
        for agent_id, offers in by_agent.items():
            if not self.queue:
                break
            free = Resources()
            running: set[str] = set()
            for offer in offers:
                free = free + self._offer_resources[offer["id"]["value"]]
                running.update(e["value"] for e in offer.get("executor_ids", ()))
            tasks, placed = [], []
            skipped: list[TaskSpec] = []
            # What did not fit as things stand: (id of the spec's Resources, is a call).
            # The same Resources object of another spec (a loop of submits shares one)
            # would not fit either until a placement changes ``free``, ``running`` and
            # the executors (each spec is alive meanwhile, so no id is reused).
            unfit: set[tuple[int, bool]] = set()
            # Each spec's Resources as JSON, once per object (a loop of submits shares one)
            resources_json: dict[int, list[dict[str, Any]]] = {}
            queue = self.queue
            while queue and len(skipped) < LOOK_AHEAD:
                spec = queue.popleft()
                seen = (id(spec.resources), spec.command is None)
                if seen in unfit:
                    skipped.append(spec)
                    continue
                key = executor_key(agent_id, spec)
                executor_id = self.executor_ids.get(key)
                executor_up = executor_id is not None and executor_id in running
                need = spec.resources
                new_executor = spec.command is None and not executor_up
                if new_executor:
                    need = need + EXECUTOR_RESOURCES
                if not free.contains(need):
                    unfit.add(seen)
                    skipped.append(spec)
                    continue
                unfit.clear()
                if new_executor:
                    executor_id = f"functions-{uuid.uuid4().hex[:12]}"
                    self.executor_ids[key] = executor_id
                    running.add(executor_id)
                resources = resources_json.get(id(spec.resources))
                if resources is None:
                    resources = resources_json[id(spec.resources)] = spec.resources.to_json()
                info = self._task_info(spec, agent_id, executor_id, new_executor, resources)
                free = free - need
                tasks.append(info)
                placed.append(spec)
            queue.extendleft(reversed(skipped))  # back at the front, in their order
            for offer in offers:
                self.offers.pop(offer["id"]["value"], None)
            url = _agent_url(offers[0])
            for spec in placed:
                spec.agent_id, spec.agent_url, spec.state = agent_id, url, "LAUNCHED"
                self.launched[spec.task_id] = spec
                if self.on_launched is not None:
                    self.on_launched(spec)
            ids = [o["id"]["value"] for o in offers]
            if tasks:
                for offer_id in ids:
                    self._offer_resources.pop(offer_id, None)
                if free:
                    self.declined[agent_id] = free
                sent = self.driver.launch_now(ids, tasks, REMAINDER_REFUSE) \
                    if self._lazy_launches else None
                if sent is not None:  # written: its 202 is read when the loop is awake
                    sent.add_done_callback(self._launch_answered)
                    continue
                calls.append(self.driver.launch(ids, tasks, refuse_seconds=REMAINDER_REFUSE))
            else:
                self.offers.update({o["id"]["value"]: o for o in offers})
        if len(calls) == 1:
            await calls[0]
        elif calls:
            await asyncio.gather(*calls)

    def _launch_answered(self, answer: asyncio.Future[Any]) -> None:
        """The answer to a launch written by ``launch_now``: a failure is met as the
        placement loop meets one of :meth:`launch` (the offers it held are gone)."""
        if answer.cancelled():
            return
        exc = answer.exception()
        if exc is None and answer.result().status >= 300:
            response = answer.result()
            exc = driver_mod.HTTPError(response.status, response.body, response.headers)
        if isinstance(exc, (ConnectionError, OSError, driver_mod.HTTPError)):
            log.info("placement call failed (%s); retrying on the next offers", exc)
            self.offers.clear()
            self._offer_resources.clear()
        elif exc is not None:
            log.error("placement failed: %s", exc)

    def _task_info(self, spec: TaskSpec, agent_id: str, executor_id: str | None,
                   with_executor: bool,
                   resources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The TaskInfo JSON of ``spec`` on ``agent_id``; ``resources``: its resources as
        JSON, when the caller has them already (shared by the tasks of one ACCEPT: the
        receiver reads them, never changes them)."""
        info: dict[str, Any] = {"name": spec.name, "task_id": {"value": spec.task_id},
                                "agent_id": {"value": agent_id},
                                "resources": spec.resources.to_json() if resources is None
                                else resources}
        if spec.health_check is not None:
            info["health_check"] = spec.health_check
        if spec.command is not None:
            info["command"] = {"shell": True, "value": spec.command}
            return info
        executor: dict[str, Any] = {"executor_id": {"value": executor_id}}
        if self._executor_info is None:
            self._executor_info = self.executor_info()
        executor.update(self._executor_info)  # later tasks too: the master checks it matches
        if not with_executor:
            executor.pop("resources", None)
        info["executor"] = executor
        if spec.data:
            info["data"] = base64.b64encode(spec.data).decode("ascii")
        return info

    def executor_info(self) -> dict[str, Any]:
        variables = [{"name": k, "value": v} for k, v in sorted(self.executor_env.items())]
        info: dict[str, Any] = {
            "type": "CUSTOM",
            "name": "mesonb functions executor",
            "command": {"shell": False, "value": sys.executable,
                        "arguments": [sys.executable, "-m", EXECUTOR_MODULE],
                        "environment": {"variables": variables}},
        }
        if EXECUTOR_RESOURCES:
            info["resources"] = EXECUTOR_RESOURCES.to_json()
        return info

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._background, "call", logger=log)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def driver_terminal() -> frozenset[str]:
    return TERMINAL


TERMINAL = TERMINAL_STATE_NAMES  # mesonb.protocol.states's; this framework is not partition aware


def _agent_url(offer: dict[str, Any]) -> str:
    address = offer.get("url", {}).get("address", {})
    host = address.get("ip") or address.get("hostname") or offer.get("hostname")
    return tls.url(str(host), int(address.get('port', 5051)))


def executor_key(agent_id: str, spec: TaskSpec) -> str:
    """Which of our executors on an agent runs a call: one for calls without gpus, one per
    number of gpus asked for, whose container holds those devices (an agent gives a
    container its devices when it starts, so a GPU call cannot join a GPU-less one)."""
    gpus = spec.resources.get("gpus")
    return f"{agent_id}/gpus={gpus:g}" if gpus else agent_id
