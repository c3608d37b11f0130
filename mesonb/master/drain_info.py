"""An agent's drain: ``DrainInfo{state, config{max_grace_period, mark_gone}}`` (mesos.proto).

Kept on the master's record of the agent (``Agent.drain``) while it drains and once it
is drained; :func:`capped_kill_policy` is the kill policy its tasks are killed with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mesonb.protocol.mesos import Duration, KillPolicy

DEFAULT_GRACE_NS = 3_000_000_000  # Mesos's default kill grace period (3 s)


@dataclasses.dataclass
class DrainInfo:
    max_grace_ns: int | None = None  # None: each task's own grace period
    mark_gone: bool = False
    state: str = "DRAINING"  # then DRAINED once no task is left on the agent

    def to_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"mark_gone": self.mark_gone}
        if self.max_grace_ns is not None:
            config["max_grace_period"] = {"nanoseconds": self.max_grace_ns}
        return {"state": self.state, "config": config}


def capped_kill_policy(policy: KillPolicy | None, drain: DrainInfo | None) -> KillPolicy | None:
    """A task's kill policy, its grace period capped by the drain's ``max_grace_period``."""
    if drain is None or drain.max_grace_ns is None:
        return policy
    own = policy.grace_period.nanoseconds if policy is not None and policy.grace_period \
        else DEFAULT_GRACE_NS
    return KillPolicy(grace_period=Duration(nanoseconds=max(0, min(own, drain.max_grace_ns))))
