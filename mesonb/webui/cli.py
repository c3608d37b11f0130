"""``mesonb ui --history DIR``: the web UI of a cluster that has stopped, read-only.

Replays the latest history a master recorded under ``DIR`` (``mesonb master
--history-dir DIR``, ``Cluster.local(history_dir=DIR)``), read across the files the
recording was rotated into, and serves the same pages as the live master, from the state
the cluster was in when it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

import tornado.httpserver
import tornado.netutil

from mesonb import tls
from mesonb.config import SECRET_ENV
from mesonb.http.base import NotFoundHandler, Security, SlashCollapsingApplication

from .handlers import routes
from .history import read_history
from .hub import Hub

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("ui", help="serve the web UI of a recorded cluster",
                              description=__doc__)
    p.add_argument("--history", type=Path, required=True, metavar="DIR",
                   help="a master's --history-dir (or one history-*.jsonl file in it)")
    p.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5055, help="port (default 5055; 0 = any free)")
    p.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                   help=f"bearer token the pages must send (?token=; env {SECRET_ENV})")
    p.add_argument("--insecure", action="store_true",
                   help="serve beyond loopback without --secret")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)
    return p


def history_hub(path: Path) -> Hub:
    """A read-only hub holding the model a recorded history replays to."""
    hub = Hub(read_only=True)
    hub.model.apply_all(read_history(path))
    hub.model.take_delta()
    return hub


async def serve(args: argparse.Namespace) -> int:
    hub = history_hub(args.history)
    security = Security(getattr(args, "secret", None) or None)
    app = SlashCollapsingApplication(routes(security, hub), default_handler_class=NotFoundHandler,
                                     default_handler_args={"security": security})
    sockets = tornado.netutil.bind_sockets(args.port, args.ip)
    server = tornado.httpserver.HTTPServer(app, ssl_options=tls.server_options())
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    print(f"mesonb ui (history of {args.history}) listening on {tls.url(args.ip, port)}",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    hub.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.ip not in ("127.0.0.1", "localhost", "::1") and not getattr(args, "secret", None):
        if not getattr(args, "insecure", False):
            log.error("refusing to serve a recorded history on %s without --secret (anyone "
                      "who reaches it could read it), unless --insecure", args.ip)
            return 2
        log.warning("serving a recorded history on %s: anyone who reaches it can read it",
                    args.ip)
    try:
        return asyncio.run(serve(args))
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
