"""A job's progress: tasks done of tasks known, as a widget in Jupyter or tqdm in a terminal.

:func:`view_for` picks the view: an ipywidgets bar in a Jupyter kernel, a tqdm bar when
stderr is a terminal, none otherwise (``show=True`` forces one, ``False`` none). Views
are fed a :class:`~.record.JobRecord` from the driver's loop thread.
"""

from __future__ import annotations

import sys
from typing import Any

from .record import JobRecord


def in_kernel() -> bool:
    if "IPython" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _label(record: JobRecord) -> str:
    extra = f", {record.recomputed} recomputed" if record.recomputed else ""
    return (f"dataflow job {record.job_id} ({record.description}): {record.tasks_done}/"
            f"{record.tasks_total} tasks, {record.status}{extra}")


class WidgetView:
    """An ipywidgets ``IntProgress`` and a label, displayed when created."""

    def __init__(self, record: JobRecord) -> None:
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(min=0, max=max(1, record.tasks_total), value=0)
        self.label = ipywidgets.HTML(_label(record))
        self.box = ipywidgets.HBox([self.bar, self.label])
        display(self.box)

    def update(self, record: JobRecord) -> None:
        self.bar.max = max(1, record.tasks_total, record.tasks_done)
        self.bar.value = record.tasks_done
        self.label.value = _label(record)
        if record.status == "succeeded":
            self.bar.bar_style = "success"
        elif record.status in ("failed", "cancelled"):
            self.bar.bar_style = "danger"

    def close(self, record: JobRecord) -> None:
        self.update(record)


class TextView:
    """A tqdm bar on stderr."""

    def __init__(self, record: JobRecord) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=max(1, record.tasks_total), desc=f"job {record.job_id} "
                        f"{record.description}", unit="task", leave=False, file=sys.stderr)

    def update(self, record: JobRecord) -> None:
        self.bar.total = max(1, record.tasks_total, record.tasks_done)
        self.bar.n = record.tasks_done
        self.bar.refresh()

    def close(self, record: JobRecord) -> None:
        self.update(record)
        self.bar.close()


def view_for(record: JobRecord, show: bool | None) -> Any:
    """The view for a job starting now, or None."""
    if show is False:
        return None
    if in_kernel():
        return WidgetView(record)
    if show or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return TextView(record)
    return None
