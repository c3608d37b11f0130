"""The Marathon state machines, row by row: instances and deployments."""

from __future__ import annotations

import pytest

from mesonb.frameworks.marathon import deployment_fsm as dfsm
from mesonb.frameworks.marathon import instance_fsm as ifsm
from mesonb.frameworks.marathon.instance_fsm import (
    TRANSITIONS,
    Action,
    Event,
    InstanceState,
    Kind,
    event_of,
    transition,
)

# one state of each kind, and a reported state for each update event
STATE_OF = {Kind.ACTIVE: InstanceState.RUNNING, Kind.KILLING: InstanceState.KILLING,
            Kind.UNREACHABLE: InstanceState.UNREACHABLE}
REPORTED = {Event.UPDATE_ACTIVE: InstanceState.RUNNING,
            Event.UPDATE_KILLING: InstanceState.KILLING,
            Event.UPDATE_UNREACHABLE: InstanceState.UNREACHABLE,
            Event.UPDATE_TERMINAL: InstanceState.FAILED}


def test_the_instance_table_covers_every_kind_and_event() -> None:
    kinds = [k for k in Kind if k is not Kind.TERMINAL]
    assert set(TRANSITIONS) == {(k, e) for k in kinds for e in Event}


@pytest.mark.parametrize(("kind", "event"), sorted(TRANSITIONS, key=str))
def test_instance_row(kind: Kind, event: Event) -> None:
    target, actions = TRANSITIONS[(kind, event)]
    reported = REPORTED.get(event)
    state, done = transition(STATE_OF[kind], event, reported)
    assert state is (target or reported)
    assert done == actions


def test_every_terminal_state_ignores_events() -> None:
    for state in InstanceState:
        if state.terminal:
            for event in Event:
                assert transition(state, event, InstanceState.RUNNING) == (state, ())


def test_an_update_maps_to_its_event() -> None:
    assert event_of(InstanceState.STARTING) is Event.UPDATE_ACTIVE
    assert event_of(InstanceState.LOST) is Event.UPDATE_TERMINAL
    assert event_of(InstanceState.GONE_BY_OPERATOR) is Event.UPDATE_TERMINAL


def test_a_failure_is_recorded_but_an_asked_for_kill_is_not() -> None:
    _, unplanned = transition(InstanceState.RUNNING, Event.UPDATE_TERMINAL,
                              InstanceState.KILLED)
    assert Action.RECORD_FAILURE in unplanned
    _, planned = transition(InstanceState.KILLING, Event.UPDATE_TERMINAL, InstanceState.KILLED)
    assert Action.RECORD_FAILURE not in planned and Action.EXPUNGE in planned
    _, unhealthy = transition(InstanceState.RUNNING, Event.UNHEALTHY)
    assert Action.RECORD_FAILURE in unhealthy and Action.SEND_KILL in unhealthy


def test_an_update_event_needs_the_reported_state() -> None:
    with pytest.raises(ValueError):
        transition(InstanceState.RUNNING, Event.UPDATE_ACTIVE)


def _deployment(steps: int = 2) -> dfsm.Deployment:
    return dfsm.Deployment("v1", [[("ScaleApplication", f"/app{i}")] for i in range(steps)])


@pytest.mark.parametrize(("state", "event"), sorted(dfsm.TRANSITIONS, key=str))
def test_deployment_row(state: dfsm.DeploymentState, event: dfsm.Event) -> None:
    dep = _deployment()
    dep.state = state
    dep.current_step = 0 if state is dfsm.DeploymentState.WAITING else 1
    target, actions = dfsm.TRANSITIONS[(state, event)]
    assert dep.handle(event) == actions
    assert dep.state is target
    if dfsm.Action.BEGIN_STEP in actions:
        assert dep.current_step == (1 if state is dfsm.DeploymentState.WAITING else 2)


def test_finished_deployments_ignore_events() -> None:
    for state in dfsm.DeploymentState:
        if state.finished:
            for event in dfsm.Event:
                dep = _deployment()
                dep.state = state
                assert dep.handle(event) == ()
                assert dep.state is state


def test_a_deployment_walks_its_steps_in_order() -> None:
    dep = _deployment(steps=2)
    dep.handle(dfsm.Event.START)
    assert dep.current_actions() == [("ScaleApplication", "/app0")]
    assert dep.event_for_step_done() is dfsm.Event.STEP_DONE
    dep.handle(dep.event_for_step_done())
    assert dep.current_actions() == [("ScaleApplication", "/app1")]
    assert dep.event_for_step_done() is dfsm.Event.LAST_STEP_DONE
    actions = dep.handle(dep.event_for_step_done())
    assert dfsm.Action.EMIT_SUCCESS in actions and dep.state is dfsm.DeploymentState.SUCCEEDED


def test_deployment_json_and_store_round_trip() -> None:
    dep = _deployment()
    dep.handle(dfsm.Event.START)
    body = dep.to_json()
    assert body["currentStep"] == 1 and body["totalSteps"] == 2
    assert body["affectedApps"] == ["/app0", "/app1"]
    again = dfsm.Deployment.from_store(dep.to_store())
    assert again.to_json() == body
    assert set(dep.plan_json()) == {"id", "version", "original", "target", "steps"}


def test_module_names_are_the_machines() -> None:
    assert ifsm.__doc__ and "ACTIVE" in ifsm.__doc__
    assert dfsm.__doc__ and "SUCCEEDED" in dfsm.__doc__
