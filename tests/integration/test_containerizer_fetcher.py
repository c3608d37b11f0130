"""CommandInfo.uris are fetched into the sandbox before a command task starts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest
from agent_peer import command_task, new_id, run

from mesonb.protocol.states import Reason, Source, TaskState

pytestmark = pytest.mark.slow


def with_uris(task: Any, *uris: dict[str, Any]) -> Any:
    task.command.uris = list(uris)
    return task


def test_fetched_archive_and_script_are_there_when_the_task_starts(tmp_path: Path) -> None:
    archive = tmp_path / "app.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"42\n"
        info = tarfile.TarInfo("app/answer.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    script = tmp_path / "hello"
    script.write_text("#!/bin/sh\necho hello from the script\n")

    async def body(h: Any) -> None:
        m = h.master
        ok = new_id()
        m.run_task(with_uris(
            command_task(ok, "cat app/answer.txt && ./greet"),
            {"value": f"file://{archive}", "cache": True},
            {"value": str(script), "executable": True, "output_file": "greet"}))
        finished = await m.terminal(ok)
        assert finished.status.state is TaskState.TASK_FINISHED, finished.status.message
        stdout = (h.executor(ok).directory / "stdout").read_text()
        assert "42" in stdout and "hello from the script" in stdout

        bad = new_id()
        missing = tmp_path / "missing.tar.gz"
        m.run_task(with_uris(command_task(bad, "true"), {"value": str(missing)}))
        failed = await m.terminal(bad)
        status = failed.status
        assert status.state is TaskState.TASK_FAILED
        assert status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
        assert status.source is Source.SOURCE_AGENT
        assert f"Failed to fetch '{missing}'" in status.message
        assert "No such file" in status.message
        stderr = (h.executor(bad).directory / "stderr").read_text()
        assert f"Failed to fetch '{missing}'" in stderr
        metrics = json.loads((await h.http("/metrics/snapshot")).body)
        assert metrics["containerizer/fetcher/task_fetches_succeeded"] == 1
        assert metrics["containerizer/fetcher/task_fetches_failed"] == 1
        assert metrics["containerizer/fetcher/cache_size_used_bytes"] == archive.stat().st_size

    run(body, tmp_path / "work")
