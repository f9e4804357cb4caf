"""The registry life of every registered model, account heads and table models alike.

A new version is ``challenger`` (:func:`propensity.tracking.log_run`). :func:`promote` moves
``champion`` to it only if it passes the pre-declared gate (:class:`PromotionConfig`): better on
``metric`` and top-decile lift not worse by more than ``lift_tolerance``, both models scored on
the challenger's own untouched test rows (its run's ``test_window.parquet``). A run without
untouched rows (a K-fold table run: the final model saw every row) is compared on the
cross-validated figures both runs logged, and the decision says so. ``--force`` overrides the
gate with a logged reason. :func:`rollback` moves ``champion`` back to the previous champion.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient
from pydantic import BaseModel, ConfigDict, Field

from propensity.evaluate import score_metrics
from propensity.tracking import CHALLENGER, CHAMPION, REGISTERED, alias_version, connect

HISTORY_TAG = "champion_history"
ACCOUNT_MODELS = tuple(REGISTERED.values())


class PromotionConfig(BaseModel):
    """The pre-declared gate: better on ``metric``, top-decile lift not worse by more than
    ``lift_tolerance``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str = Field(
        "pr_auc", description="metric the challenger must improve on the same test window"
    )
    lift_tolerance: float = Field(
        0.05, ge=0, le=1, description="allowed relative drop of top-decile lift"
    )


@dataclass
class PromotionDecision:
    name: str  # registered model
    head: str
    challenger: str
    champion: str | None
    comparison: pd.DataFrame
    promoted: bool
    reason: str


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def _head(client: MlflowClient, name: str, version: str) -> str:
    return client.get_model_version(name, version).tags.get("head") or name.removeprefix(
        "propensity-"
    )


def _test_window(client: MlflowClient, name: str, version: str) -> pd.DataFrame | None:
    """The untouched test rows (with ``label_<head>``) of the run that produced a version."""
    run_id = client.get_model_version(name, version).run_id
    artifacts = {f.path for f in client.list_artifacts(run_id, "run")}
    if "run/test_window.parquet" not in artifacts:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="run/test_window.parquet", dst_path=folder
        )
        return pd.read_parquet(path)


def _rescored(name, head, challenger, champion, config, rows) -> pd.DataFrame:
    label = rows[f"label_{head}"].to_numpy()
    group = rows["account_id"] if "account_id" in rows else pd.Series(range(len(rows)))
    dates = rows.get("as_of")
    table = []
    for role, version in (("challenger", challenger), ("champion", champion)):
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        probability = model.predict(rows)["probability"].to_numpy()
        metrics = score_metrics(label, probability, group, dates, n_bootstrap=0, capacity_k=500)
        table.append({"role": role, "version": version, **_figures(metrics, config)})
    return pd.DataFrame(table)


def _logged(client, name, head, challenger, champion, config) -> pd.DataFrame:
    table = []
    for role, version in (("challenger", challenger), ("champion", champion)):
        metrics = client.get_run(client.get_model_version(name, version).run_id).data.metrics
        figures = {m: metrics.get(f"{head}.model.{m}", float("nan")) for m in METRICS_SHOWN}
        table.append({"role": role, "version": version, **_figures(figures, config)})
    return pd.DataFrame(table)


METRICS_SHOWN = ("pr_auc", "roc_auc", "lift_10")


def _figures(metrics: dict, config: PromotionConfig) -> dict:
    return {m: metrics[m] for m in dict.fromkeys((config.metric, "lift_10", "roc_auc"))}


def compare(
    name: str, challenger: str, champion: str, config: PromotionConfig, client: MlflowClient
) -> tuple[pd.DataFrame, str]:
    """Challenger vs champion figures and where they come from."""
    head = _head(client, name, challenger)
    rows = _test_window(client, name, challenger)
    if rows is not None:
        return _rescored(name, head, challenger, champion, config, rows), "challenger's test window"
    return (
        _logged(client, name, head, challenger, champion, config),
        "cross-validated figures of each run (no untouched rows in a K-fold run)",
    )


def promote(
    names: Sequence[str] = ACCOUNT_MODELS,
    *,
    force: bool = False,
    reason: str | None = None,
    config: PromotionConfig | None = None,
    uri: str | None = None,
) -> list[PromotionDecision]:
    """Move ``champion`` to the ``challenger`` of each registered model if it passes the gate
    (or ``force``, which needs a ``reason``)."""
    config = config or PromotionConfig()
    client = connect(uri)
    if force and not reason:
        raise ValueError("--force needs --reason: say why the gate is overridden")
    decisions = []
    for name in names:
        challenger = alias_version(client, name, CHALLENGER)
        if challenger is None:
            raise LookupError(f"registered model {name} has no '{CHALLENGER}' version: train first")
        head = _head(client, name, challenger)
        champion = alias_version(client, name, CHAMPION)
        if champion == challenger:
            decisions.append(
                PromotionDecision(
                    name,
                    head,
                    challenger,
                    champion,
                    pd.DataFrame(),
                    False,
                    "challenger is already the champion",
                )  # fmt: skip
            )
            continue
        comparison = pd.DataFrame()
        if champion is None:
            passed, why = True, "no champion yet"
        else:
            comparison, basis = compare(name, challenger, champion, config, client)
            new, old = comparison.iloc[0], comparison.iloc[1]
            better = new[config.metric] > old[config.metric]
            lift_ok = new["lift_10"] >= old["lift_10"] * (1 - config.lift_tolerance)
            passed = bool(better and lift_ok)
            why = (
                f"{config.metric} {new[config.metric]:.4f} vs {old[config.metric]:.4f}, top-decile "
                f"lift {new['lift_10']:.2f} vs {old['lift_10']:.2f} (tolerance "
                f"{config.lift_tolerance:.0%}), on the {basis}"
            )
        if not passed and force:
            why = f"forced: {reason} ({why})"
        promoted = passed or force
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, challenger)
            client.set_registered_model_tag(
                name, HISTORY_TAG, ",".join([*_history(client, name), challenger])
            )
            client.set_model_version_tag(name, challenger, "promotion_reason", why)
        decisions.append(
            PromotionDecision(name, head, challenger, champion, comparison, promoted, why)
        )
    return decisions


def rollback(
    names: Sequence[str] = ACCOUNT_MODELS, uri: str | None = None
) -> dict[str, tuple[str, str]]:
    """Move ``champion`` back to the previous champion; returns name -> (from, to)."""
    client = connect(uri)
    moved = {}
    for name in names:
        history = _history(client, name)
        if len(history) < 2:
            raise LookupError(f"registered model {name} has no previous champion to roll back to")
        current, previous = history[-1], history[-2]
        client.set_registered_model_alias(name, CHAMPION, previous)
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[:-1]))
        client.set_model_version_tag(name, current, "rolled_back", "true")
        moved[name] = (current, previous)
    return moved
