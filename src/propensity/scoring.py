"""The one scorer: a feature frame -> calibrated probability, 0-100 score, tier, reasons and the
model version, stored together.

* :class:`Scorer` is one fitted head as scoring uses it. ``score(matrix)`` returns, per row of
  ``matrix`` (same index), the columns of :data:`SCORE_COLUMNS`: ``probability`` (calibrated),
  ``score`` (the probability's percentile among the validation window's probabilities, so it is
  stable from batch to batch), ``tier`` (cut-offs fixed at training from the validation window),
  ``reasons`` (text) and ``reasons_json`` (TreeSHAP contributions grouped into business fields and
  worded, computed now from the same model), ``model_version`` (a content hash of the model).
* :class:`AccountModel`: the two account heads (fit, conversion) over point-in-time features;
  :func:`score_snapshot` builds the features of one snapshot with the training code and scores
  them, one row per prospect with ``<head>_<column>`` for each head.
* :class:`TableModel`: a table-mode model; it types a won/lost table's rows as in training and
  scores them with its one :class:`Scorer`.

Both expose ``predict_frame(frame, head, reasons)``, which the MLflow model
(:class:`propensity.tracking.ScoringPyfunc`) calls: the same rows whichever path made them.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from propensity.data.specs import Tables
from propensity.data.table import (
    Kind,
    TableError,
    TableSchema,
    coerce,
    label_values,
    model_matrix,
    row_numbers,
    row_time,
)
from propensity.drift import FeatureBins, feature_bins
from propensity.explain import ShippedModel, contributions, explain, field_contributions
from propensity.features.matrix import build_features
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.model.scorecard import Scorecard
from propensity.spine import SpineConfig, build_spine, data_end

# share of the validation window in each tier, best first
FIT_TIERS = (("A", 0.10), ("B", 0.20), ("C", 0.30), ("D", 0.40))
CONVERSION_TIERS = (("hot", 0.05), ("warm", 0.15), ("cold", 0.80))
TABLE_TIERS = FIT_TIERS
QUANTILES = np.linspace(0, 1, 1001)
SCORE_COLUMNS = ("probability", "score", "tier", "reasons", "reasons_json", "model_version")
# accounts scored at a time when a whole snapshot is scored part by part: their reasons as
# text and JSON take about 0.2 GB, the same at 10 thousand or 10 million accounts
PART_ROWS = 50_000


@dataclass(frozen=True)
class HeadCalibration:
    """What scoring needs besides the model: reference distribution and tier cut-offs."""

    probability_quantiles: list[float]  # validation-window probabilities at QUANTILES
    tier_names: list[str]  # best first
    tier_thresholds: list[float]  # lower probability bound of each tier but the last


def head_calibration(probabilities: np.ndarray, tiers) -> HeadCalibration:
    """Reference quantiles and tier cut-offs from the validation window's probabilities."""
    quantiles = np.quantile(probabilities, QUANTILES)
    thresholds, cumulative = [], 0.0
    for _, share in tiers[:-1]:
        cumulative += share
        thresholds.append(float(np.quantile(probabilities, 1 - cumulative)))
    return HeadCalibration([float(q) for q in quantiles], [name for name, _ in tiers], thresholds)


def to_score(probability: np.ndarray, calibration: HeadCalibration) -> np.ndarray:
    """0-100: the probability's percentile among validation-window probabilities."""
    position = np.searchsorted(
        np.asarray(calibration.probability_quantiles), probability, side="right"
    )
    return np.clip(
        np.round(100 * position / len(calibration.probability_quantiles)), 0, 100
    ).astype(int)


def to_tier(probability: np.ndarray, calibration: HeadCalibration) -> np.ndarray:
    tiers = np.full(len(probability), calibration.tier_names[-1], dtype=object)
    for name, threshold in reversed(
        list(zip(calibration.tier_names, calibration.tier_thresholds, strict=False))
    ):
        tiers[probability >= threshold] = name
    return tiers


def model_version(models: Sequence[ShippedModel]) -> str:
    """Content hash of the models: the same models always have the same version; a head that
    ships a baseline or a stack says which (``logistic-sha-...``, ``scorecard-sha-...``,
    ``stacked-sha-...``)."""
    digest = hashlib.sha256()
    for model in models:
        digest.update(model.fingerprint().encode())
    kinds = sorted({m.kind for m in models} - {"lightgbm"})
    return "-".join([*kinds, f"sha-{digest.hexdigest()[:12]}"])


@dataclass
class Scorer:
    """One fitted head as scoring uses it (see the module docstring)."""

    head: str
    model: ShippedModel  # the head's LightGBM model, or the baseline it ships instead
    specs: tuple[FeatureSpec, ...]  # the model's features and the context columns for wording
    calibration: HeadCalibration
    version: str
    # the features' bins on the rows the head learned from, for drift monitoring (None: a model
    # written before monitoring existed)
    reference: dict[str, FeatureBins] | None = None
    # the head as integer points per binned field, learned on the rows the head learned from
    # (None: not asked for, or a model written before learned cards existed)
    learned_scorecard: Scorecard | None = None
    # test-window ROC-AUC of the learned card and of what it is compared with, by scorer
    learned_scorecard_auc: dict[str, float] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        head: str,
        model: ShippedModel,
        specs: Sequence[FeatureSpec],
        tiers,
        reference_rows: pd.DataFrame | None = None,
    ) -> Scorer:
        """A scorer whose score and tiers are set by the model's probabilities on the rows it was
        calibrated on (the validation window); with ``reference_rows`` (the rows it learned
        from) it keeps its features' bins there for drift monitoring."""
        used = tuple(s for s in specs if s.name in model.features_ or s.kind == "context")
        calibration = head_calibration(model.validation_probability_, tiers)
        reference = (
            feature_bins(reference_rows, specs, list(model.features_))
            if reference_rows is not None
            else None
        )
        return cls(head, model, used, calibration, model_version([model]), reference)

    @property
    def features(self) -> list[str]:
        return list(self.model.features_)

    def score(
        self,
        matrix: pd.DataFrame,
        *,
        reasons: bool = True,
        top_positive: int = 3,
        top_negative: int = 2,
        version: str | None = None,
    ) -> pd.DataFrame:
        """:data:`SCORE_COLUMNS` per row of ``matrix`` (same index); ``version`` overrides the
        model version written on every row (e.g. the registry's name and version)."""
        out = pd.DataFrame(index=matrix.index)
        probability = self.model.predict_proba(matrix)[:, 1] if len(matrix) else np.array([])
        out["probability"] = probability
        out["score"] = to_score(probability, self.calibration)
        out["tier"] = to_tier(probability, self.calibration)
        if reasons:
            if len(matrix):
                worded = explain(
                    self.model,
                    matrix,
                    self.specs,
                    top_positive=top_positive,
                    top_negative=top_negative,
                )
                out["reasons"] = worded["reasons"].to_numpy()
                out["reasons_json"] = worded["reasons_json"].to_numpy()
            else:
                out["reasons"] = out["reasons_json"] = pd.Series(dtype=object)
        out["model_version"] = version or self.version
        return out

    def field_contributions(self, matrix: pd.DataFrame) -> pd.DataFrame:
        """Contributions (log-odds) per business field, one row per row of ``matrix``."""
        return field_contributions(contributions(self.model, matrix), self.specs)


def _prefixed(scored: pd.DataFrame, head: str) -> pd.DataFrame:
    return scored.drop(columns="model_version").add_prefix(f"{head}_")


# ---------------------------------------------------------------------------------------------
# the account heads


@dataclass
class AccountModel:
    """Both account heads as scoring uses them, with the settings their features were built with."""

    scorers: dict[str, Scorer]  # "fit", "conversion"
    spine: SpineConfig
    features: FeatureConfig
    version: str

    @property
    def heads(self) -> tuple[str, ...]:
        return tuple(self.scorers)

    def with_threads(self, threads: int) -> AccountModel:
        """A copy whose LightGBM heads predict on ``threads`` threads (a baseline shipped
        instead of a head has no threads to set)."""
        scorers = {
            head: replace(scorer, model=scorer.model.with_threads(threads))
            if hasattr(scorer.model, "with_threads")
            else scorer
            for head, scorer in self.scorers.items()
        }
        return replace(self, scorers=scorers)

    def score_features(
        self, matrix: pd.DataFrame, *, reasons: bool = True, **options
    ) -> pd.DataFrame:
        """account_id, as_of, then ``<head>_probability`` ... ``<head>_reasons_json`` per head,
        then ``model_version``."""
        parts = [matrix[["account_id", "as_of"]]]
        for head, scorer in self.scorers.items():
            parts.append(_prefixed(scorer.score(matrix, reasons=reasons, **options), head))
        scored = pd.concat(parts, axis=1).reset_index(drop=True)
        scored["model_version"] = self.version
        return scored

    def score_parts(
        self,
        matrix: pd.DataFrame,
        *,
        reasons: bool = True,
        part_rows: int = PART_ROWS,
        **options,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`score_features` over successive slices of ``part_rows`` rows of ``matrix``
        (at least one part, empty when ``matrix`` is): a caller that writes or reduces each
        part holds the reasons of one part at a time, whatever the number of accounts."""
        for start in range(0, max(len(matrix), 1), part_rows):
            part = matrix.iloc[start : start + part_rows]
            yield self.score_features(part, reasons=reasons, **options)

    def predict_frame(self, frame: pd.DataFrame, head: str, reasons: bool = False) -> pd.DataFrame:
        """One head over a feature frame: the key columns present, then :data:`SCORE_COLUMNS`."""
        keys = [c for c in ("account_id", "as_of") if c in frame]
        scored = self.scorers[head].score(frame, reasons=reasons, version=self.version)
        return pd.concat([frame[keys], scored], axis=1).reset_index(drop=True)


def score_snapshot(
    tables: Tables,
    model: AccountModel,
    as_of: pd.Timestamp | str | None = None,
    *,
    accounts: list[str] | None = None,
    reasons: bool = True,
    top_positive: int = 3,
    top_negative: int = 2,
) -> pd.DataFrame:
    """Score the prospects at ``as_of`` (default: the end of the data) with both heads.

    Features come from the training code for the single snapshot ``as_of`` (data strictly
    before it); the population is the spine's (prospects at that date).
    """
    matrix = snapshot_features(tables, model, as_of, accounts=accounts)
    return model.score_features(
        matrix, reasons=reasons, top_positive=top_positive, top_negative=top_negative
    )


def snapshot_features(
    tables: Tables,
    model: AccountModel,
    as_of: pd.Timestamp | str | None = None,
    *,
    accounts: list[str] | None = None,
) -> pd.DataFrame:
    """The feature matrix of the prospects at ``as_of`` (default: the end of the data), built by
    the training code with the model's settings (data strictly before ``as_of``)."""
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else data_end(tables)
    spine = build_spine(tables, model.spine, as_of=as_of)
    if accounts is not None:
        spine = spine[spine["account_id"].isin(accounts)].reset_index(drop=True)
    return build_features(tables, spine, model.features).matrix


def previous_snapshot(as_of: pd.Timestamp, spine: SpineConfig) -> pd.Timestamp:
    """The snapshot before ``as_of`` at the spine's cadence."""
    step = pd.DateOffset(months=1) if spine.cadence == "monthly" else pd.Timedelta(days=7)
    return as_of - step


def account_card(
    tables: Tables, model: AccountModel, account_id: str, as_of: pd.Timestamp | str | None = None
) -> dict:
    """One account's card: scores, tiers, reasons now, and what changed since the previous
    snapshot (score change and the business fields whose contribution moved most).

    The features of both dates are built once, in one call.
    """
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else data_end(tables)
    if account_id not in set(tables.accounts["account_id"]):
        raise KeyError(f"account {account_id!r} is not in table 'accounts'")
    if build_spine(tables, model.spine, as_of=as_of)["account_id"].eq(account_id).sum() == 0:
        raise KeyError(
            f"account {account_id!r} is not a prospect at {as_of.date()} (a customer or with an open "
            "new-business opportunity), so it is not scored"
        )
    previous = previous_snapshot(as_of, model.spine)
    was_prospect = build_spine(tables, model.spine, as_of=previous)["account_id"].eq(account_id)
    dates = [previous, as_of] if was_prospect.any() else [as_of]
    spine = pd.DataFrame({"account_id": account_id, "as_of": pd.DatetimeIndex(dates)})
    matrix = build_features(tables, spine, model.features).matrix
    scored = model.score_features(matrix)
    now = scored.iloc[-1]
    card = {
        "account_id": account_id,
        "as_of": str(as_of.date()),
        "model_version": model.version,
        "heads": {},
    }
    for head, scorer in model.scorers.items():
        entry = {
            "score": int(now[f"{head}_score"]),
            "probability": float(now[f"{head}_probability"]),
            "tier": now[f"{head}_tier"],
            "reasons": json.loads(now[f"{head}_reasons_json"]),
        }
        if len(dates) == 2:
            before = scored.iloc[0]
            fields = scorer.field_contributions(matrix)
            delta = (fields.iloc[1] - fields.iloc[0]).sort_values(key=np.abs, ascending=False)
            entry["previous_as_of"] = str(previous.date())
            entry["score_delta"] = int(now[f"{head}_score"] - before[f"{head}_score"])
            entry["moved"] = [
                {"field": f, "change": round(float(v), 4)}
                for f, v in delta.head(3).items()
                if abs(v) > 1e-9
            ]
        card["heads"][head] = entry
    return card


# ---------------------------------------------------------------------------------------------
# a table-mode model


class UnseenValueWarning(UserWarning):
    """A table scored with category values its model was not trained on."""


UNSEEN_MARK = " (not seen in training: scored as missing)"


@dataclass
class TableModel:
    """A trained table model as scoring uses it: the table's schema, how each column was typed,
    and the one :class:`Scorer` (head ``"table"``)."""

    schema: TableSchema
    scorer: Scorer
    columns: list[str]
    kinds: dict[str, Kind]
    screen: pd.DataFrame
    verdict: str
    beats_base_rate: bool = True
    notes: list[str] = field(default_factory=list)
    # what the user must read before using it (time-ordered rows under K-fold, a shipped scorer
    # below another candidate, ...)
    warnings: list[str] = field(default_factory=list)
    # each categorical column's values in the labelled rows it was trained on
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.scorer.version

    @property
    def heads(self) -> tuple[str, ...]:
        return (self.scorer.head,)

    @property
    def scorers(self) -> dict[str, Scorer]:
        return {self.scorer.head: self.scorer}

    def matrix(self, frame: pd.DataFrame, name: str = "table") -> pd.DataFrame:
        """The model's columns typed as in training (dates as days before the row's time)."""
        needed = [c for c in (self.schema.id_column, *self.columns) if c is not None]
        dated = any(k == "date" for k in self.kinds.values())
        if dated and self.schema.time_column:
            needed.append(self.schema.time_column)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise TableError(
                f"{name}: the model needs columns {missing} which the table does not have"
            )
        time = row_time(frame, self.schema, name) if dated else None
        return model_matrix(self._mark_unseen(coerce(frame, self.kinds), name), self.kinds, time)

    def _mark_unseen(self, typed: pd.DataFrame, name: str) -> pd.DataFrame:
        """Category values the training table never had are scored as missing (the models know
        nothing of them); they are marked so their reasons say so, with a warning per column."""
        for column, known in (getattr(self, "categories", None) or {}).items():
            values = typed[column]
            unseen = values.notna() & ~values.isin(known)
            if unseen.any():
                examples = ", ".join(map(repr, values[unseen].unique()[:3]))
                warnings.warn(
                    f"{name}: column {column!r} has {int(unseen.sum()):,} rows with values the "
                    f"model never saw in training ({examples}): they are scored as missing and "
                    "their reasons say so; retrain once such rows have outcomes",
                    UnseenValueWarning,
                    stacklevel=2,
                )
                typed[column] = values.where(~unseen, values + UNSEEN_MARK)
        return typed

    def score(
        self,
        frame: pd.DataFrame,
        name: str = "table",
        reasons: bool = True,
        version: str | None = None,
        ranked: bool = True,
    ) -> pd.DataFrame:
        """id, :data:`SCORE_COLUMNS`, and the known ``outcome`` (won / lost / open) when the
        label column is present; ``ranked``: best first with a ``rank`` column, else input order."""
        frame = frame.reset_index(drop=True)
        scored = self.scorer.score(self.matrix(frame, name), reasons=reasons, version=version)
        ids = (
            row_numbers(frame)
            if self.schema.id_column is None
            else frame[self.schema.id_column].astype("string")
        )
        scored.insert(0, "id", ids.to_numpy())
        if self.schema.label_column in frame:
            label = label_values(frame, self.schema, require_both=False).to_numpy()
            outcome = np.where(label == 1, "won", np.where(label == 0, "lost", "open"))
            scored.insert(scored.columns.get_loc("tier") + 1, "outcome", outcome)
        if not ranked:
            return scored
        scored = scored.sort_values(
            "probability", ascending=False, kind="stable", ignore_index=True
        )
        scored.insert(0, "rank", np.arange(1, len(scored) + 1))
        return scored

    def predict_frame(self, frame: pd.DataFrame, head: str = "table", reasons: bool = False):
        """The MLflow model's view: rows in input order, without the known outcome."""
        scored = self.score(frame, reasons=reasons, ranked=False)
        return scored.drop(columns=["outcome"], errors="ignore")
