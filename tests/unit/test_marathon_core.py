"""The Marathon core on a fake clock with a recording driver: no sockets, no processes."""

from __future__ import annotations

import asyncio
from typing import Any

from mesonb.frameworks.marathon.core import MarathonCore
from mesonb.frameworks.marathon.operations import Operations
from mesonb.testing.clock import FakeClock


class Driver:
    """Records the calls a SchedulerDriver would send."""

    def __init__(self) -> None:
        self.launched: list[dict[str, Any]] = []
        self.killed: list[str] = []
        self.declined: list[tuple[list[str], float]] = []
        self.revives = 0
        self.suppresses = 0

    async def launch(self, offer_ids: list[str], tasks: list[dict[str, Any]],
                     refuse_seconds: float | None = None) -> None:
        self.launched.extend(tasks)

    async def accept(self, offer_ids: list[str], operations: list[dict[str, Any]],
                     refuse_seconds: float | None = None) -> None:
        for op in operations:
            self.launched.extend(op["launch_group"]["task_group"]["tasks"])

    async def decline(self, offer_ids: list[str], seconds: float) -> None:
        self.declined.append((offer_ids, seconds))

    async def revive(self) -> None:
        self.revives += 1

    async def suppress(self) -> None:
        self.suppresses += 1

    async def kill(self, task_id: str, agent_id: str | None = None,
                   grace: float | None = None) -> None:
        self.killed.append(task_id)

    async def reconcile(self, tasks: Any) -> None:
        return None


def offer(n: int = 0, cpus: float = 4.0) -> dict[str, Any]:
    return {"id": {"value": f"offer-{n}"}, "agent_id": {"value": "agent-1"}, "hostname": "h1",
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 4096}},
                          {"name": "ports", "type": "RANGES",
                           "ranges": {"range": [{"begin": 31000, "end": 31100}]}}]}


def update(core: MarathonCore, task_id: str, state: str, **extra: Any) -> Any:
    return core.on_update({"task_id": {"value": task_id}, "state": state,
                           "agent_id": {"value": "agent-1"}, **extra})


async def settle(core: MarathonCore) -> None:
    """Let the calls the core sends in the background go out."""
    while core._background:
        await asyncio.gather(*list(core._background))
        await asyncio.sleep(0)  # the done callbacks drop them from the set


async def setup(**kw: Any) -> tuple[MarathonCore, Operations, Driver, FakeClock]:
    clock = FakeClock()
    core = MarathonCore(clock=clock.monotonic, **kw)
    driver = Driver()
    core.driver = driver
    return core, Operations(core), driver, clock


async def test_an_app_launches_on_offers_and_its_deployment_succeeds() -> None:
    core, ops, driver, _clock = await setup()
    events = core.bus.subscribe(["deployment_success", "status_update_event"])
    _app, dep_id = await ops.create_app({"id": "/web", "cmd": "sleep 9", "instances": 2,
                                         "cpus": 0.5, "mem": 16})
    assert dep_id in core.deployments
    await core.on_offers([offer()])
    assert len(driver.launched) == 2
    env = {v["name"] for v in driver.launched[0]["command"]["environment"]["variables"]}
    assert {"PORT0", "PORTS", "MARATHON_APP_ID"} <= env
    for task in driver.launched:
        await update(core, task["task_id"]["value"], "TASK_RUNNING")
    assert dep_id not in core.deployments
    kinds = []
    while not events.queue.empty():
        kinds.append(events.queue.get_nowait()["eventType"])
    assert kinds == ["status_update_event", "status_update_event", "deployment_success"]
    # nothing more to launch: offers are declined for long and suppressed
    await core.on_offers([offer(1)])
    assert driver.declined[-1] == (["offer-1"], 120.0) and driver.suppresses == 1


async def test_a_failure_delays_the_relaunch_by_the_backoff() -> None:
    core, ops, driver, clock = await setup()
    await ops.create_app({"id": "/crash", "cmd": "false", "instances": 1, "cpus": 0.1,
                          "mem": 8, "backoffSeconds": 2, "backoffFactor": 3})
    await core.on_offers([offer()])
    first = driver.launched[-1]["task_id"]["value"]
    await update(core, first, "TASK_FAILED", message="exit 1")
    assert core.apps["/crash"].last_failure["taskId"] == first
    await core.on_offers([offer(1)])
    assert len(driver.launched) == 1  # delayed 2 s
    clock.advance(2.0)
    await core.tick()
    assert driver.revives >= 1
    await core.on_offers([offer(2)])
    second = driver.launched[-1]["task_id"]["value"]
    assert second != first
    await update(core, second, "TASK_FAILED")
    clock.advance(5.9)
    await core.on_offers([offer(3)])
    assert len(driver.launched) == 2  # now 6 s
    clock.advance(0.2)
    await core.on_offers([offer(4)])
    assert len(driver.launched) == 3


async def test_an_operator_kill_is_not_a_failure_and_the_instance_is_replaced() -> None:
    core, ops, driver, _clock = await setup()
    await ops.create_app({"id": "/a", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8})
    await core.on_offers([offer()])
    task_id = driver.launched[-1]["task_id"]["value"]
    await update(core, task_id, "TASK_RUNNING")
    await ops.kill_tasks([core.instances[task_id]], scale=False)
    await settle(core)
    assert driver.killed == [task_id]
    await update(core, task_id, "TASK_KILLED")
    assert core.apps["/a"].last_failure is None
    await core.on_offers([offer(1)])
    assert len(driver.launched) == 2  # replaced at once, no backoff


async def test_a_deadline_fails_a_stuck_deployment() -> None:
    core, ops, _driver, clock = await setup()
    failed = core.bus.subscribe(["deployment_failed"])
    _app, dep_id = await ops.create_app({"id": "/big", "cmd": "x", "cpus": 64, "mem": 8,
                                         "labels": {"MESONB_DEPLOY_TIMEOUT": "10"}})
    await core.on_offers([offer()])
    clock.advance(9.9)
    await core.tick()
    assert dep_id in core.deployments
    clock.advance(0.2)
    await core.tick()
    assert dep_id not in core.deployments
    event = failed.queue.get_nowait()
    assert event["id"] == dep_id and "MESONB_DEPLOY_TIMEOUT" in event["reason"]


async def test_a_shared_executor_takes_its_resources_once_per_agent() -> None:
    core, ops, driver, _clock = await setup(shared_executor=True)
    await ops.create_app({"id": "/s", "cmd": "sleep 9", "instances": 4, "cpus": 1,
                          "mem": 8, "portDefinitions": []})
    await core.on_offers([offer(cpus=4.0)])
    assert len(driver.launched) == 3  # 0.01 cpus went to the executor
    assert "agent-1" in core.executors


async def test_unknown_tasks_found_by_reconciliation_are_adopted_or_killed() -> None:
    core, ops, driver, _clock = await setup()
    await ops.create_app({"id": "/a", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8})
    mine = "a.123e4567-e89b-12d3-a456-426614174000"
    await update(core, mine, "TASK_RUNNING")
    assert core.instances[mine].app_id == "/a"
    stranger = "gone.123e4567-e89b-12d3-a456-426614174000"
    await update(core, stranger, "TASK_RUNNING")
    await settle(core)
    assert stranger in driver.killed and stranger not in core.instances


async def test_mesos_health_checks_travel_in_the_task_and_healthy_comes_back() -> None:
    core, ops, driver, _clock = await setup()
    changes = core.bus.subscribe(["health_status_changed_event"])
    _app, dep_id = await ops.create_app({
        "id": "/h", "cmd": "sleep 9", "instances": 1, "cpus": 0.1, "mem": 8,
        "healthChecks": [{"protocol": "MESOS_TCP", "intervalSeconds": 1}]})
    await core.on_offers([offer()])
    task = driver.launched[-1]
    assert task["health_check"]["type"] == "TCP"
    task_id = task["task_id"]["value"]
    await update(core, task_id, "TASK_RUNNING")
    assert dep_id in core.deployments  # running but not yet healthy
    await update(core, task_id, "TASK_RUNNING", healthy=True)
    assert dep_id not in core.deployments
    assert core.instances[task_id].health["alive"] is True
    await update(core, task_id, "TASK_RUNNING", healthy=False)
    assert [e["alive"] for e in (changes.queue.get_nowait(), changes.queue.get_nowait())] \
        == [True, False]


async def test_an_unreachable_instance_is_replaced_and_one_too_many_goes_later() -> None:
    core, ops, driver, clock = await setup()
    await ops.create_app({"id": "/u", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8})
    await core.on_offers([offer()])
    first = driver.launched[-1]["task_id"]["value"]
    await update(core, first, "TASK_RUNNING")
    await update(core, first, "TASK_UNREACHABLE")
    clock.advance(1.0)
    await core.on_offers([offer(1)])
    second = driver.launched[-1]["task_id"]["value"]
    assert second != first
    await update(core, second, "TASK_RUNNING")
    await update(core, first, "TASK_RUNNING")  # the agent came back
    await settle(core)
    assert driver.killed == [second]  # YOUNGEST_FIRST


async def test_a_launch_the_master_never_got_goes_back_to_the_queue() -> None:
    core, ops, driver, _clock = await setup()
    await ops.create_app({"id": "/q", "cmd": "sleep 9", "instances": 2, "cpus": 0.1,
                          "mem": 8})

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("not subscribed to the master")

    driver.launch = broken  # type: ignore[method-assign]
    await core.on_offers([offer()])
    assert core.instances == {}
    del driver.launch
    await core.on_offers([offer(1)])
    assert len(driver.launched) == 2 and len(core.instances) == 2


async def test_unreachable_strategy_replaces_after_inactive_and_expunges_after_expunge() -> None:
    core, ops, driver, clock = await setup()
    await ops.create_app({"id": "/u", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8, "unreachableStrategy": {"inactiveAfterSeconds": 60,
                                                            "expungeAfterSeconds": 120}})
    await core.on_offers([offer()])
    first = driver.launched[-1]["task_id"]["value"]
    await update(core, first, "TASK_RUNNING")
    await update(core, first, "TASK_UNREACHABLE")
    clock.advance(30.0)
    await core.tick()
    await core.on_offers([offer(1)])
    assert len(driver.launched) == 1  # still counted: not inactive yet
    clock.advance(31.0)
    await core.tick()
    await core.on_offers([offer(2)])
    second = driver.launched[-1]["task_id"]["value"]
    assert second != first  # inactive: replaced, still known
    await update(core, second, "TASK_RUNNING")
    assert first in core.instances
    clock.advance(60.0)
    await core.tick()
    assert first not in core.instances  # expunged
    await update(core, first, "TASK_RUNNING")  # it comes back: killed, not adopted
    await settle(core)
    assert driver.killed == [first] and first not in core.instances
    assert [i.id for i in core.app_instances("/u")] == [second]


async def test_a_disabled_unreachable_strategy_waits_for_the_instance() -> None:
    core, ops, driver, clock = await setup()
    await ops.create_app({"id": "/d", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8, "unreachableStrategy": "disabled"})
    assert core.apps["/d"].definition.to_json()["unreachableStrategy"] == "disabled"
    await core.on_offers([offer()])
    first = driver.launched[-1]["task_id"]["value"]
    await update(core, first, "TASK_RUNNING")
    await update(core, first, "TASK_UNREACHABLE")
    clock.advance(3600.0)
    await core.tick()
    await core.on_offers([offer(1)])
    assert len(driver.launched) == 1 and first in core.instances
    await update(core, first, "TASK_RUNNING")
    await settle(core)
    assert driver.killed == [] and core.instances[first].active


async def test_new_demand_revives_past_our_filters_and_unmet_demand_waits_them_out() -> None:
    core, ops, driver, clock = await setup()
    await ops.create_app({"id": "/a", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8})
    await core.on_offers([offer()])  # /a launches; the rest of the offer is filtered 1 s
    assert len(driver.launched) == 1
    revives = driver.revives
    clock.advance(0.2)
    await ops.create_app({"id": "/b", "cmd": "sleep 9", "instances": 1, "cpus": 0.1,
                          "mem": 8})
    assert driver.revives == revives + 1  # at once, not when the filter expires
    clock.advance(0.2)
    await ops.create_app({"id": "/huge", "cmd": "sleep 9", "instances": 1, "cpus": 100,
                          "mem": 8})
    await core.on_offers([offer(1)])  # /b launches, /huge fits nowhere
    assert len(driver.launched) == 2
    revives = driver.revives
    for _ in range(8):  # two seconds of ticks: unmet demand does not revive in a loop
        clock.advance(0.25)  # (the filter expires by itself and offers come again)
        await core.tick()
    assert driver.revives - revives <= 1
