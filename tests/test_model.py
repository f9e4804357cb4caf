"""Splits, the minimum-data gate, calibration, determinism, the scorecard and the metric functions."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from propensity.data.contract import load_tables
from propensity.data.world import WorldConfig, generate_world, read_truth
from propensity.evaluate import decile_table, score_metrics
from propensity.features import build_features
from propensity.model.config import ModelConfig
from propensity.model.head import InsufficientDataError
from propensity.model.scorecard import Scorecard
from propensity.model.splits import SnapshotTimeSeriesSplit, SplitConfig, out_of_time_split
from propensity.runs.account import labelled_features, train_account_model
from propensity.runs.folder import load_scoring_model
from propensity.scoring import SCORE_COLUMNS, score_snapshot

# ---------------------------------------------------------------------------------------------
# metric functions against hand-computed examples and scikit-learn


def metrics(label, score, **kwargs):
    n = len(label)
    return score_metrics(
        label, score, group=np.arange(n), as_of=np.zeros(n), n_bootstrap=0, **kwargs
    )


def test_roc_auc_hand_computed_with_a_tie():
    # positives 0.9 and 0.5; negatives 0.8 and 0.5 -> pairs: (0.9>0.8) 1, (0.9>0.5) 1, (0.5<0.8) 0, tie 0.5
    result = metrics([1, 0, 1, 0], [0.9, 0.8, 0.5, 0.5])
    assert result["roc_auc"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)


def test_average_precision_hand_computed():
    # ranking 1,0,1,0: precision at the two positives 1/1 and 2/3 -> (1 + 2/3) / 2
    result = metrics([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6])
    assert result["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)


def test_lift_and_precision_at_capacity_hand_computed():
    label = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 2  # base rate 0.2
    score = list(range(20, 0, -1))  # rows in order
    result = score_metrics(
        label, score, group=np.arange(20), as_of=np.zeros(20), capacity_k=2, n_bootstrap=0
    )
    assert result["lift_10"] == pytest.approx(1.0 / 0.2)  # top 2 rows are both positive
    assert result["precision_at_k"] == pytest.approx(1.0)
    assert result["recall_at_k"] == pytest.approx(2 / 4)


def test_lift_does_not_depend_on_the_order_of_tied_scores():
    label = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0] * 2)  # base rate 0.1
    constant = np.full(20, 0.1)
    forward = score_metrics(label, constant, group=np.arange(20), n_bootstrap=0)
    backward = score_metrics(label[::-1], constant, group=np.arange(20), n_bootstrap=0)
    assert forward["lift_10"] == pytest.approx(1.0) == backward["lift_10"]
    # a tie block straddling the cut counts pro rata: top row positive, then 4 tied rows with 1
    result = score_metrics(
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        [0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
        group=np.arange(10),
        n_bootstrap=0,
    )
    assert result["lift_20"] == pytest.approx(((1 + 0.25) / 2) / 0.2)


def test_brier_skill_is_zero_for_the_base_rate_and_positive_for_a_better_forecast():
    from propensity.evaluate import brier_skill

    label = np.array([1, 0, 0, 0] * 50)
    base = np.full(len(label), 0.25)
    assert brier_skill(label, base, base, np.arange(len(label)))["brier_skill"] == 0
    sharper = np.where(label == 1, 0.6, 0.1)
    skill = brier_skill(label, sharper, base, np.arange(len(label)), n_bootstrap=100)
    assert skill["brier_skill"] == pytest.approx(1 - np.mean((sharper - label) ** 2) / 0.1875)
    assert 0 < skill["brier_skill_lo"] <= skill["brier_skill"] <= skill["brier_skill_hi"]


def test_brier_and_ece_hand_computed():
    result = metrics([1, 0], [0.8, 0.2])
    assert result["brier"] == pytest.approx((0.2**2 + 0.2**2) / 2)
    assert result["ece"] == pytest.approx(0.2)  # each row its own bin, |0.8-1| and |0.2-0|


def test_metrics_agree_with_scikit_learn_on_random_scores():
    rng = np.random.default_rng(3)
    label = rng.random(3000) < 0.1
    score = np.round(rng.random(3000) + label * 0.3, 2)  # rounding makes ties
    ours = metrics(label.astype(int), score / score.max())
    assert ours["roc_auc"] == pytest.approx(roc_auc_score(label, score))
    assert ours["pr_auc"] == pytest.approx(average_precision_score(label, score))
    assert ours["brier"] == pytest.approx(brier_score_loss(label, score / score.max()))


def test_bootstrap_interval_brackets_the_estimate_and_resamples_accounts():
    rng = np.random.default_rng(1)
    label = (rng.random(2000) < 0.2).astype(int)
    score = rng.random(2000) + label * 0.5
    accounts = np.repeat(np.arange(500), 4)
    result = score_metrics(
        label, score, accounts, np.tile(np.arange(4), 500), capacity_k=50, n_bootstrap=100
    )
    assert result["roc_auc_lo"] < result["roc_auc"] < result["roc_auc_hi"]
    assert result["roc_auc_hi"] - result["roc_auc_lo"] < 0.1


def test_decile_table_counts_rates_and_cumulative_share():
    label = [1] * 10 + [0] * 90
    score = np.arange(100, 0, -1)
    table = decile_table(label, score)
    assert table["accounts"].tolist() == [10] * 10
    assert table.loc[0, "positives"] == 10 and table.loc[0, "lift"] == pytest.approx(10.0)
    assert table["cumulative_share_of_positives"].iloc[-1] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# splits


def test_out_of_time_split_keeps_dates_apart_with_a_gap():
    dates = pd.date_range("2024-01-01", periods=20, freq="MS")
    as_of = pd.Series(np.repeat(dates, 3))
    complete = pd.Series(as_of <= dates[16])  # the last 3 months are unlabelled
    split = out_of_time_split(
        as_of, complete, SplitConfig(test_months=4, valid_months=3), horizon_days=90
    )
    parts = {"train": split.train, "valid": split.valid, "test": split.test}
    for a in parts:
        for b in parts:
            if a < b:
                assert set(as_of[parts[a]]).isdisjoint(set(as_of[parts[b]]))
    assert complete[split.test].all()
    assert as_of[split.test].min() == pd.Timestamp("2025-02-01")
    assert as_of[split.valid].max() + pd.Timedelta(days=90) < as_of[split.test].min()
    assert as_of[split.train].max() < as_of[split.valid].min()


def test_out_of_time_split_explains_an_empty_window():
    dates = pd.Series(pd.date_range("2024-01-01", periods=5, freq="MS"))
    with pytest.raises(ValueError, match="the train window is empty"):
        out_of_time_split(
            dates, pd.Series([True] * 5), SplitConfig(test_months=2, valid_months=1), 90
        )


def test_snapshot_time_series_split_exact_folds():
    X = pd.DataFrame({"as_of": np.repeat(pd.date_range("2024-01-01", periods=5, freq="MS"), 2)})
    folds = list(SnapshotTimeSeriesSplit(n_splits=2, gap_days=20).split(X))
    # dates blocks: [Jan, Feb], [Mar, Apr], [May]; a 20-day gap drops nothing at month starts
    assert [f[0].tolist() for f in folds] == [[0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7]]
    assert [f[1].tolist() for f in folds] == [[4, 5, 6, 7], [8, 9]]
    gapped = list(SnapshotTimeSeriesSplit(n_splits=2, gap_days=40).split(X))
    assert gapped[0][0].tolist() == [0, 1]  # Feb is within 40 days of Mar


def test_snapshot_split_refuses_too_many_splits():
    X = pd.DataFrame({"as_of": pd.date_range("2024-01-01", periods=3, freq="MS")})
    with pytest.raises(ValueError, match="Too many splits=3 for 3 snapshot dates"):
        list(SnapshotTimeSeriesSplit(n_splits=3).split(X))


# ---------------------------------------------------------------------------------------------
# scorecard


def test_scorecard_points_with_step_decay_and_cap():
    card = Scorecard.model_validate(
        {
            "fit": {
                "industry": {"software": 20},
                "size_band": {"51-200": 15},
                "flags": {"tech_crm": 10},
            },
            "engagement": {
                "points": {"meeting": 25, "email_open": 1},
                "decay": {7: 1.0, 30: 0.5, 90: 0.25},
                "cap": 40,
            },
        }
    )
    features = pd.DataFrame(
        {
            "industry": ["software", "retail"],
            "size_band": ["51-200", None],
            "tech_crm": [1.0, np.nan],
            "eng_meeting_7d": [1, 0],
            "eng_meeting_30d": [2, 0],
            "eng_meeting_90d": [2, 0],
            "eng_email_open_7d": [0, 10],
            "eng_email_open_30d": [0, 20],
            "eng_email_open_90d": [0, 40],
        }
    )
    assert card.fit_points(features).tolist() == [45.0, 0.0]
    # account 1: meeting 25*1 + 25*0.5 = 37.5; account 2: opens 10*1 + 10*0.5 + 20*0.25 = 20
    assert card.engagement_points(features).tolist() == [37.5, 20.0]
    features.loc[0, "eng_meeting_7d"] = 3
    features.loc[0, "eng_meeting_30d"] = 3
    assert card.engagement_points(features)[0] == 40.0  # capped


def test_scorecard_rejects_increasing_decay():
    with pytest.raises(ValueError, match="decay weights must be >= 0 and not increase"):
        Scorecard.model_validate({"engagement": {"decay": {7: 0.5, 30: 1.0}}})


def test_default_scorecard_yaml_loads():
    card = Scorecard.from_yaml()
    assert card.handover_threshold > 0 and card.engagement.points["meeting"] > 0


# ---------------------------------------------------------------------------------------------
# training on a small generated world


FAST = {"n_bootstrap": 20, "conversion": {"n_estimators": 300}, "fit": {"n_estimators": 200}}


def test_model_beats_the_scorecard_and_is_calibrated_on_the_test_window(trained):
    result = trained.result
    evaluation = result.evaluation.set_index(["head", "scorer"])
    model = evaluation.loc[("conversion", "model")]
    assert model["roc_auc"] > evaluation.loc[("conversion", "scorecard"), "roc_auc"] + 0.03
    rows = result.predictions[result.predictions["head"] == "conversion"]
    assert rows["model"].mean() == pytest.approx(rows["label"].mean(), abs=0.01)
    assert model["ece"] < 0.03
    assert model["brier_skill"] > 0 and result.heads["conversion"].beats_base_rate
    assert result.verdicts["conversion"].startswith("The model beats the base rate")


def test_the_fit_head_learns_from_the_customer_base_one_row_per_account(trained):
    from propensity.model.splits import SnapshotOutOfTime
    from propensity.runs.labelled import account_rows, customer_base

    config = ModelConfig.model_validate(FAST)
    prepared = labelled_features(trained.tables, config)
    data = prepared.data
    splitter = SnapshotOutOfTime(config.split, config.spine.horizon_days)
    windows = splitter.windows(data)
    base = customer_base(trained.tables, prepared.feature_set, config, data["as_of"].min())
    assert len(base) == trained.result.heads["fit"].facts["customer_base_rows"] > 100
    # point in time: each customer's win lies after its row's date, which precedes the spine
    assert (base["won_at"] > base["as_of"]).all()
    assert (base["won_at"] < data["as_of"].min()).all()
    assert not set(base["account_id"]) & set(data["account_id"])  # customers are never scored
    rows, learn_only = account_rows(data, windows, base)
    assert learn_only.sum() == len(base) and learn_only[: len(base)].all()
    fit_windows = splitter.windows(rows)
    assert (fit_windows.t1, fit_windows.t2) == (windows.t1, windows.t2)
    development = rows[fit_windows.train | fit_windows.valid]
    assert development["account_id"].is_unique
    assert (
        len(development)
        == len(base) + data.loc[windows.train | windows.valid, "account_id"].nunique()
    )
    pd.testing.assert_frame_equal(
        rows[fit_windows.test].reset_index(drop=True), data[windows.test].reset_index(drop=True)
    )


def test_held_out_predictions_hold_every_scorer_and_complete_labels(trained):
    result = trained.result
    predictions = result.predictions
    assert {
        "account_id", "as_of", "head", "label", "model", "scorecard", "logistic", "oracle",
        "base_rate",
    } <= set(predictions)  # fmt: skip
    assert predictions["oracle"].notna().all()
    test_start = pd.Timestamp(result.summary["split"]["test_start"])
    assert (predictions["as_of"] >= test_start).all()
    evaluation = result.evaluation
    scorers = evaluation.groupby("head")["scorer"].agg(set)
    assert scorers["fit"] == {
        "model", "scorecard", "learned_scorecard", "logistic", "oracle", "base_rate",
    }  # fmt: skip
    # the learned points card is ranked by its points, not read as a probability
    by_scorer = evaluation.set_index(["head", "scorer"])
    assert pd.isna(by_scorer.loc[("fit", "learned_scorecard"), "brier"])
    assert by_scorer.loc[("fit", "learned_scorecard"), "roc_auc"] > 0.6
    # the conversion head's learned candidate is the stack of LightGBM and logistic
    assert scorers["conversion"] == scorers["fit"] | {"stacked"}
    assert predictions.loc[predictions["head"] == "conversion", "stacked"].notna().all()
    for column in (
        "roc_auc",
        "roc_auc_lo",
        "roc_auc_hi",
        "lift_10_lo",
        "precision_at_k_hi",
        "recall_at_k",
        "brier_skill_lo",
    ):
        assert column in evaluation


def test_same_seed_and_config_give_identical_results(trained):
    """The one full retrain of the suite: same data, seed and config -> the same run."""
    again = train_account_model(
        trained.tables,
        ModelConfig.model_validate(FAST),
        Scorecard.from_yaml(),
        read_truth(trained.world),
    )
    pd.testing.assert_frame_equal(trained.result.evaluation, again.evaluation)
    pd.testing.assert_frame_equal(trained.result.predictions, again.predictions)
    assert again.scoring_model.version == trained.result.scoring_model.version


def test_too_few_positives_is_refused_with_the_count(tmp_path):
    tables = load_tables(generate_world(WorldConfig(n_accounts=400, seed=2), tmp_path / "w"))
    config = ModelConfig.model_validate({**FAST, "min_positives": 100_000})
    with pytest.raises(
        InsufficientDataError, match=r"head 'fit': only \d+ positive labels .* at least 100000"
    ):
        train_account_model(tables, config, Scorecard.from_yaml())
    with pytest.raises(InsufficientDataError, match="fit-only model"):
        train_account_model(tables, config, Scorecard.from_yaml(), heads=("conversion",))


@pytest.mark.slow(seconds=13)
def test_tuning_is_seeded_screened_and_lands_in_the_config(trained):
    from propensity.runs.tune import tune_head, with_best_params

    config = ModelConfig.model_validate(
        {
            **FAST,
            "conversion": {"n_estimators": 60, "early_stopping_rounds": 20},
            "tuning": {"n_trials": 3, "n_splits": 2, "gap_days": 30},
        }
    )
    prepared = labelled_features(trained.tables, config)
    first = tune_head(prepared, config)
    second = tune_head(prepared, config)
    assert first.trials["value"].tolist() == second.trials["value"].tolist()
    assert first.folds == 2 and len(first.trials) == 3
    assert first.best_log_loss <= first.baseline_log_loss
    tuned = with_best_params(config, first)
    assert tuned.conversion == first.best_params
    assert ModelConfig.model_validate(yaml.safe_load(tuned.to_yaml())) == tuned


def test_scored_rows_carry_scores_tiers_reasons_and_the_model_version(trained):
    import json

    from propensity.scoring import account_card

    model = trained.result.scoring_model
    scored = score_snapshot(trained.tables, model, "2025-10-01")
    for head in ("fit", "conversion"):
        assert scored[f"{head}_score"].between(0, 100).all()
        assert scored[f"{head}_probability"].between(0, 1).all()
        reasons = scored[f"{head}_reasons_json"].map(json.loads)
        assert reasons.map(len).gt(0).mean() > 0.9
    assert set(scored["conversion_tier"]) <= {"hot", "warm", "cold"}
    assert set(scored["fit_tier"]) <= {"A", "B", "C", "D"}
    assert scored["model_version"].nunique() == 1
    # a head that ships a baseline says which (see propensity.runs.selection)
    assert re.fullmatch(
        r"(logistic-)?(scorecard-)?(stacked-)?sha-[0-9a-f]{12}", scored["model_version"].iloc[0]
    )
    assert load_scoring_model(trained.run_dir).version == model.version  # same model, same version
    hot = scored.sort_values("conversion_probability").iloc[-1]
    card = account_card(trained.tables, model, hot["account_id"], "2025-10-01")
    assert card["heads"]["conversion"]["score"] == hot["conversion_score"]
    assert card["heads"]["conversion"]["reasons"] == json.loads(hot["conversion_reasons_json"])


def test_every_path_scores_a_row_the_same_way(trained):
    """The snapshot scorer, the MLflow model's view and a head's Scorer give the same row."""
    model = trained.result.scoring_model
    scored = score_snapshot(trained.tables, model, "2025-10-01").head(50)
    matrix = build_features(trained.tables, scored[["account_id", "as_of"]], model.features).matrix
    for head in ("fit", "conversion"):
        served = model.predict_frame(matrix, head, reasons=True)
        direct = model.scorers[head].score(matrix, version=model.version)
        assert list(direct.columns) == list(SCORE_COLUMNS)
        assert list(served.columns) == ["account_id", "as_of", *SCORE_COLUMNS]
        pd.testing.assert_frame_equal(served[list(SCORE_COLUMNS)], direct.reset_index(drop=True))
        for column in SCORE_COLUMNS:
            np.testing.assert_array_equal(
                served[column].to_numpy(),
                scored[f"{head}_{column}" if column != "model_version" else column].to_numpy(),
            )


def test_the_fit_label_counts_an_opportunity_opened_before_the_test_window():
    from propensity.model.splits import OutOfTimeSplit
    from propensity.runs.labelled import head_labels

    t2 = pd.Timestamp("2025-01-01")
    day = pd.Timestamp
    rows = pd.DataFrame(
        {
            "won_at": [day("2024-06-01"), pd.NaT, pd.NaT, day("2025-02-01")],
            "opened_at": [day("2024-05-01"), day("2024-11-01"), day("2025-01-01"), pd.NaT],
        }
    )
    mask = np.ones(4, dtype=bool)
    windows = OutOfTimeSplit(mask, mask, mask, day("2024-09-01"), t2, day("2025-06-01"))
    opened = head_labels(rows, windows, "fit", fitted=True, fit_label="opened_or_won")
    assert opened.tolist() == [1, 1, 0, 0]  # opened on the test start is after the cutoff
    assert head_labels(rows, windows, "fit", fitted=True, fit_label="won").tolist() == [1, 0, 0, 0]
    # judged on wins either way, the test window's included
    assert head_labels(rows, windows, "fit", fitted=False).tolist() == [1, 0, 0, 1]
