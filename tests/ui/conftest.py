"""Headless Chromium (Debian's ``chromium``) driven by Playwright, for the web UI tests.

``playwright install`` cannot download browsers here, so the system Chromium is launched
through ``executable_path``; ``scripts/setup.sh --test`` installs it when missing.
Screenshots go to ``$MESONB_TEST_ARTIFACTS`` (default ``tests/ui/artifacts``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from ui_support import ARTIFACTS, chromium_path

from mesonb.testing.processes import ProcessCluster

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="module")  # not longer: Playwright's sync API holds a loop meanwhile
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is installed by scripts/setup.sh --test")
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is installed by scripts/setup.sh --test")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Page:
    """A browser page that records every request it makes and what its console says."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.failed: list[str] = []  # answers of 400 and above (a missing asset, ...)
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(
            f"{r.status} {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda ws: self.requests.append(ws.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def outside_loopback(self) -> list[str]:
        return [u for u in self.requests
                if urlsplit(u).scheme not in ("data", "about", "blob")
                and urlsplit(u).hostname not in LOOPBACK]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def ui_page(browser: Any) -> Iterator[Page]:
    page = Page(browser)
    try:
        yield page
    finally:
        page.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    with ProcessCluster(tmp_path, agents=2, master_args=[
            "--agent-ping-timeout", "0.3", "--max-agent-ping-timeouts", "2",
            "--allocation-interval", "0.2"]) as c:
        yield c
