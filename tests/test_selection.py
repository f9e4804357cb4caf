"""Small data and model choice: windows sized by positives, the shipped scorer chosen by the
pre-declared rule, degenerate models caught (issue 21)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from propensity.evaluate import auc_difference_bound
from propensity.model.candidates import (
    EXPECTED_VALUE,
    LogisticCandidate,
    ScorecardCandidate,
)
from propensity.model.head import HeadModel, LightGBMParams, logistic_baseline
from propensity.model.scorecard import Scorecard
from propensity.model.stacked import StackedCandidate, stacked_out_of_fold
from propensity.runs.selection import _better, health
from propensity.scoring import CONVERSION_TIERS, model_version

SMALL = LightGBMParams(n_estimators=200, learning_rate=0.05, num_leaves=7, min_child_samples=5)


def accounts_frame(n: int, seed: int, positive_rate: float) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per account; the label depends on two of three numeric columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "account_id": [f"A{seed}-{i}" for i in range(n)],
            "employees": rng.lognormal(5, 1, n),
            "visits": rng.poisson(2, n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    margin = 1.2 * np.log(frame["employees"]) + 0.6 * frame["visits"]
    noisy = (margin + rng.normal(0, 1.0, n)).to_numpy()
    return frame, (noisy > np.quantile(noisy, 1 - positive_rate)).astype(int)


def head(**settings) -> HeadModel:
    return HeadModel(
        features=["employees", "visits", "noise"], params=SMALL, seed=0, n_jobs=1, **settings
    )


def test_a_validation_window_with_few_positives_is_cross_fitted_not_collapsed():
    train, y_train = accounts_frame(3000, 1, 0.03)
    valid, y_valid = accounts_frame(400, 2, 0.01)  # a handful of wins
    assert y_valid.sum() < 10
    model = head(min_calibration_positives=50).fit(train, y_train, eval_set=(valid, y_valid))
    assert model.calibration_basis_.startswith("cross-fitted on train + validation")
    assert model.calibration_positives_ == y_train.sum() + y_valid.sum()
    probability = model.predict_proba(valid)[:, 1]
    assert len(np.unique(probability.round(9))) > 50  # a real ranking, not a step or two
    assert roc_auc_score(y_valid, probability) > 0.7
    assert health(model, CONVERSION_TIERS, 0.75) == []


@pytest.mark.parametrize("valid_rate", [0.01, 0.1])  # cross-fitted, then the validation window
def test_probabilities_estimate_the_calibration_label_not_the_broader_one_learned(valid_rate):
    """The fit head learns "opened or won" and gives the probability of a win."""
    train, opened_train = accounts_frame(3000, 1, 0.2)
    valid, opened_valid = accounts_frame(1500, 2, valid_rate * 2)
    rng = np.random.default_rng(3)
    won_train = opened_train * (rng.random(len(train)) < 0.5)  # half the opened ones win
    won_valid = opened_valid * (rng.random(len(valid)) < 0.5)
    model = head(min_calibration_positives=50).fit(
        train,
        opened_train,
        eval_set=(valid, opened_valid),
        calibration_label=(won_train, won_valid),
    )
    calibration_rate = model.validation_label_.mean()
    assert calibration_rate < 0.6 * (valid_rate * 2 if valid_rate > 0.05 else 0.2)
    assert model.validation_probability_.mean() == pytest.approx(calibration_rate, rel=0.1)


def test_enough_validation_positives_keep_the_validation_window():
    train, y_train = accounts_frame(3000, 1, 0.1)
    valid, y_valid = accounts_frame(1500, 2, 0.1)
    model = head(min_calibration_positives=50).fit(train, y_train, eval_set=(valid, y_valid))
    assert model.calibration_basis_ == "validation window"
    assert model.calibration_positives_ == y_valid.sum()


def test_isotonic_is_not_a_candidate_below_its_minimum_of_positives():
    train, y_train = accounts_frame(3000, 1, 0.05)
    valid, y_valid = accounts_frame(2000, 2, 0.04)  # about 80 wins: too few for isotonic
    model = head().fit(train, y_train, eval_set=(valid, y_valid))
    assert set(model.calibration_losses_) == {"sigmoid"}


def test_a_one_tree_model_with_constant_probabilities_is_flagged():
    train, y_train = accounts_frame(2000, 1, 0.05)
    valid, y_valid = accounts_frame(2000, 2, 0.05)
    stump = HeadModel(
        features=["noise"],
        params=LightGBMParams(n_estimators=1, num_leaves=2, min_child_samples=5),
        calibration_methods=("sigmoid",),
        seed=0,
        n_jobs=1,
    ).fit(train, y_train, eval_set=(valid, y_valid))
    problems = health(stump, CONVERSION_TIERS, 0.5)
    assert any("trees" in p for p in problems)
    assert any("near-constant probabilities" in p for p in problems)


def test_ranking_worse_than_chance_is_a_problem():
    train, y_train = accounts_frame(3000, 1, 0.1)
    valid, y_valid = accounts_frame(1500, 2, 0.1)
    model = head().fit(train, y_train, eval_set=(valid, y_valid))
    assert any("worse than the base rate" in p for p in health(model, CONVERSION_TIERS, 0.42))


def test_auc_difference_and_its_bound_from_a_paired_bootstrap():
    rng = np.random.default_rng(0)
    label = (rng.random(4000) < 0.1).astype(int)
    strong = label + rng.normal(0, 0.8, 4000)
    weak = np.round(label * 0.3 + rng.normal(0, 0.8, 4000), 1)  # with ties
    groups = np.arange(4000) // 4
    difference, bound = auc_difference_bound(label, strong, weak, groups, level=0.95)
    assert difference == pytest.approx(roc_auc_score(label, strong) - roc_auc_score(label, weak))
    assert 0 < bound < difference
    same, same_bound = auc_difference_bound(label, weak, weak, groups)
    assert same == 0 and same_bound == 0
    reverse, reverse_bound = auc_difference_bound(label, weak, strong, groups, level=0.95)
    assert reverse == pytest.approx(-difference) and reverse_bound < reverse


def test_a_shipped_scorecard_ranks_as_its_points_and_names_itself_in_the_version():
    scorecard = Scorecard.from_yaml()
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n)],
            "industry": rng.choice(["software", "retail", "manufacturing", "finance"], n),
            "size_band": rng.choice(["1-49", "50-199", "200-999", "1000+"], n),
            "country": rng.choice(["us", "de", "fr"], n),
        }
    )
    points = scorecard.fit_points(frame)
    label = (points + rng.normal(0, points.std() + 1, n) > points.quantile(0.8)).astype(int)
    candidate = ScorecardCandidate.of(scorecard, "fit", frame, frame, label.to_numpy())
    probability = candidate.predict_proba(frame)[:, 1]
    assert roc_auc_score(label, probability) == pytest.approx(roc_auc_score(label, points))
    contributions = candidate.contributions(frame)
    margin = np.log(probability / (1 - probability))
    assert np.allclose(contributions.sum(axis=1), margin)
    assert model_version([candidate]).startswith("scorecard-sha-")


def firmographic_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Accounts the default scorecard can score; wins follow its points plus a pattern it
    misses (a large company in retail buys too)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "account_id": [f"F{seed}-{i}" for i in range(n)],
            "industry": rng.choice(["software", "retail", "manufacturing", "finance"], n),
            "size_band": rng.choice(["1-49", "50-199", "200-999", "1000+"], n),
            "country": rng.choice(["us", "de", "fr"], n),
            "noise": rng.normal(size=n),
        }
    )
    points = Scorecard.from_yaml().fit_points(frame).to_numpy()
    missed = ((frame["industry"] == "retail") & (frame["size_band"] == "1000+")).to_numpy()
    margin = points / (points.std() + 1) + 2.5 * missed + rng.normal(0, 1.0, n)
    return frame, (margin > np.quantile(margin, 0.85)).astype(int)


def boosted(**settings) -> HeadModel:
    return HeadModel(
        features=["industry", "size_band", "country", "noise"],
        categorical=["industry", "size_band", "country"],
        params=SMALL,
        seed=0,
        n_jobs=1,
        prior=Scorecard.from_yaml(),
        prior_head="fit",
        min_calibration_positives=10**9,  # cross-fitted, as the fit head
        **settings,
    )


def test_a_model_boosted_from_the_scorecard_starts_from_its_points_and_explains_both():
    train, y_train = firmographic_frame(3000, 1)
    valid, y_valid = firmographic_frame(1000, 2)
    model = boosted().fit(train, y_train, eval_set=(valid, y_valid))
    assert model.prior_ is not None and model.prior_.slope > 0
    test, y_test = firmographic_frame(3000, 3)
    points = Scorecard.from_yaml().fit_points(test)
    # the trees learn what the points miss: better than the points alone
    probability = model.predict_proba(test)[:, 1]
    assert roc_auc_score(y_test, probability) > roc_auc_score(y_test, points) + 0.02
    # reasons stay an exact decomposition of the log-odds: points + TreeSHAP
    contributions = model.contributions(test)
    assert np.allclose(contributions.sum(axis=1), model.predict_margin(test))
    without_trees = model.prior_.margin(test)
    assert not np.allclose(model.predict_margin(test), without_trees)
    assert health(model, CONVERSION_TIERS, 0.75) == []


def test_learn_only_rows_train_the_trees_but_not_the_calibration():
    train, y_train = firmographic_frame(3000, 1)
    valid, y_valid = firmographic_frame(1000, 2)
    customers, _ = firmographic_frame(400, 4)
    rows = pd.concat([customers, train], ignore_index=True)
    labels = np.concatenate([np.ones(len(customers), int), y_train])
    learn_only = np.arange(len(rows)) < len(customers)
    model = boosted().fit(rows, labels, eval_set=(valid, y_valid), learn_only=learn_only)
    # calibrated and scored on the prospects of train + validation only
    assert model.validation_rows_.min() == len(customers)
    assert len(model.validation_rows_) == len(train) + len(valid)
    assert model.calibration_positives_ == y_train.sum() + y_valid.sum()
    base_rate = (y_train.sum() + y_valid.sum()) / (len(y_train) + len(y_valid))
    assert model.validation_probability_.mean() == pytest.approx(base_rate, abs=0.01)


def test_a_baseline_that_learned_from_customers_is_shifted_to_the_prospects_base_rate():
    from propensity.model.head import logistic_baseline, match_base_rate

    prospects, y = accounts_frame(3000, 5, 0.05)
    customers, _ = accounts_frame(600, 6, 0.05)
    rows = pd.concat([customers, prospects], ignore_index=True)
    labels = np.concatenate([np.ones(len(customers), int), y])
    columns = ["employees", "visits", "noise"]
    logistic = logistic_baseline(columns, [], 0).fit(rows[columns], labels)
    before = logistic.predict_proba(prospects[columns])[:, 1]
    assert before.mean() > 0.1  # the customers inflate it
    match_base_rate(logistic, prospects[columns], y.mean())
    after = logistic.predict_proba(prospects[columns])[:, 1]
    assert after.mean() == pytest.approx(y.mean(), abs=1e-6)
    assert roc_auc_score(y, after) == pytest.approx(roc_auc_score(y, before))


def test_the_higher_scorer_ships_at_level_one_half_and_needs_confidence_above_it():
    rng = np.random.default_rng(0)
    label = (rng.random(400) < 0.3).astype(int)
    incumbent = label + rng.normal(0, 1.2, 400)
    challenger = label + rng.normal(0, 1.2, 400)  # higher by 0.012 ROC-AUC, within the noise
    rows = np.arange(400)
    options = dict(n_bootstrap=200, seed=0, metric="roc_auc")
    assert roc_auc_score(label, challenger) > roc_auc_score(label, incumbent)
    assert _better(label, challenger, incumbent, rows, 0.5, **options)[0]
    assert not _better(label, incumbent, challenger, rows, 0.5, **options)[0]
    better, bound = _better(label, challenger, incumbent, rows, 0.84, **options)
    assert not better and bound < 0


def stack_parts(seed: int = 1):
    """A LightGBM model and a logistic baseline fitted on one window, both judged on another."""
    train, y_train = accounts_frame(3000, seed, 0.15)
    valid, y_valid = accounts_frame(1500, seed + 1, 0.15)
    model = head(min_calibration_positives=50).fit(train, y_train, eval_set=(valid, y_valid))
    features = ["employees", "visits", "noise"]
    pipeline = logistic_baseline(features, [], 0).fit(train[features], y_train)
    logistic = LogisticCandidate.of(pipeline, features, [], valid, train, y_train)
    return model, logistic, valid, y_valid


def test_a_stack_weighs_both_models_and_its_reasons_sum_to_its_log_odds():
    model, logistic, valid, y_valid = stack_parts()
    stacked = StackedCandidate.of(
        model, logistic, model.predict_margin(valid), logistic.margin(valid), y_valid
    )
    assert stacked is not None and min(stacked.weights) > 0
    probability = stacked.predict_proba(valid)[:, 1]
    assert np.allclose(probability, stacked.validation_probability_)
    # its probabilities are calibrated on the rows it was stacked on: mean = base rate
    assert probability.mean() == pytest.approx(y_valid.mean(), abs=1e-4)
    contributions = stacked.contributions(valid)
    assert list(contributions.columns) == [*model.features_, EXPECTED_VALUE]
    assert np.allclose(contributions.sum(axis=1), np.log(probability / (1 - probability)))
    assert model_version([stacked]).startswith("stacked-sha-")
    assert np.allclose(stacked.with_threads(1).predict_proba(valid), stacked.predict_proba(valid))
    newer = stacked.recalibrated(valid.iloc[:700], y_valid[:700])
    assert newer is not None and newer.fingerprint() != stacked.fingerprint()
    order = np.argsort(stacked.margin(valid), kind="stable")
    assert (np.argsort(newer.margin(valid), kind="stable") == order).all()


def test_no_stack_is_formed_when_a_weight_would_be_negative():
    model, logistic, valid, y_valid = stack_parts()
    # a "logistic" whose log-odds point the wrong way once the model's are known
    reversed_margin = -logistic.margin(valid)
    stacked = StackedCandidate.of(
        model, logistic, model.predict_margin(valid), reversed_margin, y_valid
    )
    assert stacked is None


def test_the_stack_is_judged_with_its_weights_fitted_out_of_fold():
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.2).astype(int)
    groups = np.arange(600)
    noise = rng.normal(size=(600, 2))  # neither margin knows the label
    out_of_fold = stacked_out_of_fold(noise[:, 0], noise[:, 1], y, groups, seed=0)
    assert out_of_fold.shape == (600,)
    assert len(np.unique(out_of_fold.round(12))) > 500
    # every row has its own out-of-fold log-odds, and pure noise ranks at chance
    assert abs(roc_auc_score(y, out_of_fold) - 0.5) < 0.08
