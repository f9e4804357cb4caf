"""Every notebook in notebooks/ runs top to bottom, and is committed without outputs.

To keep the suite fast the quickstart runs on a smaller world, and both notebooks run with
``PROPENSITY_NOTEBOOK_FAST=1`` (fewer bootstrap draws; 3 folds instead of 5 for K-fold). The
bring-your-own-data notebook reads the real public exports from the shared data folder at run time
(never from the repository), so it is skipped when that folder is absent. The kernel runs in a
temporary folder, so the real-data folder is passed to it as an absolute path.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from propensity.data.adapters import SOURCES, real_data_available
from propensity.runs.folder import SCORING_MODEL_FILE
from propensity.settings import REAL_DATA_ENV, real_data_dir

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
REAL_DATA = real_data_dir().resolve()  # from the test's working directory, not the kernel's
REAL_DATA_PRESENT = all(real_data_available(name, REAL_DATA) for name in SOURCES)


def _params():
    for path in NOTEBOOK_PATHS:
        marks = [pytest.mark.slow(seconds=45 if path.name.startswith("02") else 36)]
        if path.name == "02_bring_your_own_data.ipynb":
            marks.append(
                pytest.mark.skipif(
                    not REAL_DATA_PRESENT,
                    reason=f"real data for {', '.join(SOURCES)} not found under {REAL_DATA} "
                    f"(set {REAL_DATA_ENV} to the folder holding the exports)",
                )
            )
        yield pytest.param(path, id=path.stem, marks=marks)


def _check_quickstart(workdir: Path) -> None:
    assert (workdir / "target_list.csv").exists()
    assert os.path.getsize(workdir / "target_list.csv") > 0
    for name in ("summary.json", "report.html", SCORING_MODEL_FILE):
        assert (workdir / "run" / name).is_file(), name
    assert (workdir / "mlflow.db").is_file()


def _check_bring_your_own_data(workdir: Path) -> None:
    run_dir = workdir / "x_education_run"
    for name in ("summary.json", "screen.csv", "scores.csv", SCORING_MODEL_FILE):
        assert (run_dir / name).is_file(), name
    assert (workdir / "mlflow.db").is_file()


FAST = {"PROPENSITY_NOTEBOOK_FAST": "1"}
# notebook file name -> (environment for the kernel, check of what it wrote to the workdir)
SETUP = {
    "01_quickstart.ipynb": ({**FAST, "PROPENSITY_NOTEBOOK_ACCOUNTS": "2000"}, _check_quickstart),
    "02_bring_your_own_data.ipynb": (
        {**FAST, REAL_DATA_ENV: str(REAL_DATA)},
        _check_bring_your_own_data,
    ),
}


def test_setup_names_existing_notebooks():
    assert {p.name for p in NOTEBOOK_PATHS} >= set(SETUP)


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    stored = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not stored, (
        f"{path.name}: cells {stored} have stored outputs; clear them before committing"
    )


@pytest.mark.parametrize("path", list(_params()))
def test_notebook_executes(path, tmp_path, monkeypatch):
    env, check = SETUP.get(path.name, ({}, None))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PROPENSITY_NOTEBOOK_WORKDIR", str(tmp_path))
    notebook = nbformat.read(path, as_version=4)
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
    if check:
        check(tmp_path)
