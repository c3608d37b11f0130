"""``fut.exec(command)``: run a command inside a running call's container.

What ``mesonb task exec`` does (:mod:`mesonb.task_exec`), for a call of this client: the
agent running the call starts the command as a nested container session of the call's
executor container (its sandbox, its cgroups' limits), streams the output back, and
answers its exit status. The command sees what the call sees on disk: the executor's
sandbox (``logs/``, ``results/``) and anything the call wrote there.

Example::

    fut = cluster.submit(train, data)
    print(fut.exec("ls -l").stdout)           # while it runs
    fut.exec(["python", "-c", "import os; print(os.getloadavg())"])
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import time
import uuid
from typing import Any

from mesonb.frameworks.functions.results import CommandResult
from mesonb.task_exec import TaskExecError, container_of, exec_in_container, kill_nested

FIND_FOR = 5.0  # seconds a call just launched may take to show on its agent


def exec_in_call(fut: Any, command: str | list[str], timeout: float | None = None
                 ) -> CommandResult:
    """Run ``command`` (a shell line, or an argv list) in ``fut``'s container; its
    :class:`CommandResult`. RuntimeError when the call is not running (not launched
    yet, or over); TimeoutError (the command killed) after ``timeout`` seconds."""
    cluster = fut._cluster
    if cluster._lt.in_loop_thread():
        raise RuntimeError("fut.exec() waits for the command: call it from your own code, "
                           "not from a callback on the client's loop")
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
    if not argv or not argv[-1]:
        raise ValueError("fut.exec() needs a command")
    container, agent_url = _locate(fut)
    headers = dict(cluster._headers)
    out, err = io.BytesIO(), io.BytesIO()
    child = str(uuid.uuid4())
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mesonb-exec")
    running = pool.submit(exec_in_container, agent_url, container, argv, headers, out, err,
                          child)
    try:
        code = running.result(timeout)
    except concurrent.futures.TimeoutError:
        with contextlib.suppress(OSError, TaskExecError):
            kill_nested(agent_url, container, child, headers)
        raise TimeoutError(f"{argv!r} in {fut.name} ({fut.task_id}) did not end within "
                           f"{timeout:g} s; it was killed") from None
    except (OSError, TaskExecError) as exc:
        raise RuntimeError(f"cannot run {argv!r} in {fut.name} ({fut.task_id}): {exc}"
                           ) from None
    finally:
        pool.shutdown(wait=False)
    return CommandResult(code, out.getvalue().decode("utf-8", "replace"),
                         err.getvalue().decode("utf-8", "replace"))


def _locate(fut: Any) -> tuple[str, str]:
    """``(container id, agent URL)`` of the running call; RuntimeError when there is none."""
    deadline = time.monotonic() + FIND_FOR
    while True:
        if fut.done():
            raise RuntimeError(f"{fut.name} ({fut.key}) is {fut.phase}: a command runs only "
                               "inside a running call's container")
        record = fut.record
        task_id, agent_url = record.task_id, record.agent_url
        if fut.launched is not None and task_id is not None and agent_url is not None:
            try:
                return container_of(agent_url, task_id, dict(fut._cluster._headers)), agent_url
            except TaskExecError:
                if time.monotonic() > deadline:  # a call that started is listed at once
                    raise RuntimeError(f"{fut.name} ({task_id}) has no running container on "
                                       f"{agent_url}") from None
        elif time.monotonic() > deadline:
            raise RuntimeError(f"{fut.name} ({fut.key}) has not started yet: "
                               f"{fut.status()}")
        time.sleep(0.05)
