"""Every way rows are split for evaluation, as scikit-learn style CV objects.

The protocol (:mod:`propensity.runs.protocol`) asks a splitter for :class:`Fold` objects (train,
validation, test row positions) through ``folds(X, y, groups)`` and for the rows of the final
model through ``final_fold(X, y, groups)`` (``None``: the tested model is the final model);
``split(X, y, groups)`` yields ``(train + validation, test)`` like any scikit-learn splitter.

* :class:`SnapshotOutOfTime`: the account recipe (snapshots, see below).
* :class:`RowOutOfTime`: a won/lost table whose rows have a time (or are in time order).
* :class:`RepeatedGroupKFold`: a table without time; identical feature vectors share a fold.
* :class:`SnapshotTimeSeriesSplit`: time-ordered folds for tuning.

The evaluation split (``out_of_time_split``): train on snapshots before ``T1``, validate
(early stopping, calibration, threshold choice) on ``[T1, T2 - gap)``, test once on snapshots
from ``T2`` whose labels are complete. The gap (default: the label horizon) keeps every label
window used for fitting inside the past of the test window: nothing fitted has seen a label
from the test period. Each snapshot date belongs to exactly one part, so an account never
contributes to two parts at the same date.

The tuning splitter (:class:`SnapshotTimeSeriesSplit`) is a scikit-learn CV object over
snapshot dates: expanding training windows, each followed by a gap and a validation block of
dates; Optuna materialises its folds once as lists and reuses them across trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils import check_random_state


class SplitConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    test_months: int = Field(6, ge=1, le=60, description="months of snapshots in the test window")
    valid_months: int = Field(3, ge=1, le=60, description="months of snapshots for validation")
    gap_days: int | None = Field(
        None, ge=0, le=730, description="gap before the test window (None: horizon)"
    )
    censor_training_labels: Literal["auto", "always", "never"] = Field(
        "auto",
        description="fit the conversion head's training rows on the conversions known when "
        "the validation window starts (one after it counts as none), so an outcome in the "
        "validation window is not learned from the same account's training rows too, which "
        "rewards memorising accounts; auto: with snapshots more often than monthly, where that "
        "overlap holds four times the rows (benchmarks/robustness.md, weekly snapshots)",
    )

    def censors(self, cadence: str) -> bool:
        """Whether the training labels are censored at the validation start (see the key)."""
        if self.censor_training_labels == "auto":
            return cadence != "monthly"
        return self.censor_training_labels == "always"


@dataclass(frozen=True)
class OutOfTimeSplit:
    train: np.ndarray  # boolean masks over the labelled rows
    valid: np.ndarray
    test: np.ndarray
    t1: pd.Timestamp
    t2: pd.Timestamp
    test_end: pd.Timestamp

    def describe(self) -> dict[str, str]:
        return {
            "valid_start": str(self.t1.date()),
            "test_start": str(self.t2.date()),
            "test_end": str(self.test_end.date()),
        }


class SplitError(ValueError):
    """The data cannot be split out of time as configured (the message says why and what to change)."""


def out_of_time_split(
    as_of: pd.Series, label_complete: pd.Series, config: SplitConfig, horizon_days: int
) -> OutOfTimeSplit:
    """Masks over rows (as_of, label_complete) for train / valid / test; raises if a part is empty."""
    as_of = pd.to_datetime(as_of).reset_index(drop=True)
    complete = label_complete.fillna(False).astype(bool).to_numpy()
    labelled_dates = np.sort(as_of[complete].unique())
    if len(labelled_dates) == 0:
        raise SplitError(
            "no snapshot has a complete label window: the data is shorter than the horizon, "
            "or no account is a prospect (customers and accounts with an open new-business "
            "opportunity are not scored) at any snapshot with a complete window"
        )
    test_end = pd.Timestamp(labelled_dates[-1])
    t2 = test_end - pd.DateOffset(months=config.test_months) + pd.Timedelta(days=1)
    gap = pd.Timedelta(days=config.gap_days if config.gap_days is not None else horizon_days)
    valid_end = t2 - gap  # valid as_of + horizon stays before the test window
    t1 = valid_end - pd.DateOffset(months=config.valid_months)
    dates = as_of.to_numpy()
    test = complete & (dates >= t2.to_datetime64())
    valid = complete & (dates >= t1.to_datetime64()) & (dates < valid_end.to_datetime64())
    train = complete & (dates < t1.to_datetime64())
    for name, mask in (("train", train), ("validation", valid), ("test", test)):
        if not mask.any():
            first = pd.Timestamp(labelled_dates[0]).date()
            raise SplitError(
                f"the {name} window is empty: labelled snapshots run {first}..{test_end.date()}, "
                f"test starts {t2.date()}, validation {t1.date()}..{valid_end.date()} (gap {gap.days} days); "
                "use more history or shorter test_months / valid_months"
            )
    return OutOfTimeSplit(train, valid, test, t1, t2, test_end)


class SnapshotTimeSeriesSplit:
    """Time-ordered, account-grouped CV over snapshot dates (scikit-learn splitter protocol).

    ``X`` must have an ``as_of`` column. The distinct dates are cut into ``n_splits + 1``
    consecutive blocks; fold ``i`` validates on block ``i + 1`` and trains on the dates before
    that block minus ``gap_days``. All rows of a date land in the same part. With ``groups``
    (account ids), accounts are also split into ``n_splits`` groups: fold ``i`` validates only on
    group ``i`` and trains only on the other groups, so no account is on both sides of a fold.
    """

    def __init__(self, n_splits: int = 3, gap_days: int = 90):
        self.n_splits = n_splits
        self.gap_days = gap_days

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.n_splits < 1:
            raise ValueError(f"n_splits must be >= 1, got {self.n_splits}")
        as_of = pd.to_datetime(pd.Series(np.asarray(X["as_of"])))
        dates = np.sort(as_of.unique())
        if len(dates) < self.n_splits + 1:
            raise ValueError(
                f"Too many splits={self.n_splits} for {len(dates)} snapshot dates; need at least n_splits + 1"
            )
        blocks = np.array_split(dates, self.n_splits + 1)
        values = as_of.to_numpy()
        gap = np.timedelta64(self.gap_days, "D")
        if groups is None:
            account_group = np.full(len(values), -1)
        else:
            # stable, order-free assignment of accounts to groups
            codes = pd.util.hash_array(np.asarray(groups).astype(str))
            account_group = (codes % np.uint64(self.n_splits)).astype(int)
        for fold, block in enumerate(blocks[1:]):
            start = block[0]
            in_train_time = values < start - gap
            in_valid_time = np.isin(values, block)
            if groups is None:
                train, valid = np.flatnonzero(in_train_time), np.flatnonzero(in_valid_time)
            else:
                train = np.flatnonzero(in_train_time & (account_group != fold))
                valid = np.flatnonzero(in_valid_time & (account_group == fold))
            if len(train) == 0:
                raise ValueError(
                    f"fold validating from {pd.Timestamp(start).date()} has no training dates before the "
                    f"{self.gap_days}-day gap; use fewer splits or a shorter gap"
                )
            yield train, valid


@dataclass(frozen=True)
class Fold:
    """Row positions of one train / validation / test assignment (validation: early stopping
    and calibration; test: the held-out rows the comparison table is computed on)."""

    repeat: int
    fold: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


class _ThreeWaySplitter:
    """What every protocol splitter shares: the scikit-learn view of its folds."""

    def folds(self, X, y=None, groups=None) -> list[Fold]:  # pragma: no cover - abstract
        raise NotImplementedError

    def final_fold(self, X, y=None, groups=None) -> Fold | None:
        """Rows of the final model; None: the (single) tested model is the final model."""
        return None

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for fold in self.folds(X, y, groups):
            yield np.sort(np.concatenate([fold.train, fold.valid])), fold.test

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return len(self.folds(X, y, groups)) if X is not None else 1


class SnapshotOutOfTime(_ThreeWaySplitter):
    """The account recipe's split (see :func:`out_of_time_split`): ``X`` has ``as_of`` and
    ``label_complete``; one fold; the tested model is the final model."""

    def __init__(self, config: SplitConfig, horizon_days: int):
        self.config = config
        self.horizon_days = horizon_days

    def windows(self, X) -> OutOfTimeSplit:
        """The boolean masks and the dates that bound them."""
        return out_of_time_split(X["as_of"], X["label_complete"], self.config, self.horizon_days)

    def folds(self, X, y=None, groups=None) -> list[Fold]:
        windows = self.windows(X)
        return [
            Fold(
                0,
                0,
                np.flatnonzero(windows.train),
                np.flatnonzero(windows.valid),
                np.flatnonzero(windows.test),
            )
        ]


ROW_TIME = "__row_time__"


class RowOutOfTime(_ThreeWaySplitter):
    """Train on the earliest rows, validate on the next ``valid_share``, test on the latest
    ``test_share`` of ``X[ROW_TIME]``; cuts fall between distinct times, so one time is never in
    two parts. Each part needs both classes of ``y``.

    Rolling origin: with ``origins`` > 1, the same three windows are also cut ``step_share``,
    2 x ``step_share``, ... of the rows earlier (less training history, an earlier test window),
    so the spread of the figures over successive out-of-time folds can be read next to the
    latest one. Folds come earliest first; the latest is ``repeat`` 0 and last (the one the
    comparison table and the final model use). An earlier origin whose windows lack a class is
    left out."""

    def __init__(
        self,
        valid_share: float = 0.2,
        test_share: float = 0.2,
        origins: int = 1,
        step_share: float | None = None,
    ):
        self.valid_share = valid_share
        self.test_share = test_share
        self.origins = origins
        self.step_share = test_share / 2 if step_share is None else step_share

    def folds(self, X, y=None, groups=None) -> list[Fold]:
        values = np.asarray(X[ROW_TIME])
        label = np.asarray(y)
        order = np.argsort(values, kind="stable")
        n = len(values)

        def cut(position: int):
            return values[order[min(n - 1, max(0, position))]]

        # window sizes in rows, so every origin's windows are the same size (no float drift)
        test_rows = n - int(np.floor(n * (1 - self.test_share)))
        valid_rows = int(np.floor(n * (1 - self.test_share))) - int(
            np.floor(n * (1 - self.test_share - self.valid_share))
        )
        step_rows = int(round(n * self.step_share))
        folds = []
        for origin in range(self.origins):
            end = n - origin * step_rows
            test_start = cut(end - test_rows)
            valid_start = cut(end - test_rows - valid_rows)
            in_range = values < cut(end) if origin else np.ones(n, bool)
            test = np.flatnonzero((values >= test_start) & in_range)
            valid = np.flatnonzero((values >= valid_start) & (values < test_start))
            train = np.flatnonzero(values < valid_start)
            parts = (("training", train), ("validation", valid), ("test", test))
            empty = [
                (part, rows)
                for part, rows in parts
                if len(rows) == 0 or label[rows].min() == label[rows].max()
            ]
            if empty and origin == 0:
                part, rows = empty[0]
                raise SplitError(
                    f"the {part} part of the out-of-time split has {len(rows)} rows and "
                    f"{int(label[rows].sum()) if len(rows) else 0} positives: it needs both "
                    "classes; change valid_share/test_share or use K-fold (no time column)"
                )
            if not empty:
                folds.append(Fold(origin, 0, train, valid, test))
        return folds[::-1]


class StratifiedGroupFolds(StratifiedGroupKFold):
    """scikit-learn's ``StratifiedGroupKFold`` (shuffled), the same folds in a tenth of the time.

    scikit-learn places each group greedily, trying every fold in a Python loop: about 2 s per
    split for 10,000 distinct groups, which made the grouped K-fold the largest cost of a table
    run. Here each group's candidates are scored over all folds in one array operation (the same
    arithmetic in the same order, so the same choices, ties included) and the test rows are read
    off a fold-per-group array. ``tests/test_splits.py`` checks the folds equal scikit-learn's.
    """

    def __init__(self, n_splits: int = 5, seed: int = 0):
        super().__init__(n_splits=n_splits, shuffle=True, random_state=seed)

    def _iter_test_indices(self, X, y, groups):
        rng = check_random_state(self.random_state)
        _, y_inv, y_cnt = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
        if self.n_splits > y_cnt.min():
            raise SplitError(
                f"{self.n_splits} folds need at least {self.n_splits} rows of each class; the "
                f"smallest class has {int(y_cnt.min())}"
            )
        _, groups_inv, groups_cnt = np.unique(groups, return_inverse=True, return_counts=True)
        n_groups, n_classes = len(groups_cnt), len(y_cnt)
        counts = np.zeros((n_groups, n_classes))
        np.add.at(counts, (groups_inv, y_inv), 1)
        perm = np.arange(n_groups)
        rng.shuffle(perm)
        counts = counts[perm]
        inv_perm = np.empty_like(perm)
        inv_perm[perm] = np.arange(n_groups)
        groups_inv = inv_perm[groups_inv]
        order = np.argsort(-np.std(counts, axis=1), kind="stable")

        per_fold = np.zeros((self.n_splits, n_classes))
        fold_of_group = np.empty(n_groups, dtype=int)
        diagonal = np.eye(self.n_splits)[:, :, None]  # candidate i adds the group to fold i
        scale = y_cnt.reshape(1, 1, -1)
        for group in order:
            group_counts = counts[group]
            candidates = per_fold[None, :, :] + diagonal * group_counts
            evals = np.mean(np.std(candidates / scale, axis=1), axis=1).tolist()
            sizes = per_fold.sum(axis=1).tolist()
            best, best_eval, best_size = 0, evals[0], sizes[0]
            for fold in range(1, self.n_splits):
                value = evals[fold]
                # np.isclose's rule (rtol 1e-5, atol 1e-8) on plain floats: ten times faster
                if value < best_eval or (
                    abs(value - best_eval) <= 1e-8 + 1e-5 * abs(best_eval)
                    and sizes[fold] < best_size
                ):
                    best, best_eval, best_size = fold, value, sizes[fold]
            per_fold[best] += group_counts
            fold_of_group[group] = best
        row_fold = fold_of_group[groups_inv]
        for fold in range(self.n_splits):
            yield np.flatnonzero(row_fold == fold)


def inner_validation(
    rows: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows 80/20, stratified, equal ``groups`` together (early stopping, calibration)."""
    splitter = StratifiedGroupFolds(n_splits=5, seed=seed)
    fit_idx, valid_idx = next(splitter.split(rows, label[rows], groups[rows]))
    return rows[fit_idx], rows[valid_idx]


class RepeatedGroupKFold(_ThreeWaySplitter):
    """Repeated stratified K-fold where rows with the same ``groups`` value (a feature vector)
    share a fold; each fold's training rows are split again (:func:`inner_validation`). The final
    model is refitted on every row (80/20 inner split)."""

    def __init__(self, n_splits: int = 5, n_repeats: int = 2, seed: int = 0):
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.seed = seed

    def _check(self, label: np.ndarray, groups: np.ndarray) -> None:
        for value in (0, 1):
            distinct = len(np.unique(groups[label == value]))
            needed = max(2 * self.n_splits, 10)  # outer folds, then a grouped inner split
            if distinct < needed:
                raise SplitError(
                    f"K-fold needs at least {needed} distinct feature vectors per class; class "
                    f"{value} has {distinct} (the columns left after the screen barely vary): "
                    "add columns, lower folds, or give a time column"
                )

    def folds(self, X, y=None, groups=None) -> list[Fold]:
        label, groups = np.asarray(y), np.asarray(groups)
        self._check(label, groups)
        folds = []
        everything = np.arange(len(label))
        for repeat in range(self.n_repeats):
            splitter = StratifiedGroupFolds(n_splits=self.n_splits, seed=self.seed + repeat)
            for number, (train_idx, test_idx) in enumerate(
                splitter.split(everything, label, groups)
            ):
                train, valid = inner_validation(
                    train_idx, label, groups, self.seed + 1000 * repeat + number
                )
                folds.append(Fold(repeat, number, train, valid, test_idx))
        return folds

    def final_fold(self, X, y=None, groups=None) -> Fold:
        label, groups = np.asarray(y), np.asarray(groups)
        train, valid = inner_validation(np.arange(len(label)), label, groups, self.seed)
        return Fold(0, -1, train, valid, np.array([], dtype=int))

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits * self.n_repeats
