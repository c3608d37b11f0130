"""The cyclic garbage collector, tuned for long-running daemons.

A master or an agent allocates a few dozen small objects per message and keeps many alive
for the life of a task (records, statuses, futures), so with Python's defaults (a young
collection every 700 net allocations, a full one every 100 of those) full collections
over the whole heap ran several times a second under load, about a tenth of the loop's
time. :func:`tune_for_daemon` does what long-running Python servers commonly do: it moves
everything alive at start-up (modules, configuration) out of the collector's sight with
:func:`gc.freeze` and raises the first threshold to :data:`YOUNG_THRESHOLD`. Objects
still go away as soon as nothing refers to them; only garbage in reference cycles waits
a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def tune_for_daemon() -> None:
    """Freeze what exists now and collect young objects every 10,000 allocations (never
    less often than already set)."""
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    gc.freeze()
