"""The account recipe's labelled data, as training and tuning both use it: spine, labels and
point-in-time features after the leakage screen, each head's labels and columns.

* fit head: firmographic/technographic columns; label = the account wins new business, censored
  at the start of the test window for the rows a model is fitted on;
* conversion head: every present family; label = a new-business opportunity within the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from propensity.data.specs import Tables
from propensity.features.matrix import FeatureSet, build_features
from propensity.model.config import ModelConfig
from propensity.model.head import InsufficientDataError
from propensity.model.screen import ScreenResult, screen
from propensity.model.splits import OutOfTimeSplit, SnapshotOutOfTime
from propensity.spine import NEW_BUSINESS, build_labels, build_spine


def _step(progress, name: str) -> None:
    if progress:
        progress(name)


@dataclass
class LabelledFeatures:
    """The feature matrix with its labels (row-aligned) and the leakage screen's verdict."""

    feature_set: FeatureSet
    labels: pd.DataFrame
    screen: ScreenResult

    @property
    def data(self) -> pd.DataFrame:
        return labelled_matrix(self.feature_set, self.labels)


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


def screen_features(
    feature_set: FeatureSet, labels: pd.DataFrame, config: ModelConfig
) -> ScreenResult:
    """The leakage screen on the conversion head's features, training rows only (before the
    validation window), against the conversion label."""
    windows = SnapshotOutOfTime(config.split, config.spine.horizon_days).windows(labels)
    rows = np.flatnonzero(windows.train)
    label = labels["conversion_label"].fillna(False).astype(int).to_numpy()[rows]
    frame = feature_set.matrix.loc[rows, feature_set.model_columns].reset_index(drop=True)
    return screen(frame, label, config=config.screen)


def labelled_features(tables: Tables, config: ModelConfig, progress=None) -> LabelledFeatures:
    """Spine, labels and features as training and tuning use them, after the leakage screen
    (its suspects are dropped unless ``config.keep_suspects``)."""
    _step(progress, "spine and labels")
    spine = build_spine(tables, config.spine)
    labels = build_labels(tables, spine, config.spine)
    _step(progress, "features")
    feature_set = build_features(tables, spine, config.features)
    _step(progress, "leakage screen")
    screened = screen_features(feature_set, labels, config)
    if screened.suspects and not config.keep_suspects:
        feature_set = replace(
            feature_set,
            specs=tuple(s for s in feature_set.specs if s.name not in screened.suspects),
        )
    return LabelledFeatures(feature_set, labels, screened)


def conversion_censoring(config: ModelConfig) -> str | None:
    """The column the conversion head's training labels are censored on, or None (see
    ``SplitConfig.censor_training_labels``)."""
    if not config.split.censors(config.spine.cadence):
        return None
    return "won_at" if config.spine.label_event == "won" else "opened_at"


def head_labels(
    data: pd.DataFrame,
    windows: OutOfTimeSplit,
    head: str,
    fitted: bool,
    fit_label: str = "won",
    censor_conversion: str | None = None,
) -> np.ndarray:
    """0/1 labels of a head. The fit head is always judged on "won new business"; with
    ``fitted`` it is the label the head learns from, censored at the test start: a win before
    it, or (``fit_label="opened_or_won"``) a new-business opportunity opened or won before it.

    ``censor_conversion`` (with ``fitted``; the column of the conversion's time: ``opened_at``
    for a created label, ``won_at`` for a won one) censors the conversion label of the training
    rows at the validation start: a conversion known only after it counts as none."""
    if head == "conversion":
        label = data["conversion_label"].fillna(False).to_numpy(dtype=bool)
        if fitted and censor_conversion is not None:
            start = windows.t1.to_datetime64()
            known = data[censor_conversion].to_numpy() < start  # NaT compares False
            label = label & ~(windows.train & ~known)  # a new array: never the frame's
        return label.astype(int)
    won_at = data["won_at"]
    if not fitted:
        return won_at.notna().astype(int).to_numpy()
    label = won_at.notna() & (won_at < windows.t2)
    if fit_label == "opened_or_won" and "opened_at" in data:
        label |= data["opened_at"].notna() & (data["opened_at"] < windows.t2)
    return label.astype(int).to_numpy()


def customer_base(
    tables: Tables, feature_set: FeatureSet, config: ModelConfig, first_snapshot: pd.Timestamp
) -> pd.DataFrame:
    """One row per account that became a customer (first new-business win) strictly before the
    first snapshot, with its features at the start of the CRM history (the earliest opportunity,
    so the win lies after the row's ``as_of``) and ``won_at`` its first win. Empty without
    opportunities. These accounts are never in the spine (customers are not scored), yet they
    are what an ICP is learned from."""
    opportunities = tables.get("opportunities")
    columns = [
        *feature_set.matrix.columns,
        "label_complete",
        "conversion_label",
        "fit_label",
        "won_at",
        "opened_at",
    ]
    if opportunities is None or opportunities.empty:
        return pd.DataFrame(columns=columns)
    new_business = opportunities[opportunities["type"].fillna(NEW_BUSINESS) == NEW_BUSINESS]
    won = new_business[(new_business["outcome"] == "won") & new_business["closed_at"].notna()]
    first_win = won.groupby("account_id")["closed_at"].min()
    first_win = first_win[first_win < first_snapshot]
    if first_win.empty:
        return pd.DataFrame(columns=columns)
    history_start = pd.Timestamp(opportunities["created_at"].min()).normalize()
    spine = pd.DataFrame({"account_id": first_win.index.to_numpy(), "as_of": history_start}).astype(
        {"as_of": "datetime64[us]"}
    )
    rows = build_features(tables, spine, config.features).matrix
    rows["label_complete"] = True
    rows["conversion_label"] = pd.array([pd.NA] * len(rows), dtype="boolean")
    rows["fit_label"] = pd.array([True] * len(rows), dtype="boolean")
    rows["won_at"] = rows["account_id"].map(first_win).astype("datetime64[us]")
    rows["opened_at"] = rows["won_at"]  # their first win, opened no later (both before the spine)
    return rows


def account_rows(
    data: pd.DataFrame, windows: OutOfTimeSplit, base: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray]:
    """The fit head's rows, and which of them are learn-only (the customer base's): the customer base, one row per prospect of the training and
    validation windows (its latest: firmographics do not change between snapshots, and repeated
    rows would weigh an account by how long it stayed a prospect), then the test window's rows
    unchanged (the head is judged per snapshot, as it is used). The windows are the same on
    these rows: the test rows and their dates are the data's."""
    development = data.loc[windows.train | windows.valid]
    latest = development.groupby("account_id", sort=False).tail(1)
    base = base.reindex(columns=data.columns)
    parts = [base, latest.sort_values(["as_of", "account_id"]), data.loc[windows.test]]
    rows = pd.concat([p for p in parts if len(p)], ignore_index=True)
    return rows, np.arange(len(rows)) < len(base)


def head_features(feature_set: FeatureSet, head: str) -> list[str]:
    if head == "fit":
        return feature_set.family_columns("firmographic")
    return feature_set.model_columns


def check_positives(
    head: str,
    positives: int,
    config: ModelConfig,
    windows: OutOfTimeSplit,
    first_date,
    until: pd.Timestamp | None = None,
) -> None:
    """Refuse a head with fewer than ``min_positives`` positives on the rows it learns from
    (``first_date`` up to ``until``, default the validation start)."""
    until = windows.t1 if until is None else until
    if positives < config.min_positives:
        advice = (
            "use a longer history (more snapshots before the validation window)"
            if head == "fit"
            else "use a longer history, a longer horizon_days, or train the fit-only model"
        )
        raise InsufficientDataError(
            f"head '{head}': only {positives} positive labels in the rows it learns from "
            f"({pd.Timestamp(first_date).date()}..{until.date()}); at least "
            f"{config.min_positives} are needed (min_positives). {advice[0].upper() + advice[1:]}."
        )
