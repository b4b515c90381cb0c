"""examples/demo.ipynb runs headless, top to bottom, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook group (uv sync) runs the demo")
from nbclient import NotebookClient  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.ipynb"


def test_the_demo_is_committed_without_outputs() -> None:
    notebook = nbformat.read(DEMO, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def test_the_demo_runs_headless(tmp_path: Path) -> None:
    notebook = nbformat.read(DEMO, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(output.get("text", "") for cell in notebook.cells
                   if cell.cell_type == "code" for output in cell.get("outputs", []))
    assert "every read is identical to tifffile's" in text
    assert "read back through xarray + Dask, identical to the original band" in text
    images = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
    assert images, "the figure was not drawn"
