"""Masters contending in a real ZooKeeper, as real processes: the start block HA tests share.

A :class:`ZooKeeperCluster` starts a ZooKeeper (one server, or an ensemble of three), gives
its URL to the masters it starts (``--zk <url>``, a short session timeout so a failover is
quick) and to agents that find the leader there, and stops all of it, processes that
outlived their daemon included::

    with ZooKeeperCluster(tmp_path).start() as ha:
        first = ha.start_master("m1")
        wait_for(lambda: leading(first), 20)
        second = ha.start_master("m2")
        agent = ha.start_agent()                       # --master zk://.../mesonb
        first.kill()                                   # the standby takes over
        wait_for(lambda: leading(second), 30)
"""

from __future__ import annotations

import signal
from pathlib import Path

from .processes import Daemon, get_json, kill_processes_under
from .zookeeper import ZooKeeperEnsemble, ZooKeeperServer

SESSION_TIMEOUT = 2.0  # the masters' --zk-session-timeout: a dead leader is gone after 2 s


class ZooKeeperCluster:
    """A ZooKeeper and the masters and agents started against it, under ``work``."""

    def __init__(self, work: Path, *, zookeepers: int = 1,
                 session_timeout: float = SESSION_TIMEOUT) -> None:
        self.work = Path(work)
        self.session_timeout = session_timeout
        self.zookeeper: ZooKeeperServer | ZooKeeperEnsemble = (
            ZooKeeperServer(self.work / "zk") if zookeepers == 1
            else ZooKeeperEnsemble(zookeepers, self.work / "zk"))
        self.daemons: list[Daemon] = []
        self.url = ""  # zk://127.0.0.1:<port>/mesonb once started

    def start(self) -> ZooKeeperCluster:
        """Start ZooKeeper (no master yet)."""
        self.zookeeper.start()
        self.url = self.zookeeper.url("/mesonb")
        return self

    def start_master(self, name: str, *extra: str, wait: bool = True) -> Daemon:
        """A master contending under :attr:`url`; ``extra`` flags go on its command line."""
        daemon = Daemon(["master", "--port", "0", "--work-dir", str(self.work / name),
                         "--zk", self.url, "--zk-session-timeout", f"{self.session_timeout:g}",
                         *extra], self.work / f"{name}.log")
        self.daemons.append(daemon)
        if wait:
            daemon.wait_listening()
        return daemon

    def start_masters(self, count: int, *extra: str) -> list[Daemon]:
        """``count`` masters m0, m1, ..., started together, once all listen."""
        masters = [self.start_master(f"m{i}", *extra, wait=False) for i in range(count)]
        for master in masters:
            master.wait_listening()
        return masters

    def start_agent(self, name: str = "agent", resources: str = "cpus:2;mem:2048",
                    master: str | None = None) -> Daemon:
        """An agent that finds the leader under :attr:`url` (or talks to ``master``)."""
        daemon = Daemon(["agent", "--master", master or self.url, "--port", "0", "--work-dir",
                         str(self.work / name), "--resources", resources],
                        self.work / f"{name}.log")
        self.daemons.append(daemon)
        daemon.wait_listening()
        return daemon

    def stop(self, *, kill: bool = False) -> None:
        """Stop the daemons (newest first, frozen ones resumed; ``kill``: SIGKILL at once),
        any process left under ``work``, then ZooKeeper."""
        for daemon in reversed(self.daemons):
            daemon.signal(signal.SIGKILL if kill else signal.SIGCONT)  # SIGCONT: a frozen one
            daemon.stop()
        kill_processes_under(self.work)
        self.zookeeper.stop()

    def __enter__(self) -> ZooKeeperCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def leading(master: Daemon) -> bool:
    """The master answers /master/state as the leader (a standby redirects or refuses)."""
    try:
        state = get_json(master.url + "/master/state", timeout=2)
    except OSError:
        return False
    return state.get("leader") == state.get("pid") and bool(state.get("pid"))


def active_agents(master: Daemon) -> int:
    """How many agents ``master`` counts active (0 when it does not answer)."""
    try:
        state = get_json(master.url + "/master/state", timeout=2)
    except OSError:
        return 0
    return sum(1 for s in state.get("slaves", []) if s.get("active"))
