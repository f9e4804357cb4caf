"""The grouped K-fold splitter gives scikit-learn's folds, faster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold

from propensity.model.splits import SplitError, StratifiedGroupFolds


@pytest.mark.parametrize("case", range(25))
def test_grouped_folds_equal_scikit_learns(case):
    rng = np.random.default_rng(case)
    rows, n_splits = int(rng.integers(60, 2500)), int(rng.integers(2, 7))
    label = (rng.random(rows) < rng.uniform(0.05, 0.5)).astype(int)
    label[:n_splits] = 1
    label[n_splits : 2 * n_splits] = 0
    # from many small groups (mostly singletons) to a few large ones, where ties are common
    groups = rng.integers(0, int(rng.integers(2 * n_splits, rows)), rows)
    seed = int(rng.integers(0, 10_000))
    X = np.zeros((rows, 1))
    expected = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(
        X, label, groups
    )
    found = StratifiedGroupFolds(n_splits, seed=seed).split(X, label, groups)
    for (want_train, want_test), (got_train, got_test) in zip(expected, found, strict=True):
        np.testing.assert_array_equal(got_test, want_test)
        np.testing.assert_array_equal(got_train, want_train)


def test_grouped_folds_keep_a_group_in_one_fold():
    label = np.tile([0, 1], 50)
    groups = np.repeat(np.arange(20), 5)
    for _, test in StratifiedGroupFolds(5, seed=1).split(np.zeros((100, 1)), label, groups):
        inside = set(groups[test])
        outside = set(groups[np.setdiff1d(np.arange(100), test)])
        assert not inside & outside


def test_more_folds_than_positives_is_a_split_error():
    label = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    with pytest.raises(SplitError, match="smallest class has 2"):
        list(StratifiedGroupFolds(3, seed=0).split(np.zeros((8, 1)), label, np.arange(8)))


def test_a_training_row_whose_conversion_comes_after_the_validation_start_is_fitted_as_none():
    import pandas as pd

    from propensity.model.config import ModelConfig
    from propensity.model.splits import OutOfTimeSplit
    from propensity.runs.labelled import conversion_censoring, head_labels

    t1, t2 = pd.Timestamp("2025-04-01"), pd.Timestamp("2025-10-01")
    data = pd.DataFrame(
        {
            "as_of": pd.to_datetime(["2025-02-03", "2025-03-24", "2025-04-07", "2025-03-24"]),
            "conversion_label": pd.array([True, True, True, False], dtype="boolean"),
            # known before the validation start / after it / a validation row / no conversion
            "opened_at": pd.to_datetime(["2025-03-01", "2025-04-15", "2025-05-01", None]),
        }
    )
    windows = OutOfTimeSplit(
        train=np.array([True, True, False, True]),
        valid=np.array([False, False, True, False]),
        test=np.zeros(4, dtype=bool),
        t1=t1,
        t2=t2,
        test_end=t2,
    )
    weekly = ModelConfig.model_validate({"spine": {"cadence": "weekly"}})
    censored = head_labels(data, windows, "conversion", True, censor_conversion="opened_at")
    assert conversion_censoring(weekly) == "opened_at"
    assert censored.tolist() == [1, 0, 1, 0]
    # judged on the full label, and monthly snapshots are not censored unless asked
    assert head_labels(data, windows, "conversion", False).tolist() == [1, 1, 1, 0]
    assert conversion_censoring(ModelConfig()) is None
    always = ModelConfig.model_validate({"split": {"censor_training_labels": "always"}})
    assert conversion_censoring(always) == "opened_at"
