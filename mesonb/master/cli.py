"""``mesonb master``: run a master daemon in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from mesonb.config import SECRET_ENV, MasterConfig

from .daemon import MasterDaemon

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
    p.add_argument("--allocation-interval", type=float, default=1.0, metavar="SECONDS")
    p.add_argument("--agent-ping-timeout", type=float, default=15.0, metavar="SECONDS")
    p.add_argument("--max-agent-ping-timeouts", type=int, default=5)
    p.add_argument("--offer-timeout", type=float, default=None, metavar="SECONDS")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> MasterConfig:
    config = MasterConfig(
        ip=args.ip,
        port=args.port,
        hostname=args.hostname,
        cluster=args.cluster,
        secret=args.secret or None,
        allocation_interval=args.allocation_interval,
        agent_ping_timeout=args.agent_ping_timeout,
        max_agent_ping_timeouts=args.max_agent_ping_timeouts,
        offer_timeout=args.offer_timeout,
    )
    if args.work_dir is not None:
        config.work_dir = args.work_dir
    return config


async def serve(config: MasterConfig) -> int:
    daemon = MasterDaemon(config)
    await daemon.start()
    print(f"mesonb master listening on {daemon.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("master shutting down")
    await daemon.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        return asyncio.run(serve(config))
    except ValueError as exc:
        log.error("%s", exc)
        return 2
