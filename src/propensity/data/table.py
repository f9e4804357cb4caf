"""One won/lost table (a CRM export of accounts, leads or deals), read and prepared for table mode.

:func:`prepare_table` checks the named columns and builds, for every row in a stable order
(sorted by id unless the rows are in time order): the label (``positive`` values are 1,
``negative`` values 0; with ``negative`` given, other values are *open* rows that are scored but
never trained on; a missing label is open too), the row time, and the typed candidate columns
(numbers, categories, dates). Identifier-like and constant columns are set aside with a reason.

A date column enters a model as days before the row's time (:func:`model_matrix`), so it means
the same at scoring time; without a row time it is set aside. The row time itself is never a
feature: calendar position does not carry to a later period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["numeric", "categorical", "date"]
_LIGHTGBM_FORBIDDEN = re.compile(r'[",:\[\]{}]')


class TableError(ValueError):
    """The table cannot be used as given; the message names the column and example rows."""


class TableSchema(BaseModel):
    """What the table is: its id, label (which values are won / lost) and time columns."""

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
    def _consistent_schema(self) -> TableSchema:
        if self.time_column and self.rows_in_time_order:
            raise ValueError("give either time_column or rows_in_time_order, not both")
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


def label_values(frame: pd.DataFrame, config: TableSchema, require_both: bool = True) -> pd.Series:
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


def row_time(frame: pd.DataFrame, config: TableSchema, name: str = "table") -> pd.Series | None:
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


def prepare_table(frame: pd.DataFrame, config: TableSchema, name: str = "table") -> PreparedTable:
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
