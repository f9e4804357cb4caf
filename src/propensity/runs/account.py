"""The training run, wired in one place: tables -> spine + labels -> features -> heads ->
test predictions (model, scorecard, logistic, oracle) -> comparison table -> run folder.

Every stage is a plain function of its own module; this module only chains them and writes
the outputs (atomically) into ``RUN_DIR``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from propensity.data.contract import Tables
from propensity.evaluate import (
    calibration_table,
    comparison_table,
    decile_table,
    to_markdown,
)
from propensity.explain import global_importance
from propensity.features import FeatureSet, build_features
from propensity.io import write_atomic, write_parquet, write_text
from propensity.model.config import ModelConfig
from propensity.model.head import HeadModel, InsufficientDataError, logistic_baseline
from propensity.model.scorecard import Scorecard
from propensity.model.screen import ScreenResult, screen
from propensity.model.splits import OutOfTimeSplit, out_of_time_split
from propensity.outputs.plots import plot_calibration, plot_gains, plot_global_importance
from propensity.scoring import scoring_model
from propensity.spine import build_labels, build_spine

log = logging.getLogger(__name__)
HEADS = ("fit", "conversion")

# ---------------------------------------------------------------------------------------------
# both heads on a labelled feature matrix


@dataclass
class HeadResult:
    head: str
    model: HeadModel
    logistic: Pipeline
    features: list[str]
    train_positives: int
    train_rows: int


@dataclass
class TrainResult:
    config: ModelConfig
    split: OutOfTimeSplit
    heads: dict[str, HeadResult]
    data: pd.DataFrame  # the labelled matrix the split masks refer to
    feature_set: FeatureSet
    notes: list[str] = field(default_factory=list)


def head_labels(data: pd.DataFrame, split: OutOfTimeSplit, head: str) -> np.ndarray:
    """0/1 labels of a head for the rows of ``data`` (fit labels censored at the test start for fitting)."""
    if head == "conversion":
        return data["conversion_label"].fillna(False).astype(int).to_numpy()
    won_at = data["won_at"]
    fitted_part = split.train | split.valid
    censored = won_at.notna() & (won_at < split.t2)
    return np.where(fitted_part, censored, won_at.notna()).astype(int)


def head_features(feature_set: FeatureSet, head: str) -> list[str]:
    if head == "fit":
        return feature_set.family_columns("firmographic")
    return feature_set.model_columns


def check_positives(
    head: str, positives: int, config: ModelConfig, split: OutOfTimeSplit, first_date
) -> None:
    if positives < config.min_positives:
        advice = (
            "use a longer history (more snapshots before the validation window)"
            if head == "fit"
            else "use a longer history, a longer horizon_days, or train the fit-only model"
        )
        raise InsufficientDataError(
            f"head '{head}': only {positives} positive labels in the training window "
            f"({pd.Timestamp(first_date).date()}..{split.t1.date()}); at least {config.min_positives} "
            f"are needed (min_positives). {advice[0].upper() + advice[1:]}."
        )


def labelled_matrix(feature_set: FeatureSet, labels: pd.DataFrame) -> pd.DataFrame:
    """The feature matrix with its labels alongside (both built from the same spine, row-aligned)."""
    matrix = feature_set.matrix
    if (
        len(matrix) != len(labels)
        or not (matrix["account_id"].to_numpy() == labels["account_id"].to_numpy()).all()
    ):
        raise ValueError(
            "labels are not row-aligned with the feature matrix (build both from the same spine)"
        )
    return pd.concat(
        [matrix, labels.drop(columns=["account_id", "as_of"]).reset_index(drop=True)], axis=1
    )


def train_heads(
    feature_set: FeatureSet,
    labels: pd.DataFrame,
    config: ModelConfig,
    heads: tuple[str, ...] = HEADS,
) -> TrainResult:
    """Fit both heads (and their logistic baselines) on the out-of-time split of a labelled matrix.

    ``labels`` must be row-aligned with ``feature_set.matrix`` (same spine).
    """
    data = labelled_matrix(feature_set, labels)
    split = out_of_time_split(
        data["as_of"], data["label_complete"], config.split, config.spine.horizon_days
    )
    results: dict[str, HeadResult] = {}
    categorical = set(feature_set.categorical_columns)
    for head in heads:
        columns = head_features(feature_set, head)
        y = head_labels(data, split, head)
        positives = int(y[split.train].sum())
        check_positives(head, positives, config, split, data.loc[split.train, "as_of"].min())
        params = config.fit if head == "fit" else config.conversion
        model = HeadModel(
            features=columns,
            categorical=[c for c in columns if c in categorical],
            params=params,
            calibration_methods=config.calibration_methods,
            negative_sample_rate=config.negative_sample_rate,
            seed=config.seed,
            n_jobs=config.n_jobs,
        )
        valid_frame = data.loc[split.valid, [*columns, "account_id"]]
        model.fit(
            data.loc[split.train, columns], y[split.train], eval_set=(valid_frame, y[split.valid])
        )
        numeric = [c for c in columns if c not in categorical]
        logistic = logistic_baseline(numeric, [c for c in columns if c in categorical], config.seed)
        logistic.fit(data.loc[split.train, columns], y[split.train])
        log.info(
            "head %s: %d trees, calibration %s",
            head,
            model.best_iteration_,
            model.calibration_method_,
        )
        results[head] = HeadResult(
            head, model, logistic, columns, positives, int(split.train.sum())
        )
    return TrainResult(config, split, results, data, feature_set)


SCORERS = ("model", "scorecard", "logistic", "oracle")
PROBABILITY_SCORERS = {"model", "logistic", "oracle"}


@dataclass
class RunOutputs:
    result: TrainResult
    predictions: pd.DataFrame
    evaluation: pd.DataFrame
    deciles: pd.DataFrame
    fit_truth: dict | None
    timings: dict[str, float]
    screen: ScreenResult | None = None


def test_predictions(
    result: TrainResult, scorecard: Scorecard, truth: tuple[pd.DataFrame, pd.DataFrame] | None
) -> pd.DataFrame:
    """One row per (test row, head): account_id, as_of, head, label and one score column per scorer."""
    data, split = result.data, result.split
    test = data.loc[split.test].reset_index(drop=True)
    frames = []
    for head, fitted in result.heads.items():
        labels = head_labels(data, split, head)[split.test]
        frame = pd.DataFrame(
            {
                "account_id": test["account_id"],
                "as_of": test["as_of"],
                "head": head,
                "label": labels,
            }
        )
        frame["model"] = fitted.model.predict_proba(test)[:, 1]
        frame["logistic"] = fitted.logistic.predict_proba(test[fitted.features])[:, 1]
        frame["scorecard"] = (
            scorecard.fit_points(test) if head == "fit" else scorecard.score(test)
        ).to_numpy()
        frame["oracle"] = np.nan
        if truth is not None:
            truth_accounts, truth_conversion = truth
            if head == "fit":
                frame["oracle"] = (
                    frame["account_id"]
                    .map(truth_accounts.set_index("account_id")["true_fit"])
                    .to_numpy()
                )
            else:
                lookup = truth_conversion.set_index(["account_id", "as_of"])[
                    "true_conversion_probability"
                ]
                keys = pd.MultiIndex.from_frame(frame[["account_id", "as_of"]])
                frame["oracle"] = lookup.reindex(keys).to_numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fit_against_truth(predictions: pd.DataFrame, truth_accounts: pd.DataFrame) -> dict:
    """Fit head vs the hidden ICP fit, one row per account: AUC on 'true fit above median', Spearman."""
    from sklearn.metrics import roc_auc_score

    fit_rows = predictions[predictions["head"] == "fit"]
    per_account = fit_rows.groupby("account_id")[["model", "scorecard", "logistic"]].mean()
    true_fit = truth_accounts.set_index("account_id")["true_fit"].reindex(per_account.index)
    above = (true_fit > true_fit.median()).astype(int)
    out = {"accounts": int(len(per_account))}
    for scorer in ("model", "scorecard", "logistic"):
        out[f"{scorer}_auc_true_fit_above_median"] = float(
            roc_auc_score(above, per_account[scorer])
        )
        out[f"{scorer}_spearman_true_fit"] = float(
            per_account[scorer].corr(true_fit, method="spearman")
        )
    return out


def run_training(
    tables: Tables,
    config: ModelConfig,
    scorecard: Scorecard,
    truth: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    progress=None,
) -> RunOutputs:
    """Spine, labels, features, both heads, test predictions and the comparison table."""
    timings: dict[str, float] = {}

    def step(name: str):
        if progress:
            progress(name)
        timings[name] = time.perf_counter()

    step("spine and labels")
    spine = build_spine(tables, config.spine)
    labels = build_labels(tables, spine, config.spine)
    step("features")
    feature_set = build_features(tables, spine, config.features)
    step("leakage screen")
    screened = screen_features(feature_set, labels, config)
    if screened.suspects and not config.keep_suspects:
        feature_set = replace(
            feature_set,
            specs=tuple(s for s in feature_set.specs if s.name not in screened.suspects),
        )
    step("train")
    result = train_heads(feature_set, labels, config)
    step("evaluate")
    predictions = test_predictions(result, scorecard, truth)
    evaluations, deciles = [], []
    for head in result.heads:
        rows = predictions[predictions["head"] == head]
        evaluations.append(
            comparison_table(
                rows,
                list(SCORERS),
                head=head,
                capacity_k=config.capacity_k,
                probability_scorers=PROBABILITY_SCORERS - ({"oracle"} if head == "fit" else set()),
                n_bootstrap=config.n_bootstrap,
                seed=config.seed,
            )
        )
        for scorer in SCORERS:
            if rows[scorer].notna().all():
                deciles.append(
                    decile_table(rows["label"], rows[scorer]).assign(head=head, scorer=scorer)
                )
    fit_truth = (
        fit_against_truth(predictions, truth[0])
        if truth is not None and "fit" in result.heads
        else None
    )
    step("done")
    names = list(timings)
    durations = {
        names[i]: round(timings[names[i + 1]] - timings[names[i]], 2) for i in range(len(names) - 1)
    }
    return RunOutputs(
        result,
        predictions,
        pd.concat(evaluations, ignore_index=True),
        pd.concat(deciles, ignore_index=True),
        fit_truth,
        durations,
        screened,
    )


def screen_features(feature_set, labels: pd.DataFrame, config: ModelConfig) -> ScreenResult:
    """The leakage screen on the conversion head's features, training rows only (before the
    validation window), against the conversion label."""
    split = out_of_time_split(
        labels["as_of"], labels["label_complete"], config.split, config.spine.horizon_days
    )
    rows = np.flatnonzero(split.train)
    label = labels["conversion_label"].fillna(False).astype(int).to_numpy()[rows]
    frame = feature_set.matrix.loc[rows, feature_set.model_columns].reset_index(drop=True)
    return screen(frame, label, config=config.screen)


def global_reasons(result: TrainResult, max_rows: int = 20_000) -> pd.DataFrame:
    """SHAP summary per head on the test window: mean |contribution| per business field."""
    test = result.data.loc[result.split.test]
    if len(test) > max_rows:
        test = test.sample(max_rows, random_state=result.config.seed)
    tables = []
    for head, fitted in result.heads.items():
        specs = [s for s in result.feature_set.specs if s.name in fitted.features]
        tables.append(global_importance(fitted.model, test, specs, head))
    return pd.concat(tables, ignore_index=True)


def reason_checks(
    result: TrainResult, truth_conversion: pd.DataFrame, truth_accounts: pd.DataFrame
) -> dict:
    """On the last test date: how often the top conversion reason of a truly buying account is an
    engagement or intent reason, and how often a no-fit trap account with engagement gets a fit
    (firmographic) reason among its negatives."""
    from propensity.explain import explain

    data = result.data.loc[result.split.test]
    last = data[data["as_of"] == data["as_of"].max()]
    states = truth_conversion.set_index(["account_id", "as_of"])["true_state"]
    state = states.reindex(pd.MultiIndex.from_frame(last[["account_id", "as_of"]])).to_numpy()
    trap = last["account_id"].map(truth_accounts.set_index("account_id")["trap"]).to_numpy()
    fitted = result.heads["conversion"]
    specs = [
        s for s in result.feature_set.specs if s.name in fitted.features or s.kind == "context"
    ]
    buying = last[state == "buying"]
    engaged_traps = last[(trap != "none") & (last["eng_events_90d"] > 0)]
    out = {
        "as_of": str(last["as_of"].max().date()),
        "buying_accounts": len(buying),
        "engaged_trap_accounts": len(engaged_traps),
    }
    if len(buying):
        reasons = explain(fitted.model, buying, specs)["reasons_json"].map(json.loads)
        top = reasons.map(lambda r: r[0]["family"] if r and r[0]["contribution"] > 0 else None)
        out["buying_top_reason_engagement_or_intent_share"] = float(
            top.isin(["engagement", "intent"]).mean()
        )
    if len(engaged_traps):
        reasons = explain(fitted.model, engaged_traps, specs)["reasons_json"].map(json.loads)
        fit_negative = reasons.map(
            lambda r: any(x["family"] == "firmographic" and x["contribution"] < 0 for x in r)
        )
        out["trap_fit_reason_among_negatives_share"] = float(fit_negative.mean())
    return out


def write_run(outputs: RunOutputs, run_dir: Path) -> list[Path]:
    """Write the run folder: evaluation (CSV + Markdown), deciles, test predictions, models, config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result = outputs.result
    written = [
        write_atomic(
            run_dir / "evaluation.csv", lambda p: outputs.evaluation.to_csv(p, index=False)
        ),
        write_text(to_markdown(outputs.evaluation), run_dir / "evaluation.md"),
        write_atomic(run_dir / "deciles.csv", lambda p: outputs.deciles.to_csv(p, index=False)),
        write_parquet(outputs.predictions, run_dir / "test_predictions.parquet"),
        write_text(result.config.to_yaml(), run_dir / "config.yaml"),
        *(
            [
                write_atomic(
                    run_dir / "screen.csv", lambda p: outputs.screen.table.to_csv(p, index=False)
                )
            ]
            if outputs.screen is not None
            else []
        ),
        write_atomic(
            run_dir / "features.csv",
            lambda p: result.feature_set.definitions().to_csv(p, index=False),
        ),
    ]
    calibration = []
    for head in result.heads:
        rows = outputs.predictions[outputs.predictions["head"] == head]
        calibration.append(calibration_table(rows["label"], rows["model"]).assign(head=head))
    written.append(
        write_atomic(
            run_dir / "calibration.csv", lambda p: pd.concat(calibration).to_csv(p, index=False)
        )
    )
    for head in result.heads:
        rows = outputs.predictions[outputs.predictions["head"] == head]
        scorers = {name: rows[name].to_numpy() for name in SCORERS if rows[name].notna().all()}
        written.append(
            write_atomic(
                run_dir / f"calibration_{head}.png",
                lambda p, r=rows, h=head: plot_calibration(
                    r["label"], r["model"], p, f"{h} head: calibration (test)"
                ),
            )
        )
        written.append(
            write_atomic(
                run_dir / f"gains_{head}.png",
                lambda p, r=rows, h=head, sc=scorers: plot_gains(
                    r["label"], sc, p, f"{h} head: cumulative gains (test)"
                ),
            )
        )
    summary = {
        "split": result.split.describe(),
        "families": list(result.feature_set.families),
        "skipped_families": result.feature_set.skipped,
        "heads": {
            head: {
                "train_rows": r.train_rows,
                "train_positives": r.train_positives,
                "trees": r.model.best_iteration_,
                "calibration": r.model.calibration_method_,
                "calibration_log_loss": r.model.calibration_losses_,
                "features": len(r.features),
            }
            for head, r in result.heads.items()
        },
        "fit_against_truth": outputs.fit_truth,
        "screen_suspects": list(outputs.screen.suspects) if outputs.screen is not None else [],
        "screen_suspects_kept": result.config.keep_suspects,
        "timings_s": outputs.timings,
    }
    written.append(write_text(json.dumps(summary, indent=2) + "\n", run_dir / "summary.json"))
    # the test rows with both heads' labels: promotion re-scores a champion on exactly these rows
    test_window = result.data.loc[result.split.test].copy()
    for head in result.heads:
        test_window[f"label_{head}"] = head_labels(result.data, result.split, head)[
            result.split.test
        ]
    written.append(
        write_parquet(test_window.reset_index(drop=True), run_dir / "test_window.parquet")
    )
    importance = global_reasons(result)
    written.append(
        write_atomic(run_dir / "global_reasons.csv", lambda p: importance.to_csv(p, index=False))
    )
    for head, table in importance.groupby("head", sort=False):
        written.append(
            write_atomic(
                run_dir / f"global_reasons_{head}.png",
                lambda p, t=table: plot_global_importance(t, p),
            )
        )
    written.append(
        write_atomic(
            run_dir / "scoring_model.joblib", lambda p: joblib.dump(scoring_model(result), p)
        )
    )
    models = run_dir / "models"
    models.mkdir(exist_ok=True)
    for head, r in result.heads.items():
        written.append(
            write_atomic(
                models / f"{head}.lgb.txt", lambda p, r=r: r.model.booster_.save_model(str(p))
            )
        )
        written.append(write_atomic(models / f"{head}.joblib", lambda p, r=r: joblib.dump(r, p)))
    return written


__all__ = ["HEADS", "RunOutputs", "run_training", "test_predictions", "write_run"]


def write_report(run_dir: Path, tables: Tables | None, out: Path | None = None) -> Path:
    """The run's HTML report; with tables, the current prospects are scored for the accounts section."""
    from propensity.outputs.export import ScoringConfig, ranked_list
    from propensity.outputs.report import build_report
    from propensity.scoring import load_scoring_model, score_snapshot

    target_list = scored = None
    if tables is not None:
        model = load_scoring_model(run_dir)
        scored = score_snapshot(tables, model)
        target_list = ranked_list(scored, tables.accounts, ScoringConfig.from_yaml(), top_k=50)
    return write_text(build_report(run_dir, target_list, scored), out or run_dir / "report.html")
