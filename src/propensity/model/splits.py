"""Out-of-time splits of a labelled spine.

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

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field


class SplitConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    test_months: int = Field(6, ge=1, le=60, description="months of snapshots in the test window")
    valid_months: int = Field(3, ge=1, le=60, description="months of snapshots for validation")
    gap_days: int | None = Field(
        None, ge=0, le=730, description="gap before the test window (None: horizon)"
    )


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
