"""Progress of a set of futures: one model, two views (after dask's diagnostics).

* :class:`ProgressModel` counts futures as they finish (done, errors, cancelled); it is
  fed by ``add_done_callback`` from whatever thread settles a future and tells its
  listeners. No display code.
* :class:`TextProgress` draws it with tqdm (a terminal, a log);
  :class:`WidgetProgress` with an ipywidgets ``IntProgress`` in a Jupyter kernel.

Example::

    futures = cluster.map(square, range(100))
    mesonb.progress(futures)        # a bar in Jupyter; a tqdm bar (blocking) in a terminal

In Jupyter, futures that a bar drawn by the same cell already follows get no second
one: ``cluster.map`` then ``cluster.gather`` in one cell show one bar, not two (a later
cell asking again gets a new bar, in its own output).
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
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
        # id -> (the future, how many times it is in the list), until counted
        self._uncounted: dict[int, tuple[concurrent.futures.Future, int]] = {}
        for fut in self.futures:
            _, n = self._uncounted.get(id(fut), (fut, 0))
            self._uncounted[id(fut)] = (fut, n + 1)
        if not self.futures:
            self._all_done.set()
        for fut, _ in list(self._uncounted.values()):
            fut.add_done_callback(self._one_done)

    def _count(self, fut: concurrent.futures.Future) -> bool:
        """Count a finished future once (under the lock); False if it already was."""
        _, n = self._uncounted.pop(id(fut), (fut, 0))
        if not n:
            return False
        self.done += n
        if fut.cancelled():
            self.cancelled += n
        elif fut.exception() is not None:
            self.errors += n
        return True

    def _one_done(self, fut: concurrent.futures.Future) -> None:
        with self._lock:
            if not self._count(fut):
                return
            finished = self.done >= self.total
        for listener in list(self._listeners):
            listener(self)
        if finished:
            self._all_done.set()

    def recount(self) -> None:
        """Count the futures that are done but whose done callbacks have not run yet
        (they run on the thread that settled them, maybe after a waiter woke)."""
        with self._lock:
            counted = [self._count(f) for f, _ in list(self._uncounted.values()) if f.done()]
            finished = self.done >= self.total
        if any(counted):
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
        self._lock = threading.Lock()
        model.subscribe(self._update)

    def _update(self, model: ProgressModel) -> None:
        with self._lock:
            self.bar.value = model.done
            self.label.value = f"<code>{model.summary()}</code>"
            if model.done >= model.total:
                self.bar.bar_style = "danger" if model.errors else "success"

    def sync(self) -> None:
        """Catch up with futures settled since the last callback, and send the whole
        state again from this thread (updates made on other threads may belong to no
        cell in the front end's eyes)."""
        self.model.recount()
        self._update(self.model)
        with self._lock:
            for widget in (self.bar, self.label):
                widget.send_state()

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


# future -> (the cell execution that drew a bar for it, that bar); weak both ways, as a
# bar's model holds its futures
_drawn: weakref.WeakKeyDictionary[
    concurrent.futures.Future, tuple[int, weakref.ref[WidgetProgress]]] = \
    weakref.WeakKeyDictionary()
_drawn_lock = threading.Lock()


def _cell() -> int | None:
    """The running cell's execution count (None outside a kernel)."""
    if not in_kernel():
        return None
    from IPython import get_ipython

    return getattr(get_ipython(), "execution_count", None)


_this_cell: list[weakref.ref[WidgetProgress]] = []  # bars drawn by the running cell
_hooked = False


def _settle_bars(*_: Any) -> None:
    """IPython ``post_run_cell``: the bars this cell drew catch up now, from the kernel's
    thread, so that their last picture belongs to the cell (its output, the notebook's
    saved widget state) even when the last done callbacks run after the cell's code."""
    with _drawn_lock:
        bars = [b for b in (ref() for ref in _this_cell) if b is not None]
        _this_cell.clear()
    for bar in bars:
        bar.sync()


def _remember(view: WidgetProgress) -> None:
    global _hooked
    with _drawn_lock:
        _this_cell.append(weakref.ref(view))
        if _hooked:
            return
        _hooked = True
    from IPython import get_ipython

    get_ipython().events.register("post_run_cell", _settle_bars)


def drawn_in_this_cell(futures: list[concurrent.futures.Future]) -> WidgetProgress | None:
    """A bar this cell drew for all of ``futures`` (the first one's), if every one of
    them has one; else None."""
    cell = _cell()
    if cell is None or not futures:
        return None
    with _drawn_lock:
        seen = [_drawn.get(f) for f in futures]
    if all(s is not None and s[0] == cell for s in seen):
        return seen[0][1]()  # type: ignore[index]
    return None


def progress(futures: Iterable[concurrent.futures.Future], *, notebook: bool | None = None,
             wait: bool | None = None, file: TextIO | None = None,
             again: bool = False) -> Any:
    """Show the progress of ``futures``: a widget in Jupyter (returned, displayed, not
    blocking), else a tqdm bar that blocks until all are done (``wait``).

    In Jupyter, when this cell already drew a bar for every one of ``futures``, no
    second bar is drawn (unless ``again``): the view returned is the first one's when it
    follows exactly these futures, else an undisplayed one over them."""
    futures = list(futures)
    notebook = in_kernel() if notebook is None else notebook
    if notebook:
        earlier = None if again else drawn_in_this_cell(futures)
        if earlier is not None and set(map(id, earlier.model.futures)) == set(map(id, futures)):
            view: Any = earlier
        else:
            view = WidgetProgress(ProgressModel(futures))
            cell = _cell()
            if earlier is None and cell is not None:
                from IPython.display import display

                display(view.widget)
                with _drawn_lock:
                    for fut in futures:
                        _drawn[fut] = (cell, weakref.ref(view))
                if in_kernel():
                    _remember(view)
        if wait:
            view.wait()
        return view
    model = ProgressModel(futures)
    text = TextProgress(model, file=file)
    if wait is None or wait:
        text.wait()
    return text
