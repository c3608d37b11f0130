"""Live updates: a status update is on screen within 1 s (bench/bench_ui.py, small)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ui_support import ARTIFACTS, chromium_path

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_ui.py"


def test_a_status_update_reaches_the_screen_within_a_second():
    pytest.importorskip("playwright.sync_api")
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("Debian's chromium is installed by scripts/setup.sh --test")
    spec = importlib.util.spec_from_file_location("bench_ui", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    figures = bench.measure(agents=50, tasks=500, samples=10, churn_per_second=100,
                            chromium=chromium, screenshot=ARTIFACTS / "live-updates.png")
    # On a task's page and in the home page's counts, while other updates keep coming.
    for delays in (figures["task_delays_s"], figures["home_delays_s"]):
        assert len(delays) == 10
        assert bench.percentile(delays, 0.95) <= 1.0, delays
    assert figures["tti_s"] <= 2.0
    assert figures["page_bytes"] < 500 * 1024
