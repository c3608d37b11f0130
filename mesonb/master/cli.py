"""``mesonb master``: run a master daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from mesonb.config import SECRET_ENV, MasterConfig
from mesonb.gctune import tune_for_daemon
from mesonb.webui.history import parse_size

from .daemon import MasterDaemon
from .files import attach_log_file

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("master", help="run a master", description=__doc__)
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5050, help="port (default 5050; 0 = any free)")
    p.add_argument("--hostname", help="hostname to advertise (default: the ip)")
    p.add_argument("--work-dir", type=Path, help="where the master keeps its registry")
    p.add_argument("--cluster", default="mesonb", help="human-readable cluster name")
    p.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                   help=f"bearer token every API call must carry (env {SECRET_ENV})")
    p.add_argument("--credentials", type=Path, metavar="FILE",
                   help='principals and secrets callers authenticate with, in Mesos\'s format '
                        '({"credentials": [{"principal": ..., "secret": ...}]}); HTTP Basic '
                        "or Bearer principal:secret")
    p.add_argument("--acls", metavar="FILE",
                   help="Mesos ACLs (JSON, the local authorizer's format) deciding what each "
                        "principal may do")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding beyond loopback without --secret or --credentials")
    p.add_argument("--allocation-interval", type=float, default=1.0, metavar="SECONDS")
    p.add_argument("--agent-ping-timeout", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--max-agent-ping-timeouts", type=int, default=5)
    p.add_argument("--offer-timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--zk", metavar="URL",
                   help="zk://[user:pass@]host:port,.../path: contend for leadership there")
    p.add_argument("--zk-session-timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--registry", choices=("local", "zk", "in_memory"),
                   help="where admitted agents and frameworks are kept "
                        "(default: zk with --zk, else local, under --work-dir)")
    p.add_argument("--agent-reregister-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="after a failover, how long recovered agents have to re-register "
                        "before they are marked unreachable (default 600)")
    p.add_argument("--history-dir", type=Path, metavar="DIR",
                   help="record the master's event log here for `mesonb ui --history DIR`")
    p.add_argument("--history-max-size", type=_history_size, default="64MB", metavar="SIZE",
                   help="rotate the history once a file holds this much (default 64MB)")
    p.add_argument("--history-max-files", type=_history_files, default=4, metavar="N",
                   help="history files of a run kept; older ones are deleted (default 4)")
    p.add_argument("--log-dir", type=Path, metavar="DIR",
                   help="also write the master's log to DIR/mesonb-master.log, served by the "
                        "files API at /master/log (as Mesos's --log_dir)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)
    return p


def _history_size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _history_files(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of files, 1 or more")
    return int(text)


def config_from_args(args: argparse.Namespace) -> MasterConfig:
    config = MasterConfig(
        ip=args.ip,
        port=args.port,
        hostname=args.hostname,
        cluster=args.cluster,
        secret=args.secret or None,
        credentials=args.credentials,
        acls=args.acls,
        insecure=args.insecure,
        allocation_interval=args.allocation_interval,
        agent_ping_timeout=args.agent_ping_timeout,
        max_agent_ping_timeouts=args.max_agent_ping_timeouts,
        offer_timeout=args.offer_timeout,
        zk=args.zk or None,
        zk_session_timeout=args.zk_session_timeout,
        registry=args.registry or ("zk" if args.zk else "local"),
        agent_reregister_timeout=args.agent_reregister_timeout,
    )
    if args.work_dir is not None:
        config.work_dir = args.work_dir
    config.history_dir = args.history_dir
    config.history_max_size = args.history_max_size
    config.history_max_files = args.history_max_files
    config.log_dir = args.log_dir
    return config


async def serve(config: MasterConfig) -> int:
    stop = asyncio.Event()
    if config.log_dir is not None:
        attach_log_file(config.log_dir)
    daemon = MasterDaemon(config, on_abort=lambda _reason: stop.set())
    await daemon.start()
    print(f"mesonb master listening on {daemon.url}", flush=True)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("master shutting down")
    try:
        await asyncio.wait_for(daemon.stop(), 15)
    except TimeoutError:
        log.error("master did not stop within 15 s")
    if daemon.aborted is not None:
        # As Mesos does: a leader that lost its ZooKeeper session exits non-zero so that
        # its supervisor restarts it as a fresh contender.
        log.error("exiting with status 1: %s", daemon.aborted)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        tune_for_daemon()
        return asyncio.run(serve(config))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
