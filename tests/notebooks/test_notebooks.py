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
        # red text in the cells: library logs must not land there unless asked
        self.stderr = "".join(o.get("text", "") for o in self.outputs
                              if o.output_type == "stream" and o.get("name") == "stderr")
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
    assert run.stderr == ""
    assert "same cluster: True" in text  # re-running Cluster.local is safe
    assert "square(7) = 49" in text
    assert re.search(r"(\d+) cpus=1 calls on \1 cores: all ran", text)
    assert re.search(r"a call of every core: \d+", text)
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in text
    assert re.search(r"progress: square: 10/10 done in [\d.]+ s, [\d.e+]+ calls/s", text)
    assert "refused: no registered agent could ever hold this call" in text
    assert "not pending: the call was refused" in text  # explain() of a refused call
    lines = int(re.search(r"remote traceback lines: (\d+)", text)[1])
    assert lines <= 10  # the user's frame and the error: no worker frames
    assert "in fails" in text and "mesonb/frameworks" not in text
    assert "returncode: 0" in text
    assert "agents: 1 cpus dtype: float64" in text  # one agent holds the machine
    string = "(str|string)"  # pandas 3 | pandas 2
    assert re.search(rf"dtypes: hostname {string} \| registered_time datetime64\[ns, UTC\] "
                     r"\| active bool", text)
    assert re.search(r"finished tasks: \d+", text)
    assert re.search(rf"frameworks: mesonb-functions \| name dtype: {string}\n", text)
    assert "offer columns: ['offer_id', 'framework_id', 'agent_id', 'hostname', 'role', " \
           "'cpus', 'mem', 'disk', 'gpus']" in text
    assert "closed: True" in text
    page = run.html()
    assert "mesonb.Cluster" in page and "mesonb.Future" in page and "finished" in page
    assert "; allocated: " in page  # the cluster's repr read the master, not a cache
    assert "cpus_allocated" in page and "cpus_used" in page  # the agents DataFrame
    assert "mem_allocated" in page and "offer_id" in page  # frameworks and offers
    # the command's result as text with sizes, not a raw dataclass repr
    listing = run.cell("listing = cluster.run").outputs
    shown = "".join(o.get("data", {}).get("text/html", "") for o in listing)
    assert "<pre" in shown and "hello" in shown and "exit 0" in shown and " B" in shown
    assert "CommandResult(stdout=" not in page
    dtypes = run.cell("tasks.dtypes").outputs[0]["data"]["text/plain"]
    columns = dtypes.rsplit("\n", 1)[0]  # the last line is the Series' own "dtype: object"
    assert re.search(rf"task_id +{string}\n", columns) and "object" not in columns
    assert re.search(r"updated_time +datetime64\[ns, UTC\]", dtypes)
    # map+gather share one bar (one cell), mesonb.progress draws its own, the busy
    # gather one; the bar's text repr is not printed under it
    assert run.widgets(run.cell("fut = cluster.submit")) == []  # one call: no bar
    assert "mesonb progress" not in page and "<mesonb" not in str(
        run.cell("bar = mesonb.progress").outputs)
    for marker in ("cluster.map(square", "mesonb.progress(futures)"):
        bar, label = one_bar(run, marker)
        assert (bar["value"], bar["max"], bar["bar_style"]) == (10, 10, "success"), marker
        assert bar["description"] == "square", marker  # the function's name
        assert re.fullmatch(r"<code>square: 10/10 done in [\d.]+ s, [\d.e+]+ calls/s</code>",
                            label), (marker, label)


def test_interactive_offers():
    run = Run("interactive-offers.ipynb")
    text = run.text
    assert run.stderr == ""
    assert "offer from" in text
    assert "pow(2, 10) on" in text and "= 1024" in text
    assert "after the decline, offers come from the other agent: True" in text
    assert "revive brings the refused agent back: True" in text
    assert "widget function said: 81" in text
    assert "widget launch said: from-the-widget" in text
    assert "widget after close: <b>explore</b>: the framework is closed" in text
    assert "submit with the widget open: 5" in text  # the offers it held did not starve it
    assert "offers released to the client: True" in text and "offers come back: True" in text
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
    # each launch shows its agent (hostname:port) and its result once done
    assert re.search(r"on [^<:]+:\d+: TASK_FINISHED → 81", tasks[0]), tasks[0]
    assert "TASK_FINISHED → CommandResult(returncode=0)" in tasks[0]


def test_dashboard():
    run = Run("dashboard.ipynb")
    text = run.text
    assert run.stderr == ""  # no tornado or mesonb log lines in the cells
    assert "agents on the stream: 2" in text
    assert "done: True" in text
    assert "finished on the dashboard: 6" in text
    assert "allocated agrees with the master: True" in text
    assert "memory measured in use: True" in text
    # the six calls and Cluster.local()'s warm-up call, which started the executor
    assert "Running 0" in text and "Finished 7" in text
    height = int(re.search(r"dashboard height for 4 agents: (\d+) px", text)[1])
    assert height <= 600
    assert int(re.search(r"task stream bars: (\d+)", text)[1]) >= 6  # the six calls
    assert "stopped: True" in text
    [dash] = run.widgets(run.cell("dash = cluster.dashboard()"))
    bar, label = one_bar(run, "cluster.map(time.sleep")
    assert (bar["value"], bar["max"], bar["bar_style"]) == (6, 6, "success")
    assert re.fullmatch(r"<code>sleep: 6/6 done in [\d.]+ s, [\d.e+]+ calls/s</code>", label)
    tree = run.tree(dash)
    [title] = [w["value"] for w in tree if w["name"] == "HTMLModel"
               and "mesonb cluster" in w["value"]]
    assert "<small>stopped</small>" in title  # drawn last by stop()
    [counts] = [w["value"] for w in tree if w["name"] == "HTMLModel" and "Finished" in w["value"]]
    assert "Finished <b>7</b>" in counts and "Running <b>0</b>" in counts  # one line
    rows = [w for w in tree if w["name"] == "HBoxModel"]
    names = [w["value"] for w in tree if w["name"] == "LabelModel" and
             re.fullmatch(r".+:\d+", w["value"])]
    assert len(rows) == len(names) == 2  # one row per agent, named hostname:port
    numbers = [w["value"] for w in tree if w["name"] == "LabelModel"
               and w["value"].startswith(("cpus ", "mem "))]
    assert len(numbers) == 4  # cpus and mem per agent
    amount = r"[\d.]+ (MiB|GiB)"
    assert all(re.fullmatch(rf"mem {amount} / {amount} allocated(, {amount} offered)?, "
                            rf"{amount} used", n)
               for n in numbers if n.startswith("mem ")), numbers  # units on every amount
    assert all(" cpus allocated" in n for n in numbers if n.startswith("cpus "))
    bars = run.progress_bars(dash)
    assert len(bars) == 8  # per agent and resource: an allocated and a used bar
    used = [b for b in bars if b["description"] == "used"]
    assert len(used) == 4 and max(b["value"] for b in used) > 0  # measured
    [stream] = [w["value"] for w in tree
                if w["name"] == "HTMLModel" and "task stream" in w["value"]]
    assert stream.count("<rect") >= 6  # the calls, coloured by function
    [queue] = [w["value"] for w in tree if w["name"] == "HTMLModel" and "queue:" in w["value"]]
    assert "queue: empty" in queue
