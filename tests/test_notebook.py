"""notebooks/drift_zoo.ipynb runs headless, start to finish, at a tiny budget."""

from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "drift_zoo.ipynb"


def test_drift_zoo_notebook_runs(monkeypatch):
    monkeypatch.setenv("PGJAX_NOTEBOOK_STEPS", "4096")  # two updates of each algorithm
    monkeypatch.setenv("PGJAX_NOTEBOOK_SEEDS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 3
    table = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    for name in ("ppo", "spo", "dpo", "mdpo", "lpo", "talpo", "mirror: my_drift"):
        assert f"\n{name} " in table
