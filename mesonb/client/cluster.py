"""``Cluster``: run Python functions and shell commands as Mesos tasks, from a notebook.

Example::

    from mesonb import Cluster

    with Cluster.local(agents=2) as cluster:          # or Cluster("10.0.0.1:5050")
        fut = cluster.submit(sum, [1, 2, 3], cpus=0.5, mem="512MiB")
        print(fut.result())                           # 6
        squares = cluster.map(lambda x: x * x, range(10))
        print(cluster.gather(squares))
        print(cluster.run("uname -a").result().stdout)

Each call is one Mesos task of the functions framework (visible in ``/master/state``).
Resource defaults: ``cpus=0.2``, ``mem="1GB"``, ``disk=0``, ``gpus=0``; ``retries=0``.
The resource keywords of :meth:`Cluster.submit` are reserved; pass a function keyword
with the same name through :func:`functools.partial`.

The client's core runs on its own event loop thread (:mod:`.loop`), so the same code works
in a script and in a Jupyter kernel; ``await fut`` works in asyncio code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import getpass
import itertools
import logging
import os
import pickle
import types
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import cloudpickle

from mesonb.discovery import is_zk, parse_zk_url
from mesonb.frameworks.driver import SchedulerDriver, master_url
from mesonb.frameworks.functions import shm
from mesonb.frameworks.functions.protocol import INLINE_MAX
from mesonb.frameworks.functions.results import Results, TaskError
from mesonb.frameworks.functions.sandbox import Sandboxes
from mesonb.frameworks.functions.scheduler import (
    FAILOVER_TIMEOUT,
    FunctionsScheduler,
)
from mesonb.http.client import Connection
from mesonb.protocol.checks import HealthCheck, health_check_json
from mesonb.protocol.resources import Resources
from mesonb.security.local_secret import secret_for

from . import pending
from .blobs import BlobServer
from .calls import executor_env, nested_future, placehold, plain_call, slug, this_host
from .frameworks import ClusterFrameworks
from .futures import Future, FutureInCall, Logs, results
from .jobs import ClusterJobs, Job
from .leader import LeaderConnection
from .loop import LoopThread, at_exit
from .sizes import check_retries, could_hold
from .views import ClusterViews, in_kernel, wants_progress

log = logging.getLogger(__name__)
# The local clusters alive in this process (a second Cluster.local() warns, naming them).
_LOCAL: weakref.WeakSet[Cluster] = weakref.WeakSet()
class Cluster(ClusterViews, ClusterFrameworks, ClusterJobs):
    """A connection to a mesonb cluster (see the module docstring).

    ``Cluster("HOST:PORT")`` connects to a running master, ``Cluster("zk://h1:2181,h2:2181/
    mesonb")`` to whichever master leads and follows it across failovers (calls in flight
    are retried on the new leader, futures keep running); :meth:`Cluster.local` starts
    an embedded one. Close it with :meth:`close`, ``with``, or at interpreter exit.
    """

    def __init__(self, address: str | None = None, *, secret: str | None = None,
                 name: str = "mesonb-functions", timeout: float = 30.0,
                 _local: dict[str, Any] | None = None) -> None:
        if address is None and _local is None:
            raise ValueError("give the master as Cluster('HOST:PORT'), or use Cluster.local()")
        if address is not None and is_zk(address):
            parse_zk_url(address)  # validates; the leader is found (and followed) in _start
        elif address is not None:
            master_url(address)  # validates
        self.secret = secret or (secret_for(address) if address and not is_zk(address) else None)
        self.name = name
        # the embedded cluster (mesonb.local.LocalCluster) of Cluster.local(), else None
        self.local: Any = None  # type: ignore[method-assign,assignment]
        self.address = address or ""
        self.closed = False
        self._headers = {"Authorization": f"Bearer {self.secret}"} if self.secret else {}
        self._sandboxes = Sandboxes(self._headers)
        self._results = Results(self._sandboxes, self._headers, finish=self._finish,
                                relaunch=self._launch)
        self._offer_holders: list[Any] = []  # notebook frameworks of this client
        self._posted: deque[Job] = deque()  # submitted, not yet on the loop
        self._functions: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()
        self._drain_scheduled = False
        self._unannounced: list[Future] = []
        self._announcing: asyncio.Handle | None = None
        self._shm_dir: str | None = None
        self._jobs: dict[str, Job] = {}
        self._agents: list[dict[str, Any]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self._closers: list[Callable[[], Any]] = []  # notebook frameworks, dashboards
        self._ids = itertools.count()
        self._lt = LoopThread()
        try:
            self._lt.run(self._start(_local), timeout)
        except BaseException:
            self._lt.run(self._stop(), 30)
            self._lt.stop()
            raise
        at_exit(self.close)

    @classmethod
    def local(cls, agents: int = 1, *, resources: str | None = None,
              work_dir: str | None = None, secret: str | None = None, reuse: bool = False,
              warm: bool = True, **options: Any) -> Cluster:
        """Start a master and ``agents`` agents in this process (no ZooKeeper), and the
        functions executor (``warm=False``: by the first call). One agent holds the whole
        machine by default (on N cores, ``cpus=1`` to ``cpus=N`` fit and N ``cpus=1``
        calls run at once); ``resources``: each agent's flag (``"cpus:2;mem:4096"``).
        Secure by default: a secret is made unless given (:mod:`mesonb.security.local_secret`);
        ``tls=True``: HTTPS. While one is open, ``reuse=True`` returns it, and a second
        ``local()`` warns, naming it (its agents would claim the same cores again).

        >>> with Cluster.local() as cluster:  # doctest: +SKIP
        ...     cluster.submit(abs, -3).result()
        3
        """
        alive = [c for c in list(_LOCAL) if not c.closed]
        if alive and reuse:
            return alive[-1]
        if alive:
            warnings.warn(
                f"a local cluster is already running in this process ({alive[-1]!r}); "
                "this starts a second one whose agents claim the same cores again. "
                "Use Cluster.local(reuse=True) to get the first, or close it first.",
                RuntimeWarning, stacklevel=2)
        cluster = cls(secret=secret, _local={"agents": agents, "resources": resources,
                                             "work_dir": work_dir, "secret": secret,
                                             "warm": warm, **options})
        _LOCAL.add(cluster)
        return cluster

    # -- life cycle (async core) -------------------------------------------------------
    async def _start(self, local: dict[str, Any] | None) -> None:
        if local is not None:
            from .local import start_local

            embedded = await start_local(**local)
            self.local = embedded  # type: ignore[method-assign]
            self.secret = self.secret or embedded.secret  # made by the embedded cluster
            for held in (self._headers, self._sandboxes.headers, self._results.headers):
                held.update({"Authorization": f"Bearer {self.secret}"} if self.secret else {})
            self.address = embedded.master_address
        if is_zk(self.address):  # every master call goes to the current leader
            self._master = LeaderConnection(self.address, self._headers)
            url = await self._master.start()
        else:
            url = master_url(self.address)
            self._master = Connection.to(url, self._headers)
        await self._refresh_agents()
        self._blobs = BlobServer()
        self._blobs.start(url)
        # values share memory with workers when every agent is on this host
        self._shm_dir = shm.client_dir() if self._agents and all(
            a.get("hostname") in this_host() for a in self._agents) else None
        self._scheduler = FunctionsScheduler(executor_env=executor_env())
        self._scheduler.on_fatal = self._fatal
        self._scheduler.on_starved = self._release_held_offers
        self._scheduler.on_launched = self._on_launched
        self._scheduler.after_events = self._events_handled
        framework = {"user": getpass.getuser(), "name": self.name,
                     "failover_timeout": FAILOVER_TIMEOUT, "hostname": os.uname().nodename,
                     "capabilities": [{"type": "GPU_RESOURCES"}]}  # calls may ask for gpus
        self._driver = SchedulerDriver(self.address, framework, self._scheduler,
                                       secret=self.secret)
        self.framework_id = await self._driver.start()
        self._scheduler.start(self._driver)
        if local is not None and local.get("warm", True):
            await self._warm_up()

    async def _warm_up(self) -> None:
        """Start the functions executor now (:func:`.local.warm_up`)."""
        from .local import warm_up, warm_up_resources

        fut = Future(self, "mesonb-warmup", "mesonb-warmup")
        call = cloudpickle.dumps((abs, (0,), {}), protocol=pickle.HIGHEST_PROTOCOL)
        self._post(Job(fut, "mesonb-warmup", warm_up_resources(self._agents), 0, call=call))
        await warm_up(fut)

    async def _stop(self) -> None:
        self._announce_settled()
        for job in list(self._jobs.values()):
            job.closed = True
            job.future._settle(exc=TaskError(job.future.task_id or job.future.key,
                                             "TASK_KILLED", None, "the cluster was closed"))
        self._jobs.clear()
        for closer in list(getattr(self, "_closers", ())):
            try:
                await closer()
            except Exception:
                log.exception("closing %r failed", closer)
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is not None:
            await scheduler.stop()
        driver = getattr(self, "_driver", None)
        if driver is not None:
            await driver.stop(teardown=True)
        if getattr(self, "_blobs", None) is not None:
            self._blobs.stop()
        if self._shm_dir is not None:
            shm.remove_dir(self._shm_dir)  # and its lock (bugs: /dev/shm sweep)
        if getattr(self, "_master", None) is not None:
            self._master.close()
        embedded: Any = self.local
        if embedded is not None:
            await embedded.stop()

    def close(self) -> None:
        """Stop the framework (killing its tasks) and, for a local cluster, every daemon."""
        if self.closed:
            return
        self.closed = True
        at_exit(self.close, remove=True)
        try:
            self._lt.run(self._stop(), 60)
        finally:
            self._lt.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "local " if self.local is not None else ""
        state = "closed" if self.closed else f"{len(self._jobs)} calls in flight"
        return (f"<mesonb.Cluster {kind}{self.address}: {pending.agents_text(self._agents)}, "
                f"{state}>")

    # -- public API --------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *args: Any, cpus: float = 0.2,
               mem: str | float = "1GB", disk: str | float | None = None,
               gpus: float | None = None, name: str | None = None, retries: int = 0,
               health_check: HealthCheck | dict[str, Any] | None = None, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` as one task; a :class:`~.futures.Future` of its result.

        ``fn`` is pickled once per function object, as Dask does: the globals it uses
        by value are those of its first call (redefine it to change them).
        Futures among the arguments (top level, or inside a list, tuple, set or dict) are
        dependencies: the call waits for them and gets their values. A future nested deeper
        is refused (TypeError): pass its value. ``health_check``: a failing
        :class:`~mesonb.protocol.checks.HealthCheck` (or its JSON) kills the call.

        >>> fut = cluster.submit(pow, 2, 8, cpus=0.1, mem="256MiB")  # doctest: +SKIP
        >>> fut.result()                                              # doctest: +SKIP
        256
        """
        if not callable(fn):
            raise TypeError(f"submit needs a callable, not {type(fn).__name__}")
        resources = self._resources(cpus, mem, disk, gpus)
        retries, check = check_retries(retries), health_check_json(health_check)
        deps: list[Future] = []
        held = tuple(placehold(a, deps) for a in args)
        held_kw = {k: placehold(v, deps) for k, v in kwargs.items()}
        pickled_fn: bytes | None = self._pickled(fn)
        whole = len(pickled_fn or b"") > INLINE_MAX // 2  # a big closure goes out of band
        try:
            if not whole and plain_call(held, held_kw):  # the same bytes, sooner
                call, shared = pickle.dumps((held, held_kw), protocol=pickle.HIGHEST_PROTOCOL
                                            if self._shm_dir is None else 5), None
            else:
                call, shared = shm.dump((fn, held, held_kw) if whole else (held, held_kw),
                                        self._shm_dir)
        except FutureInCall as exc:  # a future nested deeper than placeholders go
            raise TypeError(nested_future(args, kwargs) or str(exc)) from None
        if whole:
            pickled_fn = None
        name = name or str(getattr(fn, "__name__", "call"))
        fut = Future(self, f"{slug(name)}-{next(self._ids)}", name)
        self._post(Job(fut, name, resources, retries, call=call, deps=deps, shm=shared,
                        fn=pickled_fn, health_check=check))
        return fut

    def _pickled(self, fn: Callable[..., Any]) -> bytes:
        """``fn`` pickled, once per function object while it lives (as Dask does: a
        function's globals are captured at its first call). Other callables (objects
        whose state may change between calls, builtins) are pickled every time."""
        if type(fn) is not types.FunctionType:
            return cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
        pickled = self._functions.get(fn)
        if pickled is None:
            pickled = cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
            self._functions[fn] = pickled
        return pickled

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            progress: bool | None = None, **resources: Any) -> list[Future]:
        """``[submit(fn, *items, **resources) for items in zip(*iterables)]``; in Jupyter
        (or with ``progress=True``) a progress bar shows them finish."""
        futures = [self.submit(fn, *items, **resources)
                   for items in zip(*iterables, strict=False)]
        if progress or (progress is None and len(futures) > 1 and in_kernel()):
            from mesonb.widgets.progress import progress as show

            show(futures, wait=False)
        return futures

    def gather(self, futures: Iterable[concurrent.futures.Future],
               timeout: float | None = None, progress: bool | None = None) -> list[Any]:
        """The results of ``futures`` in order; raises the first exception met. A
        progress bar shows while waiting: a widget in Jupyter, tqdm on a terminal
        (``progress=None`` decides; ``False`` never)."""
        futures = list(futures)
        if progress or (progress is None and len(futures) > 1 and wants_progress()):
            from mesonb.widgets.progress import progress as show

            show(futures, wait=False)
        return results(futures, timeout)  # [f.result(timeout) for f in futures], fewer wakes

    def run(self, command: str, *, cpus: float = 0.1, mem: str | float = "128MiB",
            disk: str | float | None = None, gpus: float | None = None,
            name: str | None = None, retries: int = 0) -> Future:
        """Run a shell command as a Mesos command task; the future yields a
        :class:`~.futures.CommandResult` (returncode, stdout, stderr). ``gpus``: a whole
        number of GPUs, as for :meth:`submit` (the command sees ``CUDA_VISIBLE_DEVICES``).

        >>> cluster.run("echo hi").result().stdout  # doctest: +SKIP
        'hi\\n'
        """
        resources = self._resources(cpus, mem, disk, gpus)
        retries = check_retries(retries)
        name = name or "command"
        fut = Future(self, f"{slug(name)}-{next(self._ids)}", name, command=True)
        self._post(Job(fut, name, resources, retries, command=command))
        return fut

    def executor(self, **resources: Any) -> Any:
        """A :class:`concurrent.futures.Executor` whose calls run with ``resources``."""
        from .executor import ClusterExecutor

        return ClusterExecutor(self, resources)

    # -- the cluster's state (pandas DataFrames; see :mod:`.state`) --------------------
    def agents(self) -> Any:
        """A DataFrame of the registered agents: ``cpus_total``/``_allocated``/``_offered``/
        ``_used`` (and mem, disk, gpus), ``registered_time`` as a timestamp."""
        return self._frame("agents")

    def tasks(self, all_frameworks: bool = False) -> Any:
        """A DataFrame of this framework's tasks (every framework's with
        ``all_frameworks=True``), as the master's operator API lists them."""
        return self._frame("tasks", all_frameworks=all_frameworks)

    def frameworks(self) -> Any:
        """A DataFrame of the frameworks the master knows, completed ones included."""
        return self._frame("frameworks")

    def offers(self) -> Any:
        """A DataFrame of every outstanding offer in the cluster (any framework)."""
        return self._frame("offers")

    def dashboard(self, **options: Any) -> Any:
        """A live dashboard fed by the master's operator event stream (SUBSCRIBE)."""
        from mesonb.widgets.dashboard import Dashboard

        return Dashboard(self, **options).show()

    def _repr_html_(self) -> str:
        from html import escape

        from mesonb.widgets.templates import cluster_html

        link = escape(self.dashboard_link, quote=True)
        return cluster_html(self) + (f'<p>Dashboard: <a href="{link}" target="_blank">{link}'
                                     "</a></p>")

    # -- agents and sandboxes ------------------------------------------------------
    async def _get_json(self, path: str) -> Any:
        answer = await self._master.request("GET", path)
        return answer.json()

    async def _refresh_agents(self) -> None:
        state = await self._get_json("/master/state")
        self._agents = [a for a in state.get("slaves", []) if a.get("active", True)]

    def _could_hold(self, need: Resources) -> bool:
        return could_hold(self._agents, need)

    def _too_big(self, job: Job) -> str:
        return pending.too_big(job.resources, job.command is not None, self._agents)

    def _logs(self, fut: Future, timeout: float) -> Logs:
        out, err = self._lt.run(self._sandboxes.task_logs(fut.record), timeout)
        return Logs(out, err)

    def _status(self, fut: Future, timeout: float = 5.0) -> str:
        """What ``fut``'s call is doing, in words (:meth:`Future.status`)."""
        if fut.done() or self.closed or self._lt.in_loop_thread():
            return pending.describe(fut, None, None, [])

        async def look() -> str:
            return pending.describe(fut, self._jobs.get(fut.key), self._scheduler,
                                    self._agents, self._offer_holders)

        try:
            return self._lt.run(look(), timeout)
        except (TimeoutError, RuntimeError):
            return "pending (the client's loop did not answer)"

