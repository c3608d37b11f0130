"""GPUs go only to frameworks with the GPU_RESOURCES capability (Mesos): the others are
offered the rest of a GPU agent, its gpus staying free for a GPU framework."""

from __future__ import annotations

import random

from mesonb.allocator.drf import allocate
from mesonb.allocator.snapshot import AgentView, FrameworkView, Snapshot
from mesonb.protocol.resources import EMPTY, Resources

GPU_AGENT = Resources({"cpus": 4, "mem": 4096, "gpus": 2})


def snapshot(*frameworks: FrameworkView) -> Snapshot:
    agents = [AgentView("a1", "gpu-host", GPU_AGENT, GPU_AGENT)]
    return Snapshot(agents, list(frameworks), GPU_AGENT)


def test_a_framework_without_the_capability_is_offered_the_agent_without_its_gpus():
    plain = FrameworkView("plain", ("*",), EMPTY, gpu_aware=False)
    (offer,) = allocate(snapshot(plain), 0.0, random.Random(1)).offers
    assert offer.framework_id == "plain"
    assert offer.resources.get("gpus") == 0
    assert offer.resources.get("cpus") == 4 and offer.resources.get("mem") == 4096


def test_a_gpu_framework_is_offered_the_gpus():
    aware = FrameworkView("aware", ("*",), EMPTY, gpu_aware=True)
    (offer,) = allocate(snapshot(aware), 0.0, random.Random(1)).offers
    assert offer.resources.get("gpus") == 2


def test_the_gpus_stay_free_when_a_plain_framework_takes_the_rest():
    plain = FrameworkView("plain", ("*",), EMPTY, gpu_aware=False)
    (offer,) = allocate(snapshot(plain), 0.0, random.Random(1)).offers
    left = GPU_AGENT - offer.resources
    assert left.get("gpus") == 2 and not left.get("cpus")
