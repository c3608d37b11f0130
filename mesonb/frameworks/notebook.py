"""A framework driven by hand from a notebook: look at offers, launch on one, decline.

It is a plain :class:`~mesonb.frameworks.driver.SchedulerDriver` handler on the client's
loop thread; what the user calls from the kernel's thread waits on a condition variable.
``cluster.framework(...)`` returns the client's face of it
(:class:`mesonb.client.interactive.NotebookFramework`: DataFrames, the offers widget,
sizes such as ``mem="128MiB"``).

Example::

    fw = cluster.framework("explore", role="*")
    fw.offers()                                  # a DataFrame of the offers held now
    offer = fw.wait_offer(timeout=30)            # one held now, or the first to come
    task = fw.launch(offer, pow, 2, 10, cpus=0.2, mem="128MiB")
    task.result()                                # 1024
    fw.decline(fw.offer_list(), refuse_seconds=60)   # no offer from these agents for 60 s...
    fw.revive()                                  # ...unless we revive
    fresh = fw.next_offer(timeout=30)            # the first offer since the revive
    fw.suppress(); fw.close()

``next_offer`` waits for a new offer: one that arrives after the call or, right after a
decline, revive, suppress or launch, after that call (the offers it brings are not
missed); offers held from before never count.

An offer is used once: launching on it or declining it (here or from the offers widget)
takes it out of the held offers at once and tells listeners (``gone``), as a RESCIND from
the master does (``rescind``); launching on an offer no longer held raises ValueError
instead of sending the master an offer it would refuse (TASK_LOST, REASON_INVALID_OFFERS).

Function tasks run in mesonb's functions executor (one per agent, started by the first
function launched there; its own overhead is not charged, as for Mesos's command
executor); command tasks are plain Mesos command tasks.

Held offers are resources no other framework can use. Offers are kept while the user can
act on them, but never at the expense of the client's own calls: when the functions
framework of the same cluster has calls waiting and no offer, :meth:`release_offers`
declines every held offer (for :data:`RELEASE_REFUSE` seconds; listeners see them
``gone`` as ``released``), so ``submit`` keeps working while an offers widget is open.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import getpass
import logging
import os
import pickle
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import cloudpickle

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.frameworks.functions.protocol import Call, Outcome
from mesonb.frameworks.functions.results import (
    TERMINAL,
    CommandResult,
    TaskError,
    command_concluded,
    remote_exception,
    returncode,
)
from mesonb.frameworks.functions.sandbox import Sandboxes
from mesonb.frameworks.functions.scheduler import (
    EXECUTOR_MODULE,
    EXECUTOR_RESOURCES,
    _agent_url,
)
from mesonb.protocol.resources import Resources
from mesonb.tasks import spawn

log = logging.getLogger(__name__)
SCALARS = ("cpus", "mem", "disk", "gpus")
# How long offers released for the client's own waiting calls stay away from this
# framework (the master's refuse filter); then they may come back.
RELEASE_REFUSE = 2.0


class Host(Protocol):
    """What a notebook framework needs of the client that starts it."""

    address: str
    secret: str | None

    def run_on_loop(self, coro: Any, timeout: float) -> Any:
        """Run ``coro`` on the client's loop thread and return its result."""

    def on_close(self, closer: Callable[[], Any], remove: bool = False) -> None:
        """Call ``await closer()`` when the client closes (``remove``: no longer)."""


def scalars(resources: Iterable[dict[str, Any]] | None) -> dict[str, float]:
    """A v1 ``Resource`` list summed by name (scalars only)."""
    out: dict[str, float] = {}
    for res in resources or ():
        if res.get("type", "SCALAR") == "SCALAR" and "scalar" in res:
            out[res["name"]] = out.get(res["name"], 0.0) + float(res["scalar"]["value"])
    return out

class Offer:
    """One offer this framework holds: ``id``, ``agent_id``, ``hostname``, ``resources``
    (``{"cpus": 1.0, "mem": 1024.0, ...}``) and the raw v1 ``Offer`` in ``raw``."""

    def __init__(self, framework: NotebookFramework, raw: dict[str, Any], seq: int = 0) -> None:
        self.framework = framework
        self.raw = raw
        self.seq = seq  # arrival order in this framework (1 = the first offer received)
        # "launched", "declined", "released" or "rescinded" once not held
        self.gone: str | None = None
        self.id: str = raw.get("id", {}).get("value", "")
        self.agent_id: str = raw.get("agent_id", {}).get("value", "")
        self.hostname: str = raw.get("hostname", "")
        port = (raw.get("url") or {}).get("address", {}).get("port")
        self.agent: str = f"{self.hostname}:{port}" if port else self.hostname  # host:port
        self.role: str = (raw.get("allocation_info") or {}).get("role", "*")
        self.resources: dict[str, float] = scalars(raw.get("resources"))
        self.executor_ids = {e["value"] for e in raw.get("executor_ids", ())}

    def launch(self, *args: Any, **kwargs: Any) -> LaunchedTask:
        return self.framework.launch(self, *args, **kwargs)

    def decline(self, refuse_seconds: float | None = None) -> None:
        self.framework.decline(self, refuse_seconds)

    def __repr__(self) -> str:
        res = ", ".join(f"{k} {v:g}" for k, v in sorted(self.resources.items()))
        gone = f" ({self.gone})" if self.gone else ""
        return f"<mesonb.Offer {_short(self.id)} on {self.agent}: {res}{gone}>"


class LaunchedTask(concurrent.futures.Future):
    """A task launched by hand: a future of its result (a function's value, or a
    :class:`~.futures.CommandResult`); ``state`` follows its status updates."""

    def __init__(self, framework: NotebookFramework, task_id: str, name: str,
                 offer: Offer, command: str | None) -> None:
        super().__init__()
        self.framework = framework
        self.task_id = task_id
        self.name = name
        self.agent_id = offer.agent_id
        self.hostname = offer.hostname
        self.agent = offer.agent
        self.agent_url = _agent_url(offer.raw)
        self.command = command
        self.state = "TASK_STAGING"
        self.statuses: list[dict[str, Any]] = []

    def kill(self) -> None:
        self.framework.kill(self)

    def __repr__(self) -> str:
        return f"<mesonb.LaunchedTask {self.name} {self.task_id} on {self.agent} {self.state}>"


class NotebookFramework:
    """A framework of the notebook's own (see the module docstring)."""

    offer_type: type[Offer] = Offer
    task_type: type[LaunchedTask] = LaunchedTask

    def __init__(self, cluster: Host, name: str = "notebook", *, role: str = "*",
                 sandboxes: Sandboxes | None = None,
                 executor_env: dict[str, str] | None = None, **info: Any) -> None:
        self.cluster = cluster
        self.name = name
        self.role = role
        self.closed = False
        self.released = 0  # offers released for the client's waiting calls
        self._sandboxes = sandboxes or Sandboxes({})
        self._executor_env = executor_env or {}
        self._cond = threading.Condition()
        self._offers: dict[str, Offer] = {}
        self._seen = 0  # offers received so far: each Offer's seq (next_offer waits past it)
        self._announced = 0  # the last seq listeners were told of (waiters wait for it)
        self._acted: int | None = None  # _seen at the last action, until a next_offer
        self._tasks: dict[str, LaunchedTask] = {}
        self._executors: dict[str, str] = {}  # agent id -> our functions executor there
        self._listeners: list[Callable[[str, Any], Any]] = []
        self._background: set[asyncio.Future[Any]] = set()
        framework = {"user": getpass.getuser(), "name": name, "roles": [role],
                     "capabilities": [{"type": "MULTI_ROLE"}, {"type": "GPU_RESOURCES"}],
                     "failover_timeout": 0.0,
                     "hostname": os.uname().nodename, **info}
        self.driver = SchedulerDriver(cluster.address, framework, self, secret=cluster.secret)
        self.framework_id: str = self._run(self.driver.start(), 30)
        cluster.on_close(self._stop)

    # -- driver callbacks (loop thread) -------------------------------------------------
    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        with self._cond:
            new = []
            for raw in offers:
                self._seen += 1
                offer = self.offer_type(self, raw, self._seen)
                self._offers[offer.id] = offer
                new.append(offer)
            last = self._seen
        self._tell("offers", new)
        with self._cond:  # waiters get an offer only once listeners (a widget) have it
            self._announced = max(self._announced, last)
            self._cond.notify_all()

    def on_rescind(self, offer_id: str) -> None:
        with self._cond:
            offer = self._offers.pop(offer_id, None)
            self._cond.notify_all()
        if offer is not None:
            offer.gone = "rescinded"
            self._tell("rescind", offer)

    def on_disconnected(self) -> None:
        with self._cond:
            gone = list(self._offers.values())
            self._offers.clear()
        for offer in gone:  # a new subscription starts with no offers
            offer.gone = "rescinded"
            self._tell("rescind", offer)

    def on_update(self, status: dict[str, Any]) -> None:
        task = self._tasks.get(status["task_id"]["value"])
        if task is None:
            return
        task.state = status["state"]
        task.statuses.append({k: v for k, v in status.items() if k != "data"})
        self._tell("update", task)
        if task.state in TERMINAL:
            self._tasks.pop(task.task_id, None)
            if task.state != "TASK_FINISHED" and status.get("reason", "").startswith(
                    ("REASON_EXECUTOR", "REASON_CONTAINER")):
                self._executors.pop(task.agent_id, None)
            self._spawn(self._conclude(task, status))

    # -- looking at offers ------------------------------------------------------------
    def offer_list(self) -> list[Offer]:
        """The offers held now (not yet launched on, declined or rescinded)."""
        with self._cond:
            return list(self._offers.values())

    def wait_offer(self, timeout: float = 30.0, *, agent_id: str | None = None,
                   hostname: str | None = None, new: bool = False) -> Offer:
        """A held offer that matches (``agent_id``, ``hostname``): the newest held now, or
        else the first to arrive. With ``new``, only a new one counts (see
        :meth:`next_offer`). TimeoutError when none comes in time."""
        deadline = time.monotonic() + timeout
        with self._cond:
            after = -1
            if new:  # right after an action, what it brings counts (else: after the call)
                after = self._seen if self._acted is None else self._acted
                self._acted = None
            while True:
                matching = [o for o in self._offers.values()
                            if after < o.seq <= self._announced
                            and agent_id in (None, o.agent_id)
                            and hostname in (None, o.hostname)]
                if matching:
                    # new: the first to arrive after the call; else the newest held
                    return min(matching, key=lambda o: o.seq) if new else \
                        max(matching, key=lambda o: o.seq)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise TimeoutError(
                        f"no {'new ' if new else ''}offer for {self.name} within {timeout:g}s"
                        + (f" from agent {agent_id}" if agent_id else "")
                        + (f" on {hostname}" if hostname else ""))
                self._cond.wait(left)

    def next_offer(self, timeout: float = 30.0, *, agent_id: str | None = None,
                   hostname: str | None = None) -> Offer:
        """The next offer to arrive (optionally only from ``agent_id`` or ``hostname``):
        the first that arrives after this call, or, when this framework's last call to
        the master before it was a decline, revive, suppress or launch, the first that
        arrives after that call (so ``fw.revive(); fw.next_offer()`` cannot miss the
        offer the revive brings, however fast it comes). Offers held from before never
        count, even if they match (take those with :meth:`wait_offer` or
        :meth:`offer_list`), and two calls in a row return two different offers. The
        offer is still held when returned."""
        return self.wait_offer(timeout, agent_id=agent_id, hostname=hostname, new=True)

    # -- acting on offers -------------------------------------------------------------
    def launch(self, offer: Offer, fn: Callable[..., Any] | None = None, *args: Any,
               command: str | None = None, cpus: float = 0.1, mem: float = 128.0,
               disk: float | None = None, gpus: float | None = None,
               name: str | None = None, refuse_seconds: float | None = None,
               **kwargs: Any) -> LaunchedTask:
        """Launch ``fn(*args, **kwargs)`` or a shell ``command`` on ``offer`` with the
        given resources (``mem`` and ``disk`` in MB); what the task does not use is
        declined (``refuse_seconds``)."""
        if (fn is None) == (command is None):
            raise TypeError("launch needs a function or command=..., not both")
        amounts = {"cpus": float(cpus), "mem": float(mem)}
        if disk:
            amounts["disk"] = float(disk)
        if gpus:
            amounts["gpus"] = float(gpus)
        resources = Resources(amounts)
        name = name or (str(getattr(fn, "__name__", "call")) if fn else "command")
        task_id = f"{name}-{uuid.uuid4().hex[:8]}"
        info: dict[str, Any] = {"name": name, "task_id": {"value": task_id},
                                "agent_id": {"value": offer.agent_id},
                                "resources": resources.to_json()}
        need = resources
        if command is not None:
            info["command"] = {"shell": True, "value": command}
        else:
            executor_id = self._executors.get(offer.agent_id)
            if executor_id is not None and executor_id in offer.executor_ids:
                executor = self._executor_info(executor_id, offer.role)
                executor.pop("resources", None)  # it runs already; the master checks the rest
            else:
                executor = self._executor_info(f"notebook-{uuid.uuid4().hex[:12]}", offer.role)
                need = need + EXECUTOR_RESOURCES
            info["executor"] = executor
            call = cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            info["data"] = base64.b64encode(Call(call=call).encode()).decode("ascii")
        have = Resources({k: v for k, v in offer.resources.items() if k in SCALARS})
        if not have.contains(need):
            raise ValueError(f"{offer!r} cannot hold {need} (this launch's resources"
                             + (", plus the executor's" if need is not resources else "")
                             + ")")
        if not self._forget(offer, "launched"):
            raise ValueError(f"{offer!r} is no longer held (launched on, declined or "
                             "rescinded); take another from offer_list() or next_offer()")
        self._mark_action()
        task = self.task_type(self, task_id, name, offer, command)
        self._tasks[task_id] = task
        if command is None:
            self._executors[offer.agent_id] = info["executor"]["executor_id"]["value"]
        try:
            self._run(self.driver.launch([offer.id], [info], refuse_seconds), 30)
        except BaseException:
            self._tasks.pop(task_id, None)
            raise
        return task

    def decline(self, offers: Offer | Iterable[Offer], refuse_seconds: float | None = None
                ) -> None:
        """Decline; the master keeps these agents from this framework for
        ``refuse_seconds`` (Mesos's default 5 s) unless it revives. Offers no longer held
        (already used, declined or rescinded) are skipped."""
        offers = [offers] if isinstance(offers, Offer) else list(offers)
        offers = [o for o in offers if self._forget(o, "declined")]
        if offers:
            self._mark_action()
            self._run(self.driver.decline([o.id for o in offers], refuse_seconds), 30)

    def revive(self) -> None:
        """Clear every decline filter and ask for offers again (after :meth:`suppress`)."""
        self._mark_action()
        self._run(self.driver.revive(), 30)

    def suppress(self) -> None:
        """Ask for no more offers until :meth:`revive`."""
        self._mark_action()
        self._run(self.driver.suppress(), 30)

    def kill(self, task: LaunchedTask | str) -> None:
        task_id = task if isinstance(task, str) else task.task_id
        agent = None if isinstance(task, str) else task.agent_id
        self._run(self.driver.kill(task_id, agent), 30)

    def release_offers(self, refuse_seconds: float = RELEASE_REFUSE) -> int:
        """Decline every held offer for ``refuse_seconds`` (listeners see them ``gone``
        as ``released``): the client's own calls are waiting for these resources. Runs
        on the client's loop; the number of offers released."""
        with self._cond:
            held = list(self._offers.values())
        offers = []
        for offer in held:
            self.released += 1  # counted before listeners hear of it (a view shows it)
            if self._forget(offer, "released"):
                offers.append(offer)
            else:
                self.released -= 1
        if offers:
            log.info("%s: released %d offers for the client's waiting calls", self.name,
                     len(offers))
            self._spawn(self.driver.decline([o.id for o in offers], refuse_seconds))
        return len(offers)

    def held(self) -> dict[str, dict[str, float]]:
        """What the held offers hold, per agent (``host:port``)."""
        out: dict[str, dict[str, float]] = {}
        with self._cond:
            for offer in self._offers.values():
                into = out.setdefault(offer.agent, {})
                for k, v in offer.resources.items():
                    into[k] = into.get(k, 0.0) + v
        return out

    def subscribe(self, listener: Callable[[str, Any], Any]) -> Callable[[], None]:
        """Call ``listener(kind, payload)`` on ``offers`` (a list of new offers),
        ``rescind`` (an offer the master took back), ``gone`` (an offer launched on or
        declined here), ``update`` (a launched task) and ``closed`` (the framework, payload
        None); returns a function that unsubscribes. Called on the client's loop thread,
        except ``gone`` (the thread that launched or declined)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def close(self) -> None:
        """Tear the framework down (its tasks are killed)."""
        if self.closed:
            return
        self.cluster.on_close(self._stop, remove=True)
        self._run(self._stop(), 30)

    def __enter__(self) -> NotebookFramework:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<mesonb.NotebookFramework {self.name} {self.framework_id} role={self.role} "
                f"{len(self._offers)} offers>")

    # -- internals ---------------------------------------------------------------------
    async def _stop(self) -> None:
        self.closed = True
        with self._cond:
            self._offers.clear()
            self._cond.notify_all()
        await self.driver.stop(teardown=True)
        for task in list(self._tasks.values()):
            task.set_exception(TaskError(task.task_id, "TASK_KILLED", None,
                                         "the framework was closed"))
        self._tasks.clear()
        self._tell("closed", None)
        self._listeners.clear()

    def _run(self, coro: Any, timeout: float) -> Any:
        return self.cluster.run_on_loop(coro, timeout)

    def _mark_action(self) -> None:
        """A call that may bring offers is about to go: :meth:`next_offer` counts from here."""
        with self._cond:
            self._acted = self._seen

    def _forget(self, offer: Offer, why: str) -> bool:
        """Take ``offer`` out of the held ones (True if it was held) and tell listeners."""
        with self._cond:
            held = self._offers.pop(offer.id, None) is not None
            self._cond.notify_all()
        if held:
            offer.gone = why
            self._tell("gone", offer)
        return held

    def _tell(self, kind: str, payload: Any) -> None:
        tell(self._listeners, kind, payload)

    def _executor_info(self, executor_id: str | None, role: str) -> dict[str, Any]:
        env = [{"name": k, "value": v} for k, v in sorted(self._executor_env.items())]
        info: dict[str, Any] = {
            "executor_id": {"value": executor_id}, "type": "CUSTOM",
            "name": "mesonb functions executor",
            "command": {"shell": False, "value": sys.executable,
                        "arguments": [sys.executable, "-m", EXECUTOR_MODULE],
                        "environment": {"variables": env}}}
        if EXECUTOR_RESOURCES:
            info["resources"] = EXECUTOR_RESOURCES.to_json()
        return info

    def _spawn(self, coro: Any) -> None:
        spawn(coro, self._background, "notebook framework work", logger=log)

    async def _conclude(self, task: LaunchedTask, status: dict[str, Any]) -> None:
        try:
            if task.command is not None:
                if command_concluded(status):
                    out, err = await self._sandboxes.command_logs(
                        task.agent_url or "", task.task_id)
                    task.set_result(CommandResult(returncode(status), out, err))
                    return
            elif status.get("data"):
                outcome = Outcome.decode(base64.b64decode(status["data"]))
                if outcome.ok:
                    raw = outcome.value if outcome.path is None else \
                        await self._sandboxes.download(task.agent_url, outcome.path)
                    task.set_result(pickle.loads(raw or b""))
                else:
                    task.set_exception(remote_exception(outcome))
                return
            task.set_exception(TaskError(task.task_id, status["state"], status.get("reason"),
                                         status.get("message")))
        except Exception as exc:
            if not task.done():
                task.set_exception(exc)


def tell(listeners: list[Callable[[str, Any], Any]], kind: str, payload: Any) -> None:
    """Call every ``listener(kind, payload)``; one that fails is logged, not raised (a
    view's failure must not break the framework or model that tells it)."""
    for listener in list(listeners):
        try:
            listener(kind, payload)
        except Exception:
            log.exception("listener %r failed on %s", listener, kind)


def _short(ident: str) -> str:
    """An id's last part: enough to tell offers apart (``…-O12``)."""
    return ident if len(ident) <= 12 else "…" + ident[-8:]
