"""Mesos's per-framework metrics: ``master/frameworks/<name>/<id>/...``.

Each :class:`~.book.Framework` record carries a ``metrics`` counter (a
``collections.Counter``) that the master's hot paths bump with one dict increment, using
the ready-made keys below (no string building per call or event):

* ``calls/<call type>`` for every scheduler call the framework made (SUBSCRIBE included),
* ``events/<event type>`` for every event sent on its stream,
* ``offers/sent|accepted|declined|rescinded``, counted per offer,
* ``operations/<offer operation type>`` for every operation of an accepted offer,
* ``tasks/terminal/<state>`` for every task that reached that terminal state (counted
  when the book moves it there, or when a launch is refused with TASK_ERROR/DROPPED).

The active tasks by state (``tasks/active/<state>``) are counted from its tasks when a
snapshot is taken.

:func:`framework_metrics` turns a record into the documented keys (mesos:
src/master/metrics.cpp ``FrameworkMetrics``, docs/monitoring.md), every call, event and
operation type present, 0 until it happens, with the totals ``calls``, ``events`` and
``operations`` summed at snapshot time (the hot path counts once).
"""

from __future__ import annotations

import collections
import urllib.parse
from typing import Any

from mesonb.protocol.mesos import OperationType
from mesonb.protocol.scheduler import CallType, EventType
from mesonb.protocol.states import TaskState

CALL_KEYS: dict[CallType, str] = {
    t: f"calls/{t.value.lower()}" for t in CallType if t is not CallType.UNKNOWN}
EVENT_KEYS: dict[str, str] = {
    t.value: f"events/{t.value.lower()}" for t in EventType if t is not EventType.UNKNOWN}
OPERATION_KEYS: dict[OperationType, str] = {
    t: f"operations/{t.value.lower()}" for t in OperationType if t is not OperationType.UNKNOWN}
TERMINAL_KEYS: dict[TaskState, str] = {
    s: f"tasks/terminal/{s.value.lower()}" for s in TaskState if s.terminal}
OFFERS_SENT, OFFERS_ACCEPTED = "offers/sent", "offers/accepted"
OFFERS_DECLINED, OFFERS_RESCINDED = "offers/declined", "offers/rescinded"
_OFFER_KEYS = (OFFERS_SENT, OFFERS_ACCEPTED, OFFERS_DECLINED, OFFERS_RESCINDED)
_UNKNOWN_EVENT = "events/unknown"


def count_event(metrics: collections.Counter[str], event: dict[str, Any]) -> None:
    """Count one event sent to a framework (its JSON, ``{"type": "OFFERS", ...}``)."""
    metrics[EVENT_KEYS.get(event.get("type"), _UNKNOWN_EVENT)] += 1  # type: ignore[arg-type]


def framework_key(framework: Any) -> str:
    """``master/frameworks/<name, URL-encoded>/<id>``, as Mesos names a framework's metrics."""
    return f"master/frameworks/{urllib.parse.quote(framework.info.name, safe='')}/{framework.id}"


def framework_metrics(framework: Any) -> dict[str, float]:
    """One framework's documented metrics, name -> value."""
    key = framework_key(framework)
    counted: collections.Counter[str] = framework.metrics
    out: dict[str, float] = {f"{key}/subscribed": 1.0 if framework.connected else 0.0}
    for role in framework.roles:
        out[f"{key}/roles/{role}/suppressed"] = float(role in framework.suppressed_roles)
    for group, names in (("calls", CALL_KEYS.values()), ("events", EVENT_KEYS.values()),
                         ("operations", OPERATION_KEYS.values())):
        total = 0
        for name in names:
            value = counted.get(name, 0)
            out[f"{key}/{name}"] = value
            total += value
        if group == "events":
            total += counted.get(_UNKNOWN_EVENT, 0)
        out[f"{key}/{group}"] = total
    for name in _OFFER_KEYS:
        out[f"{key}/{name}"] = counted.get(name, 0)
    out[f"{key}/offers/outstanding"] = len(framework.offers)
    active: collections.Counter[TaskState] = collections.Counter(
        t.state for t in framework.tasks.values())
    for state in TaskState:
        if state.terminal:
            name = TERMINAL_KEYS[state]
            out[f"{key}/{name}"] = counted.get(name, 0)
        else:
            out[f"{key}/tasks/active/{state.value.lower()}"] = active.get(state, 0)
    return out
