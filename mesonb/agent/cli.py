"""``mesonb agent``: the agent daemon's command line.

``mesonb/cli.py`` calls :func:`add_parser` and dispatches to ``args.func(args)``; the
module also runs on its own: ``python -m mesonb.agent.cli --master 127.0.0.1:5050``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from mesonb.config import SECRET_ENV, AgentConfig, default_work_dir
from mesonb.gctune import tune_for_daemon

from .isolation import ContainerizerConfig
from .recovery import RECOVER_MODES, RecoveryConfig

log = logging.getLogger("mesonb.agent")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``agent`` subcommand."""
    parser = subparsers.add_parser(
        "agent", help="run an agent (one per machine)",
        description="Run a mesonb agent: offer this machine's resources to a master and"
                    " run tasks in sandboxes.")
    configure_parser(parser)
    return parser


def configure_parser(parser: argparse.ArgumentParser) -> None:
    defaults = AgentConfig()
    parser.add_argument("--master", required=True, metavar="HOST:PORT|zk://HOSTS/PATH",
                        help="the master to register with, or a ZooKeeper URL to find the"
                             " leading master in (followed when it changes)")
    parser.add_argument("--ip", default=defaults.ip, help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port,
                        help="port to listen on; 0 picks a free one (%(default)s)")
    parser.add_argument("--hostname", default=None, help="hostname to advertise")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help=f"sandboxes and checkpoints ({default_work_dir('agent')})")
    parser.add_argument("--resources", default=None,
                        help='e.g. "cpus:2;mem:4096;disk:20000;ports:[31000-32000]";'
                             " names left out are detected")
    parser.add_argument("--attributes", default=None, help='e.g. "rack:a;zone:1"')
    parser.add_argument("--secret", default=os.environ.get(SECRET_ENV),
                        help=f"shared secret (bearer token); default ${SECRET_ENV}")
    parser.add_argument("--credentials", type=Path, default=None, metavar="FILE",
                        help="principals and secrets that may call this agent (Mesos's "
                             "credentials format)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow listening beyond loopback without --secret or "
                             "--credentials")
    parser.add_argument("--acls", metavar="FILE", default=None,
                        help="Mesos ACLs (JSON): what each principal may view (view_*), "
                             "whose sandboxes it may read (access_sandboxes), which "
                             "endpoints it may GET (get_endpoints)")
    parser.add_argument("--executor-shutdown-grace-period", type=float,
                        default=defaults.executor_shutdown_grace_period, metavar="SECONDS",
                        help="time executors get to shut down (%(default)s)")
    parser.add_argument("--executor-registration-timeout", type=float,
                        default=defaults.executor_registration_timeout, metavar="SECONDS",
                        help="time an executor has to subscribe (%(default)s)")
    parser.add_argument("--recover", choices=RECOVER_MODES, default="reconnect",
                        help="reconnect: re-attach to the executors of checkpointing"
                             " frameworks left by an earlier run on this work dir; cleanup:"
                             " kill them and exit (%(default)s)")
    parser.add_argument("--recovery-timeout", type=float,
                        default=RecoveryConfig.recovery_timeout, metavar="SECONDS",
                        help="how long executors of checkpointing frameworks wait for a"
                             " restarted agent before exiting (%(default)s)")
    parser.add_argument("--executor-reregistration-timeout", type=float,
                        default=RecoveryConfig.executor_reregistration_timeout,
                        metavar="SECONDS",
                        help="how long a restarted agent waits for recovered executors to"
                             " re-subscribe before killing them (%(default)s)")
    add_containerizer_flags(parser)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.set_defaults(func=run)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _bytes(text: str) -> int:
    units = {"TB": 1024**4, "GB": 1024**3, "MB": 1024**2, "KB": 1024, "B": 1}
    value = text.strip().upper()
    for unit, factor in units.items():
        if value.endswith(unit):
            try:
                return int(float(value[: -len(unit)]) * factor)
            except ValueError:
                break
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 2GB, not {text!r}") from None


DURATIONS = {"weeks": 604800, "days": 86400, "hrs": 3600, "mins": 60, "secs": 1, "ms": 0.001,
             "w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _seconds(text: str) -> float:
    """Mesos durations ("1weeks", "30secs") or plain seconds."""
    value = text.strip().lower()
    for unit, factor in DURATIONS.items():
        if value.endswith(unit) and value[: -len(unit)].replace(".", "", 1).isdigit():
            return float(value[: -len(unit)]) * factor
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 1weeks, not {text!r}"
                                         ) from None


def add_containerizer_flags(parser: argparse.ArgumentParser) -> None:
    """The containerizer's flags (Mesos's names with dashes)."""
    d = ContainerizerConfig()
    parser.add_argument("--isolation", default=d.isolation,
                        help="isolators, Mesos's names comma separated (cgroups/cpu,"
                             "cgroups/mem,cgroups/pids; posix/cpu,posix/mem; disk/du;"
                             " network/ports; gpu/nvidia) or auto: cgroups v1, else v2,"
                             " else the posix monitor (%(default)s)")
    parser.add_argument("--cgroups-version", choices=["auto", "v1", "v2"],
                        default=d.cgroups_version, help="(%(default)s)")
    parser.add_argument("--cgroups-root", default=d.cgroups_root,
                        help="cgroup of the containers, under the agent's (%(default)s)")
    parser.add_argument("--cgroups-enable-cfs", type=_bool, nargs="?", const=True,
                        default=d.cgroups_enable_cfs, metavar="BOOL",
                        help="hard CPU caps (CFS quota = cpus x 100 ms); Mesos's default"
                             " is false (%(default)s)")
    parser.add_argument("--container-pids-limit", type=int, default=d.container_pids_limit,
                        metavar="N", help="processes and threads per container; 0: no limit"
                                          " (%(default)s)")
    parser.add_argument("--enforce-container-disk-quota", type=_bool, nargs="?", const=True,
                        default=d.enforce_container_disk_quota, metavar="BOOL",
                        help="kill containers whose sandbox outgrows their disk"
                             " (%(default)s)")
    parser.add_argument("--container-disk-watch-interval", type=float,
                        default=d.container_disk_watch_interval, metavar="SECONDS",
                        help="how often sandboxes are measured (%(default)s)")
    parser.add_argument("--nvidia-gpu-devices", default=None, metavar="INDICES",
                        help="only these GPUs (e.g. 0,2); default: every one nvidia-smi"
                             " lists")
    parser.add_argument("--gc-delay", type=_seconds, default=d.gc_delay, metavar="DURATION",
                        help="how long finished sandboxes are kept, e.g. 1weeks, 2days,"
                             " 3600 (%(default)s s)")
    parser.add_argument("--gc-disk-headroom", type=float, default=d.gc_disk_headroom,
                        help="free disk fraction kept; fuller disks prune sooner"
                             " (%(default)s)")
    parser.add_argument("--disk-watch-interval", type=_seconds,
                        default=d.disk_watch_interval, metavar="DURATION",
                        help="how often the disk's fill is checked for GC (%(default)s s)")
    parser.add_argument("--logrotate-max-size", type=_bytes, default=d.logrotate_max_size,
                        metavar="BYTES", help="rotate stdout/stderr past this size; 0: never"
                                              " (%(default)s)")
    parser.add_argument("--logrotate-max-files", type=int, default=d.logrotate_max_files,
                        metavar="N", help="rotated copies kept (%(default)s)")
    parser.add_argument("--fetcher-cache-size", type=_bytes, default=d.fetcher_cache_size,
                        metavar="BYTES", help="e.g. 2GB, 500MB (%(default)s bytes)")
    parser.add_argument("--fetcher-cache-dir", default=None,
                        help="where cached downloads live (<work dir>/fetch_cache)")
    parser.add_argument("--fetcher-stall-timeout", type=float,
                        default=d.fetcher_stall_timeout, metavar="SECONDS",
                        help="a download that sends nothing for this long fails"
                             " (%(default)s)")


def containerizer_from_args(args: argparse.Namespace) -> ContainerizerConfig:
    d = ContainerizerConfig()
    pids = getattr(args, "container_pids_limit", d.container_pids_limit)
    return ContainerizerConfig(
        isolation=getattr(args, "isolation", d.isolation),
        cgroups_version=getattr(args, "cgroups_version", d.cgroups_version),
        cgroups_root=getattr(args, "cgroups_root", d.cgroups_root),
        cgroups_enable_cfs=getattr(args, "cgroups_enable_cfs", d.cgroups_enable_cfs),
        container_pids_limit=pids if pids else None,
        enforce_container_disk_quota=getattr(args, "enforce_container_disk_quota",
                                             d.enforce_container_disk_quota),
        container_disk_watch_interval=getattr(args, "container_disk_watch_interval",
                                              d.container_disk_watch_interval),
        fetcher_cache_size=getattr(args, "fetcher_cache_size", d.fetcher_cache_size),
        nvidia_gpu_devices=getattr(args, "nvidia_gpu_devices", None),
        gc_delay=getattr(args, "gc_delay", d.gc_delay),
        gc_disk_headroom=getattr(args, "gc_disk_headroom", d.gc_disk_headroom),
        disk_watch_interval=getattr(args, "disk_watch_interval", d.disk_watch_interval),
        logrotate_max_size=getattr(args, "logrotate_max_size", d.logrotate_max_size) or None,
        logrotate_max_files=getattr(args, "logrotate_max_files", d.logrotate_max_files),
        fetcher_cache_dir=getattr(args, "fetcher_cache_dir", None),
        fetcher_stall_timeout=getattr(args, "fetcher_stall_timeout", d.fetcher_stall_timeout),
    )


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    config = AgentConfig(
        master=args.master,
        ip=args.ip,
        port=args.port,
        hostname=args.hostname,
        resources=args.resources,
        attributes=args.attributes,
        secret=args.secret or None,
        credentials=getattr(args, "credentials", None),
        insecure=getattr(args, "insecure", False),
        acls=getattr(args, "acls", None),
        executor_shutdown_grace_period=args.executor_shutdown_grace_period,
        executor_registration_timeout=getattr(
            args, "executor_registration_timeout", AgentConfig.executor_registration_timeout),
    )
    if args.work_dir is not None:
        config.work_dir = args.work_dir
    return config


def recovery_from_args(args: argparse.Namespace) -> RecoveryConfig:
    return RecoveryConfig(
        recover=getattr(args, "recover", "reconnect"),
        recovery_timeout=getattr(args, "recovery_timeout", RecoveryConfig.recovery_timeout),
        executor_reregistration_timeout=getattr(
            args, "executor_reregistration_timeout",
            RecoveryConfig.executor_reregistration_timeout))


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT; the process exit code."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(getattr(args, "log_level", "INFO"))
    from .agent import Agent, UnsafeConfiguration

    try:
        agent = Agent(config_from_args(args), recovery_config=recovery_from_args(args),
                      containerizer_config=containerizer_from_args(args))
    except ValueError as exc:
        print(f"mesonb agent: {exc}", file=sys.stderr)
        return 2
    tune_for_daemon()
    try:
        return asyncio.run(_serve(agent))
    except UnsafeConfiguration as exc:
        print(f"mesonb agent: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mesonb agent: cannot listen on {args.ip}:{args.port}: {exc}", file=sys.stderr)
        return 1


async def _serve(agent: object) -> int:
    from .agent import Agent

    assert isinstance(agent, Agent)
    await agent.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(agent.wait_stopped())
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({stopped, waiter}, return_when=asyncio.FIRST_COMPLETED)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    waiter.cancel()
    await agent.stop()
    stopped.cancel()
    return agent.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mesonb agent")
    configure_parser(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
