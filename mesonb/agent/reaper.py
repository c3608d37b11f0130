"""Command tasks that the agent runs itself die with the agent, as Mesos's do.

A command task of a framework that does not checkpoint runs without an executor process
(:mod:`mesonb.agent.command_runner`); in Mesos its executor would notice the agent's death
and kill it. Here one small watchdog per agent does that: a Python process in its own
session that reads "+ <session> [<cgroup.procs>]" and "- <session>" lines on a pipe from the
agent; when the pipe closes (the agent exited or was killed), it SIGKILLs every session
still listed (and every process of its cgroup) and exits. One interpreter per agent, not
per task; started with the first such task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys

log = logging.getLogger(__name__)
FLUSH_DELAY = 0.05

WATCHDOG = r"""
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
live = {}
for line in sys.stdin:
    op, _, rest = line.strip().partition(" ")
    if op == "+":
        sid, _, procs = rest.partition(" ")
        live[sid] = procs
    elif op == "-":
        live.pop(rest, None)
def members(sids):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name, "rb") as f:
                    raw = f.read()
                if raw[raw.rfind(b")") + 2:].split()[3].decode() in sids:
                    out.append(int(name))
            except (OSError, IndexError):
                pass
    for procs in live.values():
        try:
            out += [int(p) for p in open(procs).read().split()] if procs else []
        except (OSError, ValueError):
            pass
    return out
for _ in range(3):
    for pid in members(set(live)):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


class Reaper:
    """The agent's end of the watchdog (see the module docstring)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer: list[str] = []

    def _pipe(self) -> int | None:
        if self._process is None:
            try:
                self._process = subprocess.Popen(
                    [sys.executable, "-S", "-c", WATCHDOG], stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                log.error("cannot start the task watchdog: %s", exc)
                return None
        stdin = self._process.stdin
        return stdin.fileno() if stdin is not None and not stdin.closed else None

    def _send(self, line: str) -> None:
        """Queue ``line``; the lines of one loop turn are written together."""
        if not self._buffer:  # batched: each write wakes the watchdog up
            asyncio.get_running_loop().call_later(FLUSH_DELAY, self._flush)
        self._buffer.append(line)

    def _flush(self) -> None:
        data, self._buffer = "".join(self._buffer).encode(), []
        fd = self._pipe()
        if fd is not None and data:
            with contextlib.suppress(OSError):
                os.write(fd, data)

    def add(self, session: int, procs: str | None = None) -> None:
        """Kill session ``session`` (and the cgroup ``procs`` lists) if the agent dies."""
        self._send(f"+ {session} {procs or ''}\n")

    def remove(self, session: int) -> None:
        if self._process is not None:
            self._send(f"- {session}\n")

    def close(self) -> None:
        """The agent stops: the watchdog kills what is still listed, and exits."""
        if self._buffer:
            self._flush()
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(2.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
