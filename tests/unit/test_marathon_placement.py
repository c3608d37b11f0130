"""Placement: constraints, offer matching with Marathon's reasons, the upgrade plan, backoff."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from mesonb.frameworks.marathon import controller, launcher
from mesonb.frameworks.marathon.backoff import Backoff
from mesonb.frameworks.marathon.constraints import placement_ok
from mesonb.frameworks.marathon.instance_fsm import InstanceState
from mesonb.frameworks.marathon.instances import Instance, app_of_task, new_task_id
from mesonb.frameworks.marathon.model import parse_app
from mesonb.frameworks.marathon.taskinfo import task_info

_ids = itertools.count()


def offer(host: str, cpus: float = 4, mem: float = 4096, ports: tuple[int, int] = (31000, 31009),
          role: str = "*", rack: str | None = None, gpus: float = 0) -> dict:
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}, "role": role},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}, "role": role},
                 {"name": "ports", "type": "RANGES", "role": role,
                  "ranges": {"range": [{"begin": ports[0], "end": ports[1]}]}}]
    if gpus:
        resources.append({"name": "gpus", "type": "SCALAR", "scalar": {"value": gpus},
                          "role": role})
    out = {"id": {"value": f"o{next(_ids)}"}, "agent_id": {"value": f"agent-{host}"},
           "hostname": host, "resources": resources}
    if rack:
        out["attributes"] = [{"name": "rack", "type": "TEXT", "text": {"value": rack}}]
    return out


def app(**fields: object):
    return parse_app({"id": "/web", "cmd": "sleep 1", "cpus": 1, "mem": 32, **fields})


@pytest.mark.parametrize(("constraint", "value", "placed", "ok"), [
    (["hostname", "UNIQUE"], "a", ["b"], True),
    (["hostname", "UNIQUE"], "a", ["a"], False),
    (["rack", "CLUSTER", "r1"], "r1", [], True),
    (["rack", "CLUSTER", "r1"], "r2", [], False),
    (["rack", "CLUSTER"], "r2", ["r1"], False),
    (["rack", "IS", "r1"], "r1", [], True),
    (["hostname", "LIKE", "srv[12]"], "srv2", [], True),
    (["hostname", "LIKE", "srv[12]"], "srv3", [], False),
    (["hostname", "UNLIKE", "srv[12]"], "srv3", [], True),
    (["hostname", "MAX_PER", "2"], "a", ["a"], True),
    (["hostname", "MAX_PER", "2"], "a", ["a", "a"], False),
    (["rack", "GROUP_BY", "2"], "r2", ["r1"], True),
    (["rack", "GROUP_BY", "2"], "r1", ["r1"], False),
    (["rack", "GROUP_BY", "2"], "r1", ["r1", "r2"], True),
])
def test_constraint_operators(constraint, value, placed, ok) -> None:
    assert placement_ok(constraint, value, placed) is ok


def test_offers_hold_as_many_instances_as_fit_and_ports_differ() -> None:
    result = launcher.match([offer("a", cpus=3)], [launcher.Demand(app(), 5)])
    assert len(result.placements) == 3
    ports = [p.ports[0] for p in result.placements]
    assert len(set(ports)) == 3 and all(31000 <= p <= 31009 for p in ports)
    assert result.rejections["/web"]["InsufficientCpus"] == 1


def test_unique_hostname_spreads_over_agents() -> None:
    demand = launcher.Demand(app(constraints=[["hostname", "UNIQUE"]]), 3)
    result = launcher.match([offer("a"), offer("b")], [demand])
    assert sorted(p.host for p in result.placements) == ["a", "b"]
    assert result.rejections["/web"]["UnfulfilledConstraint"] == 2


def test_group_by_rack_balances() -> None:
    demand = launcher.Demand(app(constraints=[["rack", "GROUP_BY"]]), 4)
    result = launcher.match([offer("a", rack="r1"), offer("b", rack="r2")], [demand])
    racks = [p.fields["rack"] for p in result.placements]
    assert set(racks) == {"r1", "r2"} and abs(racks.count("r1") - racks.count("r2")) <= 1
    # the next round of offers places the rest where it keeps the balance
    again = launcher.match([offer("a", rack="r1"), offer("b", rack="r2")], [demand])
    racks += [p.fields["rack"] for p in again.placements]
    assert sorted(racks) == ["r1", "r1", "r2", "r2"]


@pytest.mark.parametrize(("kwargs", "offer_kwargs", "reason"), [
    ({"mem": 10000}, {}, "InsufficientMemory"),
    ({"disk": 10}, {}, "InsufficientDisk"),
    ({"gpus": 1}, {}, "InsufficientGpus"),
    ({"portDefinitions": [{"port": 0}] * 11}, {}, "InsufficientPorts"),
    ({"acceptedResourceRoles": ["prod"]}, {}, "UnfulfilledRole"),
    ({}, {"gpus": 1}, "DeclinedScarceResources"),
    ({"constraints": [["hostname", "IS", "z"]]}, {}, "UnfulfilledConstraint"),
])
def test_marathons_reasons(kwargs, offer_kwargs, reason) -> None:
    demand = launcher.Demand(app(**kwargs), 1, roles=tuple(kwargs.get(
        "acceptedResourceRoles", ("*",))))
    result = launcher.match([offer("a", **offer_kwargs)], [demand])
    assert not result.placements
    assert result.rejections["/web"][reason] == 1
    assert result.unused_offers


def test_maintenance_and_required_ports() -> None:
    down = offer("a")
    down["unavailability"] = {"start": {"nanoseconds": 0}}
    result = launcher.match([down], [launcher.Demand(app(), 1)])
    assert result.rejections["/web"]["AgentMaintenance"] == 1
    fixed = app(requirePorts=True, portDefinitions=[{"port": 31005}, {"port": 0}])
    result = launcher.match([offer("b")], [launcher.Demand(fixed, 1)])
    assert result.placements[0].ports[0] == 31005 and result.placements[0].ports[1] != 31005


def instance(state=InstanceState.RUNNING, config="v1", healthy=None, at=0.0) -> Instance:
    return Instance(new_task_id("/web"), "/web", config, config, state=state, healthy=healthy,
                    launched_at=at)


def versioned(**fields: object):
    a = app(**fields)
    a.version = a.last_config_change_at = "v2"
    return a


def test_plan_scales_up_and_down_by_kill_selection() -> None:
    a = versioned(instances=3)
    assert controller.plan(a, [instance(config="v2")]).launch == 2
    olds = [instance(config="v2", at=t) for t in (1.0, 2.0, 3.0, 4.0)]
    a.instances = 2
    assert [i.launched_at for i in controller.plan(a, olds).kill] == [4.0, 3.0]
    a.kill_selection = "OLDEST_FIRST"
    assert [i.launched_at for i in controller.plan(a, olds).kill] == [1.0, 2.0]


@pytest.mark.parametrize(("minimum", "over", "launch", "kill"), [
    (1.0, 1.0, 4, 0),   # all new side by side before the old go
    (0.0, 1.0, 4, 4),   # all old may go at once
    (0.5, 0.0, 2, 2),   # half stays healthy, no extra capacity
    (1.0, 0.0, 1, 1),   # no room either way: one old goes first (Marathon)
])
def test_rolling_upgrade_bounds(minimum, over, launch, kill) -> None:
    a = versioned(instances=4, upgradeStrategy={"minimumHealthCapacity": minimum,
                                                "maximumOverCapacity": over})
    plan = controller.plan(a, [instance(config="v1") for _ in range(4)])
    assert (plan.launch, len(plan.kill)) == (launch, kill)


def test_old_instances_go_as_new_ones_become_healthy() -> None:
    a = versioned(instances=2, healthChecks=[{"protocol": "TCP"}])
    old = [instance(config="v1", healthy=True) for _ in range(2)]
    new = [instance(config="v2", healthy=None) for _ in range(2)]
    assert controller.plan(a, old + new).kill == []
    new[0].healthy = True
    assert len(controller.plan(a, old + new).kill) == 1
    assert not controller.step_done("RestartApplication", a, old + new)
    new[1].healthy = True
    assert controller.step_done("RestartApplication", a, new)


def test_backoff_grows_to_its_maximum_and_resets() -> None:
    b = Backoff()
    delays = []
    for _ in range(60):
        b.failed(1.0, 1.15, 300.0, now=100.0)
        delays.append(b.delay)
    assert delays[0] == 1.0 and delays[1] == pytest.approx(1.15)
    assert delays[-1] == 300.0 and not b.ready(399.0) and b.ready(400.0)
    b.reset()
    assert b.ready(0.0) and b.delay == 0


def test_task_ids_name_their_app() -> None:
    task_id = new_task_id("/shop/front.end")
    assert app_of_task(task_id) == "/shop/front.end"
    assert app_of_task("someone-elses-task") is None


def test_task_info_sets_marathons_environment() -> None:
    a = versioned(portDefinitions=[{"port": 0, "name": "http"}, {"port": 0}],
                  env={"A": "1"}, labels={"tier": "web"}, taskKillGracePeriodSeconds=3,
                  healthChecks=[{"protocol": "MESOS_HTTP", "path": "/health"}],
                  fetch=[{"uri": "https://example.com/app.tgz"}])
    info = task_info(a, "web.x", "agent-1", "host1", [31000, 31001], "*")
    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
    assert env["PORT0"] == "31000" and env["PORT1"] == "31001" and env["PORT"] == "31000"
    assert env["PORTS"] == "31000,31001" and env["PORT_HTTP"] == "31000"
    assert env["MARATHON_APP_ID"] == "/web" and env["MESOS_TASK_ID"] == "web.x"
    assert env["A"] == "1" and env["MARATHON_APP_LABEL_TIER"] == "web"
    assert info["health_check"]["type"] == "HTTP"
    assert info["health_check"]["http"] == {"port": 31000, "path": "/health", "scheme": "http"}
    assert info["kill_policy"]["grace_period"]["nanoseconds"] == 3_000_000_000
    assert info["command"]["uris"][0]["value"] == "https://example.com/app.tgz"
    ports = next(r for r in info["resources"] if r["name"] == "ports")
    assert ports["ranges"]["range"] == [{"begin": 31000, "end": 31000},
                                        {"begin": 31001, "end": 31001}]


def test_instances_spread_evenly_over_the_offers_of_one_round() -> None:
    """500 small instances and 4 roomy offers: 125 on each agent (they start them in
    parallel), not 500 on the first offer that could hold them all."""
    small = app(cpus=0.001, mem=8, portDefinitions=[])
    result = launcher.match([offer(h, cpus=64, mem=1e6) for h in "abcd"],
                            [launcher.Demand(small, 500)])
    assert Counter(p.agent_id for p in result.placements) == {
        f"agent-{h}": 125 for h in "abcd"}
    assert result.unused_offers == []
    # what one offer cannot take (its even share does not fit) goes to the others
    tight = launcher.match([offer("a", cpus=0.01, mem=1e6), offer("b", cpus=64, mem=1e6)],
                           [launcher.Demand(small, 100)])
    assert Counter(p.agent_id for p in tight.placements) == {"agent-a": 10, "agent-b": 90}
