"""The one run folder, for both recipes: what a run found, written atomically, and read back.

A run folder holds ``config.yaml``, ``summary.json`` and ``summary.md`` (the run's facts and
verdicts), ``evaluation.csv``/``.md`` (comparison tables), ``deciles.csv``, ``folds.csv``,
``calibration.csv``, ``predictions.parquet`` (held-out rows), ``screen.csv`` (leakage screen),
``global_reasons.csv`` and per head ``gains_<head>.png``, ``calibration_<head>.png``,
``global_reasons_<head>.png``, ``models/<head>.lgb.txt`` (LightGBM's text format),
``scoring_model.joblib`` (what scoring loads), ``test_window.parquet`` (rows a challenger and a
champion can both be scored on, with ``label_<head>``) and the recipe's own tables
(``features.csv`` for accounts, ``scores.csv`` for a table).

The folder is written under a temporary name next to ``run_dir`` and renamed into place at the
end, so an interrupted run never leaves something that looks like a run. The temporary name
holds the writer's host and pid (``.<name>.<host>-<pid>.<random>.partial``): one left by a
killed process on this host is removed by the next write next to it.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import joblib
import pandas as pd
from pydantic import BaseModel

from propensity import faults
from propensity.evaluate import calibration_table, to_markdown
from propensity.io import (
    follow_umask,
    neutralise_formulas,
    write_atomic,
    write_parquet,
    write_text,
)
from propensity.model.screen import ScreenResult
from propensity.outputs.plots import plot_calibration, plot_gains, plot_global_importance
from propensity.outputs.report import ReportInput

if TYPE_CHECKING:
    from propensity.runs.protocol import HeadRun

SCORING_MODEL_FILE = "scoring_model.joblib"
REQUIRED_FILES = ("summary.json", "evaluation.csv", "deciles.csv", SCORING_MODEL_FILE)


class RunFolderError(ValueError):
    """A folder that is not a complete run folder."""


@dataclass
class RunResult:
    """A finished run of either recipe, before it is written anywhere."""

    kind: Literal["account", "table"]
    name: str
    config: BaseModel
    heads: dict[str, HeadRun]
    scoring_model: object  # AccountModel | TableModel
    summary: dict
    markdown: str
    screen: ScreenResult | None = None
    test_window: pd.DataFrame | None = None
    registered_names: dict[str, str] = field(default_factory=dict)
    input_examples: dict[str, pd.DataFrame] = field(default_factory=dict)
    # file name -> extra CSV, or a function making it (so a table is only built when written)
    tables: dict[str, pd.DataFrame | Callable[[], pd.DataFrame]] = field(default_factory=dict)

    def _concat(self, attribute: str) -> pd.DataFrame:
        return pd.concat([getattr(h, attribute) for h in self.heads.values()], ignore_index=True)

    @property
    def predictions(self) -> pd.DataFrame:
        return self._concat("predictions")

    @property
    def evaluation(self) -> pd.DataFrame:
        return self._concat("evaluation")

    @property
    def deciles(self) -> pd.DataFrame:
        return self._concat("deciles")

    @property
    def folds(self) -> pd.DataFrame:
        return self._concat("folds")

    @property
    def importance(self) -> pd.DataFrame:
        return self._concat("importance")

    @property
    def verdicts(self) -> dict[str, str]:
        return {head: run.verdict for head, run in self.heads.items()}


def save_scoring_model(model, folder: Path | str) -> Path:
    """Write an :class:`AccountModel` or :class:`TableModel` as ``scoring_model.joblib``."""
    return write_atomic(Path(folder) / SCORING_MODEL_FILE, lambda p: joblib.dump(model, p))


def load_scoring_model(run_dir: Path | str):
    """The :class:`AccountModel` or :class:`TableModel` of a run folder."""
    path = Path(run_dir) / SCORING_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: is {run_dir} a run folder written by `propensity train` "
            "or `propensity table train`?"
        )
    try:
        return joblib.load(path)
    except (
        AttributeError,
        ImportError,
        ModuleNotFoundError,
        EOFError,
        pickle.UnpicklingError,
    ) as exc:
        # a model pickled by another version of propensity (a class moved or changed), or a
        # truncated file: either way it cannot be used, and retraining is the way out
        raise RunFolderError(
            f"{path} cannot be loaded ({type(exc).__name__}: {exc}): it was written by another "
            "version of propensity or is damaged; train again to get a model this version reads"
        ) from exc


def _csv(frame: pd.DataFrame):
    return lambda path: frame.to_csv(path, index=False)


def _write_head_plots(head: HeadRun, folder: Path) -> None:
    first = head.predictions[head.predictions["repeat"] == 0]
    scorers = {
        name: first[name].to_numpy()
        for name in first.columns
        if name in set(head.evaluation["scorer"]) - {"base_rate"} and first[name].notna().all()
    }
    name = head.head
    write_atomic(
        folder / f"calibration_{name}.png",
        lambda p: plot_calibration(
            first["label"], first["model"], p, f"{name}: calibration (held out)"
        ),
    )
    write_atomic(
        folder / f"gains_{name}.png",
        lambda p: plot_gains(first["label"], scorers, p, f"{name}: cumulative gains (held out)"),
    )
    write_atomic(
        folder / f"global_reasons_{name}.png",
        lambda p: plot_global_importance(head.importance, p),
    )


def folder_summary(result: RunResult) -> dict:
    """What ``summary.json`` holds: the recipe's facts, the kind of run and each head's verdict."""
    summary = {"kind": result.kind, **result.summary, "verdicts": result.verdicts}
    return json.loads(json.dumps(summary, default=str))


def _write_contents(result: RunResult, folder: Path) -> None:
    write_text(result.config.to_yaml(), folder / "config.yaml")
    summary = folder_summary(result)
    write_text(json.dumps(summary, indent=2) + "\n", folder / "summary.json")
    write_text(result.markdown, folder / "summary.md")
    write_atomic(folder / "evaluation.csv", _csv(result.evaluation))
    write_text(to_markdown(result.evaluation), folder / "evaluation.md")
    write_atomic(folder / "deciles.csv", _csv(result.deciles))
    write_atomic(folder / "folds.csv", _csv(result.folds))
    write_parquet(result.predictions, folder / "predictions.parquet")
    calibration = []
    for head in result.heads.values():
        first = head.predictions[head.predictions["repeat"] == 0]
        calibration.append(calibration_table(first["label"], first["model"]).assign(head=head.head))
        _write_head_plots(head, folder)
    write_atomic(folder / "calibration.csv", _csv(pd.concat(calibration, ignore_index=True)))
    write_atomic(folder / "global_reasons.csv", _csv(result.importance))
    if result.screen is not None:
        write_atomic(folder / "screen.csv", _csv(result.screen.table))
    if result.test_window is not None:
        write_parquet(result.test_window, folder / "test_window.parquet")
    for name, table in result.tables.items():  # text a spreadsheet would run stays inert
        frame = table() if callable(table) else table
        write_atomic(folder / name, _csv(neutralise_formulas(frame)))
    models = folder / "models"
    models.mkdir(exist_ok=True)
    for head in result.heads.values():
        booster = head.model.booster_
        write_atomic(models / f"{head.head}.lgb.txt", lambda p, b=booster: b.save_model(str(p)))
    save_scoring_model(result.scoring_model, folder)


def check_run_target(run_dir: Path | str, overwrite: bool = False) -> None:
    """Refuse to write a run over an existing path unless ``overwrite`` (asked before training,
    so a long run never ends by refusing, and a champion's folder is never replaced by accident)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not overwrite:
        kind = "run folder" if (run_dir / SCORING_MODEL_FILE).is_file() else "path"
        raise RunFolderError(
            f"{run_dir} exists (a {kind}): choose another --out, or pass --overwrite to replace it"
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder: choose another --out")


def _staging_prefix(run_dir: Path) -> str:
    return f".{run_dir.name}.{faults.host().replace('.', '_')}-"


def _remove_abandoned_staging(run_dir: Path) -> None:
    """Temporary folders of ``run_dir`` whose writer (on this host) was killed."""
    prefix = _staging_prefix(run_dir)
    for staging in run_dir.parent.glob(f"{glob.escape(prefix)}*.partial"):
        pid = staging.name.removeprefix(prefix).split(".", 1)[0]
        if pid.isdigit() and faults.owner_gone({"host": faults.host(), "pid": pid}):
            shutil.rmtree(staging, ignore_errors=True)


def _report_input(result: RunResult, folder: Path, name: str) -> ReportInput:
    return ReportInput(
        name=name,
        summary=folder_summary(result),
        evaluation=result.evaluation,
        deciles=result.deciles,
        images={path.name: path for path in sorted(folder.glob("*.png"))},
    )


def write_run(
    result: RunResult,
    run_dir: Path | str,
    overwrite: bool = False,
    extra: Callable[[ReportInput, Path], object] | None = None,
) -> ReportInput:
    """Write the run folder (atomically: complete or not at all) and return what a report needs
    (from the run in memory, plus the plots just written). An existing folder is replaced only
    with ``overwrite``. ``extra(report_input, folder)`` writes more files (the report) into the
    folder before it is renamed into place, so they are part of the all-or-nothing."""
    run_dir = Path(run_dir)
    check_run_target(run_dir, overwrite)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(run_dir)
    staging = Path(
        tempfile.mkdtemp(
            prefix=f"{_staging_prefix(run_dir)}{os.getpid()}.",
            suffix=".partial",
            dir=run_dir.parent,
        )
    )
    try:
        _write_contents(result, staging)
        if extra is not None:
            extra(_report_input(result, staging, run_dir.name), staging)
        faults.pause_point("run_folder.written")
        follow_umask(staging)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _report_input(result, run_dir, run_dir.name)


def read_run(run_dir: Path | str) -> ReportInput:
    """A complete run folder's summary, evaluation, deciles and plots (a clear error otherwise)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(
            f"{run_dir} is not a folder: give a run folder written by a train command"
        )
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        raise RunFolderError(
            f"{run_dir} is not a complete run folder (missing {', '.join(missing)}): "
            "train again with `propensity train` or `propensity table train`"
        )
    return ReportInput.from_folder(run_dir)


__all__ = [
    "RunFolderError",
    "RunResult",
    "load_scoring_model",
    "read_run",
    "write_run",
]
