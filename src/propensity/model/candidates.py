"""The baselines a head can ship instead of its LightGBM model, as scoring uses them.

A head ships the best candidate of its run (:mod:`propensity.model.selection`): its LightGBM
model (:class:`propensity.model.head.HeadModel`), the logistic baseline, or the hand-made points
scorecard. Each candidate has the same scoring face as ``HeadModel``: ``features_``,
``predict_proba(X)``, ``contributions(X)`` (log-odds per feature column plus
``expected_value``, summing to the margin, so reasons are worded the same way whichever
candidate made them), ``validation_probability_`` (the probabilities that set the scorer's score
and tiers), ``positive_medians_`` (for the wording), ``fingerprint()`` (what the model version
hashes) and ``recalibrated(X, y)`` (a copy whose probabilities are refitted on newer labelled
rows, which also become its score and tier reference rows: the ranking is unchanged).

* :class:`LogisticCandidate`: contributions are each input's term of the linear margin,
  centred on the reference rows' mean (a one-hot category and its missing indicator count for
  the column they come from).
* :class:`ScorecardCandidate`: the scorecard's points per column, turned into a probability by a
  logistic (Platt) fit of the total points on the development rows; contributions are the points
  times that slope, centred the same way.
* :class:`StackedCandidate`: the LightGBM model and the logistic baseline stacked (Wolpert's
  stacked generalisation): a logistic regression of the label on the two models' log-odds on
  rows neither was fitted on (the selection rows), so its two weights and intercept are also
  its calibration; contributions are the weighted sum of the two models' contributions.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from propensity.model.scorecard import Scorecard

EXPECTED_VALUE = "expected_value"


def platt(margin: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(slope, intercept) of a logistic fit of ``y`` on a margin (log-odds): Platt scaling."""
    fitted = LogisticRegression(C=1e6, max_iter=1000, random_state=seed)
    fitted.fit(np.asarray(margin, dtype=float).reshape(-1, 1), np.asarray(y, dtype=int))
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def _dense(values) -> np.ndarray:
    return values.toarray() if hasattr(values, "toarray") else np.asarray(values, dtype=float)


def positive_medians(X: pd.DataFrame, y: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Median of each numeric column among the positives (the wording's "usual customer")."""
    positives = X.loc[np.asarray(y) == 1]
    medians = {}
    for column in columns:
        values = pd.to_numeric(positives[column], errors="coerce")
        if values.notna().any():
            medians[column] = float(values.median())
    return medians


@dataclass
class LogisticCandidate:
    """A fitted logistic baseline pipeline with the scoring face of a head."""

    pipeline: Pipeline
    features_: list[str]
    categorical: list[str]
    background_mean_: np.ndarray  # mean of the transformed inputs on the reference rows
    validation_probability_: np.ndarray
    positive_medians_: dict[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "logistic"

    @classmethod
    def of(
        cls,
        pipeline: Pipeline,
        features: list[str],
        categorical: list[str],
        reference: pd.DataFrame,
        development: pd.DataFrame,
        y_development: np.ndarray,
    ) -> LogisticCandidate:
        """Wrap a pipeline fitted on the development rows; score and tiers from ``reference``."""
        transformed = _dense(pipeline.named_steps["prepare"].transform(reference[features]))
        numeric = [c for c in features if c not in categorical]
        return cls(
            pipeline,
            list(features),
            list(categorical),
            transformed.mean(axis=0),
            pipeline.predict_proba(reference[features])[:, 1],
            positive_medians(development, y_development, numeric),
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(X[self.features_])

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds (what the contributions sum to)."""
        return self.pipeline.decision_function(X[self.features_])

    def recalibrated(self, X: pd.DataFrame, y: np.ndarray) -> LogisticCandidate | None:
        """A copy with its margin Platt-scaled on ``X`` (coefficients and intercept scaled,
        so contributions still sum to the margin); ``X`` becomes the reference rows. None when
        the slope is not positive (the ranking would reverse)."""
        pipeline = copy.deepcopy(self.pipeline)
        slope, intercept = platt(pipeline.decision_function(X[self.features_]), y)
        if slope <= 0:
            return None
        model = pipeline.named_steps["model"]
        model.coef_ = model.coef_ * slope
        model.intercept_ = model.intercept_ * slope + intercept
        transformed = _dense(pipeline.named_steps["prepare"].transform(X[self.features_]))
        return dataclasses.replace(
            self,
            pipeline=pipeline,
            background_mean_=transformed.mean(axis=0),
            validation_probability_=pipeline.predict_proba(X[self.features_])[:, 1],
        )

    def _sources(self) -> list[str]:
        """The input column of each transformed column."""
        names = self.pipeline.named_steps["prepare"].get_feature_names_out()
        by_length = sorted(self.categorical, key=len, reverse=True)
        sources = []
        for name in names:
            part, _, rest = name.partition("__")
            if part == "numeric":
                sources.append(rest.removeprefix("missingindicator_"))
            else:
                sources.append(next(c for c in by_length if rest.startswith(f"{c}_")))
        return sources

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        model = self.pipeline.named_steps["model"]
        coef = model.coef_[0]
        transformed = _dense(self.pipeline.named_steps["prepare"].transform(X[self.features_]))
        terms = pd.DataFrame((transformed - self.background_mean_) * coef, index=X.index)
        terms.columns = self._sources()
        table = (
            terms.T.groupby(level=0, sort=False)
            .sum()
            .T.reindex(columns=self.features_, fill_value=0.0)
        )
        table[EXPECTED_VALUE] = float(model.intercept_[0] + coef @ self.background_mean_)
        return table

    def fingerprint(self) -> str:
        model = self.pipeline.named_steps["model"]
        return json.dumps(
            [self.features_, np.round(model.coef_, 12).tolist(), float(model.intercept_[0])]
        )


@dataclass
class ScorecardCandidate:
    """The hand-made points scorecard of one head, calibrated, with the scoring face of a head."""

    scorecard: Scorecard
    head: str
    features_: list[str]
    slope: float
    intercept: float
    background_mean_: np.ndarray  # mean points per column on the reference rows
    validation_probability_: np.ndarray
    positive_medians_: dict[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "scorecard"

    @classmethod
    def of(
        cls,
        scorecard: Scorecard,
        head: str,
        reference: pd.DataFrame,
        development: pd.DataFrame,
        y_development: np.ndarray,
        seed: int = 0,
    ) -> ScorecardCandidate:
        """Platt-calibrate the head's points on the development rows; score and tiers from
        ``reference``."""
        points = scorecard.points_by_column(development, head)
        columns = list(points.columns)
        slope, intercept = platt(points.sum(axis=1).to_numpy(), y_development, seed)
        candidate = cls(
            scorecard,
            head,
            columns,
            slope,
            intercept,
            np.zeros(len(columns)),
            np.array([]),
        )
        reference_points = candidate._points(reference)
        candidate.background_mean_ = reference_points.mean(axis=0).to_numpy()
        candidate.validation_probability_ = candidate.predict_proba(reference)[:, 1]
        numeric = [c for c in columns if pd.api.types.is_numeric_dtype(development[c])]
        candidate.positive_medians_ = positive_medians(development, y_development, numeric)
        return candidate

    def _points(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.scorecard.points_by_column(X, self.head).reindex(
            columns=self.features_, fill_value=0.0
        )

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of the calibrated points."""
        return self.slope * self._points(X).sum(axis=1).to_numpy() + self.intercept

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        probability = 1 / (1 + np.exp(-self.margin(X)))
        return np.column_stack([1 - probability, probability])

    def recalibrated(self, X: pd.DataFrame, y: np.ndarray) -> ScorecardCandidate | None:
        """A copy with the points' Platt fit redone on ``X``, which becomes the reference rows
        (None when the slope is not positive)."""
        slope, intercept = platt(self._points(X).sum(axis=1).to_numpy(), y)
        if slope <= 0:
            return None
        candidate = dataclasses.replace(self, slope=slope, intercept=intercept)
        candidate.background_mean_ = candidate._points(X).mean(axis=0).to_numpy()
        candidate.validation_probability_ = candidate.predict_proba(X)[:, 1]
        return candidate

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        table = (self._points(X) - self.background_mean_) * self.slope
        table[EXPECTED_VALUE] = self.intercept + self.slope * float(self.background_mean_.sum())
        return table

    def fingerprint(self) -> str:
        text = self.scorecard.model_dump_json() + json.dumps(
            [self.head, self.slope, self.intercept]
        )
        return hashlib.sha256(text.encode()).hexdigest()
