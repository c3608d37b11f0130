"""Daemon settings with Mesos's defaults (src/master/constants.hpp, src/slave/constants.hpp)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mesonb.protocol.mesos import DEFAULT_MASTER_PORT

VERSION = "1.11.0"  # the Mesos API level mesonb speaks; pymesos checks >= 1.0
MESONB_VERSION = "0.1.0"
SECRET_ENV = "MESONB_SECRET"


def default_work_dir(kind: str) -> Path:
    base = Path(os.environ.get("MESONB_WORK_DIR", Path.home() / ".mesonb"))
    return base / kind


@dataclasses.dataclass
class MasterConfig:
    ip: str = "127.0.0.1"
    port: int = DEFAULT_MASTER_PORT
    hostname: str | None = None
    work_dir: Path = dataclasses.field(default_factory=lambda: default_work_dir("master"))
    cluster: str = "mesonb"
    secret: str | None = None
    credentials: Path | None = None  # Mesos credentials file: principals and secrets
    acls: str | None = None  # Mesos ACLs: a file's path or the JSON itself
    insecure: bool = False  # allow binding beyond loopback with no authentication
    allocation_interval: float = 1.0
    heartbeat_interval: float = 15.0  # scheduler HEARTBEAT events
    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    offer_timeout: float | None = None
    max_completed_tasks_per_framework: int = 1000
    max_completed_frameworks: int = 50
    # High availability: zk://[user:pass@]h1:p1,h2:p2/path for leader election (None: the
    # master leads alone). The registry: "in_memory", "local" (<work_dir>/registry) or "zk"
    # (znodes under "<zk path>-registry"); the CLI picks "zk" with --zk, "local" otherwise.
    zk: str | None = None
    zk_session_timeout: float = 10.0
    registry: str = "in_memory"
    agent_reregister_timeout: float = 600.0  # recovered agents' time to re-register
    history_dir: Path | None = None  # where the web UI's event log is recorded (mesonb ui)
    history_max_size: int = 64 * 1024 * 1024  # bytes per history segment before rotating
    history_max_files: int = 4  # history segments of a run kept (older ones are deleted)
    log_dir: Path | None = None  # the master's log file goes here; served at /master/log


@dataclasses.dataclass
class AgentConfig:
    master: str = f"127.0.0.1:{DEFAULT_MASTER_PORT}"
    ip: str = "127.0.0.1"
    port: int = 5051
    hostname: str | None = None
    work_dir: Path = dataclasses.field(default_factory=lambda: default_work_dir("agent"))
    resources: str | None = None
    attributes: str | None = None
    secret: str | None = None
    credentials: Path | None = None  # principals and secrets callers of this agent may use
    acls: str | None = None  # Mesos ACLs (view_*, access_sandboxes, get_endpoints, ...)
    insecure: bool = False  # allow binding beyond loopback with no authentication
    executor_shutdown_grace_period: float = 5.0
    executor_registration_timeout: float = 60.0
    registration_backoff_factor: float = 1.0
    max_registration_backoff: float = 60.0
    status_update_retry_min: float = 10.0
    status_update_retry_max: float = 600.0
