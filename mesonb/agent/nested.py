"""Commands run inside a running task's container: Mesos's nested container sessions.

``LAUNCH_NESTED_CONTAINER_SESSION`` (what ``mesos task exec`` sends) starts a command in the
sandbox of a running executor's container and streams its stdout and stderr back until it
exits; ``ATTACH_CONTAINER_INPUT`` feeds its stdin, ``ATTACH_CONTAINER_OUTPUT`` attaches
another reader, ``WAIT_NESTED_CONTAINER`` answers its exit and ``KILL_NESTED_CONTAINER``
signals it. A session's output is kept (up to :data:`MAX_KEPT_OUTPUT` bytes) so a reader
that attaches late still sees it from the start; a finished session is forgotten after
:data:`KEEP_FINISHED` seconds, as Mesos removes the nested container.

The command runs as its own process group in the parent's sandbox with the parent's
``MESOS_SANDBOX``; the agent kills it when the parent container ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mesonb.protocol.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from .book import Executor

log = logging.getLogger(__name__)

MAX_KEPT_OUTPUT = 4 * 1024 * 1024
KEEP_FINISHED = 60.0
MAX_SESSIONS = 256


class Session:
    """One nested container: a command, its output so far, its exit."""

    def __init__(self, container_id: str, parent: str, process: asyncio.subprocess.Process
                 ) -> None:
        self.container_id = container_id
        self.parent = parent
        self.process = process
        self.chunks: list[tuple[str, bytes]] = []
        self.kept = 0
        self.dropped = 0  # chunks dropped from the front once over MAX_KEPT_OUTPUT
        self.closed_streams = 0
        self.changed = asyncio.Condition()
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def pump(self, stream: asyncio.StreamReader | None, kind: str) -> None:
        if stream is not None:
            while chunk := await stream.read(64 * 1024):
                async with self.changed:
                    self.chunks.append((kind, chunk))
                    self.kept += len(chunk)
                    while self.kept > MAX_KEPT_OUTPUT and len(self.chunks) > 1:
                        self.kept -= len(self.chunks.pop(0)[1])
                        self.dropped += 1
                    self.changed.notify_all()
        async with self.changed:
            self.closed_streams += 1
            self.changed.notify_all()

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every chunk of stdout and stderr, from the first kept one until both close."""
        seen = self.dropped
        while True:
            async with self.changed:
                await self.changed.wait_for(functools.partial(self._ahead_of, seen))
                start = max(seen, self.dropped)
                batch = self.chunks[start - self.dropped:]
                seen = self.dropped + len(self.chunks)
                finished = self.closed_streams >= 2
            for item in batch:
                yield item
            if finished and seen == self.dropped + len(self.chunks):
                return

    def _ahead_of(self, seen: int) -> bool:
        return self.dropped + len(self.chunks) > seen or self.closed_streams >= 2

    async def write_stdin(self, data: bytes) -> None:
        """Write to the command's stdin; empty ``data`` closes it (end of input)."""
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing():
            raise Conflict(f"The input of container '{self.container_id}' is closed")
        if not data:
            stdin.close()
            return
        stdin.write(data)
        with contextlib.suppress(ConnectionError):
            await stdin.drain()

    def wait_status(self) -> int:
        """The exit as a wait status (``WEXITSTATUS`` << 8, or the killing signal)."""
        code = self.exited.result()
        return -code if code < 0 else code << 8


class NestedContainers:
    """The agent's nested container sessions, by container id."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}

    async def launch(self, container_id: str, parent: Executor, command: dict[str, Any]
                     ) -> Session:
        if container_id in self.sessions:
            raise Conflict(f"Container '{container_id}' already exists")
        if len(self.sessions) >= MAX_SESSIONS:
            raise Conflict(f"Too many nested containers on this agent ({MAX_SESSIONS})")
        argv, env = _command(command, parent)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=str(parent.directory), env=env, start_new_session=True,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise BadRequest(f"Failed to launch the nested container: {exc}") from None
        session = Session(container_id, parent.container_id, process)
        self.sessions[container_id] = session
        log.info("nested container %s in %s: pid %d, %s", container_id, parent.container_id,
                 process.pid, argv)
        loop = asyncio.get_running_loop()
        pumps = [loop.create_task(session.pump(process.stdout, "STDOUT")),
                 loop.create_task(session.pump(process.stderr, "STDERR"))]

        async def reap() -> None:
            code = await process.wait()
            await asyncio.gather(*pumps, return_exceptions=True)
            session.exited.set_result(code)
            loop.call_later(KEEP_FINISHED, self.sessions.pop, container_id, None)

        session.reaper = loop.create_task(reap())  # type: ignore[attr-defined]
        return session

    def get(self, container_id: str) -> Session:
        session = self.sessions.get(container_id)
        if session is None:
            raise NotFound(f"Container '{container_id}' not found")
        return session

    async def wait(self, container_id: str) -> dict[str, Any]:
        session = self.get(container_id)
        await asyncio.shield(session.exited)
        return {"exit_status": session.wait_status()}

    def kill(self, container_id: str, signum: int) -> None:
        session = self.get(container_id)
        if session.exited.done():
            return
        try:
            sig = signal.Signals(signum)
        except ValueError:
            raise BadRequest(f"Invalid signal {signum}") from None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(session.process.pid, sig)

    def describe(self) -> list[dict[str, Any]]:
        """``GET_CONTAINERS`` entries for the running sessions (``show_nested``)."""
        return [{"container_id": {"value": s.container_id, "parent": {"value": s.parent}},
                 "container_status": {"executor_pid": s.process.pid}}
                for s in self.sessions.values() if not s.exited.done()]

    def end_children_of(self, parent: str) -> None:
        """Kill the sessions of a container that ended."""
        for session in self.sessions.values():
            if session.parent == parent and not session.exited.done():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(session.process.pid, signal.SIGKILL)

    def close(self) -> None:
        for session in self.sessions.values():
            if not session.exited.done():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(session.process.pid, signal.SIGKILL)


def _command(command: dict[str, Any], parent: Executor) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a ``CommandInfo`` run in ``parent``'s sandbox."""
    shell = command.get("shell", True)
    value = command.get("value")
    arguments = command.get("arguments") or []
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise BadRequest("Expecting 'command.arguments' to be a list of strings")
    if shell:
        if not isinstance(value, str) or not value:
            raise BadRequest("Expecting 'command.value' to be present")
        argv = ["/bin/sh", "-c", value]
    else:
        if not isinstance(value, str) or not value:
            raise BadRequest("Expecting 'command.value' (the program) to be present")
        argv = arguments or [value]
        argv = [value, *argv[1:]]
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
           "HOME": str(parent.directory), "MESOS_SANDBOX": str(parent.directory),
           "LANG": os.environ.get("LANG", "C.UTF-8")}
    variables = (command.get("environment") or {}).get("variables") or []
    for var in variables:
        if not isinstance(var, dict) or not isinstance(var.get("name"), str):
            raise BadRequest("Expecting 'command.environment.variables[].name' strings")
        env[var["name"]] = str(var.get("value", ""))
    return argv, env
