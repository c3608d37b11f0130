"""The functions scheduler's placement pass over its queue: which calls go on an offer,
and what stays queued in which order. Specs sharing one Resources object (a loop of
submits) are judged once per state of the offer; the answers must be those of judging
each spec on its own."""

from __future__ import annotations

import asyncio
from typing import Any

from mesonb.frameworks.functions import scheduler as functions_scheduler
from mesonb.frameworks.functions.scheduler import FunctionsScheduler, TaskSpec
from mesonb.protocol.resources import Resources


class RecordingDriver:
    def __init__(self) -> None:
        self.launches: list[tuple[list[str], list[str]]] = []

    async def launch(self, offer_ids: list[str], tasks: list[dict[str, Any]],
                     refuse_seconds: float | None = None) -> None:
        self.launches.append((offer_ids, [t["task_id"]["value"] for t in tasks]))


def spec(task_id: str, resources: Resources, command: str | None = None) -> TaskSpec:
    return TaskSpec(task_id=task_id, name=task_id, resources=resources,
                    on_status=lambda s, st: None, data=None if command else b"call",
                    command=command)


def place(queue: list[TaskSpec], offered: dict[str, float]) -> tuple[FunctionsScheduler,
                                                                       RecordingDriver]:
    sched = FunctionsScheduler()
    driver = RecordingDriver()
    sched.driver = driver  # type: ignore[assignment]
    sched.offers["o1"] = {"id": {"value": "o1"}, "agent_id": {"value": "a1"},
                          "hostname": "127.0.0.1",
                          "url": {"address": {"ip": "127.0.0.1", "port": 5051}}}
    sched._offer_resources["o1"] = Resources(offered)
    for s in queue:
        sched.enqueue(s)
    asyncio.run(sched._place())
    return sched, driver


def test_shared_and_equal_resources_place_as_each_judged_alone():
    big, small = Resources({"cpus": 2.0, "mem": 64.0}), Resources({"cpus": 0.3, "mem": 64.0})
    queue = [spec(f"big{i}", big) for i in range(5)]
    queue += [spec(f"small{i}", small) for i in range(3)]
    queue += [spec("cmd-big", big, command="true"), spec("big5", big),
              spec("equal", Resources({"cpus": 0.3, "mem": 64.0})),  # 0.1 cpus left: no
              spec("tiny", Resources({"cpus": 0.1, "mem": 64.0}))]   # fits the rest
    sched, driver = place(queue, {"cpus": 1.0, "mem": 1024.0})
    assert driver.launches == [(["o1"], ["small0", "small1", "small2", "tiny"])]
    assert [s.task_id for s in sched.queue] == [
        "big0", "big1", "big2", "big3", "big4", "cmd-big", "big5", "equal"]
    assert all(s.state == "QUEUED" for s in sched.queue)


def test_skipped_specs_still_count_against_the_look_ahead():
    big, small = Resources({"cpus": 2.0, "mem": 64.0}), Resources({"cpus": 0.5, "mem": 64.0})
    n = functions_scheduler.LOOK_AHEAD
    queue = [spec(f"big{i}", big) for i in range(n)] + [spec("small", small)]
    sched, driver = place(queue, {"cpus": 1.0, "mem": 1024.0})
    assert driver.launches == []  # beyond the look-ahead: not reached this round
    assert [s.task_id for s in sched.queue] == [s.task_id for s in queue]

    queue = [spec(f"big{i}", big) for i in range(n - 1)] + [spec("small", small)]
    sched, driver = place(queue, {"cpus": 1.0, "mem": 1024.0})
    assert driver.launches == [(["o1"], ["small"])]
    assert [s.task_id for s in sched.queue] == [f"big{i}" for i in range(n - 1)]


def test_task_infos_sharing_resources_json_are_those_built_one_by_one():
    """Specs sharing one Resources object share its JSON in an ACCEPT: each TaskInfo
    reads exactly as when built on its own (executor or not, command or call)."""
    shared = Resources({"cpus": 0.2, "mem": 64.0})
    sched = FunctionsScheduler(executor_env={"PYTHONPATH": "/x"})
    sent: list[list[dict[str, Any]]] = []

    class Driver(RecordingDriver):
        async def launch(self, offer_ids: list[str], tasks: list[dict[str, Any]],
                         refuse_seconds: float | None = None) -> None:
            sent.append(tasks)

    sched.driver = Driver()  # type: ignore[assignment]
    sched.offers["o1"] = {"id": {"value": "o1"}, "agent_id": {"value": "a1"},
                          "url": {"address": {"ip": "127.0.0.1", "port": 5051}}}
    sched._offer_resources["o1"] = Resources({"cpus": 2.0, "mem": 1024.0})
    specs = [spec("c0", shared), spec("c1", shared), spec("cmd", shared, command="true"),
             spec("c2", Resources({"cpus": 0.2, "mem": 64.0}))]
    for s in specs:
        sched.enqueue(s)
    asyncio.run(sched._place())
    (tasks,) = sent
    executor_id = sched.executor_ids["a1"]
    alone = [sched._task_info(s, "a1", None if s.command else executor_id, i == 0)
             for i, s in enumerate(specs)]
    assert tasks == alone
    assert "resources" in tasks[0]["executor"] or not functions_scheduler.EXECUTOR_RESOURCES


def test_a_refused_launch_costs_the_held_offers_lazily_as_when_awaited():
    """A launch written by launch_now (its 202 read later) that is refused leaves the
    scheduler as an awaited launch that raised HTTPError does: the offers are dropped
    (new ones come), the tasks are launched as far as it knows (their updates say)."""
    from mesonb.http.client import HTTPError, Response

    outcomes = {}
    for lazy in (False, True):
        class Driver(RecordingDriver):
            lazily = lazy

            async def launch(self, offer_ids: list[str], tasks: list[dict[str, Any]],
                             refuse_seconds: float | None = None) -> None:
                raise HTTPError(400, b"refused", {})

            def launch_now(self, offer_ids: list[str], tasks: list[dict[str, Any]],
                           refuse_seconds: float | None = None) -> Any:
                if not self.lazily:
                    return None  # the usual way
                answer = asyncio.get_running_loop().create_future()
                answer.set_result(Response(400, {}, b"refused"))
                return answer

        async def run() -> FunctionsScheduler:
            sched = FunctionsScheduler()
            sched.driver = Driver()  # type: ignore[assignment]
            sched._lazy_launches = True
            sched.offers["o1"] = {"id": {"value": "o1"}, "agent_id": {"value": "a1"},
                                  "url": {"address": {"ip": "127.0.0.1", "port": 5051}}}
            sched._offer_resources["o1"] = Resources({"cpus": 1.0, "mem": 1024.0})
            sched.offers["o2"] = dict(sched.offers["o1"], id={"value": "o2"},
                                      agent_id={"value": "a2"})
            sched._offer_resources["o2"] = Resources({"cpus": 0.01, "mem": 1.0})
            sched.enqueue(spec("t1", Resources({"cpus": 0.5, "mem": 64.0})))
            try:
                await sched._place()
            except HTTPError:  # the placement loop's except clause, as it meets it
                sched.offers.clear()
                sched._offer_resources.clear()
            await asyncio.sleep(0)  # the lazy answer's callback
            return sched

        sched = asyncio.run(run())
        outcomes[lazy] = (dict(sched.offers), dict(sched._offer_resources),
                          sorted(sched.launched), [s.task_id for s in sched.queue])
    assert outcomes[True] == outcomes[False] == ({}, {}, ["t1"], [])
