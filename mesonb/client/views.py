"""What views (widgets, HTML reprs) use of a :class:`~.cluster.Cluster`: its public
interface to them. Widgets reach the cluster only through these methods and the
client's public API, never through the framework, HTTP or protocol modules.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from mesonb.http.client import Connection

from . import events, pending


class ClusterViews:
    """The part of :class:`~.cluster.Cluster` that serves views (see the module
    docstring). Everything here runs on, or hands work to, the client's loop thread."""

    # set by Cluster
    address: str
    closed: bool
    _lt: Any
    _master: Any
    _headers: dict[str, str]
    _closers: list[Callable[[], Any]]
    _agents: list[dict[str, Any]]
    _jobs: dict[str, Any]
    _scheduler: Any
    _offer_holders: list[Any]
    framework_id: str

    def run_on_loop(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run ``coro`` on the client's event loop thread and return its result (a
        view's I/O runs there, beside the framework's)."""
        return self._lt.run(coro, timeout)

    def on_loop_thread(self) -> bool:
        """True on the client's loop thread (where blocking calls would deadlock)."""
        return self._lt.in_loop_thread()

    def on_close(self, closer: Callable[[], Any], remove: bool = False) -> None:
        """``await closer()`` when this cluster closes (``remove=True``: no longer)."""
        if not remove:
            self._closers.append(closer)
        elif closer in self._closers:
            self._closers.remove(closer)

    async def operator(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        """The master's answer to an operator call (``"GET_AGENTS"``, ...): its ``kind``
        part. With ``timeout``, on a connection of its own (a call cut short must not
        leave its answer in the shared one). On the loop (:meth:`run_on_loop`)."""
        from . import state

        if timeout is None:
            return await state.operator_call(self._master, kind)
        url = await events.leader_url(self._master, self.address)
        conn = Connection.to(url, self._headers)
        try:
            return await asyncio.wait_for(state.operator_call(conn, kind), timeout)
        finally:
            conn.close()

    async def operator_stream(self) -> events.EventStream:
        """The master's operator event stream (SUBSCRIBE) at the leading master; open
        another when it breaks (a failover). On the loop (:meth:`run_on_loop`)."""
        return await events.open_events(self._master, self.address, self._headers)

    async def agents_usage(self, get_agents: dict[str, Any]) -> dict[str, dict[str, float]]:
        """What each agent of a ``GET_AGENTS`` answer measures in use, by agent id."""
        from . import state

        return await state.agents_used(get_agents, self._headers)

    @property
    def known_agents(self) -> list[dict[str, Any]]:
        """The active agents as the client last read them (``/master/state`` entries)."""
        return list(self._agents)

    def queue(self, explain: int = 3) -> list[dict[str, Any]]:
        """This client's calls not sent to an agent yet, oldest first: ``name``, ``key``
        and, for the first ``explain`` of them, ``status`` (``"pending: <reason>"``; the
        others' is ``""``: saying why costs a look at the whole queue)."""
        if self.closed:
            return []
        if self._lt.in_loop_thread():
            return self._queue_now(explain)

        async def look() -> list[dict[str, Any]]:
            return self._queue_now(explain)

        try:
            return self._lt.run(look(), 5)
        except (TimeoutError, RuntimeError):
            return []

    def _queue_now(self, explain: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for job in list(self._jobs.values()):
            fut = job.future
            if fut.launched is None and not fut.done():
                status = pending.describe(fut, job, self._scheduler, self._agents,
                                          self._offer_holders) if len(rows) < explain else ""
                rows.append({"name": fut.name, "key": fut.key, "status": status})
        return rows

    async def web_ui(self) -> str | None:
        """The master's web UI when it serves one (the client's ``dashboard_link``);
        None otherwise. Never probed with a request the master would answer 404."""
        link = getattr(self, "dashboard_link", None)
        return link if isinstance(link, str) and link.startswith("http") else None

    # -- the DataFrames of Cluster.agents(), tasks(), frameworks(), offers() ----------
    def _frame(self, kind: str, **options: Any) -> Any:
        from . import state
        from .frames import shown

        return shown(state.frame(self._lt.run(self._records(kind, **options), 30),
                                 getattr(state, f"{kind[:-1].upper()}_COLUMNS")))

    async def _records(self, kind: str, all_frameworks: bool = False) -> list[dict[str, Any]]:
        from . import state

        if kind == "agents":
            agents = await state.operator_call(self._master, "GET_AGENTS")
            return state.agent_records(agents, await state.agents_used(agents, self._headers))
        if kind == "frameworks":
            return state.framework_records(
                await state.operator_call(self._master, "GET_FRAMEWORKS"))
        if kind == "offers":
            return state.offer_records(await state.operator_call(self._master, "GET_FRAMEWORKS"))
        answer = await state.operator_call(self._master, "GET_STATE")
        return state.task_records(answer.get("get_tasks", {}), answer.get("get_agents"),
                                  answer.get("get_frameworks"),
                                  None if all_frameworks else self.framework_id)

    @property
    def calls_in_flight(self) -> int:
        """How many calls of this client are not finished yet."""
        return len(self._jobs)



def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can show)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def wants_progress() -> bool:
    """A bar while gathering: in Jupyter, or when stderr is a terminal."""
    return in_kernel() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
