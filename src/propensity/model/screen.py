"""Leakage screen: catch columns that are filled in only after the outcome, before training.

Every candidate column is checked; a column that fails any check is a suspect and is excluded
by default (``keep_suspects`` keeps them). The result is a table of column, check, figure and
verdict, printed by the CLI and logged to MLflow.

Checks:

* ``single_column_auc``: the column alone, encoded out of fold (numbers in quantile bins,
  categories by value, missing as its own level; target mean learned on the other folds),
  ranks the label with ROC-AUC >= ``max_single_auc``, or >= ``dominant_auc`` while beating
  every other column by >= ``dominant_gap``, or >= ``towering_auc`` while beating every other
  column by >= ``towering_gap`` when the best of them carries signal too (>= ``informative_auc``):
  a field filled in after the outcome, as a call's duration, is rarely near-perfect but towers
  over the several fields that honestly describe a lead, while a table whose only signal is one
  column is not suspicious for that alone (``tests/test_screen.py`` has both). "Every other column" leaves
  out the period indicators: they carry the base rate of their period, which differs between
  protocols (the whole file, or the training window), so the verdict would too;
* ``missing_in_one_class``: the rows where the column is missing, or the rows where it is
  filled in, belong almost only to one class (>= ``missing_purity`` of them, at least
  ``min_support`` rows) while the base rate is far from that (a field filled in only for won
  deals);
* ``date_after_row_time``: a date column later than the row's own time in >= ``late_date_share``
  of rows;
* ``derived_from_late_date``: a number that tracks the days from the row's time to a late date
  column (|rank correlation| >= ``derived_correlation``), e.g. ``days_to_close`` next to
  ``close_date``;
* ``determines_label``: the column's values map to the label almost deterministically
  (weighted value purity >= ``determine_purity``), or the column equals the label;
* ``period_indicator``: the column alone tells the later rows from the earlier ones
  (out-of-fold ROC-AUC >= ``max_period_auc``; the recipe says which rows are later: the
  validation window against the training window, or the last rows of the file against the
  first) *and* its value is fixed by the row's period (the period explains >= ``period_share``
  of its variation, periods being ``periods`` equal-count blocks of rows in time or file order),
  as an economy-wide rate or an index that moves with the calendar does. A column that grows
  with time but differs between the rows of one period (an account's count of earlier deals)
  describes the row and is kept, its figure shown. A period indicator says which
  period a row is from, not which row converts: trees split on its exact values, which a later
  period never takes again, and carry the training period's base rate into a period it does not
  describe. Excluded by default: on the planted-drift table (``benchmarks/table_drift.md``),
  excluding them leaves the model's ranking within a month as good or better, and the
  probabilities' level is the latest window's calibration job. The table's own period AUC (a
  classifier of every column telling the periods apart) is reported next to it;
* ``export_time_name``: the column's name says it describes the record as of the export or
  was filled in by sales while working the outcome (``last ...``, ``status``, ``stage``,
  ``quality``, ``tags``, ``notes``, ``reason``, ``closed``/``won``/``lost``, ``outcome``):
  the same rule that keeps ``lifecycle_stage`` and ``last_activity_at`` out of account features.
  The outcome of an earlier, finished interaction (``previous_outcome``, ``prior deal result``,
  ``poutcome``) is known before the row and passes the name rule; the data checks still apply.

An honest strong feature (say AUC 0.8 when the next is 0.7) passes: the thresholds are for
the tell-tale signs of leakage, not for predictive power.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold


class ScreenConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_single_auc: float = Field(0.95, gt=0.5, le=1.0)
    dominant_auc: float = Field(0.85, gt=0.5, le=1.0)
    dominant_gap: float = Field(0.12, ge=0, le=0.5)
    towering_auc: float = Field(0.75, gt=0.5, le=1.0)
    towering_gap: float = Field(0.2, ge=0, le=0.5)
    informative_auc: float = Field(0.55, ge=0.5, le=1.0)
    missing_purity: float = Field(0.97, gt=0.5, le=1.0)
    min_support: int = Field(30, ge=1)
    late_date_share: float = Field(0.01, gt=0, le=1)
    derived_correlation: float = Field(0.98, gt=0.5, le=1)
    determine_purity: float = Field(0.97, gt=0.5, le=1.0)
    max_period_auc: float = Field(
        0.9, gt=0.5, le=1.0, description="a column that alone tells later rows from earlier ones"
    )
    period_share: float = Field(
        0.9, gt=0, le=1.0, description="of a column's variation that its period explains"
    )
    periods: int = Field(20, ge=2, le=500)
    bins: int = Field(20, ge=2, le=200)
    folds: int = Field(5, ge=2, le=20)
    name_check: bool = Field(
        True, description="flag export-time names (off for the toolkit's own engineered features)"
    )
    max_rows: int = Field(
        100_000, ge=1000, description="screen a stratified sample of at most this many rows"
    )
    seed: int = 0


EXPORT_TIME_NAME = re.compile(
    r"(^last[\s_])|(^latest)|(status)|(stage)|(quality)|(^tags?$)|(notes?$)|(reason)|(^close)|"
    r"(^won)|(^lost)|(outcome)|(^result)",
    re.IGNORECASE,
)
# the outcome of an earlier, finished interaction (a previous campaign, a prior deal) was known
# before the row: its name alone does not make it an export-time field (the data checks still
# apply to it); "poutcome" is the bank-marketing exports' spelling
PRIOR_OUTCOME_NAME = re.compile(
    r"^(prev(ious)?|prior|past|earlier|p)[\s_-]*([a-z]+[\s_-]+)?(outcome|result)s?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ScreenResult:
    table: pd.DataFrame  # column, check, figure, verdict
    suspects: tuple[str, ...]
    # how well every column together tells the later rows from the earlier ones, and every
    # column but the period indicators (None: the screen was not told which rows are later)
    period_auc: float | None = None
    period_auc_without_indicators: float | None = None

    def kept(self, columns) -> list[str]:
        return [c for c in columns if c not in self.suspects]


def level_codes(values: pd.Series, bins: int) -> np.ndarray:
    """The column's levels as integer codes: quantile bins for numbers and dates, values for the
    rest (compared as text), missing one more level."""
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("object")
    if pd.api.types.is_numeric_dtype(values):
        level = np.ceil(values.rank(method="average", pct=True).to_numpy(dtype=float) * bins)
    elif pd.api.types.is_datetime64_any_dtype(values):
        level = pd.qcut(values.rank(method="first"), bins, labels=False, duplicates="drop")
    else:
        level = values.astype("string")
    codes, _ = pd.factorize(level, use_na_sentinel=False)
    return codes


def out_of_fold_auc(codes: np.ndarray, label: np.ndarray, config: ScreenConfig) -> float:
    """ROC-AUC of one column's levels (:func:`level_codes`) alone, target-mean encoded on
    held-out folds (symmetrised: >= 0.5)."""
    encoded = np.full(len(label), np.nan)
    prior = label.mean()
    n_levels = int(codes.max()) + 1
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    for fit_idx, held_idx in folds.split(codes, label):
        fitted = codes[fit_idx]
        positives = np.bincount(fitted, weights=label[fit_idx], minlength=n_levels)
        counts = np.bincount(fitted, minlength=n_levels)
        smoothed = (positives + prior * 10) / (counts + 10)
        held = codes[held_idx]
        encoded[held_idx] = np.where(counts[held] > 0, smoothed[held], prior)
    auc = roc_auc_score(label, encoded)
    return float(max(auc, 1 - auc))


def _late_date_offsets(
    frame: pd.DataFrame, time: pd.Series | None, config: ScreenConfig
) -> dict[str, pd.Series]:
    """Days from the row's time to each date column that is often later than it."""
    if time is None or not pd.api.types.is_datetime64_any_dtype(time):
        return {}
    time = pd.Series(pd.to_datetime(time).to_numpy(), index=frame.index)
    offsets = {}
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            days = (frame[column] - time).dt.total_seconds() / 86_400
            if (days > 0).mean() >= config.late_date_share:
                offsets[column] = days
    return offsets


def _rank_correlation(values: pd.Series, days: pd.Series, min_support: int) -> float:
    both = values.notna() & days.notna()
    if both.sum() < min_support or values[both].nunique() < 2 or days[both].nunique() < 2:
        return 0.0
    return float(abs(values[both].rank().corr(days[both].rank())))


def _single_column_auc(column, aucs: dict, periodic: set, config: ScreenConfig) -> tuple:
    auc = aucs[column]
    others = [a for c, a in aucs.items() if c != column and c not in periodic]
    best_other = max(others) if others else 0.5
    gap = auc - best_other
    suspect = (
        auc >= config.max_single_auc
        or (auc >= config.dominant_auc and gap >= config.dominant_gap)
        or (
            auc >= config.towering_auc
            and gap >= config.towering_gap
            and best_other >= config.informative_auc
        )
    )
    return (column, "single_column_auc", f"{auc:.3f} (best other {best_other:.3f})", suspect)


def _missing_in_one_class(column, values, label, base_rate, config: ScreenConfig) -> tuple | None:
    """Filled in only once the outcome is known: the missing rows, or the filled-in rows, belong
    almost only to one class (far from the base rate)."""
    missing = values.isna().to_numpy()
    if not missing.any() or missing.all():
        return None
    findings = []
    for state, rows_in_state in (("missing", missing), ("filled-in", ~missing)):
        if rows_in_state.sum() < config.min_support:
            continue
        rate = label[rows_in_state].mean()
        majority = int(rate >= 0.5)
        purity = max(rate, 1 - rate)
        base_majority = base_rate if majority == 1 else 1 - base_rate
        suspect = purity >= config.missing_purity and purity - base_majority >= 0.2
        findings.append((suspect, purity, state, int(rows_in_state.sum()), majority))
    if not findings:
        return None
    suspect, purity, state, count, majority = max(findings)
    figure = f"{purity:.3f} of {count} {state} rows in class {majority}"
    return (column, "missing_in_one_class", figure, suspect)


def _date_after_row_time(column, values, time, config: ScreenConfig) -> tuple | None:
    if time is None or not pd.api.types.is_datetime64_any_dtype(values):
        return None
    later = (values > pd.to_datetime(time)).to_numpy() & ~values.isna().to_numpy()
    share = later.mean()
    figure = f"{share:.3f} of rows later than the row's time"
    return (column, "date_after_row_time", figure, share >= config.late_date_share)


def _derived_from_late_date(column, values, late_days: dict, config: ScreenConfig) -> tuple | None:
    if not late_days or not pd.api.types.is_numeric_dtype(values) or column in late_days:
        return None
    correlations = {
        date: _rank_correlation(values, days, config.min_support)
        for date, days in late_days.items()
    }
    date, correlation = max(correlations.items(), key=lambda item: item[1])
    figure = f"{correlation:.3f} rank correlation with days from the row's time to {date}"
    return (column, "derived_from_late_date", figure, correlation >= config.derived_correlation)


def _export_time_name(column, config: ScreenConfig) -> tuple | None:
    name = str(column).strip()
    if not config.name_check or not EXPORT_TIME_NAME.search(name):
        return None
    if PRIOR_OUTCOME_NAME.match(name):
        return None
    return (column, "export_time_name", "name suggests an as-of-export or post-outcome field", True)


def _determines_label(column, codes, label, base_rate, config: ScreenConfig) -> tuple | None:
    counts = np.bincount(codes)
    distinct = int((counts > 0).sum())
    if not 1 < distinct <= max(50, 0.05 * len(codes)):  # identifiers: the AUC check's job
        return None
    seen = counts > 0
    rate = np.bincount(codes, weights=label)[seen] / counts[seen]
    purity = (np.maximum(rate, 1 - rate) * counts[seen]).sum() / counts[seen].sum()
    base = max(base_rate, 1 - base_rate)
    suspect = purity >= config.determine_purity and purity - base >= 0.1
    return (column, "determines_label", f"{purity:.3f} value purity (base {base:.3f})", suspect)


def _period_indicator(column, period_aucs: dict) -> tuple | None:
    if column not in period_aucs:
        return None
    auc, share, suspect = period_aucs[column]
    return (
        column,
        "period_indicator",
        f"tells later rows from earlier ones with ROC-AUC {auc:.3f}; its period explains "
        f"{share:.0%} of it",
        suspect,
    )


def period_explained(values: pd.Series, period: np.ndarray) -> float:
    """How much of a column the row's period fixes: for numbers and dates, the share of the
    variance of their ranks between periods (R squared of the period means); for categories,
    the share of rows holding their period's most common value. Missing is a value."""
    period = np.asarray(period)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        ranks = values.rank(pct=True).fillna(-1.0).to_numpy(dtype=float)
        total = ranks.var()
        if total == 0:
            return 1.0
        means = pd.Series(ranks).groupby(period).transform("mean").to_numpy()
        return float(1 - ((ranks - means) ** 2).mean() / total)
    text = values.astype("string").fillna("\0missing")
    counts = pd.crosstab(period, text.to_numpy())
    return float(counts.max(axis=1).sum() / len(text))


def period_auc(frame: pd.DataFrame, later: np.ndarray, config: ScreenConfig) -> float:
    """How well every column together tells the later rows from the earlier ones: a gradient-
    boosted classifier's out-of-fold ROC-AUC (0.5: the periods look alike)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    encoded = pd.DataFrame(
        {c: level_codes(frame[c], config.bins) for c in frame.columns}, index=frame.index
    )
    folds = StratifiedKFold(config.folds, shuffle=True, random_state=config.seed)
    classifier = HistGradientBoostingClassifier(max_iter=100, random_state=config.seed)
    score = cross_val_predict(classifier, encoded, later, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(later, score))


def screen(
    frame: pd.DataFrame,
    label,
    *,
    time: pd.Series | None = None,
    later: np.ndarray | None = None,
    order: np.ndarray | None = None,
    period_verdict: str = "exclude",
    config: ScreenConfig | None = None,
) -> ScreenResult:
    """Screen every column of ``frame`` against the 0/1 ``label`` (and the rows' ``time``);
    with ``later`` (1 for the rows of the later period, 0 for the earlier) and ``order`` (each
    row's place in time or file order; default: as given), also for period indicators, which
    get ``period_verdict``: "exclude" where the order is time, "warn" where it is only the
    file's (a file sorted by amount makes the amount look like a period)."""
    config = config or ScreenConfig()
    label = np.asarray(label, dtype=int)
    if len(np.unique(label)) != 2:
        raise ValueError("the label must have both classes to screen columns")
    if len(label) > config.max_rows:  # the checks are about shares: a sample tells the same
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(label), config.max_rows, replace=False))
        frame, label = frame.iloc[keep].reset_index(drop=True), label[keep]
        time = None if time is None else pd.Series(np.asarray(time)[keep])
        later = None if later is None else np.asarray(later)[keep]
        order = None if order is None else np.asarray(order)[keep]
    base_rate = label.mean()
    codes = {c: level_codes(frame[c], config.bins) for c in frame.columns}
    aucs = {c: out_of_fold_auc(codes[c], label, config) for c in frame.columns}
    late_days = _late_date_offsets(frame, time, config)
    period_aucs = {}
    if later is not None:
        later = np.asarray(later, dtype=int)
        # equal-count blocks of rows in time (or file) order
        place = np.arange(len(later)) if order is None else np.argsort(np.argsort(order))
        period = place * config.periods // len(later)
        for column in frame.columns:
            auc = out_of_fold_auc(codes[column], later, config)
            share = period_explained(frame[column], period)
            suspect = auc >= config.max_period_auc and share >= config.period_share
            period_aucs[column] = (auc, share, suspect)
    periodic = {c for c, (*_, suspect) in period_aucs.items() if suspect}
    rows = []
    for column in frame.columns:
        values = frame[column]
        checks = (
            _single_column_auc(column, aucs, periodic, config),
            _missing_in_one_class(column, values, label, base_rate, config),
            _date_after_row_time(column, values, time, config),
            _derived_from_late_date(column, values, late_days, config),
            _export_time_name(column, config),
            _determines_label(column, codes[column], label, base_rate, config),
            _period_indicator(column, period_aucs),
        )
        rows += [check for check in checks if check is not None]
    table = pd.DataFrame(rows, columns=["column", "check", "figure", "suspect"])
    if period_verdict != "exclude":
        warned = table["suspect"] & (table["check"] == "period_indicator")
        table["suspect"] = table["suspect"].astype(object).where(~warned, "warn")
    table["verdict"] = table["suspect"].map(
        lambda s: s if s == "warn" else ("exclude" if s else "ok")
    )
    table["suspect"] = table["suspect"].eq(True)
    suspects = tuple(dict.fromkeys(table.loc[table["suspect"], "column"]))
    together = rest = None
    if later is not None:
        together = period_auc(frame, later, config)
        others = [c for c in frame.columns if c not in periodic]
        if not periodic:
            rest = together
        elif others:
            rest = period_auc(frame[others], later, config)
    return ScreenResult(table.drop(columns="suspect"), suspects, together, rest)
