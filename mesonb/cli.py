"""The ``mesonb`` command: ``master``, ``agent``, ``local``, ``execute`` and ``marathon``."""

from __future__ import annotations

import argparse
import logging
import sys

from mesonb import tls
from mesonb.config import MESONB_VERSION


def build_parser() -> argparse.ArgumentParser:
    from mesonb import demo, local, task_exec
    from mesonb.agent import cli as agent_cli
    from mesonb.frameworks import execute
    from mesonb.frameworks.marathon import cli as marathon_cli
    from mesonb.master import cli as master_cli
    from mesonb.webui import cli as ui_cli

    parser = argparse.ArgumentParser(
        prog="mesonb",
        description="mesonb: Apache Mesos for notebooks and scripts. "
        "Pool many machines' resources and run tasks on them.",
    )
    parser.add_argument("--version", action="version", version=f"mesonb {MESONB_VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    master_cli.add_parser(sub)
    agent_cli.add_parser(sub)
    local.add_parser(sub)
    execute.add_parser(sub)
    demo.add_parser(sub)
    task_exec.add_parser(sub)
    ui_cli.add_parser(sub)
    marathon_cli.add_parser(sub)
    for command in sub.choices.values():  # every command speaks TLS the same way
        tls.add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        tls.configure_from_args(args)
    except tls.TlsError as exc:
        print(f"mesonb {args.command}: {exc}", file=sys.stderr)
        return 2
    level = getattr(logging, str(getattr(args, "log_level", "INFO")).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        # A line per answered request is debugging output: at a few thousand scheduler
        # calls a second, formatting and writing them cost the master a sixth of its CPU
        # (and whoever reads its log). Requests answered 4xx/5xx are still logged.
        logging.getLogger("mesonb.http.access").setLevel(logging.WARNING)
        logging.getLogger("tornado.access").setLevel(logging.WARNING)  # others' servers
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
