"""What the framework keeps about one app besides its instances: the current definition,
its versions, the launch backoff, the last failure, and what offers said (the queue's
``processedOffersSummary``)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from .backoff import Backoff
from .model import AppDefinition


@dataclasses.dataclass
class OfferStats:
    """Per app: what the last offers said (``processedOffersSummary``)."""

    processed: int = 0
    unused: int = 0
    last_unused_at: str | None = None
    last_used_at: str | None = None
    last_rejections: Counter[str] = dataclasses.field(default_factory=Counter)
    launch_rejections: Counter[str] = dataclasses.field(default_factory=Counter)
    last_unused: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def record(self, processed: int, rejections: Counter[str] | None,
               unused: list[tuple[dict[str, Any], list[str]]], stamp: str) -> None:
        """One offer round: how many offers were looked at and why the unused did not fit."""
        rejections = rejections or Counter()
        self.processed += processed
        self.unused += sum(rejections.values())
        self.last_rejections = rejections
        self.launch_rejections.update(rejections)
        if rejections:
            self.last_unused_at = stamp
            self.last_unused = [{"offer": offer, "reason": reasons, "timestamp": stamp}
                                for offer, reasons in unused][-10:]


@dataclasses.dataclass
class AppState:
    """One app: its current definition and what the framework knows about it."""

    definition: AppDefinition
    versions: list[str] = dataclasses.field(default_factory=list)
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    last_failure: dict[str, Any] | None = None
    since: str = ""
    held: bool = False  # waiting for an earlier step of its deployment
    deleting: bool = False
    offers: OfferStats = dataclasses.field(default_factory=OfferStats)
