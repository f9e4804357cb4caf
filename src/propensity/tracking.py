"""MLflow at the edge: one logger for the runs of both recipes, one MLflow model over the scorer,
and the registry life of every model (challenger, champion, promotion gate, rollback).

* Tracking: each run is an MLflow run (experiment ``propensity`` for accounts,
  ``propensity-table`` for tables) with the resolved config, a fingerprint of the input data,
  the split or protocol, seed, package versions and git commit; the comparison table as metrics
  (``<head>.<scorer>.<metric>``); the run folder as artifacts. A run that raises is marked
  FAILED (MLflow's run context does it), never left RUNNING.
* Models: each head is a pyfunc model (:class:`ScoringPyfunc`: rows in, probability / score /
  tier and, with ``params={"reasons": True}``, reasons out) with a signature and an input
  example; the LightGBM booster is stored in its text format next to it.
* Registry: ``propensity-fit``, ``propensity-conversion`` and ``propensity-table-<name>``; a new
  version gets the alias ``challenger`` (see :mod:`propensity.registry` for promotion and
  rollback).
* Default store: :func:`propensity.settings.tracking_uri`.

Safe to run unattended:

* The store fails fast and clearly (:func:`connect` calls
  :func:`propensity.settings.check_store`; a :class:`StoreError`, one line each): a scheme
  MLflow does not support; a tracking server that does not answer its ``/health`` within a few
  seconds (and MLflow's HTTP retries cut from minutes to seconds, see :data:`HTTP_DEFAULTS`,
  unless set in the environment); and, for every command that only reads, a SQLite (or folder)
  store that does not exist ("no store at PATH": nothing is created). Only the commands that
  write a run (``train``, ``table train``, ``tune``, ``demo``) connect with ``create=True``.
* A run is all-or-nothing (:func:`log_run`): owner tagged at start, everything logged, both
  heads registered without an alias, the run ended FINISHED (the commit point), then both
  ``challenger`` aliases moved together. What a killed process leaves, the next command that
  opens the store puts right (:func:`propensity.recovery.recover`, called by :func:`connect`;
  the table of cases is in :mod:`propensity.recovery`). The store's names, tags and lock are in
  :mod:`propensity.store`.
* A degenerate shipped scorer is never ``challenger``: when a head's shipped scorer has
  problems (:func:`propensity.runs.selection.health`: near-constant probabilities, too few trees,
  a top tier far from its share, ranking below the base rate), the run is logged and its
  versions registered for the record, tagged ``blocked`` with the problems, but no alias moves
  (for either head: the two challengers always come from one run). ``force_reason`` (``train
  --force --reason``) overrides, and is tagged ``forced`` on the run and its versions.
* MLflow's own log lines, notices, warnings and "Downloading artifacts" bars are hidden unless
  :func:`propensity.settings.verbose`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from propensity import faults, settings
from propensity.recovery import move_challengers, owned_run, recover, roll_back_quietly
from propensity.runs.folder import SCORING_MODEL_FILE
from propensity.scoring import AccountModel, TableModel
from propensity.store import (
    CHALLENGER,
    CHAMPION,
    EXPERIMENT,
    EXPERIMENTS,
    HTTP_DEFAULTS,
    REGISTERED,
    REGISTRATION_TAG,
    TABLE_EXPERIMENT,
    mlflow_warnings_hidden,
    quiet_mlflow,
    resolve_version,
    store_lock,
    tracking_uri,
)

if TYPE_CHECKING:
    from propensity.runs.folder import RunResult

PACKAGES = (
    "propensity",
    "pandas",
    "numpy",
    "scikit-learn",
    "lightgbm",
    "mlflow",
    "optuna",
    "duckdb",
)


_log = logging.getLogger(__name__)


def connect(
    uri: str | None = None, experiment: str = EXPERIMENT, *, create: bool = False
) -> MlflowClient:
    """Point MLflow (tracking and registry) at the store, after checking it answers.

    ``create``: the store and the experiment may be created (only for commands that write a
    run). Without it a missing store is a :class:`StoreError` ("no store at PATH") and a
    missing experiment is left missing. Either way, runs left behind by killed processes are
    put right first (:func:`recover`).
    """
    uri = tracking_uri(uri)
    quiet_mlflow()
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    settings.check_store(uri, create)
    if create and settings.sqlite_path(uri) is not None:
        settings.sqlite_path(uri).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with mlflow_warnings_hidden(), store_lock(uri) if create else nullcontext():
        client = MlflowClient(uri, uri)
        found = client.get_experiment_by_name(experiment)
        if found is None and create:
            found = _create_experiment(client, uri, experiment)
        if found is not None:
            mlflow.set_experiment(experiment_id=found.experiment_id)
    with mlflow_warnings_hidden():
        recover(client, uri)
    return client


def _create_experiment(client: MlflowClient, uri: str, experiment: str):
    location, database = None, settings.sqlite_path(uri)
    if database is not None:  # keep a local store's artifacts next to its database
        location = (database.parent / "mlartifacts").resolve().as_uri()
    with suppress(mlflow.exceptions.MlflowException):  # another process created it just now
        client.create_experiment(experiment, artifact_location=location)
    return client.get_experiment_by_name(experiment)


def _git_commit() -> str | None:
    """The commit of the working directory's checkout, if it is one (None when installed elsewhere)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat


class ScoringPyfunc(mlflow.pyfunc.PythonModel):
    """One head of a run as an MLflow model: the scoring model's ``predict_frame`` (features for
    an account head, the table's rows for a table model) -> probability, score, tier, version."""

    def __init__(self, head: str):
        self.head = head

    def load_context(self, context) -> None:
        self.scoring = joblib.load(context.artifacts["scoring_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        reasons = bool((params or {}).get("reasons"))
        return self.scoring.predict_frame(model_input, self.head, reasons=reasons)


def evaluation_metrics(evaluation: pd.DataFrame) -> dict[str, float]:
    metrics = {}
    for row in evaluation.to_dict("records"):
        for key, value in row.items():
            if (
                key in ("head", "scorer")
                or value is None
                or (isinstance(value, float) and np.isnan(value))
            ):
                continue
            metrics[f"{row['head']}.{row['scorer']}.{key}"] = float(value)
    return metrics


def _run_params(result: RunResult, data: dict[str, Any]) -> dict[str, Any]:
    params = {f"config.{k}": v for k, v in _flatten(result.config.model_dump(mode="json")).items()}
    params.update({f"data.{k}": v for k, v in _flatten(data).items()})
    facts = result.summary.get("split") or result.summary.get("protocol") or {}
    prefix = "split" if "split" in result.summary else "protocol"
    params.update({f"{prefix}.{k}": v for k, v in facts.items()})
    params["seed"] = getattr(result.config, "seed", None)
    return {k: str(v)[:6000] for k, v in params.items()}


def _run_metrics(result: RunResult) -> dict[str, float]:
    metrics = evaluation_metrics(result.evaluation)
    for head, run in result.heads.items():
        metrics[f"{head}.beats_base_rate"] = float(run.beats_base_rate)
    if result.screen is not None:
        metrics["screen.suspects"] = float(len(result.screen.suspects))
    summary = result.summary
    for key, value in (summary.get("fit_against_truth") or {}).items():
        if key != "accounts":
            metrics[f"fit.truth.{key}"] = value
    if "duplicates" in summary:
        metrics["duplicates.exact_rows"] = float(summary["duplicates"]["exact_duplicate_rows"])
        metrics["duplicates.conflicting_rows"] = float(summary["duplicates"]["conflicting_rows"])
    if "base_rate" in summary:
        metrics["base_rate"] = float(summary["base_rate"])
    for scorer, spread in (summary.get("fold_roc_auc") or {}).items():
        metrics[f"folds.{scorer}.roc_auc_mean"] = spread["mean"]
        if spread["sd"] == spread["sd"]:
            metrics[f"folds.{scorer}.roc_auc_sd"] = spread["sd"]
    return metrics


def _log_head_model(result: RunResult, head: str, run_dir: Path) -> str:
    """Log one head as an MLflow model of the active run (not registered yet); its model URI."""
    example = result.input_examples[head]
    output = result.scoring_model.predict_frame(example, head)
    info = mlflow.pyfunc.log_model(
        name=f"{head}_model",
        python_model=ScoringPyfunc(head),
        artifacts={
            "scoring_model": str(run_dir / SCORING_MODEL_FILE),
            "booster": str(run_dir / "models" / f"{head}.lgb.txt"),
        },
        signature=infer_signature(example, output, params={"reasons": False}),
        input_example=example,
        pip_requirements=[f"{k}=={v}" for k, v in _versions().items() if k != "propensity"],
    )
    return info.model_uri


def _register_head(
    result: RunResult, head: str, model_uri: str, run_id: str, forced: str | None
) -> str:
    """Register a logged head as a new version (no alias yet: see :func:`log_run`)."""
    shipped = result.heads[head].shipped
    tags = {
        "head": head,
        "kind": result.kind,
        "shipped": shipped.kind,
        "model_version": result.scoring_model.scorers[head].version,
        "verdict": result.heads[head].verdict,
        "run_id": run_id,
    }
    if shipped.problems:
        tags["blocked"] = "; ".join(shipped.problems)[:5000]
        if forced:
            tags["forced"] = forced[:5000]
    return str(mlflow.register_model(model_uri, result.registered_names[head], tags=tags).version)


def blocked_heads(result: RunResult) -> dict[str, list[str]]:
    """The heads whose shipped scorer is unfit to register as challenger, with the problems."""
    return {
        head: run.shipped.problems for head, run in result.heads.items() if run.shipped.problems
    }


@dataclass
class LoggedRun:
    run_id: str
    versions: dict[str, str]  # registered model name -> version
    challenger: bool = True  # False: blocked, or a run registered later already holds the alias
    blocked: dict[str, list[str]] = field(default_factory=dict)  # head -> problems
    forced: str | None = None  # the reason a blocked run was made challenger anyway


def log_run(
    result: RunResult,
    run_dir: Path | str,
    data: dict[str, Any],
    uri: str | None = None,
    force_reason: str | None = None,
) -> LoggedRun:
    """Log a finished, written run (config, data, metrics, artifacts, one MLflow model per head),
    register its heads and make both ``challenger``, all or nothing.

    Order: run started (owner tagged) -> everything logged -> both heads registered as new
    versions without an alias -> run ended FINISHED (the commit point) -> both ``challenger``
    aliases moved. A run that raises is marked FAILED and its new versions deleted; a process
    killed on the way is put right by the next command (:func:`recover`), so no alias ever
    points at a version of a run that did not finish. A run with a degenerate shipped scorer
    (:func:`blocked_heads`) is registered but moves no alias, unless ``force_reason``.
    """
    run_dir = Path(run_dir)
    blocked = blocked_heads(result)
    forced = force_reason if blocked else None
    client = connect(uri, EXPERIMENTS[result.kind], create=True)
    uri = tracking_uri(uri)
    label = "train" if result.kind == "account" else "table"
    with mlflow_warnings_hidden(), owned_run(f"{label} {result.name}") as active:
        run_id = active.info.run_id
        faults.pause_point("tracking.started")
        try:
            mlflow.log_params(_run_params(result, data))
            tags = {f"version.{k}": v for k, v in _versions().items()}
            commit = _git_commit()
            if commit:
                tags["git_commit"] = commit
            tags["kind"] = result.kind
            tags["model_version"] = result.summary.get("model_version", "")
            tags.update({f"verdict.{h}": v[:5000] for h, v in result.verdicts.items()})
            mlflow.set_tags(tags)
            mlflow.log_dict(result.config.model_dump(mode="json"), "config.json")
            mlflow.log_dict(data, "data_fingerprint.json")
            if result.screen is not None:
                mlflow.log_table(result.screen.table, "screen.json")
                mlflow.set_tag("screen.suspects", ",".join(result.screen.suspects) or "none")
            mlflow.log_artifacts(str(run_dir), artifact_path="run")
            # the models before the metrics: MLflow links every metric logged so far to each
            # new model with one query per metric (seconds for a few hundred metrics)
            model_uris = {head: _log_head_model(result, head, run_dir) for head in result.heads}
            mlflow.log_metrics(_run_metrics(result))
            faults.pause_point("tracking.logged")
            versions = {
                result.registered_names[head]: _register_head(
                    result, head, model_uri, run_id, forced
                )
                for head, model_uri in model_uris.items()
            }
            registration = "blocked" if blocked and not forced else "pending"
            tags = {"registered_versions": json.dumps(versions), REGISTRATION_TAG: registration}
            if blocked:
                tags["blocked"] = json.dumps(blocked)[:5000]
            if forced:
                tags["forced"] = forced[:5000]
            mlflow.set_tags(tags)
            faults.pause_point("tracking.registered")
        except BaseException:
            roll_back_quietly(client, run_id)
            raise
    if blocked and not forced:
        return LoggedRun(run_id, versions, False, blocked)
    faults.pause_point("tracking.committed")
    moved = move_challengers(client, uri, versions)
    client.set_tag(run_id, REGISTRATION_TAG, "done" if moved else "superseded")
    return LoggedRun(run_id, versions, moved, blocked, forced)


# ---------------------------------------------------------------------------------------------
# loading registered models


def _scoring_model(name: str, version: str):
    with tempfile.TemporaryDirectory() as folder, mlflow_warnings_hidden():
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}/artifacts/{SCORING_MODEL_FILE}",
            dst_path=folder,
        )
        return joblib.load(path)


def load_registered_scoring_model(
    versions: dict[str, str] | None = None, uri: str | None = None
) -> AccountModel:
    """Both account heads from the registry: each head's champion (or an explicit version),
    labelled ``fit:v3:scorecard-sha-...,conversion:v5:sha-...`` (registry version, then the
    shipped scorer's own version, which names a baseline when one ships)."""
    client = connect(uri)
    scorers, spine, features, labels = {}, None, None, []
    for head, name in REGISTERED.items():
        version = resolve_version(client, name, (versions or {}).get(head) or CHAMPION)
        model = _scoring_model(name, version)
        scorers[head] = model.scorers[head]
        spine, features = spine or model.spine, features or model.features
        labels.append(f"{head}:v{version}:{scorers[head].version}")  # which scorer kind ships
    return AccountModel(scorers, spine, features, ",".join(labels))


def load_registered_table_model(
    name: str, version_or_alias: str = CHALLENGER, uri: str | None = None
) -> TableModel:
    """The :class:`propensity.scoring.TableModel` of a registered version (number) or alias."""
    client = connect(uri, TABLE_EXPERIMENT)
    try:
        version = resolve_version(client, name, version_or_alias)
        model = _scoring_model(name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise LookupError(f"registered model {name}@{version_or_alias}: {exc.message}") from None
    model.scorer.version = f"{name}:v{version}:{model.scorer.version}"
    return model


def recent_runs(limit: int = 10, uri: str | None = None, kind: str = "account") -> pd.DataFrame:
    """The latest runs of a recipe with their key metrics, newest first."""
    client = connect(uri, EXPERIMENTS[kind])
    if client.get_experiment_by_name(EXPERIMENTS[kind]) is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENTS[kind]],
        max_results=limit,
        order_by=["attributes.start_time DESC"],
    )
    if runs.empty:
        return runs
    keep = {
        "run_id": "run_id",
        "status": "status",
        "start_time": "start_time",
        "params.data.sha256": "data",
        "params.split.test_start": "test_start",
        "metrics.conversion.model.roc_auc": "conv_auc",
        "metrics.conversion.model.pr_auc": "conv_pr_auc",
        "metrics.conversion.scorecard.roc_auc": "scorecard_auc",
        "metrics.conversion.model.ece": "conv_ece",
        "metrics.fit.model.roc_auc": "fit_auc",
        "metrics.table.model.roc_auc": "table_auc",
        "metrics.table.logistic.roc_auc": "logistic_auc",
        "tags.registered_versions": "versions",
    }
    present = {k: v for k, v in keep.items() if k in runs}
    table = runs[list(present)].rename(columns=present)
    if "data" in table:
        table["data"] = table["data"].str[:10]
    return table


def log_tuning_run(results, config, data: dict[str, Any], uri: str | None = None) -> str:
    """Log a tuning session: one parent run (config, data, best parameters) and one nested run
    per trial."""
    connect(uri, create=True)
    with mlflow_warnings_hidden(), owned_run(f"tune {data.get('source', '')}") as parent:
        mlflow.set_tag("kind", "tune")
        mlflow.log_params(
            {
                "data.sha256": data.get("sha256"),
                "seed": config.seed,
                "tuning.n_trials": config.tuning.n_trials,
                "tuning.n_splits": config.tuning.n_splits,
            }
        )
        mlflow.log_dict(config.model_dump(mode="json"), "tuned_config.json")
        for result in results:
            mlflow.log_metrics(
                {
                    f"{result.head}.baseline_log_loss": result.baseline_log_loss,
                    f"{result.head}.best_log_loss": result.best_log_loss,
                }
            )
            mlflow.log_dict(result.best_params.model_dump(), f"{result.head}_best_params.json")
            for trial in result.trials.to_dict("records"):
                with owned_run(f"{result.head} trial {trial['number']}", nested=True):
                    params = {
                        k.removeprefix("params_"): v
                        for k, v in trial.items()
                        if k.startswith("params_")
                    }
                    mlflow.log_params({**params, "head": result.head, "state": trial["state"]})
                    if trial["value"] == trial["value"]:  # pruned trials report NaN
                        mlflow.log_metric("fold_log_loss", float(trial["value"]))
    return parent.info.run_id
