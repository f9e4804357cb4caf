"""MLflow at the edge: runs, models in the registry, champion/challenger promotion, rollback.

* Tracking: each training run is an MLflow run with the resolved config, a fingerprint of the
  input tables, the split dates, seed, package versions and git commit; the comparison table as
  metrics (``<head>.<scorer>.<metric>``); the run folder as artifacts. A run that raises is
  marked FAILED (MLflow's run context does it), never left RUNNING.
* Models: each head is a pyfunc model (``predict(features)`` -> probability, score, tier and,
  with ``params={"reasons": True}``, reasons) with a signature and an input example; the
  LightGBM booster is stored in its text format next to it.
* Registry: ``propensity-fit`` and ``propensity-conversion``; a new version gets the alias
  ``challenger``; :func:`promote` moves ``champion`` to it only if it beats the champion on the
  challenger's own test window (both models scored on the same rows); :func:`rollback` moves
  ``champion`` back to the previous champion.
* Default store: SQLite in ``models/mlflow.db`` (artifacts in ``models/mlartifacts``) unless
  ``MLFLOW_TRACKING_URI`` or an explicit URI points elsewhere (e.g. an ``mlflow server``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from pydantic import BaseModel, ConfigDict, Field

from propensity import settings
from propensity.data.contract import Tables
from propensity.evaluate import score_metrics

EXPERIMENT = "propensity"
REGISTERED = {"fit": "propensity-fit", "conversion": "propensity-conversion"}
CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"
PACKAGES = (
    "propensity",
    "pandas",
    "numpy",
    "scikit-learn",
    "lightgbm",
    "shap",
    "mlflow",
    "optuna",
    "duckdb",
)


class PromotionConfig(BaseModel):
    """The pre-declared gate: better on ``metric``, top-decile lift not worse by more than ``lift_tolerance``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str = Field(
        "pr_auc", description="metric the challenger must improve on the same test window"
    )
    lift_tolerance: float = Field(
        0.05, ge=0, le=1, description="allowed relative drop of top-decile lift"
    )


def tracking_uri(explicit: str | None = None) -> str:
    """The store to use: explicit > $MLFLOW_TRACKING_URI > SQLite in <workdir>/models/mlflow.db."""
    return settings.tracking_uri(explicit)


def connect(uri: str | None = None, experiment: str = EXPERIMENT) -> MlflowClient:
    """Point MLflow (tracking and registry) at the store and make sure the experiment exists."""
    uri = tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    if client.get_experiment_by_name(experiment) is None:
        location = None
        if uri.startswith("sqlite:///"):  # keep a local store's artifacts next to its database
            location = (
                (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
            )
        client.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return client


def data_fingerprint(tables: Tables) -> dict[str, Any]:
    """Content hash of every input table (row order does not matter), row counts, dates, families."""
    from propensity.data.contract import FAMILY_TABLES
    from propensity.spine import data_end, data_start

    digest = hashlib.sha256()
    rows = {}
    for name in tables.present():
        frame = tables.get(name)
        rows[name] = len(frame)
        hashed = np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy())
        digest.update(name.encode())
        digest.update(
            json.dumps([f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()]).encode()
        )
        digest.update(hashed.tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": rows,
        "date_start": str(data_start(tables).date()),
        "date_end": str(data_end(tables).date()),
        "families": [f for f, t in FAMILY_TABLES.items() if tables.get(t) is not None],
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
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


class HeadPyfunc(mlflow.pyfunc.PythonModel):
    """One head as an MLflow model: features in, probability / score / tier (and reasons) out."""

    def __init__(self, head: str):
        self.head = head

    def load_context(self, context) -> None:
        self.scoring = joblib.load(context.artifacts["scoring_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        from propensity.explain import explain
        from propensity.scoring import to_score, to_tier

        fitted = self.scoring.heads[self.head]
        calibration = self.scoring.calibration[self.head]
        probability = fitted.model.predict_proba(model_input)[:, 1]
        out = pd.DataFrame(index=model_input.index)
        for key in ("account_id", "as_of"):
            if key in model_input:
                out[key] = model_input[key]
        out["probability"] = probability
        out["score"] = to_score(probability, calibration)
        out["tier"] = to_tier(probability, calibration)
        out["model_version"] = self.scoring.version
        if (params or {}).get("reasons"):
            specs = [
                s for s in self.scoring.specs if s.name in fitted.features or s.kind == "context"
            ]
            reasons = explain(fitted.model, model_input, specs)
            out["reasons"] = reasons["reasons"]
            out["reasons_json"] = reasons["reasons_json"]
        return out.reset_index(drop=True)


@dataclass
class LoggedRun:
    run_id: str
    versions: dict[str, str]  # head -> registered version


def log_training_run(
    outputs, run_dir: Path, tables: Tables, data_dir: Path | str, uri: str | None = None
) -> LoggedRun:
    """Log a finished training run (config, data, metrics, artifacts, models) and register both heads."""
    from propensity.scoring import scoring_model

    client = connect(uri)
    result = outputs.result
    config = result.config
    fingerprint = data_fingerprint(tables)
    with mlflow.start_run(run_name=f"train {Path(data_dir).name}") as run:
        params = {f"config.{k}": v for k, v in _flatten(config.model_dump(mode="json")).items()}
        params.update(
            {
                "data.sha256": fingerprint["sha256"],
                "data.folder": str(data_dir),
                "data.date_start": fingerprint["date_start"],
                "data.date_end": fingerprint["date_end"],
                "data.families": ",".join(fingerprint["families"]),
                "seed": config.seed,
            }
        )
        params.update({f"data.rows.{k}": v for k, v in fingerprint["rows"].items()})
        params.update({f"split.{k}": v for k, v in result.split.describe().items()})
        mlflow.log_params(params)
        tags = {f"version.{k}": v for k, v in _versions().items()}
        commit = _git_commit()
        if commit:
            tags["git_commit"] = commit
        mlflow.set_tags(tags)
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        mlflow.log_dict(fingerprint, "data_fingerprint.json")
        mlflow.log_metrics(evaluation_metrics(outputs.evaluation))
        if outputs.screen is not None:
            mlflow.log_table(outputs.screen.table, "screen.json")
            mlflow.log_metric("screen.suspects", float(len(outputs.screen.suspects)))
            mlflow.set_tag("screen.suspects", ",".join(outputs.screen.suspects) or "none")
        if outputs.fit_truth:
            mlflow.log_metrics(
                {f"fit.truth.{k}": v for k, v in outputs.fit_truth.items() if k != "accounts"}
            )
        mlflow.log_artifacts(str(run_dir), artifact_path="run")
        versions = {}
        scoring = scoring_model(result)
        test = result.data.loc[result.split.test]
        for head, fitted in result.heads.items():
            example = _input_example(test[fitted.features])
            pyfunc = HeadPyfunc(head)
            output = pd.DataFrame(
                {"probability": [0.5], "score": [50], "tier": ["x"], "model_version": ["v"]}
            )
            signature = infer_signature(example, output, params={"reasons": False})
            info = mlflow.pyfunc.log_model(
                name=f"{head}_model",
                python_model=pyfunc,
                artifacts={
                    "scoring_model": str(run_dir / "scoring_model.joblib"),
                    "booster": str(run_dir / "models" / f"{head}.lgb.txt"),
                },
                signature=signature,
                input_example=example,
                pip_requirements=[f"{k}=={v}" for k, v in _versions().items() if k != "propensity"],
                registered_model_name=REGISTERED[head],
            )
            version = str(info.registered_model_version)
            client.set_registered_model_alias(REGISTERED[head], CHALLENGER, version)
            client.set_model_version_tag(
                REGISTERED[head], version, "model_version", scoring.version
            )
            versions[head] = version
        mlflow.set_tag("registered_versions", json.dumps(versions))
    return LoggedRun(run.info.run_id, versions)


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


def _input_example(features: pd.DataFrame) -> pd.DataFrame:
    """Rows with the most filled-in values (so every column's type is visible)."""
    filled = features.notna().sum(axis=1).sort_values(ascending=False, kind="stable")
    return features.loc[filled.index[:5]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# registry: promote, rollback, load


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


@dataclass
class PromotionDecision:
    head: str
    challenger: str
    champion: str | None
    comparison: pd.DataFrame
    promoted: bool
    reason: str


def _test_window(client: MlflowClient, name: str, version: str) -> pd.DataFrame:
    """The test rows (features + labels) of the run that produced a model version."""
    run_id = client.get_model_version(name, version).run_id
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="run/test_window.parquet", dst_path=folder
        )
        return pd.read_parquet(path)


def compare_on_test_window(
    head: str, challenger: str, champion: str, config: PromotionConfig, client: MlflowClient
) -> pd.DataFrame:
    name = REGISTERED[head]
    rows = _test_window(client, name, challenger)
    label = rows[f"label_{head}"].to_numpy()
    table = []
    for role, version in (("challenger", challenger), ("champion", champion)):
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        probability = model.predict(rows)["probability"].to_numpy()
        metrics = score_metrics(
            label, probability, rows["account_id"], rows["as_of"], n_bootstrap=0, capacity_k=500
        )
        table.append(
            {
                "role": role,
                "version": version,
                config.metric: metrics[config.metric],
                "lift_10": metrics["lift_10"],
                "roc_auc": metrics["roc_auc"],
            }
        )
    return pd.DataFrame(table)


def promote(
    heads=("fit", "conversion"),
    *,
    force: bool = False,
    reason: str | None = None,
    config: PromotionConfig | None = None,
    uri: str | None = None,
) -> list[PromotionDecision]:
    """Move ``champion`` to the ``challenger`` of each head if it passes the gate (or ``force``)."""
    config = config or PromotionConfig()
    client = connect(uri)
    decisions = []
    for head in heads:
        name = REGISTERED[head]
        challenger = _alias_version(client, name, CHALLENGER)
        if challenger is None:
            raise LookupError(f"registered model {name} has no '{CHALLENGER}' version: train first")
        champion = _alias_version(client, name, CHAMPION)
        if champion == challenger:
            decisions.append(
                PromotionDecision(
                    head,
                    challenger,
                    champion,
                    pd.DataFrame(),
                    False,
                    "challenger is already the champion",
                )
            )
            continue
        comparison = pd.DataFrame()
        if champion is None:
            passed, why = True, "no champion yet"
        else:
            comparison = compare_on_test_window(head, challenger, champion, config, client)
            new, old = comparison.iloc[0], comparison.iloc[1]
            better = new[config.metric] > old[config.metric]
            lift_ok = new["lift_10"] >= old["lift_10"] * (1 - config.lift_tolerance)
            passed = bool(better and lift_ok)
            why = (
                f"{config.metric} {new[config.metric]:.4f} vs {old[config.metric]:.4f}, top-decile lift "
                f"{new['lift_10']:.2f} vs {old['lift_10']:.2f} (tolerance {config.lift_tolerance:.0%})"
            )
        if not passed and force:
            if not reason:
                raise ValueError("--force needs --reason: say why the gate is overridden")
            why = f"forced: {reason} ({why})"
        promoted = passed or force
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, challenger)
            history = [*_history(client, name), challenger]
            client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
            client.set_model_version_tag(name, challenger, "promotion_reason", why)
        decisions.append(PromotionDecision(head, challenger, champion, comparison, promoted, why))
    return decisions


def rollback(heads=("fit", "conversion"), uri: str | None = None) -> dict[str, tuple[str, str]]:
    """Move ``champion`` back to the previous champion; returns head -> (from, to)."""
    client = connect(uri)
    moved = {}
    for head in heads:
        name = REGISTERED[head]
        history = _history(client, name)
        if len(history) < 2:
            raise LookupError(f"registered model {name} has no previous champion to roll back to")
        current, previous = history[-1], history[-2]
        client.set_registered_model_alias(name, CHAMPION, previous)
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[:-1]))
        client.set_model_version_tag(name, current, "rolled_back", "true")
        moved[head] = (current, previous)
    return moved


def load_registered_scoring_model(versions: dict[str, str] | None = None, uri: str | None = None):
    """A ScoringModel assembled from the registry: each head's champion (or an explicit version)."""
    from propensity.scoring import ScoringModel

    client = connect(uri)
    heads, calibration, specs, config, labels = {}, {}, None, None, []
    for head, name in REGISTERED.items():
        version = (versions or {}).get(head) or _alias_version(client, name, CHAMPION)
        if version is None:
            raise LookupError(
                f"registered model {name} has no '{CHAMPION}': run `propensity promote` first"
            )
        with tempfile.TemporaryDirectory() as folder:
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}/artifacts/scoring_model.joblib",
                dst_path=folder,
            )
            scoring = joblib.load(path)
        heads[head] = scoring.heads[head]
        calibration[head] = scoring.calibration[head]
        specs, config = specs or scoring.specs, config or scoring.config
        labels.append(f"{head}:v{version}")
    return ScoringModel(heads, calibration, specs, config, ",".join(labels))


def recent_runs(limit: int = 10, uri: str | None = None) -> pd.DataFrame:
    connect(uri)
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT], max_results=limit, order_by=["attributes.start_time DESC"]
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
        "tags.registered_versions": "versions",
    }
    present = {k: v for k, v in keep.items() if k in runs}
    table = runs[list(present)].rename(columns=present)
    if "data" in table:
        table["data"] = table["data"].str[:10]
    return table


def log_tuning_run(
    results, config, tables: Tables, data_dir: Path | str, uri: str | None = None
) -> str:
    """Log a tuning session: one parent run (config, data, best parameters) and one nested run per trial."""
    connect(uri)
    fingerprint = data_fingerprint(tables)
    with mlflow.start_run(run_name=f"tune {Path(data_dir).name}") as parent:
        mlflow.set_tag("kind", "tune")
        mlflow.log_params(
            {
                "data.sha256": fingerprint["sha256"],
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
                with mlflow.start_run(
                    run_name=f"{result.head} trial {trial['number']}", nested=True
                ):
                    params = {
                        k.removeprefix("params_"): v
                        for k, v in trial.items()
                        if k.startswith("params_")
                    }
                    mlflow.log_params({**params, "head": result.head, "state": trial["state"]})
                    if (
                        trial["value"] == trial["value"]
                    ):  # not NaN (pruned trials report their last value)
                        mlflow.log_metric("fold_log_loss", float(trial["value"]))
    return parent.info.run_id


# ---------------------------------------------------------------------------------------------
# table mode

TABLE_EXPERIMENT = "propensity-table"


def table_fingerprint(frame: pd.DataFrame) -> dict[str, Any]:
    """Content hash of a table (row order does not matter), its rows and columns."""
    digest = hashlib.sha256()
    digest.update(json.dumps([f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()]).encode())
    digest.update(np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    return {"sha256": digest.hexdigest(), "rows": len(frame), "columns": len(frame.columns)}


class TablePyfunc(mlflow.pyfunc.PythonModel):
    """A table model as an MLflow model: the table's rows in, probability/score/tier (and reasons) out."""

    def load_context(self, context) -> None:
        self.table_model = joblib.load(context.artifacts["table_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        reasons = bool((params or {}).get("reasons"))
        scored = self.table_model.score(model_input, reasons=reasons)
        return scored.drop(columns=["outcome"], errors="ignore")


def registered_table_name(run, table_path: Path | str | None) -> str:
    """``config.model_name`` or ``propensity-table-<table file stem>``."""
    if run.config.model_name:
        return run.config.model_name
    stem = Path(table_path).stem if table_path else run.prepared.name
    return "propensity-table-" + "".join(ch if ch.isalnum() else "-" for ch in stem.lower())


def log_table_run(
    run, run_dir: Path, frame: pd.DataFrame, table_path: Path | str | None, uri: str | None = None
) -> LoggedRun:
    """Log a table-mode run (config, data fingerprint, screen, metrics, artifacts) and register its model."""
    from propensity.runs.table import summary as table_summary

    client = connect(uri, TABLE_EXPERIMENT)
    name = registered_table_name(run, table_path)
    facts = table_summary(run)
    fingerprint = table_fingerprint(frame)
    with mlflow.start_run(run_name=f"table {run.prepared.name}") as active:
        params = {f"config.{k}": v for k, v in _flatten(run.config.model_dump(mode="json")).items()}
        params.update({f"protocol.{k}": v for k, v in run.protocol.items()})
        params.update(
            {
                "data.sha256": fingerprint["sha256"],
                "data.rows": fingerprint["rows"],
                "data.columns": fingerprint["columns"],
                "data.path": str(table_path) if table_path else "",
                "features": len(run.columns),
                "suspects": ",".join(run.screen.suspects),
            }
        )
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        tags = {f"version.{k}": v for k, v in _versions().items()}
        commit = _git_commit()
        if commit:
            tags["git_commit"] = commit
        tags.update({"kind": "table", "verdict": run.verdict, "model_version": run.final.version})
        mlflow.set_tags(tags)
        mlflow.log_dict(run.config.model_dump(mode="json"), "config.json")
        mlflow.log_table(run.screen.table, "screen.json")
        metrics = {
            f"table.{row['scorer']}.{key}": float(value)
            for row in run.evaluation.to_dict("records")
            for key, value in row.items()
            if key not in ("head", "scorer") and value is not None and value == value
        }
        metrics.update(
            {
                "beats_base_rate": float(run.beats_base_rate),
                "screen.suspects": float(len(run.screen.suspects)),
                "duplicates.exact_rows": float(run.duplicates["exact_duplicate_rows"]),
                "duplicates.conflicting_rows": float(run.duplicates["conflicting_rows"]),
                "base_rate": facts["base_rate"],
            }
        )
        for scorer, spread in facts["fold_roc_auc"].items():
            metrics[f"folds.{scorer}.roc_auc_mean"] = spread["mean"]
            if spread["sd"] == spread["sd"]:
                metrics[f"folds.{scorer}.roc_auc_sd"] = spread["sd"]
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(run_dir), artifact_path="run")
        dated = any(kind == "date" for kind in run.final.kinds.values())
        needed = [run.config.id_column, *run.columns]
        if dated and run.config.time_column:  # dates are measured from the row's time
            needed.append(run.config.time_column)
        example = _input_example(frame[needed])
        output = pd.DataFrame(
            {
                "rank": [1],
                "id": ["x"],
                "probability": [0.5],
                "score": [50],
                "tier": ["A"],
                "model_version": ["v"],
            }
        )
        info = mlflow.pyfunc.log_model(
            name="table_model",
            python_model=TablePyfunc(),
            artifacts={
                "table_model": str(run_dir / "table_model.joblib"),
                "booster": str(run_dir / "model.lgb.txt"),
            },
            signature=infer_signature(example, output, params={"reasons": False}),
            input_example=example,
            pip_requirements=[f"{k}=={v}" for k, v in _versions().items() if k != "propensity"],
            registered_model_name=name,
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, CHALLENGER, version)
        client.set_model_version_tag(name, version, "model_version", run.final.version)
        client.set_model_version_tag(name, version, "verdict", run.verdict)
        mlflow.set_tag("registered_versions", json.dumps({name: version}))
    return LoggedRun(active.info.run_id, {name: version})


def load_registered_table_model(
    name: str, version_or_alias: str = CHALLENGER, uri: str | None = None
):
    """The :class:`propensity.runs.table.TableModel` of a registered version (number) or alias."""
    client = connect(uri, TABLE_EXPERIMENT)
    if version_or_alias.isdigit():
        version = client.get_model_version(name, version_or_alias)
    else:
        version = client.get_model_version_by_alias(name, version_or_alias)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path="run/table_model.joblib", dst_path=folder
        )
        model = joblib.load(path)
    model.version = f"{name}:v{version.version}:{model.version}"
    return model
