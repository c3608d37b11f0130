"""The collector tuning daemons apply (mesonb.gctune)."""

from __future__ import annotations

import gc

from mesonb.gctune import YOUNG_THRESHOLD, tune_for_daemon


def test_raises_the_young_threshold_and_freezes_what_exists():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        kept = [object() for _ in range(10)]
        tune_for_daemon()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
        gc.set_threshold(50_000, 10, 10)
        tune_for_daemon()  # never lowers a threshold set higher
        assert gc.get_threshold()[0] == 50_000
        assert kept
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_disabled_threshold_stays_disabled():
    before = gc.get_threshold()
    try:
        gc.set_threshold(0)
        tune_for_daemon()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
