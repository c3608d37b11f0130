"""A deployment's progress: a live ipywidgets bar in Jupyter, a line of text elsewhere.

The model is :meth:`~.apps_client.Deployment.counts` and ``status``; this view polls
them a few times a second until the deployment ends. ipywidgets is imported only when
the widget is shown.
"""

from __future__ import annotations

import threading
import time
from typing import Any

INTERVAL = 0.2


def in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class DeploymentProgress:
    """The view of one deployment (``show()`` returns the widget or the text)."""

    def __init__(self, deployment: Any) -> None:
        self.deployment = deployment
        self.widget: Any = None

    def text(self) -> str:
        done, wanted = self.deployment.counts()
        status = self.deployment.status
        reason = f" ({self.deployment.reason})" if status == "failed" else ""
        return (f"deployment {self.deployment.id[:8]} of {', '.join(self.deployment.app_ids)}:"
                f" {done}/{wanted} instances ready, {status}{reason}")

    def show(self) -> Any:
        if not in_kernel():
            return self.text()
        import ipywidgets as widgets
        from IPython.display import display

        done, wanted = self.deployment.counts()
        bar = widgets.IntProgress(value=done, min=0, max=max(wanted, 1),
                                  description="deploying", bar_style="info")
        label = widgets.HTML(value=self.text())
        self.widget = widgets.VBox([bar, label])
        display(self.widget)
        threading.Thread(target=self._follow, args=(bar, label), daemon=True).start()
        return self.widget

    def _follow(self, bar: Any, label: Any) -> None:
        while True:
            done, wanted = self.deployment.counts()
            bar.max = max(wanted, 1)
            bar.value = min(done, bar.max)
            label.value = self.text()
            status = self.deployment.status
            if status != "running":
                bar.bar_style = "success" if status == "succeeded" else "danger"
                bar.description = status
                return
            time.sleep(INTERVAL)
