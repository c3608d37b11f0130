"""One agent's reserved resources and persistent volumes, as the master keeps them (the
record itself; what is free of it is worked out in :mod:`.reservations`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mesonb.protocol.reservations import DYNAMIC, Portion


@dataclasses.dataclass(slots=True)
class Ledger:
    """One agent's reserved resources and persistent volumes (all of them, held or not)."""

    reserved: Portion = dataclasses.field(default_factory=Portion)

    def __bool__(self) -> bool:
        return bool(self.reserved)

    def dynamic(self) -> Portion:
        """What the master, not the agent's flags, decided: dynamic reservations and
        volumes (the part the registry and the agent's checkpoint keep)."""
        return Portion({k: v for k, v in self.reserved.reserved.items() if k.type == DYNAMIC},
                       dict(self.reserved.volumes))

    def to_json(self) -> list[dict[str, Any]]:
        return self.dynamic().to_json()
