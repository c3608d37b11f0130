"""notebooks/dataflow.ipynb in a real Jupyter kernel: its word count and group-by run, and
each job's progress shows as a widget bar that ends full."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"
STATE = "application/vnd.jupyter.widget-state+json"


def test_dataflow_notebook():
    book = nbformat.read(ROOT / "notebooks" / "dataflow.ipynb", as_version=4)
    NotebookClient(book, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    cells = [c for c in book.cells if c.cell_type == "code"]
    outputs = [o for c in cells for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [(e.ename, e.evalue) for e in errors]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "dataflow framework registered: True" in text
    assert "distinct words: 6" in text
    assert "most common: offer" in text
    assert "group-by equals pandas: 50 groups" in text
    assert "all succeeded: True" in text
    assert "closed" in text
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs
                   if o.output_type == "execute_result")
    assert "shuffle map" in html and "bytes_written" in html

    # The cell with one action shows one job's bar, full, and its label.
    [count_cell] = [c for c in cells if "counts.count()" in c.source]
    views = [o["data"][WIDGET]["model_id"] for o in count_cell.outputs
             if WIDGET in o.get("data", {})]
    assert len(views) == 1
    states = book.metadata["widgets"][STATE]["state"]
    box = states[views[0]]["state"]
    children = [states[c.removeprefix("IPY_MODEL_")] for c in box["children"]]
    [bar] = [c["state"] for c in children if c["model_name"] == "IntProgressModel"]
    [label] = [c["state"]["value"] for c in children if c["model_name"] == "HTMLModel"]
    assert bar["value"] == bar["max"] == 6 + 4  # 6 map tasks (a file each), 2 x 2 reduce
    assert "succeeded" in label and "count" in label
