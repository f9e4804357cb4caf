"""The registry life of every registered model, account heads and table models alike.

A new version is ``challenger`` (:func:`propensity.tracking.log_run`). :func:`promote` moves
``champion`` to it only if it passes the pre-declared gate (:class:`PromotionConfig`), the first
promotion included:

* not worse on ``baseline_metric`` (ROC-AUC, the metric the shipped scorer was chosen on; by
  more than ``baseline_tolerance``) than the baselines of its own run (the logistic baseline
  and, for an account head, the hand-made scorecard) on the same rows: a model that cannot match
  the scorecard it replaces is not promoted;
* when there is a champion: better on ``metric``, top-decile lift not worse by more than
  ``lift_tolerance`` and ``baseline_metric`` not worse by more than ``baseline_tolerance``
  (a PR-AUC a hair better on a few dozen positives must not buy a clearly worse ranking).

Every figure comes from the challenger's own untouched test rows (its run's
``test_window.parquet``, both registered models rescored, the baselines from the run's held-out
predictions on those rows). A run without untouched rows (a K-fold table run: the final model
saw every row) is compared on the cross-validated figures the runs logged, and the decision says
so. ``--force`` overrides the
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
from propensity.store import CHALLENGER, CHAMPION, REGISTERED, alias_version
from propensity.tracking import connect

HISTORY_TAG = "champion_history"
ACCOUNT_MODELS = tuple(REGISTERED.values())


class PromotionConfig(BaseModel):
    """The pre-declared gate: better on ``metric``, top-decile lift not worse by more than
    ``lift_tolerance``, and on ``baseline_metric`` not worse than the run's baselines nor the
    champion by more than ``baseline_tolerance``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str = Field(
        "pr_auc", description="metric the challenger must improve on the same test window"
    )
    lift_tolerance: float = Field(
        0.05, ge=0, le=1, description="allowed relative drop of top-decile lift"
    )
    baseline_metric: str = Field(
        "roc_auc",
        description="metric against the run's own baselines: the one the shipped scorer was "
        "chosen on (ranking, independent of the base rate; PR-AUC on a test window with a few "
        "dozen positives moves by tens of percent between equally good scorers)",
    )
    baseline_tolerance: float = Field(
        0.01,
        ge=0,
        le=1,
        description="allowed shortfall on ``baseline_metric`` (absolute) against a baseline of "
        "the same run or the champion on the same rows (a shipped baseline ties with itself)",
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


def serving_aliases(decisions: Sequence[PromotionDecision]) -> dict[str, str]:
    """Per head, what a first look (the demo, the quickstart) scores with: the champion, or the
    challenger of a head whose first promotion the gate refused (there is no champion to use).
    A scheduled job scores with the champions only."""
    return {
        d.head: CHAMPION if d.promoted or d.champion is not None else CHALLENGER for d in decisions
    }


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def _head(client: MlflowClient, name: str, version: str) -> str:
    return client.get_model_version(name, version).tags.get("head") or name.removeprefix(
        "propensity-"
    )


def _test_window(client: MlflowClient, name: str, version: str) -> pd.DataFrame | None:
    """The untouched test rows (with ``label_<head>``) of the run that produced a version."""
    return _run_artifact(client, name, version, "run/test_window.parquet")


def _rescored(name, head, challenger, champion, config, rows) -> pd.DataFrame:
    label = rows[f"label_{head}"].to_numpy()
    group = rows["account_id"] if "account_id" in rows else pd.Series(range(len(rows)))
    dates = rows.get("as_of")
    table = []
    for role, version in (("challenger", challenger), ("champion", champion)):
        if version is None:
            continue
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        probability = model.predict(rows)["probability"].to_numpy()
        metrics = score_metrics(label, probability, group, dates, n_bootstrap=0, capacity_k=500)
        table.append({"role": role, "version": version, **_figures(metrics, config)})
    return pd.DataFrame(table)


def _logged(client, name, head, challenger, champion, config) -> pd.DataFrame:
    table = []
    for role, version in (("challenger", challenger), ("champion", champion)):
        if version is None:
            continue
        metrics = client.get_run(client.get_model_version(name, version).run_id).data.metrics
        figures = {m: metrics.get(f"{head}.model.{m}", float("nan")) for m in METRICS_SHOWN}
        table.append({"role": role, "version": version, **_figures(figures, config)})
    return pd.DataFrame(table)


METRICS_SHOWN = ("pr_auc", "roc_auc", "lift_10")


def _figures(metrics: dict, config: PromotionConfig) -> dict:
    shown = (config.metric, config.baseline_metric, "lift_10", "roc_auc")
    return {m: metrics[m] for m in dict.fromkeys(shown)}


BASELINES = ("logistic", "scorecard")


def _run_artifact(client: MlflowClient, name: str, version: str, path: str) -> pd.DataFrame | None:
    """A Parquet artifact of the run that produced a version (None when it has none)."""
    run_id = client.get_model_version(name, version).run_id
    artifacts = {f.path for f in client.list_artifacts(run_id, "run")}
    if path not in artifacts:
        return None
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=folder
        )
        return pd.read_parquet(local)


def _baselines_on_test_window(client, name, head, challenger, config) -> list[dict]:
    """The challenger run's baselines on its untouched test rows (its held-out predictions)."""
    predictions = _run_artifact(client, name, challenger, "run/predictions.parquet")
    if predictions is None:
        return []
    rows = predictions[(predictions["head"] == head) & (predictions["repeat"] == 0)]
    group = rows["account_id"] if "account_id" in rows else pd.Series(range(len(rows)))
    table = []
    for scorer in BASELINES:
        if scorer not in rows or rows[scorer].isna().any():
            continue
        metrics = score_metrics(
            rows["label"], rows[scorer], group, rows.get("as_of"), n_bootstrap=0, capacity_k=500
        )
        table.append({"role": scorer, "version": "baseline", **_figures(metrics, config)})
    return table


def _baselines_logged(client, name, head, challenger, config) -> list[dict]:
    metrics = client.get_run(client.get_model_version(name, challenger).run_id).data.metrics
    table = []
    for scorer in BASELINES:
        figures = {m: metrics.get(f"{head}.{scorer}.{m}", float("nan")) for m in METRICS_SHOWN}
        if figures[config.baseline_metric] == figures[config.baseline_metric]:  # logged
            table.append({"role": scorer, "version": "baseline", **_figures(figures, config)})
    return table


def compare(
    name: str, challenger: str, champion: str | None, config: PromotionConfig, client: MlflowClient
) -> tuple[pd.DataFrame, str]:
    """Challenger, champion (if any) and the challenger run's baselines on the same rows, and
    where the figures come from."""
    head = _head(client, name, challenger)
    rows = _test_window(client, name, challenger)
    if rows is not None:
        models = _rescored(name, head, challenger, champion, config, rows)
        baselines = _baselines_on_test_window(client, name, head, challenger, config)
        basis = "challenger's test window"
    else:
        models = _logged(client, name, head, challenger, champion, config)
        baselines = _baselines_logged(client, name, head, challenger, config)
        basis = "cross-validated figures of each run (no untouched rows in a K-fold run)"
    return pd.concat([models, pd.DataFrame(baselines)], ignore_index=True), basis


def gate(comparison: pd.DataFrame, config: PromotionConfig, basis: str) -> tuple[bool, str]:
    """Whether the challenger passes (the module docstring's gate), in one sentence."""
    figures = comparison.set_index("role")
    new = figures.loc["challenger"]
    metric = config.metric
    reasons, passed = [], True
    against = config.baseline_metric
    for baseline in [r for r in figures.index if r in BASELINES]:
        old = figures.loc[baseline]
        ok = bool(new[against] >= old[against] - config.baseline_tolerance - 1e-9)
        passed &= ok
        reasons.append(
            f"{against} {new[against]:.4f} vs {old[against]:.4f} for the {baseline}"
            + ("" if ok else f" (worse by more than {config.baseline_tolerance})")
        )
    if "champion" in figures.index:
        old = figures.loc["champion"]
        better = bool(new[metric] > old[metric])
        lift_ok = bool(new["lift_10"] >= old["lift_10"] * (1 - config.lift_tolerance))
        # a better PR-AUC on a few dozen positives must not buy a worse ranking
        ranks = bool(new[against] >= old[against] - config.baseline_tolerance - 1e-9)
        passed &= better and lift_ok and ranks
        reasons.append(
            f"{metric} {new[metric]:.4f} vs {old[metric]:.4f} for the champion, top-decile lift "
            f"{new['lift_10']:.2f} vs {old['lift_10']:.2f} (tolerance {config.lift_tolerance:.0%}), "
            f"{against} {new[against]:.4f} vs {old[against]:.4f}"
            + ("" if ranks else f" (worse by more than {config.baseline_tolerance})")
        )
    else:
        reasons.append("no champion yet")
    return passed, f"{'; '.join(reasons)}, on the {basis}"


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
        comparison, basis = compare(name, challenger, champion, config, client)
        passed, why = gate(comparison, config, basis)
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
