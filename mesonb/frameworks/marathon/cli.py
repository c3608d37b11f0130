"""``mesonb marathon``: the Marathon-compatible framework as its own process.

    mesonb marathon --master 127.0.0.1:5050 [--port 8080] [--zk zk://h:2181/marathon]

It prints ``listening on http://HOST:PORT`` once the REST API is up. Without ``--zk``
its state lives under ``--work-dir`` (default ``~/.mesonb/marathon``); with ``--zk``
in ZooKeeper, and several instances elect one leader (the others proxy to it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

from mesonb import tls
from mesonb.config import SECRET_ENV
from mesonb.security import local_secret


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("marathon", help="run the Marathon-compatible framework",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--master", required=True, metavar="HOST:PORT|zk://HOSTS/PATH",
                   help="the Mesos master (or its ZooKeeper URL)")
    p.add_argument("--ip", default="127.0.0.1", help="address to serve on (%(default)s)")
    p.add_argument("--port", type=int, default=8080, help="REST API port (0: any free one)")
    p.add_argument("--zk", default=None, metavar="zk://HOSTS/PATH",
                   help="ZooKeeper URL for state and leader election (e.g. zk://h:2181/marathon)")
    p.add_argument("--zk-session-timeout", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where state is kept without --zk (~/.mesonb/marathon)")
    p.add_argument("--framework-name", default="marathon")
    p.add_argument("--role", default="*", help="the Mesos role to register with")
    p.add_argument("--secret", default=None,
                   help="bearer token clients of the REST API must send")
    p.add_argument("--insecure", action="store_true",
                   help="serve beyond loopback without --secret")
    p.add_argument("--master-secret", default=os.environ.get(SECRET_ENV),
                   help=f"bearer token for the master (default ${SECRET_ENV})")
    p.add_argument("--shared-executor", action="store_true",
                   help="run the instances on each agent in one default executor (task "
                        "groups of one task) instead of a command executor per task")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)
    return p


async def serve(args: argparse.Namespace) -> int:
    from .service import Marathon

    service = Marathon(args.master, port=args.port, ip=args.ip, zk=args.zk,
                       work_dir=args.work_dir, secret=args.secret,
                       master_secret=local_secret.secret_for(args.master, args.master_secret),
                       name=args.framework_name,
                       role=args.role, zk_session_timeout=args.zk_session_timeout,
                       shared_executor=args.shared_executor)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(f"marathon listening on {tls.url(service.ip, service.port)}", flush=True)
    await stop.wait()
    await service.stop(teardown=False)
    return 0


def run(args: argparse.Namespace) -> int:
    if (args.ip not in ("127.0.0.1", "::1", "localhost") and not args.secret
            and not getattr(args, "insecure", False)):
        print("mesonb marathon: serving on a non-loopback address needs --secret (the REST "
              "API can launch any command on the cluster)", file=sys.stderr)
        return 2
    if args.zk is not None and not args.zk.startswith(("zk://", "zoo://")):
        print("--zk must be a zk://HOSTS/PATH URL", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args))
    except (ValueError, OSError) as exc:
        print(f"mesonb marathon: {exc}", file=sys.stderr)
        return 2
