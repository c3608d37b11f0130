"""Execute every notebook in notebooks/ with a real Jupyter kernel and check its outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"


def run(name: str) -> tuple[str, list[dict]]:
    book = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    client = NotebookClient(book, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert not [o for o in outputs if o.output_type == "error"]
    return text, outputs


def html(outputs: list[dict]) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs
                   if o.output_type in ("execute_result", "display_data"))


def widgets(outputs: list[dict]) -> int:
    return sum(WIDGET in o.get("data", {}) for o in outputs
               if o.output_type in ("execute_result", "display_data"))


def test_quickstart():
    text, outputs = run("quickstart.ipynb")
    assert "square(7) = 49" in text
    assert "squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in text
    assert "progress: 10/10 done" in text
    assert "uname: Linux" in text
    assert "agents: 2 cpus dtype: float64" in text
    assert "finished tasks: 12" in text
    assert "closed: True" in text
    page = html(outputs)
    assert "mesonb.Cluster" in page and "mesonb.Future" in page and "finished" in page
    assert "cpus_allocated" in page  # the agents DataFrame as a table
    assert widgets(outputs) >= 2  # progress bars of map/gather and mesonb.progress


def test_interactive_offers():
    text, outputs = run("interactive-offers.ipynb")
    assert "offer from" in text
    assert "pow(2, 10) on" in text and "= 1024" in text
    assert "after the decline, offers come from the other agent: True" in text
    assert "revive brings the refused agent back: True" in text
    assert "widget launch said: from-the-widget" in text
    assert "closed: True" in text
    page = html(outputs)
    assert "mesonb.LaunchedTask" in page and "offer_id" in page
    assert widgets(outputs) >= 1  # the offers widget


def test_dashboard():
    text, outputs = run("dashboard.ipynb")
    assert "agents on the stream: 2" in text
    assert "done: True" in text
    assert "finished on the dashboard: 6" in text
    assert "Running 0" in text and "Finished 6" in text
    assert "stopped: True" in text
    assert widgets(outputs) >= 1  # the dashboard itself
