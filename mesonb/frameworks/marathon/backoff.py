"""Marathon's launch backoff: each unplanned failure multiplies an app's launch delay.

The first failure delays the next launch by ``backoffSeconds`` (1 s); each further one
multiplies the delay by ``backoffFactor`` (1.15) up to ``maxLaunchDelaySeconds`` (300 s).
``DELETE /v2/queue/{app}/delay`` and a new app version reset it. Time comes in as ``now``.

>>> b = Backoff()
>>> b.failed(1.0, 1.15, 300.0, now=0.0); b.failed(1.0, 1.15, 300.0, now=0.0)
>>> round(b.delay, 2), round(b.time_left(0.5), 2)
(1.15, 0.65)
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Backoff:
    """One app's launch delay."""

    delay: float = 0.0  # the current delay (0: none)
    until: float = 0.0  # no launch before this (monotonic seconds)

    def failed(self, seconds: float, factor: float, maximum: float, now: float) -> None:
        """An instance failed: launch the next one later."""
        self.delay = seconds if self.delay <= 0 else min(self.delay * factor, maximum)
        self.delay = min(self.delay, maximum)
        self.until = now + self.delay

    def reset(self) -> None:
        self.delay = 0.0
        self.until = 0.0

    def time_left(self, now: float) -> float:
        return max(0.0, self.until - now)

    def ready(self, now: float) -> bool:
        return now >= self.until
