"""The progress model and its terminal (tqdm) view, on plain futures."""

from __future__ import annotations

import concurrent.futures
import io

import mesonb
from mesonb.widgets.progress import ProgressModel, TextProgress, WidgetProgress, progress


def futures(n):
    return [concurrent.futures.Future() for _ in range(n)]


def test_model_counts_results_errors_and_cancels():
    futs = futures(4)
    model = ProgressModel(futs)
    seen = []
    model.subscribe(lambda m: seen.append(m.done))
    futs[0].set_result(1)
    futs[1].set_exception(ValueError("x"))
    assert futs[2].cancel()
    assert (model.done, model.errors, model.cancelled, model.finished) == (3, 1, 1, False)
    futs[3].set_result(2)
    assert model.finished and model.wait(0)
    assert seen == [0, 1, 2, 3, 4]
    assert model.summary().startswith("mesonb: 4/4 done, 1 failed, 1 cancelled in ")
    assert model.summary().endswith(" calls/s")  # elapsed time and rate, with units


def test_already_done_and_empty():
    done = futures(2)
    for f in done:
        f.set_result(None)
    assert ProgressModel(done).done == 2
    assert ProgressModel([]).finished


def test_text_progress_draws_a_tqdm_bar_and_closes_when_done():
    futs = futures(3)
    out = io.StringIO()
    view = TextProgress(ProgressModel(futs), file=out)
    for f in futs:
        f.set_result(0)
    view.wait(5)
    text = out.getvalue()
    assert "3/3" in text and "mesonb" in text
    assert view.bar.n == 3


def test_progress_in_a_terminal_blocks_until_done():
    futs = futures(2)
    for f in futs:
        f.set_result(0)
    out = io.StringIO()
    view = progress(futs, notebook=False, file=out)
    assert isinstance(view, TextProgress) and view.model.finished
    assert mesonb.progress is progress


def test_widget_view_follows_the_model_without_a_kernel():
    futs = futures(2)
    view = progress(futs, notebook=True, wait=False)
    assert isinstance(view, WidgetProgress)
    assert (view.bar.value, view.bar.max) == (0, 2)
    futs[0].set_result(1)
    futs[1].set_exception(RuntimeError())
    assert view.bar.value == 2 and view.bar.bar_style == "danger"
    assert "1 failed" in view.label.value


def test_one_bar_per_cell_for_the_same_futures(monkeypatch):
    """In Jupyter, map then gather in one cell draw one bar; a later cell draws anew."""
    import IPython.display

    from mesonb.widgets import progress as module

    shown = []
    cell = [7]
    monkeypatch.setattr(module, "_cell", lambda: cell[0])
    monkeypatch.setattr(IPython.display, "display", shown.append)
    futs = futures(3)
    first = progress(futs, wait=False, notebook=True)  # cluster.map's bar
    again = progress(futs, wait=False, notebook=True)  # cluster.gather's: the same one
    assert again is first and shown == [first.widget]
    part = progress(futs[:2], wait=False, notebook=True)  # already followed: not drawn
    assert part is not first and part.model.total == 2 and len(shown) == 1
    forced = progress(futs, wait=False, notebook=True, again=True)
    assert shown == [first.widget, forced.widget]  # asked for: a second bar
    cell[0] = 8  # the next cell asks again: a bar in its own output
    later = progress(futs, wait=False, notebook=True)
    assert later is not first and shown[-1] is later.widget and len(shown) == 3
    mixed = futures(1)
    both = progress(futs + mixed, wait=False, notebook=True)  # one future has no bar yet
    assert shown[-1] is both.widget and both.model.total == 4
    for f in futs + mixed:
        f.set_result(0)
    assert first.bar.value == 3 and later.bar.value == 3 and both.bar.value == 4


class Deferred(concurrent.futures.Future):
    """A future whose done callbacks run only when the test says (another thread's)."""

    def add_done_callback(self, fn):
        self.later = fn


def test_recount_catches_up_before_callbacks_and_never_counts_twice():
    slow, fast = Deferred(), concurrent.futures.Future()
    model = ProgressModel([slow, fast, slow])  # the same future twice counts twice
    view = WidgetProgress(model)
    assert model.total == 3
    slow.set_result(1)  # its callback has not run yet
    fast.set_exception(ValueError())
    assert (model.done, view.bar.value) == (1, 1)
    view.sync()
    assert (model.done, model.errors, view.bar.value) == (3, 1, 3) and model.finished
    assert view.bar.bar_style == "danger"
    slow.later(slow)  # the late callback: already counted
    assert model.done == 3 and model.summary().startswith("mesonb: 3/3 done, 1 failed in ")
