"""Reading what tasks left on their agents: sandboxes, logs, results stored out of band.

Everything goes through the agent's files API (``/state`` to find a sandbox,
``/files/download``, with a ``Range`` for a slice of a log file), with the cluster's
credentials; nothing here goes through the master.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from mesonb.http.client import Connection

from .protocol import LogSlice


class Sandboxes:
    """The files of tasks on their agents, read with ``headers`` (the cluster secret)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    async def download(self, agent_url: str, path: str) -> bytes:
        """A whole file; FileNotFoundError unless the agent serves it."""
        conn = Connection.to(agent_url, self.headers)
        try:
            answer = await conn.request("GET", f"/files/download?path={quote(path)}")
        finally:
            conn.close()
        if answer.status != 200:
            raise FileNotFoundError(f"{agent_url}: {path}: HTTP {answer.status}")
        return answer.body

    async def sandbox_of(self, agent_url: str, task_id: str) -> str | None:
        """The sandbox directory of the executor that ran ``task_id``, from ``/state``."""
        conn = Connection.to(agent_url, self.headers)
        try:
            state = (await conn.request("GET", "/state")).json()
        finally:
            conn.close()
        for fw in state.get("frameworks", []) + state.get("completed_frameworks", []):
            for ex in fw.get("executors", []) + fw.get("completed_executors", []):
                tasks = ex.get("tasks", []) + ex.get("completed_tasks", []) + \
                    ex.get("queued_tasks", [])
                if ex.get("id") == task_id or any(t.get("id") == task_id for t in tasks):
                    return ex.get("directory")
        return None

    async def command_logs(self, agent_url: str, task_id: str) -> tuple[str, str]:
        """A command task's stdout and stderr (its sandbox's files)."""
        directory = await self.sandbox_of(agent_url, task_id)
        if directory is None:
            return "", ""
        out = []
        for stream in ("stdout", "stderr"):
            try:
                raw = await self.download(agent_url, f"{directory}/{stream}")
            except FileNotFoundError:
                raw = b""
            out.append(raw.decode("utf-8", "replace"))
        return out[0], out[1]

    async def task_logs(self, record: Any) -> tuple[str, str]:
        """What a call's task printed (so far, while it runs): stdout and stderr, from
        its :class:`~.results.CallRecord`."""
        if record.agent_url is None or record.task_id is None:
            return "", ""
        if record.logs is not None:  # a function call: slices of its worker's log files
            texts = [await self.read_slice(record.agent_url, part) for part in record.logs]
            return texts[0], texts[1]
        if not record.command:  # a call still running: its slices from their starts so far
            parts = record.running_logs or (None, None)
            texts = [await self.read_slice(record.agent_url, part, to_end=True)
                     for part in parts]
            return texts[0], texts[1]
        return await self.command_logs(record.agent_url, record.task_id)

    async def read_slice(self, agent_url: str, part: LogSlice | None,
                         to_end: bool = False) -> str:
        """``part`` of a log file, through the agent's ``/files/download`` with a Range;
        ``to_end``: from its offset to the file's current end (a call still writing)."""
        if part is None or (part.length <= 0 and not to_end):
            return ""
        last = "" if to_end else str(part.offset + part.length - 1)
        conn = Connection.to(agent_url, self.headers)
        try:
            answer = await conn.request(
                "GET", f"/files/download?path={quote(part.path)}",
                headers={"Range": f"bytes={part.offset}-{last}"})
        finally:
            conn.close()
        if answer.status != 206:
            return ""
        return answer.body.decode("utf-8", "replace")
