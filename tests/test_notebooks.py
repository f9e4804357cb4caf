"""The notebooks run top to bottom (the quickstart on a smaller world, to keep the suite fast)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("PROPENSITY_NOTEBOOK_ACCOUNTS", "3000")
    monkeypatch.setenv("PROPENSITY_NOTEBOOK_WORKDIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOKS / "01_quickstart.ipynb", as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert (tmp_path / "target_list.csv").exists()
    assert os.path.getsize(tmp_path / "target_list.csv") > 0
