"""GPUs from the client: ``Cluster.run(cmd, gpus=N)`` as ``submit(..., gpus=N)``, on an
embedded cluster whose agent finds two GPUs with a fake ``nvidia-smi`` (the GPU tests'
one, tests/integration/test_containerizer_gpus.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_containerizer_gpus import FAKE_SMI

from mesonb import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    c = Cluster.local(agents=1)
    try:
        yield c
    finally:
        c.close()


def test_a_command_asks_for_gpus_and_sees_its_device(cluster):
    assert cluster.agents().iloc[0]["gpus_total"] == 2
    one = cluster.run('echo "gpus=$CUDA_VISIBLE_DEVICES"', gpus=1, mem="64MiB")
    result = one.result(60)
    assert result.returncode == 0
    assert result.stdout in ("gpus=0\n", "gpus=1\n")
    (task,) = [t for _, t in cluster.tasks().iterrows() if t["task_id"] == one.task_id]
    assert task["gpus"] == 1
    both = cluster.run('echo "gpus=$CUDA_VISIBLE_DEVICES"', gpus=2, mem="64MiB")
    assert both.result(60).stdout == "gpus=0,1\n"
    none = cluster.run('echo "gpus=$CUDA_VISIBLE_DEVICES"', mem="64MiB")
    assert none.result(60).stdout == "gpus=\n"  # no GPU asked for: none visible


def test_bad_gpus_for_a_command_fail_at_once(cluster):
    with pytest.raises(ValueError, match=r"gpus: 0\.5 is not a whole number"):
        cluster.run("true", gpus=0.5)
    with pytest.raises(TypeError, match="gpus: expected a whole number of GPUs"):
        cluster.run("true", gpus="x")
