"""Starting an embedded cluster (master and agents, no ZooKeeper) on the client's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import Any

from mesonb.protocol.resources import Resources

log = logging.getLogger(__name__)

OFFER_TIMEOUT = 60.0  # seconds: an embedded master's offer timeout unless given
# the daemons' request lines and HTTPError messages (4xx answers are logged there); the
# tornado loggers themselves are left alone: they are the user's tornado applications' too
QUIET = ("mesonb.http.access",)


def quiet_daemons() -> None:
    """The daemons now run in the user's process: their loggers (mesonb's) print nothing
    in the user's cells unless asked (``logging`` configured, or
    ``mesonb.config(log_level=...)``). A NullHandler stops Python's last-resort handler,
    which would print warnings to stderr; records still reach handlers the user sets.
    Tornado's own loggers keep their handlers and levels: the daemons do not log there."""
    for name in ("mesonb",):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    # A bad request to an embedded daemon (a browser opening the master's URL) is the
    # requester's business, not a warning for the notebook: a kernel often has a root
    # handler (any logging.warning() call installs one) that would print it in a cell.
    for name in QUIET:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)


async def start_local(agents: int = 1, *, resources: str | None = None,
                      work_dir: Path | str | None = None, secret: str | None = None,
                      warm: bool = True, **options: Any) -> Any:
    """A started :class:`mesonb.local.LocalCluster` on a free loopback port, agents
    registered (``warm`` is the client's: it starts the functions executor). Imported
    here, lazily, so that connecting to a remote cluster does not
    load the master and agent code. The process's garbage collector is tuned as for a
    daemon (:mod:`mesonb.gctune`)."""
    from mesonb.gctune import tune_for_daemon
    from mesonb.local import LocalCluster

    quiet_daemons()
    # offers no framework acts on go back to the master after a minute (Mesos's
    # --offer_timeout): another client's framework cannot starve this one's calls for long
    master_options = {"offer_timeout": OFFER_TIMEOUT, **(options.pop("master_options", None)
                                                         or {})}
    cluster = LocalCluster(agents, port=0, work_dir=Path(work_dir) if work_dir else None,
                           resources=resources, secret=secret,
                           publish_secret=secret is None,  # secure by default: one is made
                           master_options=master_options, **options)
    await cluster.start()
    try:
        await cluster.wait_ready()
    except BaseException:
        await cluster.stop()
        raise
    tune_for_daemon()  # the master and agents now live in this process
    return cluster


def warm_up_resources(agents: list[dict[str, Any]]) -> Resources:
    """What the warm-up call (``mesonb-warmup``, :meth:`Cluster.local`) asks for: a whole
    core while it lasts (the largest agent's cpus if smaller). The agent caps a
    container's CPU at its tasks' cpus, and an interpreter starting under a cap of 0.01
    of a core takes seconds."""
    largest = max((float(a.get("resources", {}).get("cpus", 0.0)) for a in agents),
                  default=0.0)
    cpus = min(1.0, largest) if largest > 0 else 0.01
    return Resources({"cpus": cpus, "mem": 32.0})


async def warm_up(fut: concurrent.futures.Future[Any]) -> None:
    """Wait for the warm-up call, which starts the functions executor while the cluster
    starts (one small call, listed as a task like any other): the first call a user
    makes after :meth:`Cluster.local` then finds it running, interpreter start and
    imports paid. A failure is logged: the cluster works without it (calls start it)."""
    try:
        await asyncio.wait_for(asyncio.wrap_future(fut), 60)
    except Exception as exc:
        log.info("warming the functions executor up failed: %s", exc)
