"""How far a distribution moved: reference bins of each feature and the population stability
index (PSI).

* :func:`feature_bins` fixes, on the rows a head was trained on, ten equal-count bins of each
  numeric feature (fewer when values repeat: a count that is mostly 0 gets a bin for 0), the
  twenty most frequent values of a categorical one plus "other", and a bin for missing values;
  with the share of the reference rows in each bin. A model keeps them, so every later scoring
  can be compared with its training window without the training data.
  Each feature also keeps its ``normal_psi``: the largest PSI of one reference snapshot against
  the pooled reference rows, i.e. how much it moves between snapshots in the data the model
  learned from. A drift alarm asks for more than that (:mod:`propensity.monitor`).
* :func:`psi` compares two share vectors over the same bins: sum of (a - e) * ln(a / e), each
  share floored at :data:`PSI_FLOOR` so an empty bin does not make it infinite. The usual
  reading: below 0.1 stable, 0.1-0.25 moved, above 0.25 a different population.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from propensity.features.registry import FeatureSpec

PSI_FLOOR = 1e-4
NUMERIC_BINS = 10
TOP_CATEGORIES = 20
MISSING = "missing"
OTHER = "other"


@dataclass(frozen=True)
class FeatureBins:
    """One feature's reference bins and the reference rows' share in each (last bin: missing)."""

    feature: str
    family: str
    field: str
    edges: tuple[float, ...] = ()  # numeric: upper bounds (inclusive) of all bins but the last
    categories: tuple[str, ...] | None = None  # categorical: one bin each, then "other"
    shares: tuple[float, ...] = ()
    # the largest PSI of one reference snapshot against all of them: how much the feature moves
    # from snapshot to snapshot in normal times (seasonal e-mail, recency growing with history)
    normal_psi: float = 0.0

    @property
    def labels(self) -> list[str]:
        if self.categories is not None:
            return [*self.categories, OTHER, MISSING]
        bounds = [f"<= {e:g}" for e in self.edges]
        return [*bounds, f"> {self.edges[-1]:g}" if self.edges else "any", MISSING]

    def codes(self, values: pd.Series) -> np.ndarray:
        """The bin of each value (0 .. len(labels) - 1)."""
        if self.categories is not None:
            missing = values.isna().to_numpy()
            lookup = {c: i for i, c in enumerate(self.categories)}
            codes = values.astype("string").map(lookup).fillna(len(self.categories))
            codes = codes.to_numpy(dtype=float).astype(int)
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            missing = np.isnan(numbers)  # unreadable values count as missing too
            codes = np.searchsorted(np.asarray(self.edges, dtype=float), numbers, side="left")
        codes[missing] = len(self.labels) - 1
        return codes

    def shares_of(self, values: pd.Series) -> np.ndarray:
        """The share of ``values`` in each bin (zeros for no values)."""
        counts = np.bincount(self.codes(values), minlength=len(self.labels)).astype(float)
        return counts / counts.sum() if counts.sum() else counts


def _is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def feature_bins(
    matrix: pd.DataFrame,
    specs: Sequence[FeatureSpec],
    features: Sequence[str],
    min_snapshot_rows: int = 300,
) -> dict[str, FeatureBins]:
    """Reference bins of ``features`` on the rows of ``matrix`` (see the module docstring); with
    an ``as_of`` column, each feature's ``normal_psi`` over the snapshots of at least
    ``min_snapshot_rows`` rows (smaller ones measure sampling noise more than movement)."""
    by_name = {s.name: s for s in specs}
    out = {}
    for feature in features:
        values = matrix[feature]
        spec = by_name.get(feature)
        family, field = (spec.family, spec.field) if spec else ("other", feature)
        if _is_categorical(values):
            counts = values.dropna().astype("string").value_counts()
            bins = FeatureBins(
                feature, family, field, categories=tuple(counts.index[:TOP_CATEGORIES])
            )
        else:
            present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
            edges = (
                np.unique(np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1]))
                if len(present)
                else np.array([])
            )
            bins = FeatureBins(feature, family, field, edges=tuple(float(e) for e in edges))
        shares = bins.shares_of(values)
        normal = 0.0
        if "as_of" in matrix:
            for _, snapshot in values.groupby(matrix["as_of"].to_numpy(), sort=False):
                if len(snapshot) >= min_snapshot_rows:
                    normal = max(normal, psi(shares, bins.shares_of(snapshot)))
        out[feature] = FeatureBins(
            bins.feature,
            bins.family,
            bins.field,
            bins.edges,
            bins.categories,
            tuple(float(s) for s in shares),
            round(normal, 4),
        )
    return out


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (shares over the same bins)."""
    e = np.maximum(np.asarray(expected, dtype=float), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def score_bins(values: Sequence[float], bins: int = 10) -> np.ndarray:
    """Shares of 0-100 scores in ``bins`` equal-width bins (a score is already a percentile of
    the validation window, so equal widths are the model's own deciles)."""
    values = np.asarray(values, dtype=float)
    counts = np.histogram(np.clip(values, 0, 100), bins=bins, range=(0, 100))[0].astype(float)
    return counts / counts.sum() if counts.sum() else counts
