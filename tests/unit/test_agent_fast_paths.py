"""The agent's fast paths give what the slow ones give: the container limits memo
(:mod:`mesonb.agent.limits_memo`) against :func:`container_limits` and the lift spelled
out, and the plain resource lists parsed once (:meth:`AgentVolumes.invalid`) against a
fresh parse."""

from __future__ import annotations

import itertools
import random
import types
from pathlib import Path
from typing import Any

import pytest

from mesonb.agent import agent as agent_module
from mesonb.agent.agent import Agent
from mesonb.agent.book import Task
from mesonb.agent.isolation.limits import Limits, container_limits
from mesonb.agent.limits_memo import LimitsMemo, at_least, joined
from mesonb.agent.volumes import AgentVolumes
from mesonb.protocol.agent import AcknowledgeUpdate, MasterCommand, MasterCommandType, RunTask
from mesonb.protocol.mesos import FrameworkInfo, TaskInfo
from mesonb.protocol.resources import Resources
from mesonb.protocol.states import TaskState

_ids = itertools.count()


def resource_list(cpus: Any, mem: Any = 32) -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": "*"}]


def make_task(resources: Resources | None, cpus: float = 0.2,
              limits: dict[str, Any] | None = None) -> Task:
    data: dict[str, Any] = {"name": "t", "task_id": {"value": f"t{next(_ids)}"},
                            "agent_id": {"value": "a"}, "resources": resource_list(cpus)}
    if limits is not None:
        data["limits"] = limits
    task = Task(info=TaskInfo.from_json(data), framework_id="f", executor_id="e",
                state=TaskState.TASK_RUNNING)
    if resources is not None:
        task.resources = resources  # shared, as AgentVolumes.invalid hands it out
    return task


def slow_limits(executor: Resources, live: list[Task], **flags: Any) -> Limits:
    return container_limits(executor, [(t.resources, t.info.extra.get("limits"))
                                       for t in live], **flags)


FLAGS = [dict(enable_cfs=cfs, pids_max=pids, enforce_disk=disk)
         for cfs in (True, False) for pids in (None, 100) for disk in (True, False)]


@pytest.mark.parametrize("flags", FLAGS)
def test_memoized_limits_equal_the_sums_for_every_live_set(flags: dict[str, Any]) -> None:
    rng = random.Random(7)
    shared = [Resources.from_json(resource_list(c, m)) for c, m in
              ((0.2, 32), (0.1, 64.5), (1, 1024), (0.3, 0))]
    executors = [Resources.from_json([]), Resources.from_json(resource_list(0.5, 128))]
    tasks = [make_task(rng.choice(shared)) for _ in range(12)]
    tasks += [make_task(None, 0.25, {"cpus": {"value": 2}}),
              make_task(None, 0.25, {"mem": {"value": "Infinity"}})]
    memo = LimitsMemo(keep=8)  # small: entries are forgotten along the way too
    for _ in range(400):
        live = rng.sample(tasks, rng.randint(0, 6))
        executor = rng.choice(executors)
        fast = memo.limits(executor, live, **flags)
        assert fast == slow_limits(executor, live, **flags)
        assert memo.limits(executor, live, **flags) == fast  # and again, kept


def test_the_same_inputs_give_the_same_object_and_other_orders_their_own_sums() -> None:
    a, b = Resources.from_json(resource_list(0.1)), Resources.from_json(resource_list(0.2))
    executor = Resources.from_json([])
    memo = LimitsMemo()
    flags: dict[str, Any] = dict(enable_cfs=True, pids_max=None, enforce_disk=False)
    ab = [make_task(a), make_task(b), make_task(a)]
    first = memo.limits(executor, ab, **flags)
    assert memo.limits(executor, [make_task(a), make_task(b), make_task(a)], **flags) is first
    ba = [make_task(b), make_task(a), make_task(a)]  # float sums in another order
    assert memo.limits(executor, ba, **flags) == slow_limits(executor, ba, **flags)


def test_memoized_join_equals_the_lift_spelled_out() -> None:
    rng = random.Random(11)
    values = [Limits(cpus=c, cpus_cap=cap, mem_mb=m) for c in (0.1, 0.5, 1.0)
              for cap in (None, 0.6, 1.2) for m in (None, 64.0, 512.0)]
    memo = LimitsMemo(keep=16)
    for _ in range(2000):
        applied, limits = rng.choice(values), rng.choice(values)
        peak = rng.choice([None, *values])
        wanted = applied.raised_to(limits)
        expected = at_least(at_least(wanted, applied), wanted if peak is None else peak)
        assert memo.joined(applied, limits, peak) == expected == joined(applied, limits, peak)


@pytest.fixture
def volumes(tmp_path: Path) -> AgentVolumes:
    return AgentVolumes(tmp_path, None)


def test_a_plain_list_seen_before_gets_the_same_parse_as_a_fresh_one(
        volumes: AgentVolumes) -> None:
    lists = [resource_list(0.2), resource_list(0.2, 1024.0), resource_list(1),
             resource_list(1.0), resource_list(True), resource_list(0.2),
             [{"name": "cpus", "scalar": {"value": 0.2}}], []]
    handed: list[Resources] = []
    for items in lists * 3:
        copy = [dict(item) for item in items]  # a new list each time, as each task has
        assert volumes.invalid(copy) is None
        parsed = volumes.take_parsed(copy)
        assert parsed is not None
        assert parsed == Resources.from_json(items, "task.resources")
        assert parsed.scalars == Resources.from_json(items).scalars
        handed.append(parsed)
    assert handed[0] is handed[5] is handed[8]  # the same JSON text: parsed once
    assert handed[2] is not handed[3]  # 1 and 1.0 are other texts: parsed each


def test_a_bad_or_reserved_list_is_never_taken_from_the_kept_parses(
        volumes: AgentVolumes) -> None:
    good = resource_list(0.2)
    assert volumes.invalid(good) is None
    bad = resource_list(-1)
    assert volumes.invalid(bad) is not None
    assert volumes.invalid(resource_list(-1)) == volumes.invalid(bad)  # refused each time
    volume = [{"name": "disk", "type": "SCALAR", "scalar": {"value": 10}, "role": "r",
               "reservation": {"principal": "p"},
               "disk": {"persistence": {"id": "v1"}, "volume": {"container_path": "d",
                                                              "mode": "RW"}}}]
    problem = volumes.invalid(volume)
    assert problem is not None and "v1" in problem
    assert volumes.invalid(volume) == problem  # not kept as plain
    ranges = [{"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1,
                                                                       "end": 2}]}}]
    assert volumes.invalid(ranges) is None
    first = volumes.take_parsed(ranges)
    assert volumes.invalid(ranges) is None
    assert volumes.take_parsed(ranges) is not first  # only scalar lists are kept


def test_lists_that_write_the_same_text_are_not_taken_for_one_another(
        volumes: AgentVolumes) -> None:
    # orjson writes None, NaN and infinities alike ("null"): such lists are never kept
    with_none = [{"name": "cpus", "scalar": {"value": 1}, "note": None}]
    assert volumes.invalid(with_none) is None
    with_nan = [{"name": "cpus", "scalar": {"value": float("nan")}, "note": None}]
    assert volumes.invalid(with_nan) == volumes.invalid(
        [{"name": "cpus", "scalar": {"value": float("nan")}}]) is not None
    with_inf = [{"name": "cpus", "scalar": {"value": 1}, "note": float("inf")}]
    assert volumes.invalid(with_inf) is None
    assert volumes.take_parsed(with_inf) == Resources.from_json(with_inf)


class _Recorder:
    """What an agent's command handling touched: acknowledgements, executor commands."""

    def __init__(self, handled: bool) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.handled = handled

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes,
                    now: float) -> list[Any]:
        self.seen.append(("acknowledge", framework_id, task_id, uuid))
        return []

    def handle(self, command: MasterCommand) -> bool:
        self.seen.append(("handle", command.type.value))
        return self.handled


def _handled(command: MasterCommand, registered: bool, handled: bool,
             caplog: pytest.LogCaptureFixture) -> list[Any]:
    recorder = _Recorder(handled)
    agent = Agent.__new__(Agent)  # only what _on_command reads of these kinds
    agent.registered = registered
    agent.status_updates = recorder  # type: ignore[assignment]
    agent.executors = recorder  # type: ignore[assignment]
    agent.clock = types.SimpleNamespace(monotonic=lambda: 1.0)  # type: ignore[assignment]
    agent._apply = lambda actions: recorder.seen.append(("apply", actions))  # type: ignore
    caplog.clear()
    agent._on_command(command)
    return [*recorder.seen, *(r.getMessage() for r in caplog.records)]


def test_a_calls_commands_are_taken_as_the_whole_chain_takes_them(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    ack = AcknowledgeUpdate(framework_id="f", task_id="t", uuid=b"u")
    run = RunTask(framework_info=FrameworkInfo(user="u", name="n", id="f"),
                  task=TaskInfo(name="t", task_id="t", agent_id="a"))
    commands = [MasterCommand(type=MasterCommandType.ACKNOWLEDGE, acknowledge=ack),
                MasterCommand(type=MasterCommandType.ACKNOWLEDGE),
                MasterCommand(type=MasterCommandType.RUN_TASK, run_task=run),
                MasterCommand(type=MasterCommandType.RUN_TASK)]
    cases = [(c, registered, handled) for c in commands for registered in (True, False)
             for handled in (True, False)]
    fast = [_handled(*case, caplog) for case in cases]
    with monkeypatch.context() as m:  # no kind is taken first: the chain alone
        m.setattr(agent_module, "_RUN_TASK", object())
        m.setattr(agent_module, "_ACKNOWLEDGE", object())
        slow = [_handled(*case, caplog) for case in cases]
    assert fast == slow
    assert list(fast[0][0]) == ["acknowledge", "f", "t", b"u"]  # (and it did something)
    assert any("not registered yet" in str(x) for x in fast[2])  # (warnings compared too)
