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
    assert model.summary() == "4/4 done, 1 failed, 1 cancelled"


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
