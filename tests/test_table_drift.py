"""Table mode under drift (issue 19): the planted-drift campaign export, period indicators, early
stopping a base-rate shift cannot fool, rolling origins, recalibration on the latest window, the
protocol-independent screen, and the warnings a time-ordered file or a shipped scorer below a
baseline earn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from propensity.data.campaign import LEAK, PERIOD_INDICATORS, campaign_table
from propensity.evaluate import auc_difference_bound
from propensity.model.config import TableConfig
from propensity.model.head import HeadModel, LightGBMParams, recentred_log_loss
from propensity.model.splits import ROW_TIME, RowOutOfTime
from propensity.runs.table import train_table_model

# the planted-drift world of the issue: a slump through the training window, then the base rate
# climbs to four times its start; the leads' own columns carry a modest signal
DRIFT = {"base_rate_growth": 4.0, "slump": 3.0, "signal": 0.5}


def campaign_config(**changes) -> TableConfig:
    settings = {
        "id_column": "lead_id",
        "label_column": "subscribed",
        "positive": ("yes",),
        "n_bootstrap": 50,
        **changes,
    }
    return TableConfig(**settings)


@pytest.fixture(scope="module")
def drift_run():
    frame = campaign_table(**DRIFT)
    return frame, train_table_model(frame, campaign_config(time_column="contacted_at"))


def screened_out(run, check: str) -> set[str]:
    table = run.screen.table
    return set(table[(table["check"] == check) & (table["verdict"] == "exclude")]["column"])


def test_planted_drift_world_names_the_drift_and_ships_a_sound_model(drift_run):
    frame, run = drift_run
    head, summary = run.heads["table"], run.summary
    # the drift screen names the period indicators with their figure; the post-call field goes
    assert screened_out(run, "period_indicator") == set(PERIOD_INDICATORS)
    assert LEAK in run.screen.suspects and not set(run.summary["features"]) & {
        LEAK,
        *PERIOD_INDICATORS,
    }
    assert summary["period_auc"] > 0.95 and summary["period_auc_without_indicators"] < 0.6
    # not the 1-tree model a validation window converting more often gave early stopping
    assert head.facts["trees"] >= 20
    # the base-rate shift is reported
    rates = summary["base_rates"]
    assert rates["validation"] > rates["train"] and rates["test_over_train"] > 2.5
    # the shipped scorer is the better of model and logistic on the test window, within noise
    test = head.evaluation.set_index("scorer")["roc_auc"]
    shipped = "model" if head.shipped.kind == "lightgbm" else head.shipped.kind
    assert test[shipped] >= max(test["model"], test["logistic"]) - 0.02
    assert not head.shipped.problems
    # the verdict reads the table: signal, not "no signal" and not "inverted"
    assert head.beats_base_rate and not head.verdict.startswith(("No signal", "Ranking inverted"))
    # probabilities recalibrated on the latest labelled window: nearer its base rate than the
    # validation window's calibration, with the ranking unchanged
    scores = run.scoring_model.score(run.test_window, "test", ranked=False)["probability"]
    before = head.shipped.model.predict_proba(run.scoring_model.matrix(run.test_window, "test"))[
        :, 1
    ]
    assert abs(scores.mean() - rates["test"]) < abs(before.mean() - rates["test"]) / 2
    assert np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(before)))[0, 1] > 0.999
    assert "recalibrated (Platt) on the latest window" in head.facts["calibration_rows"]


def test_rolling_origin_reports_a_spread_over_successive_test_windows(drift_run):
    _, run = drift_run
    folds = run.heads["table"].folds
    model = folds[folds["scorer"] == "model"]
    assert sorted(model["repeat"]) == [0, 1, 2] and model["roc_auc"].notna().all()
    assert run.summary["protocol"]["origins"] == 3
    assert set(run.summary["fold_roc_auc"]) >= {"model", "logistic"}


def test_excluding_period_indicators_keeps_ranking_within_a_month(drift_run):
    """What the default rests on: the model without the indicators ranks the leads of one month
    as well as with them (the indicators only say which month a lead is from)."""
    frame, run = drift_run
    kept = train_table_model(
        frame.drop(columns=[LEAK]),
        campaign_config(time_column="contacted_at", keep_suspects=True, origins=1),
    )

    def within_month(head) -> float:
        rows = head.predictions.merge(
            frame[["lead_id", "contacted_at"]], left_on="id", right_on="lead_id"
        )
        rows = rows[rows["repeat"] == 0]
        month = rows["contacted_at"].dt.to_period("M")
        aucs = [
            (roc_auc_score(part["label"], part["model"]), len(part))
            for _, part in rows.groupby(month)
            if part["label"].nunique() == 2
        ]
        return float(np.average([a for a, _ in aucs], weights=[n for _, n in aucs]))

    assert within_month(run.heads["table"]) >= within_month(kept.heads["table"]) - 0.01


def test_post_call_field_is_caught_whatever_the_protocol(drift_run):
    frame, out_of_time = drift_run
    k_fold = train_table_model(frame, campaign_config(repeats=1, folds=3, n_bootstrap=20))
    assert set(out_of_time.screen.suspects) == {LEAK, *PERIOD_INDICATORS}
    # with K-fold the file's order is not known to be time: the indicators are warned about,
    # not excluded (a file sorted by amount would make the amount look like one); the leak's
    # verdict is the same as out of time
    assert set(k_fold.screen.suspects) == {LEAK}
    table = k_fold.screen.table
    warned = table[(table["check"] == "period_indicator") & (table["verdict"] == "warn")]
    assert set(warned["column"]) == set(PERIOD_INDICATORS)
    warning = " ".join(k_fold.scoring_model.warnings)
    assert "look time-ordered" in warning and "--time-ordered" in warning
    assert "rate_3m" in warning and "positive rate moves with the row's position" in warning


def test_a_file_sorted_by_amount_keeps_the_amount():
    frame = campaign_table(rows=4000, **DRIFT).sample(frac=1, random_state=2)
    frame = frame.sort_values("balance").drop(columns=list(PERIOD_INDICATORS))
    run = train_table_model(frame, campaign_config(repeats=1, folds=3, n_bootstrap=20))
    assert "balance" in run.summary["features"]
    assert "balance" not in run.screen.suspects


def test_a_shuffled_file_gets_no_time_order_warning():
    frame = campaign_table(rows=4000, **DRIFT).sample(frac=1, random_state=1)
    run = train_table_model(frame, campaign_config(repeats=1, folds=3, n_bootstrap=20))
    assert not any("time-ordered" in w for w in run.scoring_model.warnings)
    assert not screened_out(run, "period_indicator")


def test_recentred_log_loss_ignores_a_shift_in_base_rate():
    rng = np.random.default_rng(0)
    margin = rng.normal(-2, 1, 5000)
    label = (rng.random(5000) < 1 / (1 + np.exp(-(margin + 1.0)))).astype(int)
    probability = 1 / (1 + np.exp(-margin))
    shifted = 1 / (1 + np.exp(-(margin - 1.5)))  # same ranking and spread, lower level
    assert recentred_log_loss(label, probability) == pytest.approx(
        recentred_log_loss(label, shifted), rel=1e-6
    )
    flat = np.full(5000, 0.1)
    assert recentred_log_loss(label, probability) < recentred_log_loss(label, flat)


def test_early_stopping_is_not_stopped_by_a_base_rate_shift_alone():
    """Validation rows convert three times as often as training rows: plain log-loss is lowest
    after a tree or two; the re-centred log-loss keeps the trees the signal needs."""
    rng = np.random.default_rng(3)

    def rows(n, shift):
        x = rng.normal(size=(n, 3))
        logit = -3.2 + shift + 0.9 * x[:, 0] + 0.6 * np.maximum(x[:, 1], 0)
        # a month index that moves with time: the trees can learn the training months' rates
        month = rng.integers(0, 6, n) + (6 if shift else 0)
        frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(month=month.astype(float))
        return frame, (rng.random(n) < 1 / (1 + np.exp(-(logit - 0.15 * month)))).astype(int)

    train, valid = rows(8000, 0.0), rows(3000, 1.6)
    trees = {}
    for metric in ("binary_logloss", "recentred_logloss"):
        params = LightGBMParams(min_child_samples=20, early_stopping_metric=metric)
        model = HeadModel(params=params, n_jobs=1, calibration_methods=("sigmoid",))
        trees[metric] = model.fit(*train, eval_set=valid).best_iteration_
    assert trees["recentred_logloss"] >= 20
    assert trees["recentred_logloss"] > 3 * trees["binary_logloss"]


def test_rolling_origins_step_back_half_a_test_window_and_end_with_the_latest():
    time = pd.Series(pd.date_range("2024-01-01", periods=1000, freq="D"))
    label = np.tile([0, 1, 0, 0], 250)
    folds = RowOutOfTime(0.2, 0.2, origins=3).folds(pd.DataFrame({ROW_TIME: time}), label)
    assert [f.repeat for f in folds] == [2, 1, 0]
    latest, earlier = folds[-1], folds[0]
    assert latest.test.min() == 800 and latest.test.max() == 999
    assert earlier.test.min() == 600 and earlier.test.max() == 799
    middle = folds[1]  # windows of the same size, one step back
    assert (middle.valid.min(), middle.test.min(), middle.test.max()) == (500, 700, 899)
    for fold in folds:
        assert fold.train.max() < fold.valid.min() and fold.valid.max() < fold.test.min()


def test_pr_auc_bound_matches_scikit_learn_on_the_point_estimate():
    rng = np.random.default_rng(1)
    label = rng.integers(0, 2, 600)
    strong, weak = label + rng.normal(0, 0.8, 600), label + rng.normal(0, 2.0, 600)
    difference, bound = auc_difference_bound(
        label, strong, weak, np.arange(600), level=0.95, metric="pr_auc"
    )
    expected = average_precision_score(label, strong) - average_precision_score(label, weak)
    assert difference == pytest.approx(expected, abs=1e-9)
    assert 0 < bound < difference


def test_the_selection_metric_is_declared_in_the_config_and_recorded():
    frame = campaign_table(rows=4000, **DRIFT)
    run = train_table_model(
        frame,
        campaign_config(
            time_column="contacted_at", selection_metric="pr_auc", origins=1, n_bootstrap=20
        ),
    )
    shipped = run.summary["shipped"]
    assert shipped["selection_metric"] == "pr_auc" and "selection_pr_auc" in shipped
    assert "PR-AUC" in shipped["reason"]
    # PR-AUC sits near the base rate, far below 0.5: health still reads the ranking by ROC-AUC
    assert shipped["problems"] == []
    with pytest.raises(ValueError, match="selection_metric"):
        campaign_config(selection_metric="log_loss")


def test_a_shipped_scorer_below_a_baseline_on_the_validation_window_is_said_loudly():
    from propensity.runs.selection import _below_others

    figures = {"model": 0.606, "logistic": 0.612}
    no_problems = {"model": [], "logistic": []}
    (line,) = _below_others("model", figures, "ROC-AUC", "validation window", no_problems)
    assert "below the logistic baseline (0.612)" in line and "0.606" in line
    assert _below_others("logistic", figures, "ROC-AUC", "validation window", no_problems) == []
    # a degenerate candidate is reported as such, not as a better one
    degenerate = {"model": [], "logistic": ["near-constant probabilities"]}
    assert _below_others("model", figures, "ROC-AUC", "validation window", degenerate) == []


def test_a_model_stopped_by_a_base_rate_shift_is_refused_with_the_reason():
    """The issue's failure, on purpose: plain log-loss early stopping, period indicators kept.
    The 1-tree model is not shipped, and the run says why."""
    frame = campaign_table(seed=1, **DRIFT).drop(columns=[LEAK])
    lightgbm = TableConfig.model_fields["lightgbm"].default_factory()
    run = train_table_model(
        frame,
        campaign_config(
            time_column="contacted_at",
            keep_suspects=True,
            origins=1,
            n_bootstrap=20,
            lightgbm=lightgbm.model_copy(update={"early_stopping_metric": "binary_logloss"}),
        ),
    )
    head = run.heads["table"]
    assert head.facts["trees"] < 5
    assert head.shipped.kind == "logistic"
    assert "degenerate" in head.shipped.reason and "base-rate shift" in head.shipped.reason
