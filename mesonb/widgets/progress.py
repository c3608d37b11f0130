"""Progress of a set of futures: one model, two views (after dask's diagnostics).

* :class:`ProgressModel` counts futures as they finish (done, errors, cancelled); it is
  fed by ``add_done_callback`` from whatever thread settles a future and tells its
  listeners. No display code. For mesonb futures it also counts the running and the
  pending ones and, when calls wait with none running, says why (``pending: <reason>``,
  from ``fut.status()``); :meth:`ProgressModel.summary` is the one line both views show:
  ``square: 7/10 done, 2 running, 1 pending · 1.2 s, 5.8 calls/s``.
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
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from html import escape
from typing import Any, TextIO


class ProgressModel:
    """How many of ``futures`` are finished, and how."""

    def __init__(self, futures: Iterable[concurrent.futures.Future]) -> None:
        self.futures = list(futures)
        self.total = len(self.futures)
        self.done = self.errors = self.cancelled = 0
        self.running = self.pending = 0  # mesonb futures only (see refresh)
        self.why_pending = ""  # "pending: <reason>" while calls wait and none runs
        self.started = min((getattr(f, "submitted", None) or time.time()
                            for f in self.futures), default=time.time())
        self.finished_at: float | None = None
        names = Counter(getattr(f, "name", "") for f in self.futures)
        names.pop("", None)
        self.name = (names.most_common(1)[0][0] if len(names) == 1 else
                     f"{len(names)} functions" if names else "mesonb")
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
            self.finished_at = time.time()
        for fut, _ in list(self._uncounted.values()):
            fut.add_done_callback(self._one_done)
        self.refresh()

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
            finished = self._check_finished()
        for listener in list(self._listeners):
            listener(self)
        if finished:
            self._all_done.set()

    def _check_finished(self) -> bool:
        """All counted: the clock stops (under the lock)."""
        finished = self.done >= self.total
        if finished and self.finished_at is None:
            self.finished_at = time.time()
            self.running = self.pending = 0
            self.why_pending = ""
        return finished

    def refresh(self, ask_why: bool = False) -> None:
        """Count the running and pending futures (mesonb futures have a ``phase``);
        with ``ask_why``, when some wait and none runs, ask the first why."""
        with self._lock:
            waiting = [f for f, _ in self._uncounted.values() if not f.done()]
        phases = Counter(getattr(f, "phase", "pending") for f in waiting)
        why = ""
        if ask_why and waiting and not phases["running"]:
            first = next((f for f in waiting if hasattr(f, "status")), None)
            if first is not None:
                try:
                    why = first.status(timeout=1.0)
                except Exception:  # a closed cluster: nothing to say
                    why = ""
                if not why.startswith("pending"):
                    why = ""
        with self._lock:
            if self.finished_at is None:
                self.running, self.pending = phases["running"], phases["pending"]
                self.why_pending = why

    def recount(self) -> None:
        """Count the futures that are done but whose done callbacks have not run yet
        (they run on the thread that settled them, maybe after a waiter woke)."""
        with self._lock:
            counted = [self._count(f) for f, _ in list(self._uncounted.values()) if f.done()]
            finished = self._check_finished()
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

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.started

    def summary(self) -> str:
        """``square: 7/10 done, 2 running, 1 pending, 1 failed · 1.2 s, 5.8 calls/s``
        (and ``· pending: <reason>`` while calls wait with none running)."""
        out = f"{self.name}: {self.done}/{self.total} done"
        for count, word in ((self.running, "running"), (self.pending, "pending"),
                            (self.errors, "failed"), (self.cancelled, "cancelled")):
            if count:
                out += f", {count} {word}"
        elapsed = self.elapsed
        rate = self.done / elapsed if elapsed > 0 else 0.0
        verb = "in" if self.finished_at is not None else "·"
        out += f" {verb} {_seconds(elapsed)}, {rate:.3g} calls/s"
        if self.why_pending:
            out += f" · {self.why_pending}"
        return out


class TextProgress:
    """A tqdm bar over a :class:`ProgressModel`."""

    def __init__(self, model: ProgressModel, file: TextIO | None = None,
                 desc: str = "mesonb") -> None:
        from tqdm import tqdm

        self.model = model
        name = model.name if desc == "mesonb" else desc
        self.bar = tqdm(total=model.total, desc=name, file=file, unit="call", leave=True)
        self._shown = 0
        self._lock = threading.Lock()
        model.subscribe(self._update)
        _tick(model, self._update)

    def _update(self, model: ProgressModel) -> None:
        with self._lock:
            step = model.done - self._shown
            postfix = {k: v for k, v in (("running", model.running),
                                         ("pending", model.pending),
                                         ("failed", model.errors),
                                         ("cancelled", model.cancelled)) if v}
            self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in postfix.items())
                                     + (f" · {model.why_pending}" if model.why_pending
                                        else ""), refresh=False)
            if step > 0:
                self._shown = model.done
                self.bar.update(step)
            else:
                self.bar.refresh()
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
                                 description=model.name[:20], bar_style="info",
                                 style={"description_width": "initial"})
        self.label = w.HTML("")
        self.widget = w.HBox([self.bar, self.label])
        self._lock = threading.Lock()
        self.displayed = False
        model.subscribe(self._update)
        _tick(model, self._update)

    def _update(self, model: ProgressModel) -> None:
        with self._lock:
            self.bar.value = model.done
            self.label.value = f"<code>{escape(model.summary())}</code>"
            if model.done >= model.total:
                self.bar.bar_style = "danger" if model.errors else "success"
            elif model.why_pending:
                self.bar.bar_style = "warning"
            else:
                self.bar.bar_style = "info"

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
        self.model.recount()
        return self.model.summary()

    def _ipython_display_(self) -> None:
        """As a cell's last line: the bar, once (progress() shows it already), never a
        text that would disagree with it."""
        if not self.displayed:
            from IPython.display import display

            self.displayed = True
            display(self.widget)


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
                view.displayed = True
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


TICK = 0.5  # seconds between looks at running/pending calls while a bar is live


def _tick(model: ProgressModel, update: Callable[[ProgressModel], Any]) -> None:
    """Refresh the running/pending counts (and why calls wait) every :data:`TICK`
    seconds until every future is done, on a daemon thread of its own."""
    if model.finished:
        return
    model_ref = weakref.ref(model)

    def loop() -> None:
        while True:
            current = model_ref()
            if current is None or current.wait(TICK):
                return
            current.refresh(ask_why=current.elapsed > 1.0)
            update(current)
            del current

    threading.Thread(target=loop, name="mesonb-progress", daemon=True).start()


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes} min {seconds:02d} s"
