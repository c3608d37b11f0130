"""GPUs from a fake nvidia-smi: offered, handed out one device per task (environment and
devices cgroup), fractional requests refused."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from test_containerizer_limits import V1, Harness, task

from mesonb.agent.fingerprint import detect_gpus
from mesonb.agent.isolation import ContainerizerConfig
from mesonb.protocol.states import Reason, TaskState

pytestmark = pytest.mark.slow

FAKE_SMI = """#!/bin/sh
echo "0, 0, GPU-aaaa, Fake Tesla T4"
echo "1, 1, GPU-bbbb, Fake Tesla T4"
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def with_gpus(t: Any, n: float) -> Any:
    t.resources.append({"name": "gpus", "type": "SCALAR", "scalar": {"value": n}})
    return t


SHOW = ('echo "gpus=$CUDA_VISIBLE_DEVICES"; '
        'd=$(sed -n "s/^[0-9]*:devices://p" /proc/self/cgroup); '
        'cat /sys/fs/cgroup/devices$d/devices.list 2>/dev/null | grep "^c 195:" ; sleep 30')


def test_gpus_are_detected_and_handed_out(tmp_path: Path, fake_gpus: None) -> None:
    assert detect_gpus() == 2

    async def body(h: Any) -> None:
        m = h.master
        assert "gpu/nvidia" in h.agent.containerizer.isolation
        assert h.agent.resources.get("gpus") == 2
        m.run_task(with_gpus(task("one", SHOW), 1))
        m.run_task(with_gpus(task("two", SHOW), 1))
        m.run_task(with_gpus(task("half", "true"), 0.5))
        error = await m.terminal("half")
        assert error.status.state is TaskState.TASK_ERROR
        assert error.status.reason is Reason.REASON_TASK_INVALID
        assert "gpus" in error.status.message

        def shown(task_id: str) -> str:
            path = h.executor(task_id).directory / "stdout"
            return path.read_text() if path.exists() else ""

        await m.until(lambda: "gpus=" in shown("one") and "gpus=" in shown("two"))
        seen = sorted(shown(t).splitlines()[0] for t in ("one", "two"))
        assert seen == ["gpus=0", "gpus=1"]
        if V1 is None:
            await m.until(lambda: "c 195:" in shown("one"))
            first = shown("one")
            minor = first.splitlines()[0].removeprefix("gpus=")
            assert f"c 195:{minor} rwm" in first
            assert f"c 195:{1 - int(minor)} rwm" not in first
        m.run_task(with_gpus(task("three", "true"), 1))  # none left
        failed = await m.terminal("three")
        assert failed.status.reason is Reason.REASON_CONTAINER_LAUNCH_FAILED
        assert "GPUs" in failed.status.message
        for t in ("one", "two"):
            m.kill(t)
            await m.terminal(t)
        m.run_task(with_gpus(task("again", 'echo "gpus=$CUDA_VISIBLE_DEVICES"'), 1))
        assert (await m.terminal("again")).status.state is TaskState.TASK_FINISHED

    async def main() -> None:
        async with Harness(tmp_path / "work", ContainerizerConfig(),
                           resources="cpus:4;mem:4096;gpus:2") as harness:
            await asyncio.wait_for(body(harness), 90)

    asyncio.run(main())


def visible_devices() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_cluster_submit_with_a_gpu(fake_gpus: None) -> None:
    from mesonb import Cluster

    with Cluster.local(agents=1) as cluster:
        assert cluster.submit(visible_devices, gpus=1, cpus=0.1, mem="64MB").result(60) == "0"
