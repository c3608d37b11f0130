"""A fake clock for state machines that take time as a value."""

from __future__ import annotations


class FakeClock:
    """Starts at ``start`` and moves only when told to."""

    def __init__(self, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self._now = start
        self._epoch_offset = epoch - start

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._epoch_offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
        return self._now
