"""A learned points scorecard: a head's label turned into integer points per binned field, in the
shape of the hand-made ``scorecard.yaml``, for a marketing-automation tool that only runs point
rules.

The classic credit-scoring recipe, on the rows the head learns from (train + validation, all
strictly before the test window, so the card is judged out of time like the models):

1. **Bins**: a numeric field is cut by a shallow decision tree on its own values (at most
   ``bins`` bins, each holding at least ``min_bin_share`` of the rows, monotone in the direction
   of its rank correlation with the label, missing values a bin of their own); a categorical
   field keeps its values with enough rows and pools the rest (and missing) as "other".
2. **Weight of evidence** per bin (log of the positives' share over the negatives' share,
   smoothed by half a row) and each field's information value.
3. **Fields**: by information value, skipping one whose evidence correlates above 0.8 with a
   field already taken (the 7/30/90-day windows of one activity say much the same), up to
   ``fields``; a logistic regression on the fields' evidence, refitted without any field whose
   weight is not positive (a field that would give points against its own evidence).
4. **Points**: ``points_to_double_odds`` points double the odds; a field's points are shifted so
   that its lowest bin (for industry, size band and country: a value not listed) scores 0, and
   rounded to whole points. The hand-over threshold keeps the hand-made card's share of
   qualified rows (10 % without one): the same number of hand-overs, chosen by learned weights.

Written here rather than with optbinning's ``Scorecard``: optbinning needs ortools and cvxpy and
pins protobuf below 7 (below what MLflow's stack installs); scikit-learn's monotone tree and
logistic regression do the binning and the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from propensity.model.scorecard import FieldPoints, FitPoints, Scorecard

# fields the hand-made card holds under ``fit`` keep their places in a learned card
FIT_CATEGORIES = ("industry", "size_band", "country")
DEFAULT_HANDOVER_SHARE = 0.10
MIN_INFORMATION_VALUE = 0.02


class PointsSettings(BaseModel):
    """How a learned card is binned, chosen and scaled (``learned_scorecard`` in ``model.yaml``;
    see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    fields: int = Field(12, ge=1, le=50, description="at most this many fields on the card")
    bins: int = Field(5, ge=2, le=20, description="at most this many bins per numeric field")
    min_bin_share: float = Field(0.05, gt=0, lt=0.5, description="each bin holds this share")
    points_to_double_odds: float = Field(10.0, gt=0, description="points that double the odds")
    max_correlation: float = Field(
        0.8,
        gt=0,
        le=1,
        description="skip a field whose evidence correlates above this with one taken",
    )


@dataclass
class _BinnedField:
    """One field's bins with their evidence: numeric (``edges``) or categorical (``categories``)."""

    name: str
    edges: list[float] | None  # bin i holds [edges[i-1], edges[i]); the first from -inf
    categories: list[str] | None  # each its own bin; anything else is "other"
    woe: np.ndarray  # per bin; then missing (numeric) or other (categorical) as the last entry
    information_value: float
    rows: np.ndarray  # training rows per bin, in the order of ``woe``

    def bin_index(self, values: pd.Series) -> np.ndarray:
        """The bin of each value; the last index is missing (numeric) or other (categorical)."""
        if self.edges is not None:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            index = np.searchsorted(np.asarray(self.edges, dtype=float), numbers, side="right")
            return np.where(np.isnan(numbers), len(self.edges) + 1, index)
        lookup = {value: i for i, value in enumerate(self.categories)}
        other = len(self.categories)
        text = values.astype("object").where(values.notna(), None)
        return np.array([other if v is None else lookup.get(str(v), other) for v in text])

    def evidence(self, values: pd.Series) -> np.ndarray:
        return self.woe[self.bin_index(values)]


def _weight_of_evidence(
    index: np.ndarray, y: np.ndarray, n_bins: int
) -> tuple[np.ndarray, float, np.ndarray]:
    positives = np.bincount(index, weights=y, minlength=n_bins)
    negatives = np.bincount(index, weights=1 - y, minlength=n_bins)
    share_pos = (positives + 0.5) / (positives.sum() + 0.5 * n_bins)
    share_neg = (negatives + 0.5) / (negatives.sum() + 0.5 * n_bins)
    # a bin no row fell in (no missing values in training) has no evidence either way
    woe = np.where(positives + negatives > 0, np.log(share_pos / share_neg), 0.0)
    return woe, float(((share_pos - share_neg) * woe).sum()), positives + negatives


def _numeric_edges(values: np.ndarray, y: np.ndarray, settings: PointsSettings) -> list[float]:
    present = ~np.isnan(values)
    x, target = values[present], y[present]
    if len(np.unique(x)) < 2 or len(np.unique(target)) < 2:
        return []
    direction = np.sign(pd.Series(x).corr(pd.Series(target), method="spearman"))
    tree = DecisionTreeClassifier(
        max_leaf_nodes=settings.bins,
        min_samples_leaf=max(1, math.ceil(settings.min_bin_share * len(values))),
        monotonic_cst=[int(direction)] if direction in (-1, 1) else None,
        random_state=0,
    ).fit(x.reshape(-1, 1), target)
    thresholds = np.unique(tree.tree_.threshold[tree.tree_.feature >= 0])
    whole = np.all(x == np.round(x))
    # "at least 3 meetings" reads better than "above 2.5": whole-valued fields get whole edges
    edges = np.ceil(thresholds) if whole else np.array([float(f"{t:.4g}") for t in thresholds])
    return sorted(set(edges.tolist()))


def bin_field(
    name: str, values: pd.Series, y: np.ndarray, categorical: bool, settings: PointsSettings
) -> _BinnedField | None:
    """A field's bins and evidence on labelled rows (None: one bin only, nothing to score)."""
    if categorical:
        text = values.astype("object").where(values.notna(), None)
        counts = pd.Series(text).value_counts()
        least = max(30, math.ceil(0.01 * len(values)))
        categories = [str(v) for v in counts.index[counts >= least]]
        if not categories:
            return None
        field = _BinnedField(name, None, categories, np.zeros(len(categories) + 1), 0.0, None)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        edges = _numeric_edges(numbers, y, settings)
        if not edges:
            return None
        field = _BinnedField(name, edges, None, np.zeros(len(edges) + 2), 0.0, None)
    index = field.bin_index(values)
    field.woe, field.information_value, field.rows = _weight_of_evidence(index, y, len(field.woe))
    return field


def _chosen_fields(
    binned: list[_BinnedField],
    evidence: dict[str, np.ndarray],
    y: np.ndarray,
    settings: PointsSettings,
) -> tuple[list[_BinnedField], np.ndarray]:
    """Fields in order of information value, each kept when its evidence is not a near copy of
    a kept field's and the weights stay positive with it, until ``settings.fields`` are kept."""
    chosen: list[_BinnedField] = []
    weights = np.array([])
    for field in sorted(binned, key=lambda f: -f.information_value):
        if len(chosen) == settings.fields or field.information_value < MIN_INFORMATION_VALUE:
            break
        mine = evidence[field.name]
        if mine.std() == 0 or any(
            abs(np.corrcoef(mine, evidence[other.name])[0, 1]) > settings.max_correlation
            for other in chosen
        ):
            continue
        trial = [*chosen, field]
        design = np.column_stack([evidence[f.name] for f in trial])
        fitted = LogisticRegression(solver="newton-cholesky", max_iter=1000).fit(design, y)
        if (fitted.coef_[0] > 0).all():
            chosen, weights = trial, fitted.coef_[0]
    return chosen, weights


def learn_scorecard(
    X: pd.DataFrame,
    y: np.ndarray,
    columns: list[str],
    categorical: list[str],
    settings: PointsSettings | None = None,
    incumbent: Scorecard | None = None,
    name: str = "learned",
) -> Scorecard:
    """A points card learned from labelled rows ``X`` (all before the window it is judged on)
    over ``columns``; ``incumbent`` (the hand-made card) sets which binary fields are ``fit``
    flags and the share of rows at or above the hand-over threshold."""
    settings = settings or PointsSettings()
    y = np.asarray(y, dtype=float)
    binned = [
        field
        for column in columns
        if (field := bin_field(column, X[column], y, column in categorical, settings)) is not None
    ]
    evidence = {f.name: f.evidence(X[f.name]) for f in binned}
    chosen, weights = _chosen_fields(binned, evidence, y, settings)
    factor = settings.points_to_double_odds / math.log(2)
    flags = set(incumbent.fit.flags) if incumbent is not None else set()
    fit: dict[str, dict] = {"flags": {}}
    fields: dict[str, FieldPoints] = {}
    for field, weight in zip(chosen, weights, strict=True):
        raw = factor * weight * field.woe
        if field.categories is not None:
            # a value the card does not list scores 0 in a marketing-automation tool
            points = np.rint(raw - raw[-1]).astype(int)
            table = dict(zip(field.categories, points[:-1].tolist(), strict=True))
            if field.name in FIT_CATEGORIES:
                fit[field.name] = table
            else:
                fields[field.name] = FieldPoints(categories=table)
        elif field.name in flags and field.edges == [1.0]:
            fit["flags"][field.name] = int(np.rint(raw[1] - raw[0]))
        else:
            if field.rows[-1] == 0:  # no missing value seen: a missing one gets the fewest points
                raw[-1] = raw[:-1].min()
            points = np.rint(raw - raw.min()).astype(int)
            fields[field.name] = FieldPoints(
                edges=field.edges, points=points[:-1].tolist(), missing=int(points[-1])
            )
    card = Scorecard(
        name=name,
        fit=FitPoints(**fit),
        engagement={"points": {}, "cap": None},
        fields=fields,
    )
    share = DEFAULT_HANDOVER_SHARE
    if incumbent is not None:
        qualified = float(incumbent.qualified(X).mean())
        share = qualified if 0 < qualified < 1 else share
    total = card.score(X)
    threshold = float(np.ceil(np.quantile(total, 1 - share))) if len(total) else 0.0
    return card.model_copy(update={"handover_threshold": threshold})


__all__ = ["PointsSettings", "bin_field", "learn_scorecard"]
