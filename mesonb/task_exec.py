"""``mesonb task exec TASK_ID -- CMD``: run a command inside a running task's container.

What ``mesos task exec`` does: find the task's agent and container from the master's
state, then ask that agent (its v1 operator API) for a nested container session running
the command in the task's sandbox; the command's stdout and stderr stream back as it runs,
and the exit status is the command's.

    mesonb task exec --master 127.0.0.1:5050 3f2a... -- ls -l
    mesonb task exec --master zk://zk1:2181/mesonb 3f2a... -- sh -c 'du -sh .'

From Python, :func:`exec_in_task` does the same and returns the exit code.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import uuid
from typing import IO, Any
from urllib.parse import urlsplit

from mesonb import tls
from mesonb.config import SECRET_ENV
from mesonb.protocol import recordio
from mesonb.security import local_secret


class TaskExecError(RuntimeError):
    """The task, its agent or its container could not be found or reached."""


def _request(url: str, method: str = "GET", body: Any = None,
             headers: dict[str, str] | None = None, timeout: float = 30.0
             ) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.netloc, timeout=timeout,
                                           context=tls.client_context())
    else:
        conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    payload = None if body is None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if payload is not None:
        all_headers.setdefault("Content-Type", "application/json")
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), payload,
                 all_headers)
    return conn.getresponse()


def _get_json(url: str, headers: dict[str, str]) -> Any:
    for _ in range(3):  # a non-leading master answers 307 to the leader
        response = _request(url, headers=headers)
        if response.status == 307:
            location = response.getheader("Location") or ""
            leader = urlsplit(location if "//" in location else "//" + location).netloc
            url = tls.address_url(leader, urlsplit(url).path)
            continue
        data = response.read()
        if response.status != 200:
            raise TaskExecError(f"GET {url} answered {response.status}: "
                                f"{data.decode(errors='replace').strip()}")
        return json.loads(data)
    raise TaskExecError(f"GET {url}: too many redirects")


def master_url(master: str) -> str:
    """``http://host:port`` of the leading master named by ``HOST:PORT`` or ``zk://``."""
    from mesonb.discovery import detect_leader, is_zk, parse_master
    address = detect_leader(master) if is_zk(master) else parse_master(master)
    return tls.address_url(address)


def locate(master: str, task_id: str, headers: dict[str, str]) -> tuple[str, str]:
    """The ``http://`` address of the agent running ``task_id`` and its container id."""
    state = _get_json(master_url(master) + "/master/state", headers)
    task = next((t for f in state.get("frameworks", []) for t in f.get("tasks", [])
                 if t.get("id") == task_id), None)
    if task is None:
        raise TaskExecError(f"Task '{task_id}' is not running (not among the master's "
                            "active tasks)")
    if task.get("state") not in ("TASK_RUNNING", "TASK_STARTING", "TASK_KILLING"):
        raise TaskExecError(f"Task '{task_id}' is {task.get('state')}, not running")
    agent = next((a for a in state.get("slaves", []) if a.get("id") == task["slave_id"]), None)
    if agent is None:
        raise TaskExecError(f"The agent of task '{task_id}' ({task['slave_id']}) is unknown")
    address = agent["pid"].split("@", 1)[1] if "@" in agent.get("pid", "") else (
        f"{agent['hostname']}:{agent['port']}")
    agent_url = tls.address_url(address)
    return agent_url, container_of(agent_url, task_id, headers)


def container_of(agent_url: str, task_id: str, headers: dict[str, str]) -> str:
    """The id of the container running ``task_id`` on the agent at ``agent_url``."""
    agent_state = _get_json(agent_url + "/state", headers)
    for framework in agent_state.get("frameworks", []):
        for executor in framework.get("executors", []):
            if any(t.get("id") == task_id for t in executor.get("tasks", [])):
                return str(executor["container"])
    raise TaskExecError(f"Task '{task_id}' has no running container on "
                        f"{urlsplit(agent_url).netloc}")


def exec_in_container(agent_url: str, container_id: str, argv: list[str],
                      headers: dict[str, str], stdout: IO[bytes], stderr: IO[bytes],
                      child_id: str | None = None) -> int:
    """Run ``argv`` in the container; its output goes to ``stdout``/``stderr`` as it
    comes; the exit code (128 + N when killed by signal N, as a shell says).
    ``child_id``: the nested container's id (default: a new uuid)."""
    child = {"value": child_id or str(uuid.uuid4()), "parent": {"value": container_id}}
    command = ({"shell": True, "value": argv[0]} if len(argv) == 1 and " " in argv[0]
               else {"shell": False, "value": argv[0], "arguments": argv})
    response = _request(
        agent_url + "/api/v1", "POST",
        {"type": "LAUNCH_NESTED_CONTAINER_SESSION",
         "launch_nested_container_session": {"container_id": child, "command": command}},
        {**headers, "Accept": "application/recordio", "Message-Accept": "application/json"},
        timeout=None)  # type: ignore[arg-type]
    if response.status != 200:
        raise TaskExecError(f"The agent refused the command ({response.status}): "
                            f"{response.read().decode(errors='replace').strip()}")
    decoder = recordio.Decoder()
    while chunk := response.read1(64 * 1024):
        for record in decoder.feed_json(chunk):
            data = record.get("data") or {}
            target = stderr if data.get("type") == "STDERR" else stdout
            target.write(base64.b64decode(data.get("data") or ""))
            target.flush()
    waited = _request(agent_url + "/api/v1", "POST",
                      {"type": "WAIT_NESTED_CONTAINER",
                       "wait_nested_container": {"container_id": child}}, headers)
    body = json.loads(waited.read() or b"{}")
    status = int((body.get("wait_nested_container") or {}).get("exit_status", 0))
    return os.waitstatus_to_exitcode(status) if status & 0x7F == 0 else 128 + (status & 0x7F)


def kill_nested(agent_url: str, container_id: str, child_id: str,
                headers: dict[str, str], signal: int = 9) -> None:
    """Send ``signal`` to the nested container ``child_id`` (a session's command)."""
    response = _request(
        agent_url + "/api/v1", "POST",
        {"type": "KILL_NESTED_CONTAINER",
         "kill_nested_container": {"container_id": {"value": child_id,
                                                    "parent": {"value": container_id}},
                                   "signal": signal}}, headers)
    response.read()


def exec_in_task(master: str, task_id: str, argv: list[str], *,
                 secret: str | None = None, stdout: IO[bytes] | None = None,
                 stderr: IO[bytes] | None = None) -> int:
    """Run ``argv`` inside running task ``task_id``'s container; return its exit code."""
    if not argv:
        raise ValueError("exec_in_task needs a command")
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    agent_url, container = locate(master, task_id, headers)
    return exec_in_container(agent_url, container, argv, headers,
                             stdout or sys.stdout.buffer, stderr or sys.stderr.buffer)


def add_parser(sub: Any) -> None:
    task = sub.add_parser("task", help="act on a running task")
    verbs = task.add_subparsers(dest="verb", metavar="VERB")
    p = verbs.add_parser("exec", help="run a command inside a running task's container",
                         description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--master", default="127.0.0.1:5050",
                   help="HOST:PORT or zk://HOSTS/PATH of the master (default 127.0.0.1:5050)")
    p.add_argument("task_id", help="the task's id")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    argv = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not argv:
        print("mesonb task exec: give the command after --", file=sys.stderr)
        return 2
    try:
        secret = local_secret.secret_for(args.master, os.environ.get(SECRET_ENV))
        return exec_in_task(args.master, args.task_id, argv, secret=secret)
    except (TaskExecError, OSError) as exc:
        print(f"mesonb task exec: {exc}", file=sys.stderr)
        return 1
