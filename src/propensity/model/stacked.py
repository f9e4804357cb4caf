"""The stack of the LightGBM model and the logistic baseline: a logistic regression of the label
on their log-odds, fitted on the selection rows (held out from both), with the scoring face of a
head (see :mod:`propensity.model.candidates` for the others and :mod:`propensity.runs.selection`
for when it ships)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from propensity.model.candidates import EXPECTED_VALUE, LogisticCandidate, platt
from propensity.model.head import HeadModel


def _stacker(margins: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    # unpenalised: two weights and an intercept on hundreds of rows need no shrinkage
    return LogisticRegression(C=1e6, max_iter=1000, random_state=seed).fit(margins, y)


@dataclass
class StackedCandidate:
    """The LightGBM model and the logistic baseline stacked by a logistic regression of the label
    on their log-odds, fitted on the selection rows (held out from both)."""

    model: HeadModel
    logistic: LogisticCandidate
    weights: tuple[float, float]  # on the LightGBM log-odds, on the logistic log-odds
    intercept: float
    features_: list[str]
    validation_probability_: np.ndarray
    positive_medians_: dict[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "stacked"

    @classmethod
    def of(
        cls,
        model: HeadModel,
        logistic: LogisticCandidate,
        model_margin: np.ndarray,
        logistic_margin: np.ndarray,
        y: np.ndarray,
        seed: int = 0,
    ) -> StackedCandidate | None:
        """Stack ``model`` and ``logistic`` (both fitted on the development rows) with weights
        fitted on their held-out log-odds on the selection rows (``model_margin`` as
        :meth:`HeadModel.predict_margin` gives it); those rows' probabilities set its score and
        tiers. None when a weight is not positive: one model adds nothing the other lacks (or
        would enter reversed), so there is nothing to stack."""
        margins = np.column_stack([model_margin, logistic_margin])
        stacker = _stacker(margins, np.asarray(y, dtype=int), seed)
        weights = stacker.coef_[0]
        if (weights <= 0).any():
            return None
        candidate = cls(
            model,
            logistic,
            (float(weights[0]), float(weights[1])),
            float(stacker.intercept_[0]),
            list(model.features_),
            stacker.predict_proba(margins)[:, 1],
            dict(model.positive_medians_),
        )
        return candidate

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds: the weighted log-odds of the two models plus the intercept."""
        model_weight, logistic_weight = self.weights
        return (
            self.intercept
            + model_weight * self.model.predict_margin(X)
            + logistic_weight * self.logistic.margin(X)
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        probability = 1 / (1 + np.exp(-self.margin(X)))
        return np.column_stack([1 - probability, probability])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """The two models' contributions, weighted (TreeSHAP and linear terms are both exact
        decompositions of their log-odds, so the sum is one of the stacked log-odds)."""
        model_weight, logistic_weight = self.weights
        columns = [*self.features_, EXPECTED_VALUE]
        trees = self.model.contributions(X).reindex(columns=columns, fill_value=0.0)
        linear = self.logistic.contributions(X).reindex(columns=columns, fill_value=0.0)
        table = model_weight * trees + logistic_weight * linear
        table[EXPECTED_VALUE] += self.intercept
        return table

    def recalibrated(self, X: pd.DataFrame, y: np.ndarray) -> StackedCandidate | None:
        """A copy with its log-odds Platt-scaled on ``X`` (weights and intercept scaled, so the
        ranking is unchanged), ``X`` its new reference rows; None when the slope is not
        positive."""
        slope, intercept = platt(self.margin(X), y)
        if slope <= 0:
            return None
        candidate = dataclasses.replace(
            self,
            weights=(self.weights[0] * slope, self.weights[1] * slope),
            intercept=self.intercept * slope + intercept,
        )
        candidate.validation_probability_ = candidate.predict_proba(X)[:, 1]
        return candidate

    def with_threads(self, threads: int) -> StackedCandidate:
        """A copy whose LightGBM model predicts on ``threads`` threads."""
        return dataclasses.replace(self, model=self.model.with_threads(threads))

    def fingerprint(self) -> str:
        text = json.dumps(
            [
                self.model.fingerprint(),
                self.logistic.fingerprint(),
                list(self.weights),
                self.intercept,
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()


def stacked_out_of_fold(
    model_margin: np.ndarray,
    logistic_margin: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int = 0,
    folds: int = 5,
) -> np.ndarray:
    """The stack's log-odds on the selection rows with its weights fitted out of fold (grouped by
    account), so the figure it is selected on is not one of rows it was fitted on."""
    margins = np.column_stack([model_margin, logistic_margin])
    y = np.asarray(y, dtype=int)
    folds = max(2, min(folds, int(y.sum()), int(len(y) - y.sum())))
    out = np.zeros(len(y))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(margins, y, groups):
        out[held_rows] = _stacker(margins[fit_rows], y[fit_rows], seed).decision_function(
            margins[held_rows]
        )
    return out
