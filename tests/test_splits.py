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
