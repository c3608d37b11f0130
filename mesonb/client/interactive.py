"""A framework driven by hand from a notebook: look at offers, launch on one, decline.

It is a plain :class:`~mesonb.frameworks.driver.SchedulerDriver` handler on the client's
loop thread; what the user calls from the kernel's thread waits on a condition variable.

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
function launched there, whose 0.1 cpus/64 MB come out of the same offer); command tasks
are plain Mesos command tasks.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import getpass
import logging
import os
import pickle
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import cloudpickle

from mesonb.frameworks.driver import SchedulerDriver
from mesonb.frameworks.functions.protocol import Call, Outcome
from mesonb.frameworks.functions.scheduler import (
    EXECUTOR_MODULE,
    EXECUTOR_RESOURCES,
    TERMINAL,
    _agent_url,
)
from mesonb.protocol.resources import Resources

from . import state
from .calls import remote_exception, returncode
from .errors import TaskError
from .futures import CommandResult
from .sizes import parse_size

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger(__name__)

class Offer:
    """One offer this framework holds: ``id``, ``agent_id``, ``hostname``, ``resources``
    (``{"cpus": 1.0, "mem": 1024.0, ...}``) and the raw v1 ``Offer`` in ``raw``."""

    def __init__(self, framework: NotebookFramework, raw: dict[str, Any], seq: int = 0) -> None:
        self.framework = framework
        self.raw = raw
        self.seq = seq  # arrival order in this framework (1 = the first offer received)
        self.gone: str | None = None  # "launched", "declined" or "rescinded" once not held
        row = state.offer_row(raw)
        self.id: str = row["offer_id"]
        self.agent_id: str = row["agent_id"]
        self.hostname: str = row["hostname"]
        self.role: str = row["role"]
        self.resources: dict[str, float] = state.scalars(raw.get("resources"))
        self.executor_ids = {e["value"] for e in raw.get("executor_ids", ())}

    def launch(self, *args: Any, **kwargs: Any) -> LaunchedTask:
        return self.framework.launch(self, *args, **kwargs)

    def decline(self, refuse_seconds: float | None = None) -> None:
        self.framework.decline(self, refuse_seconds)

    def __repr__(self) -> str:
        res = ", ".join(f"{k} {v:g}" for k, v in sorted(self.resources.items()))
        gone = f" ({self.gone})" if self.gone else ""
        return f"<mesonb.Offer {self.id} on {self.hostname} ({self.agent_id}): {res}{gone}>"

    def _repr_html_(self) -> str:
        from mesonb.widgets.templates import offer_html

        return offer_html(self)


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
        self.agent_url = _agent_url(offer.raw)
        self.command = command
        self.state = "TASK_STAGING"
        self.statuses: list[dict[str, Any]] = []

    def kill(self) -> None:
        self.framework.kill(self)

    def __repr__(self) -> str:
        return f"<mesonb.LaunchedTask {self.name} {self.task_id} on {self.hostname} {self.state}>"

    def _repr_html_(self) -> str:
        from mesonb.widgets.templates import task_html

        return task_html(self)


class NotebookFramework:
    """A framework of the notebook's own (see the module docstring)."""

    def __init__(self, cluster: Cluster, name: str = "notebook", *, role: str = "*",
                 **info: Any) -> None:
        self.cluster = cluster
        self.name = name
        self.role = role
        self.closed = False
        self._lt = cluster._lt
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
                     "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 0.0,
                     "hostname": os.uname().nodename, **info}
        self.driver = SchedulerDriver(cluster.address, framework, self, secret=cluster.secret)
        self.framework_id: str = self._lt.run(self.driver.start(), 30)
        cluster._closers.append(self._stop)

    # -- driver callbacks (loop thread) -------------------------------------------------
    def on_offers(self, offers: list[dict[str, Any]]) -> None:
        with self._cond:
            new = []
            for raw in offers:
                self._seen += 1
                offer = Offer(self, raw, self._seen)
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

    def offers(self) -> Any:
        """The offers held now, as a DataFrame (:data:`~.state.OFFER_COLUMNS`)."""
        return state.frame([state.offer_row(o.raw) for o in self.offer_list()],
                           state.OFFER_COLUMNS)

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
               command: str | None = None, cpus: float = 0.1, mem: str | float = "128MiB",
               disk: str | float | None = None, gpus: float | None = None,
               name: str | None = None, refuse_seconds: float | None = None,
               **kwargs: Any) -> LaunchedTask:
        """Launch ``fn(*args, **kwargs)`` or a shell ``command`` on ``offer`` with the
        given resources; what the task does not use is declined (``refuse_seconds``)."""
        if (fn is None) == (command is None):
            raise TypeError("launch needs a function or command=..., not both")
        scalars = {"cpus": float(cpus), "mem": parse_size(mem, "mem")}
        if disk:
            scalars["disk"] = parse_size(disk, "disk")
        if gpus:
            scalars["gpus"] = float(gpus)
        resources = Resources(scalars)
        name = name or (getattr(fn, "__name__", "call") if fn else "command")
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
                executor.pop("resources")  # it runs already; the master checks the rest
            else:
                executor = self._executor_info(f"notebook-{uuid.uuid4().hex[:12]}", offer.role)
                need = need + EXECUTOR_RESOURCES
            info["executor"] = executor
            call = cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            info["data"] = base64.b64encode(Call(call=call).encode()).decode("ascii")
        have = Resources({k: v for k, v in offer.resources.items() if k in state.SCALARS})
        if not have.contains(need):
            raise ValueError(f"{offer!r} cannot hold {need} (this launch's resources"
                             + (", plus the executor's" if need is not resources else "")
                             + ")")
        if not self._forget(offer, "launched"):
            raise ValueError(f"{offer!r} is no longer held (launched on, declined or "
                             "rescinded); take another from offer_list() or next_offer()")
        self._mark_action()
        task = LaunchedTask(self, task_id, name, offer, command)
        self._tasks[task_id] = task
        if command is None:
            self._executors[offer.agent_id] = info["executor"]["executor_id"]["value"]
        try:
            self._lt.run(self.driver.launch([offer.id], [info], refuse_seconds), 30)
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
            self._lt.run(self.driver.decline([o.id for o in offers], refuse_seconds), 30)

    def revive(self) -> None:
        """Clear every decline filter and ask for offers again (after :meth:`suppress`)."""
        self._mark_action()
        self._lt.run(self.driver.revive(), 30)

    def suppress(self) -> None:
        """Ask for no more offers until :meth:`revive`."""
        self._mark_action()
        self._lt.run(self.driver.suppress(), 30)

    def kill(self, task: LaunchedTask | str) -> None:
        task_id = task if isinstance(task, str) else task.task_id
        agent = None if isinstance(task, str) else task.agent_id
        self._lt.run(self.driver.kill(task_id, agent), 30)

    def tasks(self) -> Any:
        """This framework's tasks as the master lists them (a DataFrame)."""
        frame = self.cluster.tasks(all_frameworks=True)
        return frame[frame.framework_id == self.framework_id].reset_index(drop=True)

    def offers_widget(self, fn: Callable[..., Any] | None = None, *args: Any,
                      **kwargs: Any) -> Any:
        """The held offers as they come and go, each with resource inputs (cpus, mem,
        disk, gpus) and Accept/Decline buttons. Accept launches ``fn(*args, **kwargs)``
        when a function is given (or the row's shell command). In Jupyter an ipywidgets
        view (:class:`~mesonb.widgets.offers.OffersView`), elsewhere a text one
        (:class:`~mesonb.widgets.offers.OffersText`) with the same ``accept``/``decline``.
        """
        from mesonb.widgets.offers import OffersModel, OffersText
        from mesonb.widgets.progress import in_kernel

        model = OffersModel(self, fn, *args, **kwargs)
        if in_kernel():
            from mesonb.widgets.offers import OffersView

            return OffersView(model)
        return OffersText(model)

    def offers_widget_view(self, fn: Callable[..., Any] | None = None, *args: Any,
                           **kwargs: Any) -> Any:
        """The ipywidgets :class:`~mesonb.widgets.offers.OffersView`, in a kernel or not."""
        from mesonb.widgets.offers import OffersModel, OffersView

        return OffersView(OffersModel(self, fn, *args, **kwargs))

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
        if self._stop in self.cluster._closers:
            self.cluster._closers.remove(self._stop)
        self._lt.run(self._stop(), 30)

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
        from .cluster import _executor_env

        env = [{"name": k, "value": v} for k, v in sorted(_executor_env().items())]
        import sys

        return {"executor_id": {"value": executor_id}, "type": "CUSTOM",
                "name": "mesonb functions executor",
                "command": {"shell": False, "value": sys.executable,
                            "arguments": [sys.executable, "-m", EXECUTOR_MODULE],
                            "environment": {"variables": env}},
                "resources": EXECUTOR_RESOURCES.to_json()}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _conclude(self, task: LaunchedTask, status: dict[str, Any]) -> None:
        try:
            if task.command is not None:
                message = status.get("message", "")
                if status["state"] == "TASK_FINISHED" or message.startswith(
                        ("Command exited", "Command terminated")):
                    out, err = await self.cluster._sandboxes.command_logs(
                        task.agent_url or "", task.task_id)
                    task.set_result(CommandResult(returncode(status), out, err))
                    return
            elif status.get("data"):
                outcome = Outcome.decode(base64.b64decode(status["data"]))
                if outcome.ok:
                    raw = outcome.value if outcome.path is None else \
                        await self.cluster._sandboxes.download(task.agent_url, outcome.path)
                    task.set_result(pickle.loads(raw))
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
