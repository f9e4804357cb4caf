"""Optuna search over LightGBM's main parameters on time-ordered folds of the training window.

It tunes on exactly what ``train`` fits on: the same spine, labels and features, after the same
leakage screen (:func:`propensity.runs.account.labelled_features`). Only snapshots before the
test gap are used (the test window stays untouched). The folds come
from :class:`SnapshotTimeSeriesSplit` (time-ordered and account-grouped), are materialised once
as lists and reused by every trial. The objective is the mean out-of-fold log-loss of the uncalibrated model (a proper
score: it rewards ranking and probability quality). Trials report after each fold, so the
median pruner stops poor ones early; the TPE sampler is seeded, so a rerun proposes the same
trials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss

from propensity.model.config import ModelConfig
from propensity.model.head import HeadModel, LightGBMParams
from propensity.model.splits import SnapshotOutOfTime, SnapshotTimeSeriesSplit
from propensity.runs.labelled import (
    LabelledFeatures,
    check_positives,
    conversion_censoring,
    head_features,
    head_labels,
)


@dataclass
class TuningResult:
    head: str
    best_params: LightGBMParams
    best_log_loss: float
    baseline_log_loss: float
    trials: pd.DataFrame
    folds: int


def suggest(trial: optuna.Trial, base: LightGBMParams) -> LightGBMParams:
    """The search space: LightGBM's main capacity, sampling and regularisation knobs."""
    return base.model_copy(
        update={
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 20, 1000, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 50.0, log=True),
            "min_split_gain": trial.suggest_float("min_split_gain", 0.0, 1.0),
        }
    )


def _fold_log_loss(
    params: LightGBMParams, model_template: HeadModel, X_train, y_train, X_valid, y_valid
) -> float:
    model = HeadModel(**{**model_template.get_params(), "params": params})
    model.fit(X_train, y_train, eval_set=(X_valid, y_valid))
    p = 1 / (1 + np.exp(-model.predict_margin(X_valid)))
    return float(log_loss(y_valid, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]))


def tune_head(
    prepared: LabelledFeatures, config: ModelConfig, head: str = "conversion"
) -> TuningResult:
    """Search ``config.tuning.n_trials`` parameter sets for one head; return the best."""
    feature_set = prepared.feature_set
    data = prepared.data
    split = SnapshotOutOfTime(config.split, config.spine.horizon_days).windows(data)
    y_all = head_labels(
        data,
        split,
        head,
        fitted=True,
        fit_label=config.fit_label,
        censor_conversion=conversion_censoring(config),
    )
    # everything before the test gap (train + validation windows); the test window stays unseen
    before_test = split.train | split.valid
    train = data.loc[before_test].reset_index(drop=True)
    y = y_all[before_test]
    check_positives(head, int(y.sum()), config, split, train["as_of"].min())
    columns = head_features(feature_set, head)
    categorical = set(feature_set.categorical_columns)
    cv = SnapshotTimeSeriesSplit(n_splits=config.tuning.n_splits, gap_days=config.tuning.gap_days)
    folds = [
        (tr, va)
        for tr, va in cv.split(train, groups=train["account_id"])
        if y[tr].sum() > 0 and y[va].sum() > 0
    ]
    if not folds:
        raise ValueError(
            "no tuning fold has positives on both sides; use more history or fewer n_splits"
        )
    template = HeadModel(
        features=columns,
        categorical=[c for c in columns if c in categorical],
        calibration_methods=("sigmoid",),
        seed=config.seed,
        n_jobs=config.n_jobs,
    )
    base = config.fit if head == "fit" else config.conversion
    X = train[[*columns, "account_id"]]

    def evaluate(params: LightGBMParams, trial: optuna.Trial | None) -> float:
        losses = []
        for step, (tr, va) in enumerate(folds):
            losses.append(
                _fold_log_loss(params, template, X.iloc[tr][columns], y[tr], X.iloc[va], y[va])
            )
            if trial is not None:
                trial.report(float(np.mean(losses)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return float(np.mean(losses))

    baseline = evaluate(base, None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.optimize(
        lambda trial: evaluate(suggest(trial, base), trial),
        n_trials=config.tuning.n_trials,
        timeout=config.tuning.timeout_s,
    )
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if completed and study.best_value < baseline:
        best_params, best_loss = suggest(study.best_trial, base), float(study.best_value)
    else:  # nothing beat the configured parameters: keep them
        best_params, best_loss = base, baseline
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params"))
    return TuningResult(head, best_params, best_loss, baseline, trials, len(folds))


def with_best_params(config: ModelConfig, result: TuningResult) -> ModelConfig:
    """The model config with the tuned head's parameters replaced."""
    return config.model_copy(update={result.head: result.best_params})


__all__ = ["TuningResult", "tune_head", "with_best_params"]
