"""``mesonb execute``: run shell commands as tasks on a cluster (Mesos's ``mesos-execute``).

A small framework on the v1 scheduler API: it takes offers, launches ``--instances``
copies of the command, prints each state change, and when all are done prints each
task's stdout and stderr (read from the agents' sandboxes through their files API).
Exit status 0 when every task finished, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import shlex
import sys
import uuid
from typing import Any
from urllib.parse import quote

from mesonb import tls
from mesonb.config import SECRET_ENV
from mesonb.http.client import Connection
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TERMINAL_STATE_NAMES
from mesonb.security import local_secret

from .driver import SchedulerDriver

log = logging.getLogger(__name__)
TERMINAL = TERMINAL_STATE_NAMES


class Execute:
    """Launch ``count`` copies of one command task, then wait for all of them."""

    def __init__(self, command: dict[str, Any], resources: Resources, count: int, name: str,
                 out: Any = sys.stdout) -> None:
        self.command = command
        self.resources = resources
        self.name = name
        self.pending = [f"{name}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        self.launched: dict[str, dict[str, Any]] = {}
        self.final: dict[str, dict[str, Any]] = {}
        self.done = asyncio.Event()
        self.out = out
        self.driver: SchedulerDriver | None = None

    async def on_offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.driver is not None
        for offer in offers:
            free = Resources.from_json(offer["resources"])
            tasks = []
            while self.pending and free.contains(self.resources):
                task_id = self.pending.pop()
                tasks.append({
                    "name": self.name,
                    "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"],
                    "command": self.command,
                    "resources": self.resources.to_json(),
                })
                free = free - self.resources
                self.launched[task_id] = offer
            if tasks:
                await self.driver.launch([offer["id"]["value"]], tasks, refuse_seconds=1)
            else:
                await self.driver.decline([offer["id"]["value"]], refuse_seconds=1)
        if not self.pending:
            await self.driver.suppress()

    def on_update(self, status: dict[str, Any]) -> None:
        task_id = status["task_id"]["value"]
        message = f" ({status['message']})" if status.get("message") else ""
        print(f"{task_id}: {status['state']}{message}", file=self.out, flush=True)
        if status["state"] in TERMINAL:
            self.final[task_id] = status
            if not self.pending and len(self.final) >= len(self.launched):
                self.done.set()

    def on_error(self, message: str) -> None:
        print(f"error from the master: {message}", file=self.out, flush=True)
        self.done.set()

    async def output(self, task_id: str, headers: dict[str, str]) -> dict[str, str]:
        """The task's stdout and stderr, read from its agent's sandbox."""
        offer = self.launched[task_id]
        address = offer.get("url", {}).get("address", {})
        agent = tls.url(address.get('ip') or offer['hostname'], address.get('port', 5051))
        conn = Connection.to(agent, headers)
        try:
            state = (await conn.request("GET", "/state")).json()
            directory = None
            for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
                for ex in fw.get("executors", []) + fw.get("completed_executors", []):
                    tasks = ex.get("tasks", []) + ex.get("completed_tasks", [])
                    if ex.get("id") == task_id or any(t.get("id") == task_id for t in tasks):
                        directory = ex.get("directory")
            if directory is None:
                return {}
            out = {}
            for name in ("stdout", "stderr"):
                path = quote(f"{directory}/{name}")
                answer = await conn.request("GET", f"/files/read?path={path}&offset=0")
                if answer.status == 200:
                    out[name] = answer.json().get("data", "")
            return out
        finally:
            conn.close()


def command_info(args: argparse.Namespace) -> dict[str, Any]:
    command: dict[str, Any] = {"shell": not args.no_shell}
    if args.no_shell:
        argv = shlex.split(args.command)
        command.update(value=argv[0], arguments=argv)
    else:
        command["value"] = args.command
    if args.env:
        variables = []
        for item in args.env:
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--env {item!r}: expected NAME=VALUE")
            variables.append({"name": name, "value": value})
        command["environment"] = {"variables": variables}
    return command


async def execute(args: argparse.Namespace) -> int:
    resources = Resources.parse(f"cpus:{args.cpus};mem:{args.mem}"
                                + (f";disk:{args.disk}" if args.disk else ""))
    job = Execute(command_info(args), resources, args.instances, args.name)
    args.secret = local_secret.secret_for(args.master, args.secret)
    framework = {"user": getpass.getuser(), "name": f"mesonb-execute ({args.name})",
                 "failover_timeout": 0.0}
    driver = SchedulerDriver(args.master, framework, job, secret=args.secret)
    job.driver = driver
    await driver.start()
    try:
        await asyncio.wait_for(job.done.wait(), args.timeout)
    except TimeoutError:
        print(f"timed out after {args.timeout:g}s; killing the tasks", flush=True)
        return 1
    finally:
        await driver.stop(teardown=True)
    headers = {"Authorization": f"Bearer {args.secret}"} if args.secret else {}
    ok = True
    for task_id, status in sorted(job.final.items()):
        ok = ok and status["state"] == "TASK_FINISHED"
        if args.quiet:
            continue
        streams = await job.output(task_id, headers)
        for name, text in streams.items():
            if text:
                print(f"--- {task_id} {name} ---\n{text.rstrip()}", flush=True)
    if args.json:
        print(json.dumps({t: s["state"] for t, s in job.final.items()}))
    return 0 if ok else 1


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("execute", help="run a command as tasks on a cluster",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--master", default="127.0.0.1:5050", help="leading master host:port")
    p.add_argument("--command", required=True, help="the command (run by /bin/sh -c)")
    p.add_argument("--no-shell", action="store_true", help="exec the command's argv directly")
    p.add_argument("--name", default="task", help="task name (and id prefix)")
    p.add_argument("--instances", type=int, default=1, help="how many copies to run")
    p.add_argument("--cpus", type=float, default=0.1)
    p.add_argument("--mem", type=float, default=32.0, help="MB")
    p.add_argument("--disk", type=float, default=0.0, help="MB")
    p.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment variable")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for all tasks")
    p.add_argument("--secret", default=os.environ.get(SECRET_ENV), help="bearer token")
    p.add_argument("--quiet", action="store_true", help="do not print the tasks' output")
    p.add_argument("--json", action="store_true", help="print final states as JSON")
    p.add_argument("--log-level", default="WARNING")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.instances < 1:
        print("--instances must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(execute(args))
    except (ValueError, ConnectionError, OSError) as exc:
        print(f"mesonb execute: {exc}", file=sys.stderr)
        return 2
