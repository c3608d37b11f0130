"""Pods in the core on a fake clock: a pod instance launches as one task group, its state
follows its containers', a kill reaches every container, a failed container fails the
instance (and the pod replaces it after its backoff)."""

from __future__ import annotations

from typing import Any

import pytest
from test_marathon_core import offer, settle, setup, update

from mesonb.frameworks.marathon.instance_fsm import InstanceState
from mesonb.frameworks.marathon.model import InvalidObject
from mesonb.frameworks.marathon.pod_operations import PodOperations
from mesonb.frameworks.marathon.pods import aggregate, parse_pod

POD = {"id": "/p", "containers": [
    {"name": "a", "resources": {"cpus": 0.1, "mem": 16}, "exec": {"command": {"shell": "x"}}},
    {"name": "b", "resources": {"cpus": 0.2, "mem": 16}, "exec": {"command": {"shell": "y"}}}]}


class GroupDriver:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.operations: list[dict[str, Any]] = []

    async def accept(self, offer_ids: list[str], operations: list[dict[str, Any]],
                     refuse_seconds: float | None = None) -> None:
        self.operations.extend(operations)


def test_the_pod_spec_sums_its_containers_and_the_executor() -> None:
    pod = parse_pod(POD)
    assert (round(pod.cpus, 3), pod.mem, pod.disk) == (0.4, 64.0, 10.0)
    assert pod.instances == 1 and pod.port_definitions == []
    with pytest.raises(InvalidObject) as bad:
        parse_pod({"id": "/p", "containers": [POD["containers"][0]] * 2, "bogus": 1})
    assert {d["path"] for d in bad.value.details} == {"/bogus", "/containers(1)/name"}


def test_a_pod_instance_follows_its_containers() -> None:
    names = ["a", "b"]
    assert aggregate({}, names) is None
    assert aggregate({"a": "TASK_RUNNING"}, names) is InstanceState.STARTING
    assert aggregate({"a": "TASK_RUNNING", "b": "TASK_RUNNING"}, names) is \
        InstanceState.RUNNING
    assert aggregate({"a": "TASK_FAILED", "b": "TASK_RUNNING"}, names) is \
        InstanceState.FAILED
    assert aggregate({"a": "TASK_FINISHED", "b": "TASK_RUNNING"}, names) is \
        InstanceState.KILLING
    assert aggregate({"a": "TASK_FAILED", "b": "TASK_KILLED"}, names) is InstanceState.FAILED
    assert aggregate({"a": "TASK_FINISHED", "b": "TASK_FINISHED"}, names) is \
        InstanceState.FINISHED


async def test_a_pod_launches_as_a_task_group_and_is_killed_container_by_container() -> None:
    core, ops, driver, clock = await setup()
    groups = GroupDriver(driver)
    driver.accept = groups.accept  # type: ignore[method-assign]
    pod, _dep = await PodOperations(ops).create({**POD, "executorResources": {"disk": 0}})
    assert pod.disk == 0  # the test's offers hold no disk
    await core.on_offers([offer()])
    [launch] = groups.operations
    assert launch["type"] == "LAUNCH_GROUP"
    executor = launch["launch_group"]["executor"]
    assert executor["type"] == "DEFAULT"
    tasks = launch["launch_group"]["task_group"]["tasks"]
    assert [t["name"] for t in tasks] == ["a", "b"]
    [inst] = core.app_instances("/p")
    assert [t["task_id"]["value"] for t in tasks] == [f"{inst.id}.a", f"{inst.id}.b"]
    await update(core, f"{inst.id}.a", "TASK_RUNNING")
    assert inst.state is InstanceState.STARTING
    await update(core, f"{inst.id}.b", "TASK_RUNNING")
    assert inst.state is InstanceState.RUNNING and not core.deployments
    core.kill(inst)
    await settle(core)
    assert sorted(driver.killed) == [f"{inst.id}.a", f"{inst.id}.b"]

    await update(core, f"{inst.id}.a", "TASK_KILLED")
    await update(core, f"{inst.id}.b", "TASK_KILLED")
    assert inst.id not in core.instances and core.apps["/p"].last_failure is None

    # a replacement; a failed container takes it down (a failure: recorded, backed off)
    await core.on_offers([offer(1)])
    [second] = core.app_instances("/p")
    for name in ("a", "b"):
        await update(core, f"{second.id}.{name}", "TASK_RUNNING")
    await update(core, f"{second.id}.a", "TASK_FAILED")
    assert second.id not in core.instances
    await update(core, f"{second.id}.b", "TASK_KILLED")  # its executor took it down
    assert core.apps["/p"].last_failure["taskId"] == second.id
    await core.on_offers([offer(2)])
    assert len(groups.operations) == 2  # backing off
    clock.advance(5.0)
    await core.on_offers([offer(3)])
    assert len(groups.operations) == 3 and len(core.app_instances("/p")) == 1


async def test_a_pod_deployment_names_its_pod_for_marathon_python() -> None:
    marathon_models = pytest.importorskip("marathon.models")
    core, ops, _driver, _clock = await setup()
    events = core.bus.subscribe(["pod_created_event"])
    _pod, dep_id = await PodOperations(ops).create({**POD, "executorResources": {"disk": 0}})
    body = core.deployments[dep_id].to_json()
    assert body["affectedPods"] == ["/p"] and body["affectedApps"] == []
    assert body["steps"][0]["actions"] == [{"action": "StartPod", "pod": "/p"}]
    parsed = marathon_models.MarathonDeployment.from_json(body)  # strict: no unknown field
    assert parsed.affected_pods == ["/p"]
    created = events.queue.get_nowait()
    assert created["eventType"] == "pod_created_event" and created["uri"] == "/v2/pods/p"
