"""Table mode: one won/lost table (a CRM export of accounts, leads or deals) to a calibrated,
explained model, evaluated as honestly as the account pipeline.

Stages, each a function over DataFrames and a :class:`TableConfig`:

1. :func:`prepare_table`: the label (``positive`` values are 1, ``negative`` values 0; with
   ``negative`` given, other values are *open* rows that are scored but never trained on; a
   missing label is open too), the row time, typed candidate columns (numbers, categories,
   dates), identifier-like and constant columns set aside with a reason, duplicate counts;
2. :func:`propensity.screen.screen` on the development rows: suspects are excluded unless
   ``keep_suspects``;
3. the protocol (:func:`protocol_folds`): out of time when rows have a time (train on the
   earliest part, validate on the next, test on the latest; rows with the same time stay in one
   part), otherwise repeated stratified K-fold where identical feature vectors always share a
   fold (a duplicate in train and test would flatter the model);
4. per fold, LightGBM calibrated on its validation rows (:class:`propensity.train.HeadModel`),
   the logistic baseline, and the base rate (the training share of positives);
5. :func:`evaluate_table`: every metric of the account pipeline with bootstrap intervals, the
   Brier skill over the base rate and a plain verdict on whether the model beats the base rate;
6. the final model (:class:`TableModel`): for out-of-time, the model that was tested; for
   K-fold, refitted on every labelled row; it scores any table of the same shape with reasons.

A date column enters the model as days before the row's time (so it means the same at scoring
time); without a row time it is set aside. The row time itself is never a feature: calendar
position does not carry to a later period.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sklearn.model_selection import StratifiedGroupKFold

from propensity.evaluate import brier_skill, comparison_table, decile_table
from propensity.explain import explain
from propensity.features import FeatureSpec
from propensity.score import HeadCalibration, head_calibration, to_score, to_tier
from propensity.screen import ScreenConfig, ScreenResult, screen
from propensity.train import HeadModel, LightGBMParams, logistic_baseline

log = logging.getLogger(__name__)

Kind = Literal["numeric", "categorical", "date"]
SCORERS = ("model", "logistic", "base_rate")
PROBABILITY_SCORERS = {"model", "logistic", "base_rate"}
TABLE_TIERS = (("A", 0.10), ("B", 0.20), ("C", 0.30), ("D", 0.40))
_LIGHTGBM_FORBIDDEN = re.compile(r'[",:\[\]{}]')


class TableError(ValueError):
    """The table cannot be used as given; the message names the column and example rows."""


class TableConfig(BaseModel):
    """What the table is and how to evaluate a model on it (saved with every run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id_column: str = Field(min_length=1)
    label_column: str = Field(min_length=1)
    positive: tuple[str, ...] = Field(min_length=1, description="label values that mean won")
    negative: tuple[str, ...] | None = Field(
        None, description="label values that mean lost; other values are open rows (scored only)"
    )
    time_column: str | None = Field(None, description="when the row was known (out-of-time)")
    rows_in_time_order: bool = Field(False, description="no time column, but rows are in order")
    exclude: tuple[str, ...] = ()
    keep_suspects: bool = Field(False, description="train on columns the leakage screen flags")
    valid_share: float = Field(0.2, gt=0, lt=0.5)
    test_share: float = Field(0.2, gt=0, lt=0.5)
    folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(2, ge=1, le=20)
    min_positives: int = Field(30, ge=1, description="refuse to train with fewer positives")
    capacity_k: int = Field(100, ge=1, description="rows sales can work (precision/recall@k)")
    seed: int = Field(7, ge=0)
    n_jobs: int = Field(
        1,
        ge=1,
        description="LightGBM threads: 1 for export-sized tables (more threads gain nothing there "
        "and OpenMP spinning makes them far slower when the machine is busy)",
    )
    n_bootstrap: int = Field(
        200, ge=20, le=10_000, description="bootstrap draws (the verdict rests on the intervals)"
    )
    lightgbm: LightGBMParams = Field(
        default_factory=lambda: LightGBMParams(
            learning_rate=0.03, num_leaves=15, min_child_samples=20, n_estimators=2000
        )
    )
    calibration_methods: tuple[Literal["isotonic", "sigmoid"], ...] = ("isotonic", "sigmoid")
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    model_name: str | None = Field(
        None, description="registered model name (default propensity-table-<table name>)"
    )

    @field_validator("positive", "negative", mode="before")
    @classmethod
    def _label_values_as_text(cls, value):
        """YAML ``positive: [1]`` or ``[true]`` means the text "1" / "true"; spaces do not count."""
        if value is None:
            return None
        if isinstance(value, (str, int, float, bool)):
            value = [value]
        return tuple((str(v).lower() if isinstance(v, bool) else str(v)).strip() for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> TableConfig:
        if self.time_column and self.rows_in_time_order:
            raise ValueError("give either time_column or rows_in_time_order, not both")
        if self.valid_share + self.test_share >= 0.8:
            raise ValueError("valid_share + test_share must leave at least 20 % for training")
        for key in ("id_column", "label_column", "time_column"):
            if getattr(self, key) in self.exclude:
                raise ValueError(f"{key} {getattr(self, key)!r} is also in exclude")
        if self.negative and set(self.negative) & set(self.positive):
            overlap = sorted(set(self.negative) & set(self.positive))
            raise ValueError(f"values {overlap} are both positive and negative")
        return self

    @property
    def out_of_time(self) -> bool:
        return bool(self.time_column or self.rows_in_time_order)

    @classmethod
    def from_yaml(cls, path: Path | str, **overrides) -> TableConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.model_validate({**data, **overrides})

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------------------------------------
# reading and preparing


def read_table(path: Path | str) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (CSV types inferred; nothing else is changed)."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"table file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        try:
            return pd.read_csv(path, low_memory=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise TableError(f"table {path} is not a readable CSV: {exc}") from None
    raise TableError(f"table {path}: use a .csv or .parquet file (got {suffix or 'no suffix'})")


def _examples(frame: pd.DataFrame, mask, columns: list[str], n: int = 5) -> str:
    rows = frame.loc[np.asarray(mask), columns].head(n)
    return "\n".join(
        f"  row {i}: {row}" for i, row in zip(rows.index, rows.to_dict("records"), strict=True)
    )


def _label_text(values: pd.Series) -> pd.Series:
    """Label values as text ("1" for 1, 1.0 and "1"; "Won" stays "Won")."""
    present = values.dropna()
    if pd.api.types.is_bool_dtype(values) or (len(present) and present.map(type).eq(bool).all()):
        # True/False with gaps load as object: the same text either way
        return values.map({True: "true", False: "false"}).astype("string")
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values)
        whole = numbers.dropna()
        if (whole == whole.round()).all():
            return numbers.astype("Int64").astype("string")
        return numbers.astype("string")
    return values.astype("string").str.strip()


def label_values(frame: pd.DataFrame, config: TableConfig, require_both: bool = True) -> pd.Series:
    """1 (positive), 0 (negative), or missing (an open row: scored, never trained on).

    With ``require_both`` a table without a positive or without a negative row is an error.
    """
    text = _label_text(frame[config.label_column])
    positive = text.isin(config.positive)
    negative = text.isin(config.negative) if config.negative else text.notna() & ~positive
    label = pd.Series(np.nan, index=frame.index)
    label[positive.fillna(False).to_numpy()] = 1.0
    label[negative.fillna(False).to_numpy()] = 0.0
    if not require_both:
        return label
    if not positive.any():
        seen = text.value_counts(dropna=False).head(10).to_dict()
        raise TableError(
            f"label column {config.label_column!r}: no row has a positive value {list(config.positive)}; "
            f"values seen (count): {seen}"
        )
    if not (label == 0).any():
        raise TableError(
            f"label column {config.label_column!r}: no row is negative (values other than "
            f"{list(config.positive)}{'' if not config.negative else f' among {list(config.negative)}'})"
        )
    return label


_DATE_TEXT = re.compile(
    r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def infer_kind(values: pd.Series) -> Kind:
    """How a column enters the model: numbers, categories, or dates (ISO text or datetimes)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "numeric"
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if len(present) and present.str.fullmatch(_DATE_TEXT).mean() >= 0.98:
        return "date"
    if len(present) and pd.to_numeric(present, errors="coerce").notna().mean() >= 0.98:
        return "numeric"
    return "categorical"


def coerce(frame: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """The candidate columns typed by ``kinds``: float64 numbers, text categories, naive dates."""
    out = {}
    for column, kind in kinds.items():
        values = frame[column]
        if kind == "numeric":
            if pd.api.types.is_bool_dtype(values):
                values = values.astype("Float64")
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
        elif kind == "date":
            parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            out[column] = parsed.dt.tz_localize(None)
        else:
            text = values.astype("string").str.strip()
            empty = (text.isna() | (text == "")).fillna(True).to_numpy()
            # object with np.nan for missing: both LightGBM and scikit-learn's imputer accept it
            out[column] = pd.Series(
                np.where(empty, np.nan, text.fillna("").to_numpy(dtype=object)),
                index=frame.index,
                dtype=object,
            )
    return pd.DataFrame(out, index=frame.index)


def row_time(frame: pd.DataFrame, config: TableConfig, name: str = "table") -> pd.Series | None:
    """The row's own time: the time column parsed, the row position, or None."""
    if config.rows_in_time_order:
        return pd.Series(np.arange(len(frame), dtype=float), index=frame.index)
    if not config.time_column:
        return None
    raw = frame[config.time_column]
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        raise TableError(
            f"{name}: time column {config.time_column!r} holds numbers, not dates (their unit is "
            "unknown); give ISO dates like 2024-03-01, or sort the rows and use rows_in_time_order"
        )
    parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    bad = parsed.isna() & raw.notna()
    if bad.any():
        raise TableError(
            f"{name}: time column {config.time_column!r} has {int(bad.sum())} values that are not dates, e.g.\n"
            + _examples(frame, bad, [config.id_column, config.time_column])
        )
    return parsed


def model_matrix(
    candidates: pd.DataFrame, kinds: dict[str, Kind], time: pd.Series | None
) -> pd.DataFrame:
    """What the model sees: dates become days before the row's time (negative = after it)."""
    out = candidates.copy()
    for column, kind in kinds.items():
        if kind == "date":
            if time is None or not pd.api.types.is_datetime64_any_dtype(time):
                raise ValueError(f"date column {column!r} needs a row time")
            out[column] = (time - candidates[column]).dt.total_seconds() / 86_400
    return out


@dataclass
class PreparedTable:
    """The table with its label, time and typed candidate columns (all rows, input order)."""

    name: str
    frame: pd.DataFrame
    ids: pd.Series
    label: pd.Series  # 1, 0, NaN = open
    time: pd.Series | None
    candidates: pd.DataFrame  # typed; dates still dates (the screen checks them)
    kinds: dict[str, Kind]
    set_aside: dict[str, str]  # column -> why it is not a candidate

    @property
    def labelled(self) -> np.ndarray:
        return self.label.notna().to_numpy()


def prepare_table(frame: pd.DataFrame, config: TableConfig, name: str = "table") -> PreparedTable:
    """Check the named columns, build the label and time, type and triage the other columns."""
    frame = frame.reset_index(drop=True)
    named = [config.id_column, config.label_column, config.time_column, *config.exclude]
    missing = [c for c in named if c and c not in frame.columns]
    if missing:
        raise TableError(
            f"{name}: no column {', '.join(map(repr, missing))}; columns are: {', '.join(map(str, frame.columns))}"
        )
    if frame.columns.duplicated().any():
        raise TableError(
            f"{name}: duplicate column names {sorted(frame.columns[frame.columns.duplicated()])}"
        )
    ids = frame[config.id_column].astype("string").str.strip()
    if ids.isna().any():
        raise TableError(
            f"{name}: id column {config.id_column!r} is empty in {int(ids.isna().sum())} rows, e.g.\n"
            + _examples(frame, ids.isna(), list(frame.columns[:6]))
        )
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        raise TableError(
            f"{name}: id column {config.id_column!r} repeats {int(ids[repeated].nunique())} ids "
            f"({int(repeated.sum())} rows), e.g.\n"
            + _examples(frame, repeated, [config.id_column, config.label_column])
        )
    label = label_values(frame, config)
    time = row_time(frame, config, name)
    if time is not None and config.time_column:
        no_time = time.isna() & label.notna()
        if no_time.any():
            raise TableError(
                f"{name}: {int(no_time.sum())} labelled rows have no {config.time_column!r}, e.g.\n"
                + _examples(frame, no_time, [config.id_column, config.label_column])
            )
    set_aside: dict[str, str] = {c: "excluded by the user" for c in config.exclude}
    kinds: dict[str, Kind] = {}
    reserved = {config.id_column, config.label_column, config.time_column}
    for column in frame.columns:
        if column in reserved or column in set_aside:
            continue
        if _LIGHTGBM_FORBIDDEN.search(str(column)):
            raise TableError(
                f'{name}: column name {column!r} contains one of " , : [ ] {{ }} which LightGBM '
                "cannot store; rename it"
            )
        values = frame[column]
        present = values.dropna()
        if present.nunique() <= 1:
            set_aside[column] = "constant (one value or empty)"
            continue
        kind = infer_kind(values)
        if kind == "date" and time is None:
            set_aside[column] = "a date, but rows have no time to measure it from"
            continue
        if kind == "date" and config.rows_in_time_order:
            set_aside[column] = "a date, but the row time is only a position"
            continue
        if kind == "categorical" and present.nunique() > max(50, 0.5 * len(present)):
            set_aside[column] = (
                f"looks like an identifier ({present.nunique()} distinct values in {len(present)} rows)"
            )
            continue
        kinds[column] = kind
    if not kinds:
        raise TableError(f"{name}: no candidate feature columns left; set aside: {set_aside}")
    if not config.rows_in_time_order:  # rows sorted by id: input order never changes results
        order = np.argsort(ids.to_numpy(dtype=str), kind="stable")
        frame, ids, label = (x.iloc[order].reset_index(drop=True) for x in (frame, ids, label))
        time = None if time is None else time.iloc[order].reset_index(drop=True)
    return PreparedTable(name, frame, ids, label, time, coerce(frame, kinds), kinds, set_aside)


def duplicate_counts(matrix: pd.DataFrame, label: pd.Series) -> dict[str, int]:
    """Exact duplicates (same features and label as an earlier row) and conflicting duplicates
    (identical features, both labels) among the labelled rows."""
    vector = pd.util.hash_pandas_object(matrix, index=False)
    frame = pd.DataFrame({"vector": vector.to_numpy(), "label": label.to_numpy()})
    exact = int(frame.duplicated().sum())
    classes = frame.groupby("vector")["label"].agg(["nunique", "size"])
    conflicting = classes[classes["nunique"] > 1]
    return {
        "rows": len(frame),
        "exact_duplicate_rows": exact,
        "conflicting_vectors": len(conflicting),
        "conflicting_rows": int(conflicting["size"].sum()),
        "distinct_vectors": len(classes),
    }


# ---------------------------------------------------------------------------------------------
# protocol


@dataclass(frozen=True)
class Fold:
    """Row positions (into the labelled rows) of one train / validation / test assignment."""

    repeat: int
    fold: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def out_of_time_fold(time: pd.Series, label: np.ndarray, config: TableConfig) -> Fold:
    """Train on the earliest rows, validate on the next ``valid_share``, test on the latest
    ``test_share``; cuts fall between distinct times, so one time is never in two parts."""
    values = time.to_numpy()
    order = np.argsort(values, kind="stable")
    n = len(values)
    test_start = values[order[int(np.floor(n * (1 - config.test_share)))]]
    valid_start = values[order[int(np.floor(n * (1 - config.test_share - config.valid_share)))]]
    test = np.flatnonzero(values >= test_start)
    valid = np.flatnonzero((values >= valid_start) & (values < test_start))
    train = np.flatnonzero(values < valid_start)
    for part, rows in (("training", train), ("validation", valid), ("test", test)):
        if len(rows) == 0 or label[rows].min() == label[rows].max():
            raise TableError(
                f"the {part} part of the out-of-time split has {len(rows)} rows and "
                f"{int(label[rows].sum()) if len(rows) else 0} positives: it needs both classes; "
                "change valid_share/test_share or use K-fold (no time column)"
            )
    return Fold(0, 0, train, valid, test)


def _inner_validation(
    rows: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows 80/20, stratified, identical vectors together (early stopping, calibration)."""
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    fit_idx, valid_idx = next(splitter.split(rows, label[rows], groups[rows]))
    return rows[fit_idx], rows[valid_idx]


def kfold_folds(label: np.ndarray, groups: np.ndarray, config: TableConfig) -> list[Fold]:
    """Repeated stratified K-fold; rows with the same ``groups`` value (feature vector) share a fold."""
    for value in (0, 1):
        distinct = len(np.unique(groups[label == value]))
        needed = max(2 * config.folds, 10)  # outer folds, then a grouped inner split
        if distinct < needed:
            raise TableError(
                f"K-fold needs at least {needed} distinct feature vectors per class; class "
                f"{value} has {distinct} (the columns left after the screen barely vary): add "
                "columns, lower folds, or give a time column"
            )
    folds = []
    everything = np.arange(len(label))
    for repeat in range(config.repeats):
        splitter = StratifiedGroupKFold(
            n_splits=config.folds, shuffle=True, random_state=config.seed + repeat
        )
        for number, (train_idx, test_idx) in enumerate(splitter.split(everything, label, groups)):
            train, valid = _inner_validation(
                train_idx, label, groups, config.seed + 1000 * repeat + number
            )
            folds.append(Fold(repeat, number, train, valid, test_idx))
    return folds


def vector_groups(matrix: pd.DataFrame) -> np.ndarray:
    """One integer per distinct feature vector (identical rows get the same number)."""
    return pd.factorize(pd.util.hash_pandas_object(matrix, index=False))[0]


# ---------------------------------------------------------------------------------------------
# models


def feature_specs(kinds: dict[str, Kind], time_column: str | None) -> tuple[FeatureSpec, ...]:
    """One business field per column: reasons read "Lead Source: Reference"."""
    specs = []
    for column, kind in kinds.items():
        definition = (
            f"days from {column} to the row's {time_column}"
            if kind == "date"
            else f"column {column!r} of the table"
        )
        specs.append(
            FeatureSpec(
                name=column,
                family="table",
                field=column,
                label=column,
                definition=definition,
                availability="as exported; screened for leakage before training",
                kind="categorical" if kind == "categorical" else "numeric",
            )
        )
    return tuple(specs)


@dataclass
class FoldModels:
    model: HeadModel
    logistic: object
    base_rate: float


def fit_fold(
    matrix: pd.DataFrame,
    label: np.ndarray,
    fold: Fold,
    columns: list[str],
    categorical: list[str],
    config: TableConfig,
) -> FoldModels:
    """LightGBM (early stopping and calibration on the fold's validation rows), logistic, base rate."""
    y = label.astype(int)
    model = HeadModel(
        features=columns,
        categorical=categorical,
        params=config.lightgbm,
        calibration_methods=config.calibration_methods,
        seed=config.seed,
        n_jobs=config.n_jobs,
    )
    model.fit(
        matrix.iloc[fold.train], y[fold.train], eval_set=(matrix.iloc[fold.valid], y[fold.valid])
    )
    numeric = [c for c in columns if c not in categorical]
    logistic = logistic_baseline(numeric, categorical, config.seed)
    development = np.concatenate([fold.train, fold.valid])
    logistic.fit(matrix.iloc[development][columns], y[development])
    return FoldModels(model, logistic, float(y[development].mean()))


def fold_predictions(
    models: FoldModels, matrix: pd.DataFrame, label: np.ndarray, ids: np.ndarray, fold: Fold
) -> pd.DataFrame:
    test = matrix.iloc[fold.test]
    return pd.DataFrame(
        {
            "account_id": ids[fold.test],  # the bootstrap unit (evaluate's name for it)
            "as_of": 0,
            "repeat": fold.repeat,
            "fold": fold.fold,
            "label": label[fold.test].astype(int),
            "model": models.model.predict_proba(test)[:, 1],
            "logistic": models.logistic.predict_proba(test)[:, 1],
            "base_rate": models.base_rate,
        }
    )


# ---------------------------------------------------------------------------------------------
# evaluation


def evaluate_table(predictions: pd.DataFrame, config: TableConfig) -> pd.DataFrame:
    """The comparison table (model, logistic, base rate) on the first repeat's held-out rows,
    with the Brier skill over the base rate (paired bootstrap over rows)."""
    first = predictions[predictions["repeat"] == 0]
    table = comparison_table(
        first,
        list(SCORERS),
        head="table",
        capacity_k=config.capacity_k,
        probability_scorers=PROBABILITY_SCORERS,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )
    skills = []
    for scorer in table["scorer"]:
        skills.append(
            brier_skill(
                first["label"],
                first[scorer],
                first["base_rate"],
                first["account_id"],
                n_bootstrap=config.n_bootstrap,
                seed=config.seed,
            )
        )
    return pd.concat([table, pd.DataFrame(skills)], axis=1)


def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC and Brier per scorer for every fold of every repeat (K-fold spread)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rows = []
    for (repeat, fold), part in predictions.groupby(["repeat", "fold"], sort=True):
        for scorer in SCORERS:
            auc = (
                roc_auc_score(part["label"], part[scorer])
                if part["label"].nunique() == 2
                else np.nan
            )
            rows.append(
                {
                    "repeat": repeat,
                    "fold": fold,
                    "scorer": scorer,
                    "roc_auc": auc,
                    "brier": brier_score_loss(part["label"], part[scorer]),
                    "rows": len(part),
                }
            )
    return pd.DataFrame(rows)


def verdict(evaluation: pd.DataFrame) -> tuple[bool, str]:
    """Whether the model beats the base rate, in one plain sentence with the evidence."""
    row = evaluation.set_index("scorer").loc["model"]
    auc = f"ROC-AUC {row['roc_auc']:.3f} [{row['roc_auc_lo']:.3f}, {row['roc_auc_hi']:.3f}]"
    skill = (
        f"Brier skill over the base rate {row['brier_skill']:+.3f} "
        f"[{row['brier_skill_lo']:+.3f}, {row['brier_skill_hi']:+.3f}]"
    )
    ranks = row["roc_auc_lo"] > 0.5
    calibrated_gain = row["brier_skill_lo"] > 0
    if ranks and calibrated_gain:
        return True, f"The model beats the base rate: {auc}, {skill}."
    if ranks:
        return False, (
            f"The model ranks rows better than chance ({auc}) but its probabilities are no better "
            f"than the base rate ({skill}): use its order, not its probabilities."
        )
    return False, (
        f"No signal beyond the base rate: {auc}, {skill}. The columns given do not predict the "
        "outcome on held-out rows; do not use this model to prioritise."
    )


# ---------------------------------------------------------------------------------------------
# the final model and scoring


@dataclass
class TableModel:
    """A trained table model as scoring uses it (saved as ``table_model.joblib``)."""

    config: TableConfig
    model: HeadModel
    columns: list[str]
    kinds: dict[str, Kind]
    specs: tuple[FeatureSpec, ...]
    calibration: HeadCalibration
    version: str
    screen: pd.DataFrame
    verdict: str
    beats_base_rate: bool = True

    def score(self, frame: pd.DataFrame, name: str = "table", reasons: bool = True) -> pd.DataFrame:
        """Probability, 0-100 score, tier, rank, known outcome, reasons and model version per row."""
        frame = frame.reset_index(drop=True)
        needed = [self.config.id_column, *self.columns]
        if any(k == "date" for k in self.kinds.values()) and self.config.time_column:
            needed.append(self.config.time_column)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise TableError(
                f"{name}: the model needs columns {missing} which the table does not have"
            )
        kinds = {c: self.kinds[c] for c in self.columns}
        time = (
            row_time(frame, self.config, name) if any(k == "date" for k in kinds.values()) else None
        )
        matrix = model_matrix(coerce(frame, kinds), kinds, time)
        probability = self.model.predict_proba(matrix)[:, 1]
        out = pd.DataFrame({"id": frame[self.config.id_column].astype("string").to_numpy()})
        out["probability"] = probability
        out["score"] = to_score(probability, self.calibration)
        out["tier"] = to_tier(probability, self.calibration)
        if self.config.label_column in frame:
            label = label_values(frame, self.config, require_both=False).to_numpy()
            out["outcome"] = np.where(label == 1, "won", np.where(label == 0, "lost", "open"))
        if reasons:
            worded = explain(self.model, matrix, self.specs)
            out["reasons"] = worded["reasons"].to_numpy()
            out["reasons_json"] = worded["reasons_json"].to_numpy()
        out["model_version"] = self.version
        out = out.sort_values("probability", ascending=False, kind="stable", ignore_index=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out


def model_version(model: HeadModel) -> str:
    """Content hash of the booster and its calibration: the same model has the same version."""
    digest = hashlib.sha256(model.booster_.model_to_string().encode())
    digest.update(json.dumps(model.calibration_method_).encode())
    return f"table-{digest.hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------
# the whole run


@dataclass
class TableRun:
    config: TableConfig
    prepared: PreparedTable
    screen: ScreenResult
    columns: list[str]  # the model's columns after the screen
    matrix: pd.DataFrame  # what the model saw: labelled rows, ``columns``, dates as days
    duplicates: dict[str, int]
    predictions: pd.DataFrame  # held-out predictions, every fold of every repeat
    evaluation: pd.DataFrame
    folds: pd.DataFrame
    deciles: pd.DataFrame
    final: TableModel
    beats_base_rate: bool
    verdict: str
    protocol: dict
    notes: list[str] = field(default_factory=list)


def run_table(
    frame: pd.DataFrame, config: TableConfig, name: str = "table", progress=None
) -> TableRun:
    """Prepare, screen, evaluate by the protocol, fit the final model (see the module docstring)."""

    def step(text: str) -> None:
        if progress:
            progress(text)
        log.info("table %s: %s", name, text)

    step("prepare")
    prepared = prepare_table(frame, config, name)
    labelled = prepared.labelled
    label = prepared.label[labelled].to_numpy().astype(int)
    ids = prepared.ids[labelled].to_numpy()
    candidates = prepared.candidates.loc[labelled].reset_index(drop=True)
    time = prepared.time[labelled].reset_index(drop=True) if prepared.time is not None else None
    if label.sum() < config.min_positives:
        raise TableError(
            f"{name}: only {int(label.sum())} positive rows ({list(config.positive)} in "
            f"{config.label_column!r}); at least {config.min_positives} are needed (min_positives)"
        )

    step("screen")
    if config.out_of_time:
        oot = out_of_time_fold(time, label, config)
        development = np.concatenate([oot.train, oot.valid])
    else:
        development = np.arange(len(label))
    date_time = time if (time is not None and config.time_column) else None
    screened = screen(
        candidates.iloc[development].reset_index(drop=True),
        label[development],
        time=date_time.iloc[development].reset_index(drop=True) if date_time is not None else None,
        config=config.screen,
    )
    columns = (
        list(candidates.columns) if config.keep_suspects else screened.kept(candidates.columns)
    )
    if not columns:
        raise TableError(
            f"{name}: the leakage screen flags every candidate column ({', '.join(screened.suspects)}); "
            "check the table, or pass keep_suspects to train on them anyway"
        )
    kinds = {c: prepared.kinds[c] for c in columns}
    matrix = model_matrix(candidates[columns], kinds, date_time)
    categorical = [c for c in columns if kinds[c] == "categorical"]
    duplicates = duplicate_counts(matrix, pd.Series(label))

    step("evaluate")
    if config.out_of_time:
        folds = [oot]
        protocol = {
            "protocol": "out_of_time",
            "time": config.time_column or "row order",
            "train_rows": len(oot.train),
            "valid_rows": len(oot.valid),
            "test_rows": len(oot.test),
            "valid_start": str(time.iloc[oot.valid].min()),
            "test_start": str(time.iloc[oot.test].min()),
            "test_end": str(time.iloc[oot.test].max()),
        }
    else:
        groups = vector_groups(matrix)
        folds = kfold_folds(label, groups, config)
        protocol = {
            "protocol": "repeated_stratified_group_kfold",
            "folds": config.folds,
            "repeats": config.repeats,
            "grouping": "identical feature vectors share a fold",
        }
    predictions = []
    fitted = None
    for fold in folds:
        fitted = fit_fold(matrix, label, fold, columns, categorical, config)
        predictions.append(fold_predictions(fitted, matrix, label, ids, fold))
    predictions = pd.concat(predictions, ignore_index=True)
    evaluation = evaluate_table(predictions, config)
    beats, sentence = verdict(evaluation)
    first = predictions[predictions["repeat"] == 0]
    deciles = pd.concat(
        [decile_table(first["label"], first[s]).assign(scorer=s) for s in ("model", "logistic")],
        ignore_index=True,
    )

    step("final model")
    if config.out_of_time:
        final_fold = folds[0]
    else:
        everything = np.arange(len(label))
        train, valid = _inner_validation(everything, label, vector_groups(matrix), config.seed)
        final_fold = Fold(0, -1, train, valid, np.array([], dtype=int))
        fitted = fit_fold(matrix, label, final_fold, columns, categorical, config)
    valid_probability = fitted.model.predict_proba(matrix.iloc[final_fold.valid])[:, 1]
    final = TableModel(
        config=config,
        model=fitted.model,
        columns=columns,
        kinds=kinds,
        specs=feature_specs(kinds, config.time_column),
        calibration=head_calibration(valid_probability, TABLE_TIERS),
        version=model_version(fitted.model),
        screen=screened.table,
        verdict=sentence,
        beats_base_rate=beats,
    )
    notes = [f"set aside {c}: {why}" for c, why in prepared.set_aside.items()]
    if screened.suspects:
        action = "kept (keep_suspects)" if config.keep_suspects else "excluded"
        notes.append(f"leakage screen suspects {action}: {', '.join(screened.suspects)}")
    step("done")
    return TableRun(
        config,
        prepared,
        screened,
        columns,
        matrix,
        duplicates,
        predictions,
        evaluation,
        fold_metrics(predictions),
        deciles,
        final,
        beats,
        sentence,
        protocol,
        notes,
    )


# ---------------------------------------------------------------------------------------------
# the run folder (I/O at the edge)


def summary(run: TableRun) -> dict:
    """The run's facts in one JSON-able dict (also what the CLI prints and MLflow logs)."""
    label = run.prepared.label
    return {
        "table": run.prepared.name,
        "rows": len(label),
        "labelled_rows": int(label.notna().sum()),
        "open_rows": int(label.isna().sum()),
        "positives": int((label == 1).sum()),
        "base_rate": float(label.mean()),
        "protocol": run.protocol,
        "duplicates": run.duplicates,
        "set_aside": run.prepared.set_aside,
        "suspects": list(run.screen.suspects),
        "suspects_kept": run.config.keep_suspects,
        "features": run.columns,
        "verdict": run.verdict,
        "beats_base_rate": run.beats_base_rate,
        "model_version": run.final.version,
        "trees": run.final.model.best_iteration_,
        "calibration": run.final.model.calibration_method_,
        "fold_roc_auc": {
            scorer: {"mean": float(part["roc_auc"].mean()), "sd": float(part["roc_auc"].std())}
            for scorer, part in run.folds.groupby("scorer", sort=False)
        },
    }


def summary_markdown(run: TableRun) -> str:
    """A readable account of the run: verdict, evaluation, screen, duplicates, set-aside columns."""
    from propensity.evaluate import to_markdown

    facts = summary(run)
    duplicates = run.duplicates
    suspects = run.screen.table[run.screen.table["verdict"] == "exclude"]
    lines = [
        f"# Table mode: {facts['table']}",
        "",
        f"**{run.verdict}**",
        "",
        f"- rows {facts['rows']:,} (labelled {facts['labelled_rows']:,}, open {facts['open_rows']:,}); "
        f"positives {facts['positives']:,}, base rate {facts['base_rate']:.3f}",
        f"- protocol: {json.dumps(run.protocol)}",
        f"- duplicates among labelled rows: {duplicates['exact_duplicate_rows']:,} exact duplicate rows; "
        f"{duplicates['conflicting_vectors']:,} feature vectors with both outcomes "
        f"({duplicates['conflicting_rows']:,} rows); {duplicates['distinct_vectors']:,} distinct vectors",
        f"- model: {facts['trees']} trees, {facts['calibration']} calibration, version {facts['model_version']}",
        "",
        "## Evaluation (held-out rows"
        + (", first repeat" if run.config.repeats > 1 and not run.config.out_of_time else "")
        + ")",
        "",
        to_markdown(run.evaluation),
        "",
        "| scorer | Brier skill over the base rate |",
        "|---|---|",
        *[
            f"| {r.scorer} | {r.brier_skill:+.3f} [{r.brier_skill_lo:+.3f}, {r.brier_skill_hi:+.3f}] |"
            for r in run.evaluation.itertuples()
        ],
        "",
        "## Leakage screen: suspects",
        "",
        ("none" if suspects.empty else _markdown_table(suspects)),
        "",
        "## Columns set aside",
        "",
        *(f"- {column}: {why}" for column, why in run.prepared.set_aside.items()),
        "",
    ]
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, "|" + "---|" * len(frame.columns), *rows])


def write_table_run(run: TableRun, run_dir: Path | str, frame: pd.DataFrame) -> list[Path]:
    """Write the run folder; ``scores.csv`` holds every row of ``frame`` scored by the final model."""
    import joblib

    from propensity.evaluate import calibration_table, plot_calibration, plot_gains
    from propensity.explain import global_importance, plot_global_importance
    from propensity.export import neutralise_formulas
    from propensity.io import write_atomic, write_parquet, write_text

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    first = run.predictions[run.predictions["repeat"] == 0]
    csv = lambda table: lambda p: table.to_csv(p, index=False)  # noqa: E731
    written = [
        write_text(run.config.to_yaml(), run_dir / "config.yaml"),
        write_atomic(run_dir / "screen.csv", csv(run.screen.table)),
        write_atomic(run_dir / "evaluation.csv", csv(run.evaluation)),
        write_atomic(run_dir / "folds.csv", csv(run.folds)),
        write_atomic(run_dir / "deciles.csv", csv(run.deciles)),
        write_atomic(
            run_dir / "calibration.csv", csv(calibration_table(first["label"], first["model"]))
        ),
        write_parquet(run.predictions, run_dir / "predictions.parquet"),
        write_text(
            json.dumps(summary(run), indent=2, default=str) + "\n", run_dir / "summary.json"
        ),
        write_text(summary_markdown(run), run_dir / "summary.md"),
        write_atomic(
            run_dir / "calibration.png",
            lambda p: plot_calibration(first["label"], first["model"], p, "calibration (held out)"),
        ),
        write_atomic(
            run_dir / "gains.png",
            lambda p: plot_gains(
                first["label"],
                {s: first[s].to_numpy() for s in ("model", "logistic")},
                p,
                "cumulative gains (held out)",
            ),
        ),
        write_atomic(run_dir / "table_model.joblib", lambda p: joblib.dump(run.final, p)),
        write_atomic(
            run_dir / "model.lgb.txt", lambda p: run.final.model.booster_.save_model(str(p))
        ),
    ]
    importance = global_importance(run.final.model, run.matrix, run.final.specs, head="table")
    written.append(write_atomic(run_dir / "global_reasons.csv", csv(importance)))
    written.append(
        write_atomic(
            run_dir / "global_reasons.png", lambda p: plot_global_importance(importance, p)
        )
    )
    scores = run.final.score(frame, run.prepared.name)
    written.append(write_atomic(run_dir / "scores.csv", csv(neutralise_formulas(scores))))
    return written
