"""Time as an injected value, so timeouts and retries are tested on a fake clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (timeouts, backoff)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (timestamps shown to users)."""
        ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


REAL_CLOCK = RealClock()
