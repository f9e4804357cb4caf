"""The evaluation protocol both recipes share, for one head:

folds (a splitter from :mod:`propensity.model.splits`) -> per fold: LightGBM calibrated on the
fold's validation rows, the logistic baseline and the base rate, fitted on the fold's training
rows (the baselines also on its validation rows: they need no early stopping, so they get the same
rows the model learns from) -> held-out predictions, with the recipe's own reference scorers (the
scorecard, the oracle) -> comparison table with bootstrap intervals and the Brier skill over the
base rate -> a plain verdict -> the final model (the recipe turns it into a
:class:`propensity.scoring.Scorer`, whose score and tiers come from the final model's
probabilities on the final fold's validation rows, the rows it was calibrated on).

Nothing here knows about accounts or tables: a recipe (:mod:`propensity.runs.account`,
:mod:`propensity.runs.table`) builds a :class:`HeadTask` and reads the :class:`HeadRun`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from propensity.evaluate import brier_skills, comparison_table, decile_table
from propensity.explain import global_importance
from propensity.features.registry import FeatureSpec
from propensity.model.candidates import LogisticCandidate
from propensity.model.head import (
    HeadModel,
    LightGBMParams,
    logistic_baseline,
    match_base_rate,
)
from propensity.model.learned_scorecard import PointsSettings, learn_scorecard
from propensity.model.scorecard import Scorecard
from propensity.model.splits import Fold
from propensity.model.stacked import StackedCandidate
from propensity.runs.selection import (
    SelectionRows,
    Shipped,
    logistic_candidate,
    selection_rows,
    ship,
)

log = logging.getLogger(__name__)

BASELINES = ("logistic", "base_rate")
# the SHAP summary's sample: on the 3,000-account test world, 5,000 rows give the same top fields in
# the same order as 20,000, each mean |contribution| within 4 %, in a quarter of the time
IMPORTANCE_ROWS = 5_000

# (fold, held-out row positions) -> {scorer name: score per row}
References = Callable[[Fold, np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class FitSettings:
    """How a head's model is fitted and evaluated."""

    params: LightGBMParams
    calibration_methods: tuple[str, ...] = ("isotonic", "sigmoid")
    negative_sample_rate: float = 1.0
    seed: int = 0
    n_jobs: int = 1
    capacity_k: int = 100
    n_bootstrap: int = 200
    min_calibration_positives: int = 50
    selection_level: float = 0.5
    selection_metric: str = "roc_auc"
    cross_fit: bool = False  # always cross-fit (rows of one account in both windows)
    boost_from_scorecard: bool = False  # the trees start from the task's scorecard (a prior)
    stack: bool = False  # a stack of LightGBM and logistic is the learned candidate
    points: PointsSettings | None = None  # learn a points scorecard too (None: not)

    def cross_fits(self, validation_positives: int) -> bool:
        """Whether the model is cross-fitted on train + validation (the rule
        :class:`HeadModel` applies to the validation window :func:`fit_fold` gives it)."""
        return self.cross_fit or validation_positives < self.min_calibration_positives


@dataclass(frozen=True)
class HeadTask:
    """One head to evaluate and fit on a labelled matrix (every row has a 0/1 label).

    ``fit_label`` is what the model is fitted and calibrated on, ``label`` what held-out rows are
    judged on (they differ only where a label must be censored for fitting, as the fit head's).
    ``keys`` name each row in the predictions; ``groups`` is the bootstrap unit (an account, a
    row); ``dates`` the snapshot of each row for precision at a per-date capacity (None: one date).
    """

    head: str
    matrix: pd.DataFrame
    label: np.ndarray
    columns: list[str]
    categorical: list[str]
    specs: tuple[FeatureSpec, ...]
    tiers: tuple[tuple[str, float], ...]
    keys: pd.DataFrame
    groups: np.ndarray
    dates: np.ndarray | None = None
    fit_label: np.ndarray | None = None
    references: References | None = None
    probability_references: frozenset[str] = frozenset()
    scorecard: Scorecard | None = None  # a candidate to ship (see :mod:`propensity.runs.selection`)
    # rows models learn from but are neither calibrated, selected nor judged on (training rows)
    learn_only: np.ndarray | None = None
    # what the probabilities estimate when it is not ``fit_label`` (None: ``fit_label``), e.g.
    # the fit head learns "opened or won" and its probability is that of a win
    probability_label: np.ndarray | None = None

    @property
    def training_label(self) -> np.ndarray:
        return self.label if self.fit_label is None else self.fit_label

    @property
    def calibration_label(self) -> np.ndarray:
        """What probabilities are calibrated to (censored like the training label)."""
        return self.training_label if self.probability_label is None else self.probability_label

    def scored(self, rows: np.ndarray) -> np.ndarray:
        """The positions among ``rows`` that scores apply to (every one but the learn-only)."""
        return rows if self.learn_only is None else rows[~self.learn_only[rows]]


@dataclass
class FittedFold:
    model: HeadModel
    logistic: Pipeline
    base_rate: float
    selection: SelectionRows  # the rows the candidates are compared on
    logistic_candidate: LogisticCandidate
    stacked: StackedCandidate | None = None
    stack_refused: str = ""  # why a stack was asked for and not formed
    learned_scorecard: Scorecard | None = None  # integer points learned on the development rows


@dataclass
class HeadRun:
    """What the protocol found for one head, and its final model."""

    head: str
    predictions: pd.DataFrame  # held-out rows of every fold
    evaluation: pd.DataFrame  # comparison table (first repeat), Brier skill over the base rate
    deciles: pd.DataFrame
    folds: pd.DataFrame  # ROC-AUC and Brier per fold and scorer
    beats_base_rate: bool
    verdict: str
    model: HeadModel  # the final LightGBM model
    logistic: Pipeline
    final_fold: Fold
    importance_rows: pd.DataFrame  # rows the SHAP summary is computed on
    specs: tuple[FeatureSpec, ...]
    shipped: Shipped  # what scoring uses: the model or a baseline, and why
    facts: dict = field(default_factory=dict)
    learned_scorecard: Scorecard | None = None  # the final fold's, for `propensity scorecard`

    @cached_property
    def importance(self) -> pd.DataFrame:
        """Mean |contribution| per business field of the shipped scorer (computed when first
        asked for: it is only written to the run folder)."""
        return global_importance(self.shipped.model, self.importance_rows, self.specs, self.head)


def fit_fold(task: HeadTask, fold: Fold, settings: FitSettings) -> FittedFold:
    """LightGBM (early stopping and calibration on the validation rows), logistic, base rate."""
    y = task.training_label.astype(int)
    model = HeadModel(
        features=task.columns,
        categorical=task.categorical,
        params=settings.params,
        calibration_methods=settings.calibration_methods,
        negative_sample_rate=settings.negative_sample_rate,
        seed=settings.seed,
        n_jobs=settings.n_jobs,
        min_calibration_positives=(
            np.iinfo(np.int64).max if settings.cross_fit else settings.min_calibration_positives
        ),
        prior=task.scorecard if settings.boost_from_scorecard else None,
        prior_head=task.head,
    )
    calibrate = task.calibration_label.astype(int)
    model.fit(
        task.matrix.iloc[fold.train],
        y[fold.train],
        eval_set=(task.matrix.iloc[fold.valid], y[fold.valid]),
        learn_only=None if task.learn_only is None else task.learn_only[fold.train],
        calibration_label=None
        if task.probability_label is None
        else (calibrate[fold.train], calibrate[fold.valid]),
    )
    numeric = [c for c in task.columns if c not in task.categorical]
    logistic = logistic_baseline(numeric, task.categorical, settings.seed)
    development = np.concatenate([fold.train, fold.valid])
    logistic.fit(task.matrix.iloc[development][task.columns], y[development])
    # the baselines' probabilities are for the rows scores apply to, not the learn-only ones
    scored = task.scored(development)
    if len(scored) < len(development) or task.probability_label is not None:
        rate = float(calibrate[scored].mean())
        match_base_rate(logistic, task.matrix.iloc[scored][task.columns], rate)
    log.info(
        "head %s: %d trees, calibration %s",
        task.head,
        model.best_iteration_,
        model.calibration_method_,
    )
    selection = selection_rows(task, fold, model, settings.seed)
    candidate = logistic_candidate(task, fold, logistic, selection)
    stacked, refused = None, ""
    if settings.stack:
        stacked = StackedCandidate.of(
            model,
            candidate,
            selection.model_margin,
            selection.logistic_margin,
            selection.label,
            settings.seed,
        )
        if stacked is None:
            refused = (
                "not stacked with the logistic baseline: a stacking weight on the "
                f"{selection.basis} is not positive (one model adds nothing to the other)"
            )
    learned = None
    if settings.points is not None:
        learned = learn_scorecard(
            task.matrix.iloc[development],
            y[development],
            task.columns,
            task.categorical,
            settings.points,
            incumbent=task.scorecard,
            name=f"learned-{task.head}",
        )
    return FittedFold(
        model,
        logistic,
        float(calibrate[scored].mean()),
        selection,
        candidate,
        stacked,
        refused,
        learned,
    )


def held_out(task: HeadTask, fitted: FittedFold, fold: Fold) -> pd.DataFrame:
    """One row per test row: keys, head, repeat, fold, label, then one column per scorer."""
    rows = fold.test
    test = task.matrix.iloc[rows]
    frame = task.keys.iloc[rows].reset_index(drop=True)
    frame["head"] = task.head
    frame["repeat"] = fold.repeat
    frame["fold"] = fold.fold
    frame["label"] = task.label[rows].astype(int)
    frame["model"] = fitted.model.predict_proba(test)[:, 1]
    frame["logistic"] = fitted.logistic.predict_proba(test[task.columns])[:, 1]
    if fitted.stacked is not None:
        frame["stacked"] = fitted.stacked.predict_proba(test)[:, 1]
    frame["base_rate"] = fitted.base_rate
    if task.references is not None:
        for name, values in task.references(fold, rows).items():
            frame[name] = np.asarray(values, dtype=float)
    # next to the hand-made scorecard in the comparison table
    if fitted.learned_scorecard is not None:  # points: ranked, not a probability
        points = fitted.learned_scorecard.points_by_column(test, task.head).sum(axis=1)
        frame["learned_scorecard"] = points.to_numpy(dtype=float)
    frame["_group"] = task.groups[rows]
    frame["_date"] = task.dates[rows] if task.dates is not None else 0
    return frame


def scorers_of(task: HeadTask, predictions: pd.DataFrame) -> list[str]:
    """The scorer columns of a head's predictions: model, the recipe's references, baselines."""
    reserved = {*task.keys.columns, "head", "repeat", "fold", "label", "_group", "_date"}
    references = [
        c for c in predictions.columns if c not in reserved and c not in ("model", *BASELINES)
    ]
    return ["model", *references, *BASELINES]


def evaluate_head(task: HeadTask, predictions: pd.DataFrame, settings: FitSettings):
    """Comparison table on the first repeat (with the Brier skill over the base rate), deciles
    and per-fold figures."""
    first = predictions[predictions["repeat"] == 0]
    scorers = scorers_of(task, predictions)
    if "stacked" in predictions and predictions["stacked"].isna().any():
        # a stack formed in some folds only has no figure comparable to the others'
        scorers.remove("stacked")
    probabilities = {"model", "stacked", *BASELINES, *task.probability_references}
    ranked = first.rename(columns={"_group": "group", "_date": "date"})
    options = dict(
        head=task.head,
        group="group",
        date="date" if task.dates is not None else None,
        capacity_k=settings.capacity_k,
        probability_scorers=probabilities,
        seed=settings.seed,
    )
    # with one fold the base rate is one constant: its figures need no bootstrap
    constant = first["base_rate"].nunique() == 1
    table = comparison_table(
        ranked,
        scorers[:-1] if constant else scorers,
        n_bootstrap=settings.n_bootstrap,
        **options,
    )
    if constant:
        base = comparison_table(ranked, ["base_rate"], n_bootstrap=0, **options)
        for metric in [c for c in base.columns if f"{c}_lo" in base.columns]:
            base[[f"{metric}_lo", f"{metric}_hi"]] = base[[metric, metric]].to_numpy()
        table = pd.concat([table, base], ignore_index=True)
    bootstrapped = [
        s for s in table["scorer"] if s in probabilities and not (s == "base_rate" and constant)
    ]
    found = brier_skills(
        first["label"],
        {s: first[s] for s in bootstrapped},
        first["base_rate"],
        first["_group"],
        n_bootstrap=settings.n_bootstrap,
        seed=settings.seed,
    )
    empty = dict.fromkeys(("brier_skill", "brier_skill_lo", "brier_skill_hi"), np.nan)
    reference = {"brier_skill": 0.0, "brier_skill_lo": 0.0, "brier_skill_hi": 0.0}
    skills = [found.get(s, reference if s == "base_rate" else empty) for s in table["scorer"]]
    evaluation = pd.concat([table, pd.DataFrame(skills)], axis=1)
    deciles = pd.concat(
        [
            decile_table(first["label"], first[s]).assign(head=task.head, scorer=s)
            for s in scorers
            if s != "base_rate" and first[s].notna().all()
        ],
        ignore_index=True,
    )
    return evaluation, deciles, fold_metrics(predictions, scorers, probabilities)


def fold_metrics(
    predictions: pd.DataFrame, scorers: Sequence[str], probabilities: set[str]
) -> pd.DataFrame:
    """ROC-AUC (and Brier for probabilities) per scorer for every fold of every repeat."""
    rows = []
    for (repeat, fold), part in predictions.groupby(["repeat", "fold"], sort=True):
        both = part["label"].nunique() == 2
        for scorer in scorers:
            if part[scorer].isna().any():
                continue
            rows.append(
                {
                    "head": part["head"].iloc[0],
                    "repeat": repeat,
                    "fold": fold,
                    "scorer": scorer,
                    "roc_auc": roc_auc_score(part["label"], part[scorer]) if both else np.nan,
                    "brier": brier_score_loss(part["label"], part[scorer])
                    if scorer in probabilities
                    else np.nan,
                    "rows": len(part),
                }
            )
    return pd.DataFrame(rows)


def _auc_text(row) -> str:
    return f"ROC-AUC {row['roc_auc']:.3f} [{row['roc_auc_lo']:.3f}, {row['roc_auc_hi']:.3f}]"


def verdict(evaluation: pd.DataFrame) -> tuple[bool, str]:
    """Whether the model beats the base rate, in one plain sentence with the evidence; it reads
    every row of the comparison (the model, the logistic baseline, the base rate), so it tells
    apart: the model beats the base rate; the ranking is inverted on the held-out rows (the
    relationship changed: drift); the columns carry signal but this model fails on held-out rows
    where the logistic baseline does not; the model ranks but its probabilities are off (they
    need recalibrating on recent rows); no signal in any model."""
    rows = evaluation.set_index("scorer")
    model = rows.loc["model"]
    logistic = rows.loc["logistic"] if "logistic" in rows.index else None
    auc = _auc_text(model)
    skill = (
        f"Brier skill over the base rate {model['brier_skill']:+.3f} "
        f"[{model['brier_skill_lo']:+.3f}, {model['brier_skill_hi']:+.3f}]"
    )
    ranks = model["roc_auc_lo"] > 0.5
    calibrated_gain = model["brier_skill_lo"] > 0
    logistic_ranks = logistic is not None and logistic["roc_auc_lo"] > 0.5
    # clearly better: the baseline's lower bound is above the model's own estimate
    logistic_better = logistic_ranks and logistic["roc_auc_lo"] > model["roc_auc"]
    if model["roc_auc_hi"] < 0.5:
        advice = (
            f"the logistic baseline still ranks them ({_auc_text(logistic)}): use it, and "
            "retrain on recent rows"
            if logistic_ranks
            else "do not use this model to prioritise; retrain on recent rows"
        )
        return False, (
            f"Ranking inverted on the held-out rows: the model ranks them worse than chance "
            f"({auc}), so what it learned from earlier rows reverses later (the relationship "
            f"changed: drift); {advice}."
        )
    if logistic_better and ranks and calibrated_gain:
        return True, (
            f"The model beats the base rate ({auc}, {skill}), but the logistic baseline ranks the "
            f"held-out rows better ({_auc_text(logistic)}): use the logistic baseline."
        )
    if logistic_better:
        return False, (
            f"The columns predict the outcome, but this model fails on the held-out rows: the "
            f"logistic baseline ranks them with {_auc_text(logistic)} against the model's {auc}; "
            "use the logistic baseline."
        )
    if ranks and calibrated_gain:
        return True, f"The model beats the base rate: {auc}, {skill}."
    if ranks:
        return False, (
            f"The model ranks rows better than chance ({auc}) but its probabilities are no better "
            f"than the base rate ({skill}): use its order, not its probabilities, or recalibrate "
            "them on recent rows."
        )
    if logistic_ranks:
        return False, (
            f"The columns predict the outcome, but this model does not rank the held-out rows "
            f"({auc}) while the logistic baseline does ({_auc_text(logistic)}); use the logistic "
            "baseline."
        )
    return False, (
        f"No signal beyond the base rate in any model: {auc}, {skill}"
        + (f"; logistic baseline {_auc_text(logistic)}" if logistic is not None else "")
        + ". The columns given do not predict the outcome on held-out rows; do not use them to "
        "prioritise."
    )


def importance_rows(task: HeadTask, fold: Fold, seed: int) -> pd.DataFrame:
    """Rows for the SHAP summary: the final fold's held-out rows (every row when it has none),
    at most IMPORTANCE_ROWS of them."""
    rows = task.matrix.iloc[fold.test] if len(fold.test) else task.matrix
    if len(rows) > IMPORTANCE_ROWS:
        rows = rows.sample(IMPORTANCE_ROWS, random_state=seed)
    return rows


def window_base_rates(task: HeadTask, fold: Fold) -> dict[str, float | None]:
    """The positive rate of the rows scores apply to in each window of the fold, and the test
    window's over the training window's (a moving base rate: the calibration's problem)."""
    y = task.label.astype(int)
    rates = {
        window: float(y[task.scored(rows)].mean()) if len(task.scored(rows)) else None
        for window, rows in (("train", fold.train), ("validation", fold.valid), ("test", fold.test))
    }
    both = rates["test"] is not None and rates["train"]
    rates["test_over_train"] = rates["test"] / rates["train"] if both else None
    return rates


def run_head(task: HeadTask, splitter, settings: FitSettings) -> HeadRun:
    """The protocol for one head (see the module docstring)."""
    y = task.training_label
    folds = splitter.folds(task.matrix, y, task.groups)
    predictions, fitted = [], None
    for fold in folds:
        fitted = fit_fold(task, fold, settings)
        predictions.append(held_out(task, fitted, fold))
    predictions = pd.concat(predictions, ignore_index=True)
    evaluation, deciles, per_fold = evaluate_head(task, predictions, settings)
    beats, sentence = verdict(evaluation)
    final_fold = splitter.final_fold(task.matrix, y, task.groups)
    if final_fold is None:
        final_fold = folds[-1]
    else:
        fitted = fit_fold(task, final_fold, settings)
    specs = tuple(s for s in task.specs if s.name in task.columns or s.kind == "context")
    shipped = ship(
        task,
        final_fold,
        fitted,
        settings.selection_level,
        settings.seed,
        settings.selection_metric,
    )
    if shipped.kind != "lightgbm" or shipped.problems:
        problems = f"; problems: {'; '.join(shipped.problems)}" if shipped.problems else ""
        log.warning("head %s ships %s%s", task.head, shipped.reason, problems)
    for warning in shipped.warnings:  # the CLI and the report say it to the user
        log.info("head %s: %s", task.head, warning)
    facts = {
        "train_rows": int(len(final_fold.train)),
        "train_positives": int(y[final_fold.train].sum()),
        "validation_positives": int(y[final_fold.valid].sum()),
        "base_rates": window_base_rates(task, final_fold),
        "trees": int(fitted.model.best_iteration_),
        "calibration": fitted.model.calibration_method_,
        "calibration_rows": fitted.model.calibration_basis_,
        "calibration_log_loss": fitted.model.calibration_losses_,
        "features": len(task.columns),
        "shipped": shipped.describe(),
    }
    return HeadRun(
        task.head,
        predictions.drop(columns=["_group", "_date"]),
        evaluation,
        deciles,
        per_fold,
        beats,
        sentence,
        fitted.model,
        fitted.logistic,
        final_fold,
        importance_rows(task, final_fold, settings.seed),
        specs,
        shipped,
        facts,
        fitted.learned_scorecard,
    )
