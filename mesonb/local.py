"""``mesonb local``: a master and agents on this machine, in one process.

The machine's resources (Mesos's default formulas) are split evenly between the agents,
and so is the port range, so that two agents never hand out the same port. Executors
and tasks are child processes in their own sessions; stopping the cluster (Ctrl-C,
SIGTERM, or :meth:`LocalCluster.stop`) kills them all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from mesonb.agent.agent import Agent
from mesonb.agent.fingerprint import DEFAULT_PORTS, default_resources, detect_machine
from mesonb.config import SECRET_ENV, AgentConfig, MasterConfig
from mesonb.gctune import tune_for_daemon
from mesonb.master.daemon import MasterDaemon
from mesonb.protocol.resources import Resources
from mesonb.security import local_secret

log = logging.getLogger(__name__)


def split_resources(total: Resources, agents: int) -> list[str]:
    """Each agent's ``--resources`` flag: scalars divided, ports in disjoint slices."""
    begin, end = total.ranges.get("ports", (DEFAULT_PORTS,))[0]
    width = (end - begin + 1) // agents
    flags = []
    for i in range(agents):
        parts = []
        for name, value in total.scalars.items():
            share = value / agents
            if name == "cpus":
                share = max(round(share, 2), 0.1)
            elif name in ("mem", "disk"):
                share = float(int(share))
            parts.append(f"{name}:{share:g}")
        low = begin + i * width
        parts.append(f"ports:[{low}-{low + width - 1}]")
        flags.append(";".join(parts))
    return flags


class LocalCluster:
    """A master and ``agents`` agents in this process's event loop.

    ::

        cluster = LocalCluster(agents=2, port=0)
        await cluster.start()
        print(cluster.master_address)   # "127.0.0.1:PORT", for pymesos or Cluster(...)
        await cluster.stop()
    """

    def __init__(
        self,
        agents: int = 1,
        *,
        port: int = 5050,
        ip: str = "127.0.0.1",
        work_dir: Path | None = None,
        resources: str | None = None,
        secret: str | None = None,
        master_options: dict | None = None,
        agent_options: dict | None = None,
        history_dir: Path | str | None = None,
        publish_secret: bool = False,
        tls: bool = False,
    ) -> None:
        if agents < 1:
            raise ValueError("a local cluster needs at least one agent")
        self.agent_count = agents
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mesonb-local-")
            work_dir = Path(self._tmp.name)
        self.work_dir = Path(work_dir)
        if secret is None and publish_secret:
            secret = local_secret.generate()
        self.secret = secret
        # secure by default (Cluster.local, `mesonb local`): the secret is written where
        # only this user can read it (mesonb.security.local_secret); with tls, a CA and a
        # certificate are made for the cluster and this process speaks TLS
        self.publish_secret = publish_secret
        self.tls = tls
        self.tls_bundle: Any = None
        self._published: list[Path] = []
        self._tls_previous: Any = None
        self.resources = resources
        master_options = dict(master_options or {})
        if history_dir is not None:  # the web UI's event log: `mesonb ui --history DIR`
            master_options["history_dir"] = Path(history_dir)
        self.master = MasterDaemon(MasterConfig(ip=ip, port=port, secret=secret,
                                                work_dir=self.work_dir / "master",
                                                **master_options))
        self._agent_options = agent_options or {}
        self.agents: list[Agent] = []

    @property
    def master_address(self) -> str:
        return self.master.address

    @property
    def url(self) -> str:
        return self.master.url

    def _agent_flags(self) -> list[str]:
        if self.resources:
            return [self.resources] * self.agent_count
        machine = detect_machine(self.work_dir)
        return split_resources(default_resources(machine), self.agent_count)

    async def start(self) -> None:
        if self.tls:
            self._start_tls()
        await self.master.start()
        try:
            for i, flag in enumerate(self._agent_flags()):
                config = AgentConfig(
                    master=self.master.address,
                    ip=self.master.config.ip,
                    port=0,
                    work_dir=self.work_dir / f"agent{i}",
                    resources=flag,
                    secret=self.secret,
                    **self._agent_options,
                )
                agent = Agent(config)
                self.agents.append(agent)
                await agent.start()
            if self.publish_secret and self.secret:
                addresses = [self.master.address] + [
                    f"{self.master.config.ip}:{agent.port}" for agent in self.agents]
                ca = self.tls_bundle.ca if self.tls_bundle is not None else None
                self._published = local_secret.publish(addresses, self.secret, ca)
        except BaseException:
            await self.stop()
            raise

    def _start_tls(self) -> None:
        """A CA and a certificate for this cluster's address, under the user's private
        runtime directory; this process then serves and verifies TLS with them."""
        from mesonb import tls
        from mesonb.security import certs

        directory = Path(tempfile.mkdtemp(prefix="tls-", dir=local_secret.private_dir()))
        hosts = [self.master.config.ip, "localhost"]
        self.tls_bundle = bundle = certs.make_bundle(directory, hosts)
        self._tls_previous = tls.configure(tls.TlsSettings(cert=bundle.cert, key=bundle.key,
                                                           ca=bundle.ca))

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until every agent has registered with the master."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            master = self.master.master
            if master is not None and sum(a.active for a in master.book.agents.values()) >= len(
                self.agents
            ):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"agents did not register within {timeout:g}s")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for agent in reversed(self.agents):
            try:
                await agent.stop()
            except Exception:
                log.exception("stopping agent failed")
        self.agents.clear()
        await self.master.stop()
        local_secret.withdraw(self._published)
        self._published = []
        if self.tls_bundle is not None:
            import shutil

            from mesonb import tls

            tls.configure(self._tls_previous)
            shutil.rmtree(self.tls_bundle.ca.parent, ignore_errors=True)
            self.tls_bundle = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "local", help="run a master and agents on this machine",
        description="Run a master and agents on this machine until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--agents", type=int, default=1,
                   help="number of agents sharing the machine (default 1: a call may use "
                        "every core)")
    p.add_argument("--port", type=int, default=5050, help="master port (default 5050; 0 = any)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--work-dir", type=Path, help="keep sandboxes here (default: a temp dir)")
    p.add_argument("--resources", help="each agent's resources (default: machine split evenly)")
    p.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                   help=f"bearer token for every API call (env {SECRET_ENV}; default: a "
                        "random one, written to a file only you can read, where mesonb's "
                        "clients on this machine find it)")
    p.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a CA and certificate made for this cluster")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run)
    return p


async def serve(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.agents, port=args.port, ip=args.ip, work_dir=args.work_dir,
                           resources=args.resources,
                           secret=args.secret or None, publish_secret=not args.secret,
                           tls=getattr(args, "tls", False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await cluster.start()
    try:
        await cluster.wait_ready()
        agents = f"{args.agents} agent{'s' if args.agents != 1 else ''}"
        print(f"mesonb local cluster: master {cluster.url} with {agents}", flush=True)
        print(f"  frameworks and pymesos: {cluster.master_address}", flush=True)
        print(f"  state: {cluster.url}/master/state   (Ctrl-C to stop)", flush=True)
        if cluster._published:
            print(f"  secret: in {cluster._published[0]} (mode 0600; mesonb's clients "
                  "on this machine read it)", flush=True)
        if cluster.tls_bundle is not None:
            print(f"  CA: {cluster.tls_bundle.ca}", flush=True)
        await stop.wait()
    finally:
        await cluster.stop()
    print("mesonb local cluster stopped", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    tune_for_daemon()
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
