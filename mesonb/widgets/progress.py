"""Progress of a set of futures: one model, two views (after dask's diagnostics).

* :class:`ProgressModel` counts futures as they finish (done, errors, cancelled); it is
  fed by ``add_done_callback`` from whatever thread settles a future and tells its
  listeners. No display code.
* :class:`TextProgress` draws it with tqdm (a terminal, a log);
  :class:`WidgetProgress` with an ipywidgets ``IntProgress`` in a Jupyter kernel.

Example::

    futures = cluster.map(square, range(100))
    mesonb.progress(futures)        # a bar in Jupyter; a tqdm bar (blocking) in a terminal
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any, TextIO


class ProgressModel:
    """How many of ``futures`` are finished, and how."""

    def __init__(self, futures: Iterable[concurrent.futures.Future]) -> None:
        self.futures = list(futures)
        self.total = len(self.futures)
        self.done = self.errors = self.cancelled = 0
        self._lock = threading.Lock()
        self._all_done = threading.Event()
        self._listeners: list[Callable[[ProgressModel], Any]] = []
        if not self.futures:
            self._all_done.set()
        for fut in self.futures:
            fut.add_done_callback(self._one_done)

    def _one_done(self, fut: concurrent.futures.Future) -> None:
        with self._lock:
            self.done += 1
            if fut.cancelled():
                self.cancelled += 1
            elif fut.exception() is not None:
                self.errors += 1
            finished = self.done >= self.total
        for listener in list(self._listeners):
            listener(self)
        if finished:
            self._all_done.set()

    def subscribe(self, listener: Callable[[ProgressModel], Any]) -> None:
        self._listeners.append(listener)
        listener(self)

    @property
    def finished(self) -> bool:
        return self._all_done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._all_done.wait(timeout)

    def summary(self) -> str:
        out = f"{self.done}/{self.total} done"
        if self.errors:
            out += f", {self.errors} failed"
        if self.cancelled:
            out += f", {self.cancelled} cancelled"
        return out


class TextProgress:
    """A tqdm bar over a :class:`ProgressModel`."""

    def __init__(self, model: ProgressModel, file: TextIO | None = None,
                 desc: str = "mesonb") -> None:
        from tqdm import tqdm

        self.model = model
        self.bar = tqdm(total=model.total, desc=desc, file=file, unit="task", leave=True)
        self._shown = 0
        self._lock = threading.Lock()
        model.subscribe(self._update)

    def _update(self, model: ProgressModel) -> None:
        with self._lock:
            step = model.done - self._shown
            if step > 0:
                self._shown = model.done
                if model.errors or model.cancelled:
                    self.bar.set_postfix(failed=model.errors, cancelled=model.cancelled,
                                         refresh=False)
                self.bar.update(step)
            if model.done >= model.total:
                self.bar.close()

    def wait(self, timeout: float | None = None) -> TextProgress:
        self.model.wait(timeout)
        self.bar.close()
        return self


class WidgetProgress:
    """An ipywidgets bar over a :class:`ProgressModel` (updated from any thread)."""

    def __init__(self, model: ProgressModel) -> None:
        import ipywidgets as w

        self.model = model
        self.bar = w.IntProgress(value=0, min=0, max=max(model.total, 1),
                                 description="mesonb", bar_style="info")
        self.label = w.HTML("")
        self.widget = w.HBox([self.bar, self.label])
        model.subscribe(self._update)

    def _update(self, model: ProgressModel) -> None:
        self.bar.value = model.done
        self.label.value = f"<code>{model.summary()}</code>"
        if model.done >= model.total:
            self.bar.bar_style = "danger" if model.errors else "success"

    def wait(self, timeout: float | None = None) -> WidgetProgress:
        self.model.wait(timeout)
        return self

    def __repr__(self) -> str:
        return f"<mesonb progress {self.model.summary()}>"


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can show)."""
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress(futures: Iterable[concurrent.futures.Future], *, notebook: bool | None = None,
             wait: bool | None = None, file: TextIO | None = None) -> Any:
    """Show the progress of ``futures``: a widget in Jupyter (returned, displayed, not
    blocking), else a tqdm bar that blocks until all are done (``wait``)."""
    model = ProgressModel(futures)
    notebook = in_kernel() if notebook is None else notebook
    if notebook:
        view: Any = WidgetProgress(model)
        if in_kernel():
            from IPython.display import display

            display(view.widget)
        if wait:
            view.wait()
        return view
    text = TextProgress(model, file=file)
    if wait is None or wait:
        text.wait()
    return text
