"""The web UI on the master: ``/``, ``/panel/<name>``, ``/ui/*`` (see
:mod:`mesonb.webui.handlers`), fed by a :class:`~.ui_feed.MasterFeed`.

With ``config.history_dir`` set, the feed's records are also written to disk
(:mod:`mesonb.webui.history`), so ``mesonb ui --history DIR`` can show the pages after
the cluster is gone.
"""

from __future__ import annotations

from typing import Any

from mesonb.http.base import Security
from mesonb.master.master import Master
from mesonb.webui.handlers import routes as ui_routes
from mesonb.webui.history import HistoryRecorder
from mesonb.webui.hub import Hub

from .ui_feed import MasterFeed


def routes(deps: dict[str, Any]) -> list[tuple[str, type, dict[str, Any]]]:
    """The UI routes of ``deps["master"]``; its hub and feed live as long as the app."""
    master: Master = deps["master"]
    security: Security = deps["security"]
    hub = Hub(secret=security.secret)
    feed = MasterFeed(master, hub)
    hub.source = feed
    history_dir = getattr(master.config, "history_dir", None)
    if history_dir:
        HistoryRecorder(history_dir, master.id, max_size=master.config.history_max_size,
                        max_files=master.config.history_max_files).attach(hub, feed)
    return ui_routes(security, hub)
