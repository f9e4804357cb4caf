"""One won/lost table (a CRM export of accounts, leads or deals), read and prepared for table mode.

:func:`prepare_table` checks the named columns and builds, for every row in a stable order
(sorted by id unless the rows are in time order): the label (``positive`` values are 1,
``negative`` values 0; with ``negative`` given, other values are *open* rows that are scored but
never trained on; a missing label is open too), the row time, and the typed candidate columns
(numbers, categories, dates). Identifier-like and constant columns are set aside with a reason.
Values are read by :mod:`propensity.data.parse` (dates are ISO 8601 text or datetimes).

A date column enters a model as days before the row's time (:func:`model_matrix`), so it means
the same at scoring time; without a row time it is set aside. The row time itself is never a
feature: calendar position does not carry to a later period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from propensity.data.parse import (
    Kind,
    infer_kind,
    label_text,
    parse_ids,
    parse_labels,
    parse_numbers,
    parse_text,
    parse_timestamps,
)
from propensity.io import InputFileError, read_csv, read_frame

__all__ = [
    "Kind",
    "PreparedTable",
    "TableError",
    "TableSchema",
    "coerce",
    "duplicate_counts",
    "infer_kind",
    "label_values",
    "model_matrix",
    "prepare_table",
    "read_table",
    "row_time",
]

_LIGHTGBM_FORBIDDEN = re.compile(r'[",:\[\]{}]')


class TableError(ValueError):
    """The table cannot be used as given; the message names the column and example rows."""


class TableSchema(BaseModel):
    """What the table is: its id, label (which values are won / lost) and time columns."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id_column: str | None = Field(
        None,
        min_length=1,
        description="the row's id; none: rows are named by their number in the file (1 = the "
        "first data row)",
    )
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
        """YAML ``positive: [1]``, ``[1.0]`` or ``[true]`` means the text "1" / "true" (as the
        label column reads, see :func:`propensity.data.parse.label_text`); spaces do not count."""
        if value is None:
            return None
        if isinstance(value, (str, int, float, bool)):
            value = [value]
        texts = tuple(label_text(v) for v in value)
        if None in texts:
            raise ValueError("label values cannot be empty (an empty label is an open row)")
        return texts

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


def read_table(
    path: Path | str, *, encoding: str | None = None, sep: str | None = None
) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (CSV types inferred; nothing else is changed).

    A CSV (``.csv``, or ``.txt``) is read by :func:`propensity.io.read_csv`: ``encoding`` and
    ``sep`` when given, else detected (UTF-8, else cp1252, else latin-1; the separator sniffed
    among , ; tab |). An unreadable file is a :class:`TableError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise TableError(f"table file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".parquet"):
        raise TableError(f"table {path}: use a .csv or .parquet file (got {suffix or 'no suffix'})")
    try:
        if suffix == ".txt":  # a CSV under another name
            return read_csv(path, encoding=encoding, sep=sep, low_memory=False)
        return read_frame(path, encoding=encoding, sep=sep, low_memory=False)
    except InputFileError as exc:
        raise TableError(str(exc)) from None


def _examples(frame: pd.DataFrame, mask, columns: list[str], n: int = 5) -> str:
    rows = frame.loc[np.asarray(mask), columns].head(n)
    return "\n".join(
        f"  row {i}: {row}" for i, row in zip(rows.index, rows.to_dict("records"), strict=True)
    )


def label_values(frame: pd.DataFrame, config: TableSchema, require_both: bool = True) -> pd.Series:
    """1 (positive), 0 (negative), or missing (an open row: scored, never trained on).

    Label values are read as text (:func:`propensity.data.parse.parse_labels`: "1" for 1, 1.0
    and "1"; an empty label is open). With ``require_both`` a table without a positive or
    without a negative row is an error.
    """
    text = parse_labels(frame[config.label_column]).values
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


def coerce(frame: pd.DataFrame, kinds: dict[str, Kind]) -> pd.DataFrame:
    """The candidate columns typed by ``kinds``: float64 numbers, text categories, naive dates.

    Values that do not parse as their column's kind become missing.
    """
    out = {}
    for column, kind in kinds.items():
        values = frame[column]
        if kind == "numeric":
            out[column] = parse_numbers(values).values
        elif kind == "date":
            out[column] = parse_timestamps(values).values
        else:
            # object with np.nan for missing: both LightGBM and scikit-learn's imputer accept it
            text = parse_text(values).values
            out[column] = pd.Series(text.to_numpy(dtype=object), index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index)


def row_time(frame: pd.DataFrame, config: TableSchema, name: str = "table") -> pd.Series | None:
    """The row's own time: the time column parsed (ISO 8601), the row position, or None."""
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
    parsed = parse_timestamps(raw)
    if parsed.failed.any():
        raise TableError(
            f"{name}: time column {config.time_column!r} has {int(parsed.failed.sum())} values "
            "that are not dates (ISO 8601 text, e.g. 2024-01-31 or 2024-01-31T09:30:00Z):\n"
            + _examples(frame, parsed.failed, _named(config.id_column, config.time_column))
        )
    return parsed.values


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
    position: pd.Series | None = None  # each row's number in the file as read (0 = first)

    @property
    def labelled(self) -> np.ndarray:
        return self.label.notna().to_numpy()


def _check_columns(frame: pd.DataFrame, config: TableSchema, name: str) -> None:
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


def row_numbers(frame: pd.DataFrame) -> pd.Series:
    """The ids of a table without an id column: each row's number in the file, from 1."""
    return pd.Series(np.arange(1, len(frame) + 1).astype(str), dtype="string")


def _row_ids(frame: pd.DataFrame, config: TableSchema, name: str) -> pd.Series:
    """The id column as text (row numbers without one); missing (or empty) and repeated ids
    are errors."""
    if config.id_column is None:
        return row_numbers(frame)
    ids = parse_ids(frame[config.id_column]).values
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
    return ids


def _triage(
    frame: pd.DataFrame, config: TableSchema, time: pd.Series | None, name: str
) -> tuple[dict[str, Kind], dict[str, str]]:
    """The candidate columns with their kind, and the other columns with why they are set aside."""
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
        present = frame[column].dropna()
        if present.nunique() <= 1:
            set_aside[column] = "constant (one value or empty)"
            continue
        kind = infer_kind(frame[column])
        if kind == "date" and time is None:
            set_aside[column] = "a date, but rows have no time to measure it from"
        elif kind == "date" and config.rows_in_time_order:
            set_aside[column] = "a date, but the row time is only a position"
        elif kind == "categorical" and present.nunique() > max(50, 0.5 * len(present)):
            set_aside[column] = (
                f"looks like an identifier ({present.nunique()} distinct values in {len(present)} rows)"
            )
        else:
            kinds[column] = kind
    return kinds, set_aside


def prepare_table(frame: pd.DataFrame, config: TableSchema, name: str = "table") -> PreparedTable:
    """Check the named columns, build the label and time, type and triage the other columns."""
    frame = frame.reset_index(drop=True)
    _check_columns(frame, config, name)
    ids = _row_ids(frame, config, name)
    label = label_values(frame, config)
    time = row_time(frame, config, name)
    if time is not None and config.time_column:
        no_time = time.isna() & label.notna()
        if no_time.any():
            raise TableError(
                f"{name}: {int(no_time.sum())} labelled rows have no {config.time_column!r}, e.g.\n"
                + _examples(frame, no_time, _named(config.id_column, config.label_column))
            )
    kinds, set_aside = _triage(frame, config, time, name)
    if not kinds:
        raise TableError(f"{name}: no candidate feature columns left; set aside: {set_aside}")
    position = pd.Series(np.arange(len(frame)))
    if not config.rows_in_time_order and config.id_column is not None:
        # rows sorted by id: input order never changes results
        order = np.argsort(ids.to_numpy(dtype=str), kind="stable")
        frame, ids, label, position = (
            x.iloc[order].reset_index(drop=True) for x in (frame, ids, label, position)
        )
        time = None if time is None else time.iloc[order].reset_index(drop=True)
    return PreparedTable(
        name, frame, ids, label, time, coerce(frame, kinds), kinds, set_aside, position
    )


def _named(*columns: str | None) -> list[str]:
    return [c for c in columns if c is not None]


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
