"""What an app needs next: how many instances to launch and which to kill (pure).

Given the app's current definition and its live instances, :func:`plan` returns the
launches and kills that move it toward ``instances`` copies of the current config:

* scaling: launch the missing ones; kill the extra ones in ``killSelection`` order
  (``YOUNGEST_FIRST`` by default);
* a rolling upgrade (instances of an older config alive): Marathon's
  ``upgradeStrategy`` — keep at least ``ceil(instances x minimumHealthCapacity)``
  instances healthy, run at most ``floor(instances x (1 + maximumOverCapacity))`` at a
  time; old instances go as new ones become healthy and ready. When the two bounds leave
  no room (1 and 0) one old instance is killed first, as Marathon does.

:func:`step_done` says whether an app's deployment step has reached its target.
"""

from __future__ import annotations

import dataclasses
import math

from .instance_fsm import InstanceState
from .instances import Instance
from .model import AppDefinition


@dataclasses.dataclass
class Plan:
    launch: int = 0
    kill: list[Instance] = dataclasses.field(default_factory=list)


def counts_healthy(app: AppDefinition, instance: Instance) -> bool:
    """Running, healthy (when the app has health checks) and ready (readiness checks)."""
    if instance.state is not InstanceState.RUNNING:
        return False
    if app.health_checks and instance.healthy is not True:
        return False
    return not (app.readiness_checks and not instance.ready)


def kill_order(app: AppDefinition, instances: list[Instance]) -> list[Instance]:
    """Which to kill first: not yet running ones, then by ``killSelection``."""
    youngest = app.kill_selection != "OLDEST_FIRST"
    return sorted(instances, key=lambda i: (i.state is InstanceState.RUNNING,
                                            -i.launched_at if youngest else i.launched_at))


def plan(app: AppDefinition, live: list[Instance]) -> Plan:
    """The launches and kills for ``app`` given its ``live`` (active) instances."""
    target = app.instances
    config = app.last_config_change_at or app.version
    new = [i for i in live if i.config_version == config]
    old = [i for i in live if i.config_version != config]
    out = Plan()
    if len(new) > target:
        out.kill.extend(kill_order(app, new)[: len(new) - target])
        new = [i for i in new if i not in out.kill]
    if not old:
        out.launch = max(0, target - len(new))
        return out
    min_healthy = math.ceil(target * app.minimum_health_capacity)
    max_capacity = math.floor(target * (1 + app.maximum_over_capacity))
    healthy_new = sum(counts_healthy(app, i) for i in new)
    old_healthy = [i for i in old if counts_healthy(app, i)]
    old_unhealthy = [i for i in old if not counts_healthy(app, i)]
    out.kill.extend(old_unhealthy)  # they hold no capacity worth keeping
    spare = healthy_new + len(old_healthy) - min_healthy
    by_order = kill_order(app, old_healthy)
    killed_healthy = by_order[: max(0, spare)]
    out.kill.extend(killed_healthy)
    alive = len(new) + len(old) - len(old_unhealthy) - len(killed_healthy)
    out.launch = max(0, min(target - len(new), max_capacity - alive))
    if out.launch == 0 and not killed_healthy and not old_unhealthy and len(new) < target \
            and by_order:
        out.kill.append(by_order[0])  # no room either way: make room (Marathon does)
        out.launch = min(1, target - len(new))
    return out


def step_done(action: str, app: AppDefinition | None, instances: list[Instance]) -> bool:
    """Whether a deployment action on an app has reached its target."""
    if action in ("StartApplication", "StartPod"):
        return True
    if action in ("StopApplication", "StopPod") or app is None:
        return not instances
    config = app.last_config_change_at or app.version
    if any(i.config_version != config for i in instances):
        return False
    live = [i for i in instances if i.active]
    if len(live) != len(instances) or len(live) != app.instances:
        return False
    return all(counts_healthy(app, i) for i in live)
