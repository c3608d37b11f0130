"""A real Apache ZooKeeper for tests: one server or an ensemble on free loopback ports.

Runs the server jar (Debian package ``zookeeper``: ``/usr/share/java/zookeeper.jar``, or
``$ZOOKEEPER_JAR``) with java directly and a generated ``zoo.cfg``; the data lives in a
temporary directory that :meth:`stop` removes. Every process is stopped by pid::

    with ZooKeeperServer() as zk:
        client = KazooClient(zk.connect_string); client.start()

    with ZooKeeperEnsemble(3) as ensemble:
        url = ensemble.url("/mesonb")         # zk://127.0.0.1:p1,127.0.0.1:p2,.../mesonb
        ensemble.stop_node(0)                 # fault: one node down (quorum survives)
        ensemble.start_node(0)

Fault injectors: :meth:`ZooKeeperEnsemble.stop_node` / :meth:`ZooKeeperServer.kill` and
:func:`expire_session`, which closes a kazoo session from a second client holding the same
session id and password, so the first one sees SESSION_EXPIRED.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

JAR_CANDIDATES = ("/usr/share/java/zookeeper.jar", "/usr/share/zookeeper/zookeeper.jar")
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def zookeeper_jar() -> str | None:
    """The ZooKeeper server jar, or None when ZooKeeper (or java) is not installed."""
    if not shutil.which("java"):
        return None
    for jar in (os.environ.get("ZOOKEEPER_JAR"), *JAR_CANDIDATES):
        if jar and Path(jar).is_file():
            return jar
    return None


def free_port() -> int:
    """A loopback port free right now. Another process may take it before ZooKeeper binds
    it: the servers below start again on new ports when that happens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    """True when something listens on (or holds) ``port``; binds as Java does, with
    SO_REUSEADDR, so a port left in TIME_WAIT by a stopped server counts as free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command (``ruok``, ``srvr``, ``mntr``) and return the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while chunk := s.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class ZooKeeperServer:
    """One ZooKeeper server process (standalone, or node ``myid`` of an ensemble)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        client_port: int | None = None,
        myid: int | None = None,
        peers: list[tuple[int, int, int]] | None = None,  # (myid, peer port, election port)
        tick_ms: int = 500,
    ) -> None:
        self.jar = zookeeper_jar()
        if self.jar is None:
            raise RuntimeError("ZooKeeper is not installed: apt-get install -y zookeeper "
                               "(or run scripts/setup.sh --test), or set ZOOKEEPER_JAR")
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="mesonb-zk-")).resolve()
        self.client_port = client_port or free_port()
        self._free_to_move = client_port is None and not peers  # may change its port
        self.myid = myid
        self.peers = peers or []
        self.tick_ms = tick_ms
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def url(self, path: str = "/mesonb") -> str:
        return f"zk://{self.connect_string}/{path.strip('/')}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> Path:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={data}",
            "clientPortAddress=127.0.0.1",
            f"clientPort={self.client_port}",
            "maxSessionTimeout=60000",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "autopurge.purgeInterval=0",
        ]
        if self.peers:
            assert self.myid is not None
            (data / "myid").write_text(f"{self.myid}\n")
            lines += [f"server.{i}=127.0.0.1:{peer}:{elect}" for i, peer, elect in self.peers]
        config = self.directory / "zoo.cfg"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, wait: bool = True, timeout: float = 30.0, attempts: int = 5
              ) -> ZooKeeperServer:
        """Start the server (and by default wait until it serves). A standalone server on
        a port it chose itself moves to a new one if another process took that port
        between :func:`free_port` and the server's bind."""
        if self.running:
            return self
        for attempt in range(1, attempts + 1):
            self._spawn()
            if not wait:
                return self
            try:
                self.wait_serving(timeout)
                return self
            except BaseException as exc:
                self.stop(remove=False)
                if (self._free_to_move and attempt < attempts
                        and isinstance(exc, (RuntimeError, TimeoutError))
                        and port_taken(self.client_port)):
                    self.client_port = free_port()
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        config = self._write_config()
        log = open(self.directory / "zookeeper.log", "ab")  # noqa: SIM115 (the child owns it)
        try:
            self.proc = subprocess.Popen(
                ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                 "-Djava.net.preferIPv4Stack=true", "-Dzookeeper.admin.enableServer=false",
                 "-cp", f"{self.jar}:{self.directory}", MAIN, str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.directory,
            )
        finally:
            log.close()

    def serving(self) -> bool:
        """True when this server (not another process on its port) answers clients (in an
        ensemble: is part of a quorum)."""
        try:
            return ("Mode:" in four_letter(self.client_port, "srvr")
                    and f"dataDir={self.directory / 'data'}" in four_letter(self.client_port,
                                                                           "conf"))
        except OSError:
            return False

    def mode(self) -> str | None:
        """``standalone``, ``leader`` or ``follower`` (None when not serving)."""
        try:
            for line in four_letter(self.client_port, "srvr").splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.serving():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited with {self.proc.returncode}:\n"
                                   + self.output()[-3000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"ZooKeeper on {self.connect_string} did not start:\n"
                                   + self.output()[-3000:])
            time.sleep(0.05)

    def output(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return (self.directory / "zookeeper.log").read_text(errors="replace")
        return ""

    def kill(self) -> None:
        """SIGKILL the server (a crash)."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, remove: bool = True) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and, by default, remove a temp data dir."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.proc.wait(5)
            self._signal(signal.SIGKILL)
            self.proc = None
        if remove and self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ZooKeeperEnsemble:
    """``size`` ZooKeeper servers forming one ensemble on loopback ports."""

    def __init__(self, size: int = 3, directory: Path | None = None) -> None:
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="mesonb-zk-ensemble-"))
        self.size = size
        self.nodes = self._make_nodes()

    def _make_nodes(self) -> list[ZooKeeperServer]:
        peers = [(i + 1, free_port(), free_port()) for i in range(self.size)]
        return [
            ZooKeeperServer(self.directory / f"zk{i + 1}", myid=i + 1, peers=peers)
            for i in range(self.size)
        ]

    def _ports(self) -> list[int]:
        return [port for node in self.nodes for port in (node.client_port, *(
            p for i, *ports in node.peers if i == node.myid for p in ports))]

    @property
    def connect_string(self) -> str:
        return ",".join(node.connect_string for node in self.nodes)

    def url(self, path: str = "/mesonb") -> str:
        return f"zk://{self.connect_string}/{path.strip('/')}"

    def start(self, timeout: float = 60.0, attempts: int = 5) -> ZooKeeperEnsemble:
        """Start every node and wait for a quorum; when another process took one of the
        ports meanwhile, start again on new ports (before any client knew the old ones)."""
        for attempt in range(1, attempts + 1):
            try:
                for node in self.nodes:
                    node.start(wait=False)
                deadline = time.monotonic() + timeout
                for node in self.nodes:
                    node.wait_serving(max(1.0, deadline - time.monotonic()))
                return self
            except BaseException as exc:
                for node in self.nodes:
                    node.stop(remove=False)
                if (attempt < attempts and isinstance(exc, (RuntimeError, TimeoutError))
                        and any(port_taken(port) for port in self._ports())):
                    self.nodes = self._make_nodes()
                    continue
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop_node(self, index: int) -> None:
        self.nodes[index].stop(remove=False)

    def kill_node(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int, timeout: float = 30.0) -> None:
        self.nodes[index].start(timeout=timeout)

    def leader_index(self) -> int | None:
        for i, node in enumerate(self.nodes):
            if node.mode() == "leader":
                return i
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop(remove=False)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ZooKeeperEnsemble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def expire_session(client: Any, connect_string: str | None = None, timeout: float = 10.0) -> None:
    """Expire ``client``'s ZooKeeper session: a second client with the same session id and
    password connects and closes it, so the server drops the session and its ephemeral
    znodes, and ``client`` receives SESSION_EXPIRED (kazoo: KazooState.LOST)."""
    from kazoo.client import KazooClient

    session_id, password = client.client_id
    hosts = connect_string or ",".join(f"{h}:{p}" for h, p in client.hosts)
    other = KazooClient(hosts=hosts, client_id=(session_id, password), timeout=timeout)
    other.start(timeout=timeout)
    other.stop()
    other.close()
