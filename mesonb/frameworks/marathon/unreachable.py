"""Marathon's ``unreachableStrategy`` for the core's instances.

An instance whose agent became unreachable (TASK_UNREACHABLE) still counts as one of its
app's instances until it has been unreachable for ``inactiveAfterSeconds``; then it is
*inactive* and a replacement launches. After ``expungeAfterSeconds`` it is forgotten, and
killed should it ever come back. With ``"disabled"`` it waits as long as it takes.
Marathon's default is 0/0: replaced at once, forgotten on the next check.
"""

from __future__ import annotations

import logging
from typing import Any

from .instance_fsm import Action, InstanceState
from .instances import Instance
from .model import AppDefinition
from .surface import CoreSurface

log = logging.getLogger(__name__)
REMEMBER_EXPUNGED = 10_000


def note_state(inst: Instance, app: AppDefinition | None, now: float) -> None:
    """The instance's state changed: start (or end) its time unreachable."""
    if inst.state is not InstanceState.UNREACHABLE:
        inst.unreachable_since, inst.inactive = None, False
    elif inst.unreachable_since is None:
        inst.unreachable_since = now
        strategy = app.unreachable if app is not None else (0.0, 0.0)
        inst.inactive = strategy is not None and strategy[0] <= 0


async def check(core: CoreSurface, inst: Instance, now: float) -> None:
    """Mark ``inst`` inactive or expunge it when its app's strategy says so."""
    state = core.apps.get(inst.app_id)
    strategy = state.definition.unreachable if state is not None else (0.0, 0.0)
    if strategy is None or inst.unreachable_since is None:
        return
    inactive_after, expunge_after = strategy
    gone_for = now - inst.unreachable_since
    if gone_for >= expunge_after:
        log.info("expunging instance %s: unreachable for %.0fs", inst.id, gone_for)
        core.expunged[inst.id] = inst.agent_id
        while len(core.expunged) > REMEMBER_EXPUNGED:
            del core.expunged[next(iter(core.expunged))]
        core._carry_out(inst, (Action.EXPUNGE,))
        core._dirty.add(inst.app_id)
        await core.converge(inst.app_id)
    elif gone_for >= inactive_after and not inst.inactive:
        inst.inactive = True
        core._dirty.add(inst.app_id)
        await core.converge(inst.app_id)


def came_back(core: CoreSurface, task_id: str, reported: InstanceState) -> bool:
    """An update of an expunged instance: kill it if it runs again (True: handled)."""
    if task_id not in core.expunged:
        return False
    agent_id = core.expunged[task_id]
    if reported.terminal:
        del core.expunged[task_id]
    elif core.driver is not None:
        kill: Any = core.driver.kill(task_id, agent_id or None)
        core._spawn(kill)
    return True
