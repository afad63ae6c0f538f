"""The quickstart notebook runs top to bottom (papers/negrel2025/quickstart.ipynb) and is kept without outputs."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "papers" / "negrel2025" / "quickstart.ipynb"


def test_the_committed_notebook_has_no_outputs():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "strip the outputs before committing"


@pytest.mark.slow   # ~65 s: the whole notebook in a kernel (run with -m slow)
def test_the_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    import importlib.util

    if importlib.util.find_spec("ipykernel") is None:        # not imported here: the kernel is another process
        pytest.skip("ipykernel is not installed")
    monkeypatch.setenv("PHI4SI_PROGRESS", "0")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()                                      # raises CellExecutionError with the failing cell
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "ESS/N" in text and "exact (reweighted)" in text and "raw (model)" in text
    assert (tmp_path / "quickstart_plots" / "compare_hist_m.png").exists()
