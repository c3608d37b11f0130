"""Execute every notebook in notebooks/ with a real Jupyter kernel and check its outputs,
the widgets each cell displays and their last state (nbclient saves it in the notebook's
metadata, as Jupyter's "save widget state" does)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


class Run:
    """An executed notebook."""

    def __init__(self, name: str) -> None:
        self.book = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        client = NotebookClient(self.book, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT)}})
        client.execute()
        self.cells = [c for c in self.book.cells if c.cell_type == "code"]
        self.outputs = [o for c in self.cells for o in c.outputs]
        errors = [o for o in self.outputs if o.output_type == "error"]
        assert not errors, [(e.ename, e.evalue) for e in errors]
        self.text = "".join(o.get("text", "") for o in self.outputs
                            if o.output_type == "stream")
        self.states = self.book.metadata.get("widgets", {}).get(STATE, {}).get("state", {})

    def cell(self, marker: str) -> nbformat.NotebookNode:
        [cell] = [c for c in self.cells if marker in c.source]
        return cell

    def html(self) -> str:
        return "".join(o.get("data", {}).get("text/html", "") for o in self.outputs
                       if o.output_type in ("execute_result", "display_data"))

    def widgets(self, cell: nbformat.NotebookNode | None = None) -> list[str]:
        """The model ids of the widgets displayed (by one cell, or by all)."""
        outputs = self.outputs if cell is None else cell.outputs
        return [o["data"][WIDGET]["model_id"] for o in outputs
                if o.output_type in ("execute_result", "display_data")
                and WIDGET in o.get("data", {})]

    def tree(self, model_id: str) -> list[dict]:
        """A widget and every widget under it, depth first, as saved (name + state)."""
        model = self.states[model_id]
        out = [{"name": model["model_name"], **model["state"]}]
        for child in model["state"].get("children", []):
            out += self.tree(child.removeprefix("IPY_MODEL_"))
        return out

    def progress_bars(self, model_id: str) -> list[dict]:
        return [w for w in self.tree(model_id) if w["name"] in ("IntProgressModel",
                                                                 "FloatProgressModel")]


def one_bar(run: Run, marker: str) -> tuple[dict, str]:
    """The one widget the cell with ``marker`` displays: a progress bar, and its label."""
    views = run.widgets(run.cell(marker))
    assert len(views) == 1, (marker, views)
    [bar] = run.progress_bars(views[0])
    [label] = [w["value"] for w in run.tree(views[0]) if w["name"] == "HTMLModel"]
    return bar, label


def test_quickstart():
    run = Run("quickstart.ipynb")
    text = run.text
    assert "square(7) = 49" in text
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in text
    assert "progress: 10/10 done" in text
    assert "uname: Linux" in text
    assert "agents: 2 cpus dtype: float64" in text
    string = "(str|string)"  # pandas 3 | pandas 2
    assert re.search(rf"dtypes: hostname {string} \| registered_time datetime64\[ns, UTC\] "
                     r"\| active bool", text)
    assert "finished tasks: 12" in text
    assert re.search(rf"frameworks: mesonb-functions \| name dtype: {string}\n", text)
    assert "offer columns: ['offer_id', 'framework_id', 'agent_id', 'hostname', 'role', " \
           "'cpus', 'mem', 'disk', 'gpus']" in text
    assert "closed: True" in text
    page = run.html()
    assert "mesonb.Cluster" in page and "mesonb.Future" in page and "finished" in page
    assert "; allocated: " in page  # the cluster's repr read the master, not a cache
    assert "cpus_allocated" in page and "cpus_used" in page  # the agents DataFrame
    assert "mem_allocated" in page and "offer_id" in page  # frameworks and offers
    dtypes = run.cell("tasks.dtypes").outputs[0]["data"]["text/plain"]
    columns = dtypes.rsplit("\n", 1)[0]  # the last line is the Series' own "dtype: object"
    assert re.search(rf"task_id +{string}\n", columns) and "object" not in columns
    assert re.search(r"updated_time +datetime64\[ns, UTC\]", dtypes)
    # exactly two bars: map+gather share one (one cell), mesonb.progress draws its own
    assert len(run.widgets()) == 2
    assert run.widgets(run.cell("fut = cluster.submit")) == []  # one call: no bar
    for marker in ("cluster.map(square", "mesonb.progress(futures)"):
        bar, label = one_bar(run, marker)
        assert (bar["value"], bar["max"], bar["bar_style"]) == (10, 10, "success"), marker
        assert label == "<code>10/10 done</code>", marker


def test_interactive_offers():
    run = Run("interactive-offers.ipynb")
    text = run.text
    assert "offer from" in text
    assert "pow(2, 10) on" in text and "= 1024" in text
    assert "after the decline, offers come from the other agent: True" in text
    assert "revive brings the refused agent back: True" in text
    assert "widget function said: 81" in text
    assert "widget launch said: from-the-widget" in text
    assert "widget after close: <b>explore</b>: the framework is closed" in text
    assert "closed: True" in text
    page = run.html()
    assert "mesonb.LaunchedTask" in page and "offer_id" in page
    assert len(run.widgets()) == 1
    [view] = run.widgets(run.cell("view = fw.offers_widget("))
    tree = run.tree(view)
    titles = [w["value"] for w in tree if w["name"] == "HTMLModel" and "<b>explore" in w["value"]]
    assert titles == ["<b>explore</b>: the framework is closed"]  # it followed the close
    tasks = [w["value"] for w in tree if w["name"] == "HTMLModel" and "<div><code>" in w["value"]]
    assert len(tasks) == 1 and tasks[0].count("<div>") == 2  # both launches listed
    assert "pow-" in tasks[0] and "command-" in tasks[0]


def test_dashboard():
    run = Run("dashboard.ipynb")
    text = run.text
    assert "agents on the stream: 2" in text
    assert "done: True" in text
    assert "finished on the dashboard: 6" in text
    assert "allocated agrees with the master: True" in text
    assert "memory measured in use: True" in text
    assert "Running 0" in text and "Finished 6" in text
    # the executors' share: one per agent that ran a call (its tasks are done)
    executors = re.findall(r":\d+ cpus: 0\.1 / [\d.]+ allocated(, [\d.]+ offered)?, used \d",
                           text)
    assert 1 <= len(executors) <= 2
    assert "stopped: True" in text
    [dash] = run.widgets(run.cell("dash = cluster.dashboard()"))
    assert len(run.widgets()) == 2  # the dashboard and the map's progress bar
    bar, label = one_bar(run, "cluster.map(time.sleep")
    assert (bar["value"], bar["max"], bar["bar_style"], label) == (
        6, 6, "success", "<code>6/6 done</code>")
    tree = run.tree(dash)
    [title] = [w["value"] for w in tree if w["name"] == "HTMLModel"
               and "mesonb cluster" in w["value"]]
    assert title.endswith("<small>stopped</small>")  # drawn last by stop()
    rows = [w for w in tree if w["name"] == "HBoxModel"]
    labels = [w["value"] for w in tree if w["name"] == "LabelModel" and
              re.fullmatch(r".+:\d+ (cpus|mem|disk)", w["value"])]
    assert len(rows) == len(labels) == 6  # two agents: cpus, mem and disk each
    assert sorted(label.rsplit(" ", 1)[1] for label in labels) == \
        ["cpus", "cpus", "disk", "disk", "mem", "mem"]
    bars = run.progress_bars(dash)
    assert [b["description"] for b in bars][:2] == ["allocated", "used"]
    assert len(bars) == 12  # each row: an allocated bar and a used bar
    allocated = [b for b in bars if b["description"] == "allocated"]
    used = [b for b in bars if b["description"] == "used"]
    # disk: measured once the agent's disk/du pass ran (at an executor's start, then every
    # 15 s); "used n/a" for an agent with nothing measured yet
    assert len(allocated) == 6 and 4 <= len(used) <= 6
    assert 0.1 in [b["value"] for b in allocated]  # an executor's cpus
    assert max(b["value"] for b in used) > 0  # measured: its resident memory at least
