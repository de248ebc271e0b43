"""The meta-learning notebooks (notebooks/discover_drift.ipynb, notebooks/temporal_drift.ipynb)
run headless, start to finish, at their tiny budget (PGJAX_NOTEBOOK_BUDGET=tiny).

Each notebook is executed in memory; the committed file (with its full-budget outputs) is never
written. The kernel is this interpreter (jupyter_client runs the ``python3`` kernel with
``sys.executable``) and imports the pgjax of this checkout (PYTHONPATH)."""

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # the quick subset (-m "not slow") leaves this file out

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    # notebook → (figures it draws, text its output must contain)
    "discover_drift.ipynb": (4, ("learned LPO", "CartPole-v1", "Catch-bsuite", "min D =")),
    "temporal_drift.ipynb": (4, ("learned TA-LPO", "CartPole-v1", "Catch-bsuite", "mean |D(n/N = 1)")),
}


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_meta_notebook_runs_at_tiny_budget(name, tmp_path, monkeypatch):
    figures, texts = NOTEBOOKS[name]
    path = ROOT / "notebooks" / name
    before = path.read_bytes()
    monkeypatch.setenv("PGJAX_NOTEBOOK_BUDGET", "tiny")
    monkeypatch.setenv("PGJAX_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert path.read_bytes() == before  # the committed full-budget outputs are untouched
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]
    assert sum("image/png" in out.get("data", {}) for out in outputs) == figures
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "budget 'tiny'" in text
    for expected in texts:
        assert expected in text
    assert (tmp_path / "meta" / "mean.npz").exists()
    assert (tmp_path / "eval" / "final.csv").exists()
