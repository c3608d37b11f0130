"""The agent's executor API takes a JSON array of calls (mesonb's extension, used by
mesonb's executor driver): validated whole, carried out in order, announced on SUBSCRIBE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from agent_peer import AgentHarness, FakeMaster, b64, command_task, new_id, run

from mesonb.protocol.states import TaskState

pytestmark = pytest.mark.slow
API = "/api/v1/executor"


def update(task_id: str, executor_id: str, state: str, uuid: bytes,
           framework_id: str = "fw-1") -> dict:
    return {"type": "UPDATE", "framework_id": {"value": framework_id},
            "executor_id": {"value": executor_id},
            "update": {"status": {"task_id": {"value": task_id}, "state": state,
                                  "uuid": b64(uuid)}}}


def test_batched_updates_are_checked_whole_and_recorded_in_order(tmp_path: Path) -> None:
    async def body(h: AgentHarness) -> None:
        m = h.master
        task_id = new_id()
        m.run_task(command_task(task_id, "sleep 60"))
        await m.update(task_id, TaskState.TASK_STARTING)
        executor = h.executor(task_id)
        mine = {"Content-Type": "application/json",
                "Authorization": f"Bearer {executor.token}"}

        async def post(calls: list[dict]) -> tuple[int, bytes]:
            answer = await h.http(API, method="POST", body=json.dumps(calls).encode(),
                                  headers=mine)
            return answer.code, answer.body

        ok = update(task_id, task_id, "TASK_RUNNING", b"a" * 16)
        # A bad call anywhere: nothing is done, and the answer names it.
        code, text = await post([ok, update(task_id, task_id, "TASK_STAGING", b"b" * 16)])
        assert code == 400 and b"call 1 of the batch" in text
        code, text = await post([ok, update(task_id, "someone-else", "TASK_RUNNING",
                                            b"c" * 16)])
        assert code == 403 and b"call 1 of the batch" in text
        subscribe = {"type": "SUBSCRIBE", "framework_id": {"value": "fw-1"},
                     "executor_id": {"value": task_id}, "subscribe": {}}
        code, text = await post([subscribe])
        assert code == 400 and b"cannot be batched" in text
        assert (await post([]))[0] == 400
        assert not [u for u in m.updates(task_id) if u.status.uuid == b"a" * 16]

        code, _ = await post([ok, update(task_id, task_id, "TASK_RUNNING", b"d" * 16)])
        assert code == 202
        acked: set[bytes] = set()

        def recorded() -> bool:  # the agent forwards a task's next update once acked
            for u in m.updates(task_id):
                if u.status.uuid not in acked:
                    acked.add(u.status.uuid)
                    m.ack(u)
            return b"d" * 16 in acked

        await m.until(recorded)
        uuids = [u.status.uuid for u in m.updates(task_id)]
        assert uuids.index(b"a" * 16) < uuids.index(b"d" * 16)
        m.kill(task_id)
        await m.terminal(task_id)

    run(body, tmp_path, master=FakeMaster())
