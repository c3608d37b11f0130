"""The page is offline and light: its assets ship in the package, fetch nothing from
elsewhere, and weigh under 500 KB."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mesonb.webui.handlers import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_assets_ship_in_the_package_and_stay_small():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in project["tool"]["setuptools"]["package-data"]["mesonb.webui"]
    files = sorted(p.name for p in STATIC_DIR.iterdir())
    assert {"index.html", "app.js", "pages.js", "panels.js", "app.css"} <= set(files)
    index = (STATIC_DIR / "index.html").read_text()
    for name in re.findall(r'(?:src|href)="ui/static/([^"]+)"', index):
        assert (STATIC_DIR / name).is_file(), name
    assert sum(p.stat().st_size for p in STATIC_DIR.iterdir()) < 500 * 1024


def test_no_asset_names_a_remote_url():
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name
