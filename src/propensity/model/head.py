"""The two LightGBM heads (ICP fit, conversion propensity), calibrated, with their baselines.

* fit head: firmographic/technographic features only; label = the account wins new business
  (censored at the start of the test window for training rows, so no test-period outcome is
  used for fitting);
* conversion head: every present family; label = a new-business opportunity within the horizon.

Each head is a :class:`HeadModel` (scikit-learn style ``fit`` / ``predict_proba``): LightGBM
with native categorical features and early stopping on the validation window, then calibrated
on that window by isotonic or sigmoid regression on the raw margin, whichever has the lower
account-grouped cross-validated log-loss there. No class re-weighting (it distorts
probabilities); if negatives are down-sampled for speed the probabilities are corrected before
calibration.

Windows are sized by positives, not only by dates (the rule, in this order):

* a validation window with fewer than ``min_calibration_positives`` positives cannot pick the
  number of trees or fit a calibrator (one or two wins make every account look alike): the
  model is then *cross-fitted* on train + validation instead: account-grouped stratified
  K-fold, each fold early-stopped on its held-out part; the final booster has the folds' mean
  number of trees and is fitted on every development row; the calibrator is fitted on the
  out-of-fold margins;
* isotonic regression is a candidate only with at least ``ISOTONIC_MIN_POSITIVES`` positives
  on the rows it is fitted on (below that it collapses to a few steps); else sigmoid (Platt).

Boosting from a prior (the fit head): with ``prior`` (the hand-made points scorecard) the trees
start from the scorecard's log-odds, Platt-fitted on the same rows as the trees (LightGBM's
``init_score``), and learn only what the scorecard misses; early stopping decides how far the
data moves the model away from it (with few wins, not far). Margins, probabilities and
contributions include the prior: a reason is the scorecard's points for a field plus the trees'
TreeSHAP value for it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import brentq
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from propensity.model.candidates import EXPECTED_VALUE, ScorecardCandidate, platt
from propensity.model.scorecard import Scorecard

log = logging.getLogger(__name__)

HEADS = ("fit", "conversion")


class LightGBMParams(BaseModel):
    """LightGBM's main parameters (the ones ``propensity tune`` searches)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(0.03, gt=0, le=1)
    num_leaves: int = Field(15, ge=2, le=1024)
    min_child_samples: int = Field(200, ge=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    subsample_freq: int = Field(1, ge=0)
    reg_lambda: float = Field(5.0, ge=0)
    reg_alpha: float = Field(0.0, ge=0)
    min_split_gain: float = Field(0.0, ge=0)
    cat_smooth: float = Field(20.0, ge=0)
    n_estimators: int = Field(
        2000, ge=1, description="upper bound; early stopping picks the number"
    )
    early_stopping_rounds: int = Field(100, ge=1)
    early_stopping_metric: Literal["recentred_logloss", "binary_logloss", "auc"] = Field(
        "recentred_logloss",
        description="what early stopping watches on the validation rows: log-loss after the "
        "margins are shifted to the rows' own base rate (a base-rate shift between windows "
        "alone cannot stop it), plain log-loss, or ROC-AUC",
    )


ISOTONIC_MIN_POSITIVES = 200


def recentred_log_loss(label: np.ndarray, probability: np.ndarray) -> float:
    """Log-loss after one constant shift of the log-odds that makes the mean probability equal
    the rows' base rate: what the ranking and the spread of the probabilities cost, not where
    their average sits (a later window converting twice as often leaves it unchanged)."""
    label = np.asarray(label, dtype=float)
    p = np.clip(np.asarray(probability, dtype=float), 1e-12, 1 - 1e-12)
    margin = np.log(p) - np.log1p(-p)
    rate = float(np.clip(label.mean(), 1e-9, 1 - 1e-9))

    def excess(shift: float) -> float:
        return float((1 / (1 + np.exp(-(margin + shift)))).mean()) - rate

    # the shift of the log-odds of the means is close; Newton from there, bisection if it strays
    mean = float(np.clip(p.mean(), 1e-9, 1 - 1e-9))
    shift = np.log(rate / (1 - rate)) - np.log(mean / (1 - mean))
    for _ in range(8):
        q = 1 / (1 + np.exp(-(margin + shift)))
        error, slope = float(q.mean()) - rate, float((q * (1 - q)).mean())
        if abs(error) < 1e-9 * max(rate, 1e-3) or slope <= 1e-12:
            break
        shift -= float(np.clip(error / slope, -2.0, 2.0))
    if abs(excess(shift)) > 1e-6 * max(rate, 1e-3):
        shift = brentq(excess, -40.0, 40.0, xtol=1e-10)
    q = np.clip(1 / (1 + np.exp(-(margin + shift))), 1e-12, 1 - 1e-12)
    return float(-np.mean(label * np.log(q) + (1 - label) * np.log1p(-q)))


def _recentred_log_loss_metric(y_true, y_pred):
    return "recentred_logloss", recentred_log_loss(y_true, y_pred), False


class InsufficientDataError(ValueError):
    """Too few positive labels to train a head."""


# ---------------------------------------------------------------------------------------------
# one head


class _PrecomputedMargin(ClassifierMixin, BaseEstimator):
    """A calibrator's view of LightGBM: column 0 of X is the model's margin (log-odds), computed
    once by :class:`HeadModel` for the calibration candidates, the calibrator and scoring."""

    @classmethod
    def of(cls, classes) -> _PrecomputedMargin:
        wrapper = cls()
        wrapper.classes_ = classes
        return wrapper

    def fit(self, X, y):  # pragma: no cover - only ever used frozen
        raise NotImplementedError("reads precomputed margins")

    def decision_function(self, X) -> np.ndarray:
        return np.asarray(X)[:, 0]

    def predict(self, X) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(int)


class HeadModel(ClassifierMixin, BaseEstimator):
    """LightGBM + calibration for one head; ``fit(X, y, eval_set=(X_valid, y_valid))``."""

    def __init__(
        self,
        features: list[str] | None = None,
        categorical: list[str] | None = None,
        params: LightGBMParams | None = None,
        calibration_methods: tuple[str, ...] = ("isotonic", "sigmoid"),
        negative_sample_rate: float = 1.0,
        seed: int = 0,
        n_jobs: int = 2,
        min_calibration_positives: int = 50,
        cross_fit_folds: int = 5,
        prior: Scorecard | None = None,
        prior_head: str = "fit",
    ):
        self.features = features
        self.categorical = categorical
        self.params = params
        self.calibration_methods = calibration_methods
        self.negative_sample_rate = negative_sample_rate
        self.seed = seed
        self.n_jobs = n_jobs
        self.min_calibration_positives = min_calibration_positives
        self.cross_fit_folds = cross_fit_folds
        self.prior = prior
        self.prior_head = prior_head

    kind = "lightgbm"

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.features_ if c not in X]
        if missing:
            raise ValueError(
                f"feature matrix lacks columns the model was trained on: {missing[:10]}"
            )
        frame = X[self.features_].copy()
        for column in self.features_:
            if column in self.categories_:
                # a value not seen in training is missing to the trees (said so explicitly, as
                # pandas will refuse to do it silently)
                known = self.categories_[column]
                values = frame[column].astype("object")
                frame[column] = pd.Categorical(values.where(values.isin(known)), categories=known)
            else:
                frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        return frame

    def fit(
        self,
        X: pd.DataFrame,
        y,
        eval_set: tuple[pd.DataFrame, Any],
        learn_only: np.ndarray | None = None,
        calibration_label: tuple[Any, Any] | None = None,
    ) -> HeadModel:
        """Early stopping and calibration on ``eval_set`` (the validation window), or cross-fitted
        on both when the window has too few positives (see the module docstring).

        ``learn_only`` (a mask over X's rows) marks rows the trees learn from but the calibrator
        and the score's reference rows do not (the fit head's customer base: a population the
        scores are never applied to). ``calibration_label`` (for X's rows, for the validation
        rows) is what the probabilities estimate when it is not what the trees learn (the fit
        head learns "opened or won" and gives the probability of a win)."""
        params = self.params or LightGBMParams()
        self.features_ = list(self.features or X.columns)
        categorical = set(self.categorical or [])
        self.categories_ = {
            c: sorted(X[c].dropna().astype(str).unique().tolist())
            for c in self.features_
            if c in categorical
        }
        y = np.asarray(y, dtype=int)
        X_valid, y_valid = eval_set[0], np.asarray(eval_set[1], dtype=int)
        # undo the prior shift of negative down-sampling (odds were multiplied by 1/rate)
        self.prior_shift_ = float(np.log(self.negative_sample_rate))
        learn_only = np.zeros(len(y), bool) if learn_only is None else np.asarray(learn_only, bool)
        if calibration_label is not None:
            calibrate_y, calibrate_y_valid = (np.asarray(c, dtype=int) for c in calibration_label)
        else:
            calibrate_y, calibrate_y_valid = y, y_valid
        if int(y_valid.sum()) < self.min_calibration_positives:
            margin, _, groups = self._fit_cross_fitted(X, y, X_valid, y_valid, params)
            y_calibration = np.concatenate([calibrate_y, calibrate_y_valid])
            # the calibration (and selection) rows: every development row but the learn-only ones
            self.validation_rows_ = np.flatnonzero(
                ~np.concatenate([learn_only, np.zeros(len(y_valid), bool)])
            )
            margin, y_calibration = (
                margin[self.validation_rows_],
                y_calibration[self.validation_rows_],
            )
            groups = groups[self.validation_rows_]
        else:
            self.model_, kept, self.prior_ = self._fit_booster(
                X, y, params, early_stopping=(X_valid, y_valid)
            )
            self.best_iteration_ = int(self.model_.best_iteration_ or params.n_estimators)
            self._set_positive_medians(X, y, kept)
            margin, y_calibration = self._margin(X_valid), calibrate_y_valid
            groups = _groups(X_valid)
            self.validation_rows_ = np.arange(len(y_valid))
            self.calibration_basis_ = "validation window"
            self.cross_fit_splits_ = None
        self.calibration_positives_ = int(y_calibration.sum())
        self.calibration_method_, self.calibration_losses_ = self._choose_calibration(
            margin, y_calibration, groups
        )
        self.calibrator_ = CalibratedClassifierCV(
            FrozenEstimator(_PrecomputedMargin.of(self.model_.classes_)),
            method=self.calibration_method_,
        ).fit(margin, y_calibration)
        self.classes_ = np.array([0, 1])
        # the calibration rows' probabilities set the scorer's 0-100 score and tiers
        self.validation_probability_ = self.calibrator_.predict_proba(margin)[:, 1]
        self.validation_margin_ = margin[:, 0]
        self.validation_label_ = y_calibration
        return self

    def _fit_prior(self, X: pd.DataFrame, y: np.ndarray) -> ScorecardCandidate | None:
        """The prior's points Platt-fitted on the rows the trees are fitted on (None: no prior)."""
        if self.prior is None:
            return None
        # the prior sees the model's own columns only, so its points are reasons the model gives
        X = X[self.features_]
        return ScorecardCandidate.of(self.prior, self.prior_head, X, X, y, self.seed)

    def _fit_booster(self, X, y, params: LightGBMParams, *, early_stopping=None, trees=None):
        """One LightGBM fit (negatives down-sampled as configured), from the prior's log-odds
        when there is one; the booster, the kept rows and the fitted prior. ``early_stopping``
        is (X, y) of unprepared rows."""
        rng = np.random.default_rng(self.seed)
        keep = (y == 1) | (rng.random(len(y)) < self.negative_sample_rate)
        rows = X.loc[keep] if isinstance(X, pd.DataFrame) else X
        prior = self._fit_prior(rows, y[keep])
        train = self._prepare(rows)
        settings = params.model_dump(exclude={"early_stopping_rounds", "early_stopping_metric"})
        if trees is not None:
            settings["n_estimators"] = trees
        watched = params.early_stopping_metric
        model = lgb.LGBMClassifier(
            objective="binary",
            # one metric only, so early stopping watches it and nothing else
            metric="None" if watched == "recentred_logloss" else watched,
            **settings,
            random_state=self.seed,
            n_jobs=self.n_jobs,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        init = None if prior is None else prior.margin(rows)
        if early_stopping is None:
            model.fit(train, y[keep], init_score=init)
        else:
            held, y_held = early_stopping
            model.fit(
                train,
                y[keep],
                init_score=init,
                eval_X=(self._prepare(held),),
                eval_y=(y_held,),
                eval_init_score=None if prior is None else [prior.margin(held)],
                eval_metric=(
                    _recentred_log_loss_metric if watched == "recentred_logloss" else None
                ),
                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
            )
        return model, keep, prior

    def _fit_cross_fitted(self, X, y, X_valid, y_valid, params: LightGBMParams):
        """Trees, calibration margins and the final booster from K-fold on train + validation."""
        development = pd.concat([X, X_valid], ignore_index=True)
        y_dev = np.concatenate([y, y_valid])
        groups = _groups(development)
        folds = min(self.cross_fit_folds, int(y_dev.sum()))
        if folds < 2:
            raise InsufficientDataError(
                f"only {int(y_dev.sum())} positive labels in the training and validation "
                "windows: too few to fit or calibrate a model"
            )
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=self.seed)
        margin = np.zeros(len(y_dev))
        trees = []
        for fit_rows, held_rows in splitter.split(development, y_dev, groups):
            held = development.iloc[held_rows]
            model, _, prior = self._fit_booster(
                development.iloc[fit_rows].reset_index(drop=True),
                y_dev[fit_rows],
                params,
                early_stopping=(held, y_dev[held_rows]),
            )
            trees.append(int(model.best_iteration_ or params.n_estimators))
            margin[held_rows] = self._margin(held, model, prior)[:, 0]
        self.best_iteration_ = max(1, int(round(float(np.mean(trees)))))
        self.model_, kept, self.prior_ = self._fit_booster(
            development, y_dev, params, trees=self.best_iteration_
        )
        self._set_positive_medians(development, y_dev, kept)
        self.calibration_basis_ = f"cross-fitted on train + validation ({folds} folds)"
        self.cross_fit_splits_ = folds
        return margin.reshape(-1, 1), y_dev, groups

    def _set_positive_medians(self, X, y, kept) -> None:
        # typical values among positives, so reasons can say "below the usual customer size"
        positives = self._prepare(X.loc[kept & (y == 1)] if isinstance(X, pd.DataFrame) else X)
        self.positive_medians_ = {
            c: float(positives[c].median())
            for c in self.features_
            if c not in self.categories_ and positives[c].notna().any()
        }

    def _margin(self, X: pd.DataFrame, model=None, prior=None) -> np.ndarray:
        """Log-odds of rows (prior + trees, the down-sampling shift undone), as one column; by
        default of the fitted model."""
        if model is None:
            model, prior = self.model_, getattr(self, "prior_", None)
        margin = model.predict(self._prepare(X), raw_score=True) + self.prior_shift_
        if prior is not None:
            margin = margin + prior.margin(X)
        return margin.reshape(-1, 1)

    def _choose_calibration(
        self, margin: np.ndarray, y: np.ndarray, groups: np.ndarray
    ) -> tuple[str, dict[str, float]]:
        """Calibration method with the lowest grouped 3-fold log-loss on the calibration rows,
        among the methods the number of positives allows."""
        allowed = [
            m
            for m in self.calibration_methods
            if m != "isotonic" or int(y.sum()) >= ISOTONIC_MIN_POSITIVES
        ] or ["sigmoid"]
        base = FrozenEstimator(_PrecomputedMargin.of(self.model_.classes_))
        losses: dict[str, float] = {}
        for method in allowed:
            fold_losses = []
            for fit_idx, eval_idx in GroupKFold(n_splits=3).split(margin, y, groups):
                if y[fit_idx].min() == y[fit_idx].max():
                    continue
                calibrated = CalibratedClassifierCV(base, method=method).fit(
                    margin[fit_idx], y[fit_idx]
                )
                p = np.clip(calibrated.predict_proba(margin[eval_idx])[:, 1], 1e-6, 1 - 1e-6)
                fold_losses.append(log_loss(y[eval_idx], p, labels=[0, 1]))
            losses[method] = float(np.mean(fold_losses)) if fold_losses else float("inf")
        return min(losses, key=losses.get), losses

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.calibrator_.predict_proba(self._margin(X))

    def recalibrated(self, X: pd.DataFrame, y) -> HeadModel | None:
        """A copy whose calibrator is refitted on ``X`` (newer labelled rows) by Platt scaling
        with a positive slope, so the ranking is unchanged (None when the slope is not positive:
        on these rows the order reversed); ``X`` becomes the score and tier reference rows."""
        model = copy.copy(self)
        y = np.asarray(y, dtype=int)
        margin = model._margin(X)
        if platt(margin[:, 0], y, self.seed)[0] <= 0:
            return None
        model.calibration_method_, model.calibration_losses_ = "sigmoid", {}
        model.calibrator_ = CalibratedClassifierCV(
            FrozenEstimator(_PrecomputedMargin.of(model.model_.classes_)),
            method=model.calibration_method_,
        ).fit(margin, y)
        model.validation_probability_ = model.calibrator_.predict_proba(margin)[:, 1]
        model.validation_margin_, model.validation_label_ = margin[:, 0], y
        model.calibration_positives_ = int(y.sum())
        model.calibration_basis_ = f"recalibrated on {len(y):,} newer rows"
        # the same trees with another calibration are another model version
        model.recalibration_ = hashlib.sha256(
            np.round(model.validation_probability_, 12).tobytes()
        ).hexdigest()
        return model

    def with_threads(self, threads: int) -> HeadModel:
        """A copy that predicts (and explains) on ``threads`` threads: one per task where an
        engine such as Spark runs a task per core. The trees and the results are the same."""
        model = copy.copy(self)
        model.model_ = copy.copy(self.model_).set_params(n_jobs=threads)
        return model

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds before calibration (prior + trees), as the contributions sum to."""
        return self._margin(X)[:, 0] - self.prior_shift_

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Contributions to the uncalibrated log-odds per feature, plus ``expected_value``; index
        of X: exact TreeSHAP of the trees, plus the prior's centred points (its own exact
        decomposition) where there is a prior."""
        values = self.model_.predict(self._prepare(X), pred_contrib=True)
        table = pd.DataFrame(values, index=X.index, columns=[*self.features_, EXPECTED_VALUE])
        if getattr(self, "prior_", None) is not None:
            prior = self.prior_.contributions(X)
            table = table.add(prior.reindex(columns=table.columns, fill_value=0.0), fill_value=0.0)
        return table

    def fingerprint(self) -> str:
        """What the model version hashes: the booster's text (and the prior's)."""
        text = self.model_.booster_.model_to_string()
        prior = getattr(self, "prior_", None)
        text = text if prior is None else text + prior.fingerprint()
        recalibration = getattr(self, "recalibration_", None)
        return text if recalibration is None else text + recalibration

    @property
    def booster_(self) -> lgb.Booster:
        return self.model_.booster_


def _groups(X) -> np.ndarray:
    """The grouping unit of rows: the account where there is one, else the row."""
    if isinstance(X, pd.DataFrame) and "account_id" in X:
        return X["account_id"].to_numpy()
    return np.arange(len(X))


def _signed_log1p(values):
    return np.sign(values) * np.log1p(np.abs(values))


def logistic_baseline(numeric: list[str], categorical: list[str], seed: int) -> Pipeline:
    """A competent linear baseline: imputed, log-scaled, standardised numerics; one-hot categoricals."""
    signed_log = FunctionTransformer(_signed_log1p, feature_names_out="one-to-one")
    transform = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    signed_log,
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                ),
                categorical,
            ),
        ]
    )
    return Pipeline(
        [
            ("prepare", transform),
            ("model", LogisticRegression(C=0.3, max_iter=2000, random_state=seed)),
        ]
    )


def match_base_rate(pipeline: Pipeline, X: pd.DataFrame, rate: float) -> Pipeline:
    """Shift a fitted logistic pipeline's intercept so its mean probability on ``X`` is ``rate``
    (a prior shift, as for down-sampled negatives: a baseline that learned from rows outside the
    scored population, such as the fit head's customer base, keeps its ranking and is calibrated
    in the large on the population it scores)."""
    model = pipeline.named_steps["model"]
    margin = pipeline.decision_function(X)

    def excess(shift: float) -> float:
        return float(np.mean(1 / (1 + np.exp(-(margin + shift))))) - rate

    model.intercept_ = model.intercept_ + brentq(excess, -50.0, 50.0)
    return pipeline
