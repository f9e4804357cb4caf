"""Canonical tables: specs, reading, validation with clear errors, atomic writing, a summary.

A world or an import is a folder with one file per table, ``NAME.csv`` or ``NAME.parquet``, for
``NAME`` in :data:`TABLE_NAMES`. Only ``accounts`` is required; any other table may be absent
(the toolkit trains on the families that are present). Other files and the ``truth/`` subfolder
are never read.

The contract (what :func:`validate_tables` returns, every stage downstream relies on it):

* ids (``account_id``, ``contact_id``, ``opportunity_id``) and text (``name``): pandas default
  string dtype ``str``, whitespace stripped, empty text is missing. Whole-number float ids
  (``1.0``) become ``"1"``.
* timestamps (``created_at``, ``closed_at``, ``ts``, and ``intent.week``, a week start date):
  ``datetime64[us]``, naive, in UTC. Text must be ISO 8601 (date-only allowed); tz-aware
  values are converted to UTC and the time zone is dropped; naive values are taken as UTC.
* ``employees``, ``founded_year``: nullable ``Int64``; ``annual_revenue``, ``minutes``,
  ``amount``, ``score``: ``float64``.
* categories (``industry``, ``country``, ``role``, ``seniority``, ``event_type``, ``channel``,
  ``topic``, ``outcome``, ``type``): string dtype ``str``, stripped. Columns with a closed set
  of values (``role``, ``outcome``, ``type``) are also lower-cased with spaces and hyphens
  turned into ``_`` ("Decision Maker" -> ``decision_maker``). ``event_type`` is free text.
* ``accounts.tech_*`` columns: static technographic flags, nullable ``boolean`` (text accepted:
  true/false, t/f, yes/no, y/n, 1/0).
* other extra columns are kept unchanged. In ``accounts`` they are "as of export" (e.g.
  ``lifecycle_stage``, ``last_activity_at``): never static, listed as
  ``export_only_account_columns`` so that features never use them at a past snapshot.
* every returned frame has a fresh ``RangeIndex``; a returned table has at least one row.

Checks (all are collected, then raised together as one :class:`ContractError`): missing
``accounts``; an empty table (a present file with 0 rows is an error: remove the file when the
data is absent); duplicate column names; missing required columns; missing values in required
columns; unparseable timestamps, numbers, booleans; non-whole integers; duplicate keys; negative
``employees`` / ``annual_revenue`` / ``minutes`` / ``amount``; ``score`` outside 0..100;
values outside the allowed sets; ``closed_at`` before ``created_at``; won/lost without
``closed_at``; open with a ``closed_at``; ``account_id`` not in ``accounts`` (contacts, events,
intent, opportunities) and ``events.contact_id`` not in ``contacts`` (checked only when
``contacts`` is present). With ``unknown_accounts="drop"`` the last two kinds drop the rows with
a :class:`ContractWarning` instead; a table left with no rows is then treated as absent.
Row numbers in errors are 0-based positions in the input (for a CSV: data lines after the
header).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from propensity.io import write_parquet

__all__ = [
    "FAMILY_TABLES",
    "SPECS",
    "STATIC_ACCOUNT_COLUMNS",
    "TABLE_NAMES",
    "TECH_PREFIX",
    "ColumnSpec",
    "ContractError",
    "ContractWarning",
    "Problem",
    "TableSpec",
    "Tables",
    "ValidationReport",
    "export_only_account_columns",
    "is_static_account_column",
    "load_tables",
    "read_tables",
    "summarize",
    "validate_tables",
    "write_tables",
]

TABLE_NAMES = ("accounts", "contacts", "events", "intent", "opportunities")
STATIC_ACCOUNT_COLUMNS = ("industry", "employees", "annual_revenue", "country", "founded_year")
TECH_PREFIX = "tech_"
# feature family -> the table it is computed from (accounts is always present)
FAMILY_TABLES = {
    "firmographic": "accounts",
    "engagement": "events",
    "intent": "intent",
    "history": "opportunities",
}

Dtype = Literal["id", "string", "int", "float", "timestamp", "category", "bool"]
UnknownAccounts = Literal["error", "drop"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a canonical table: its canonical dtype and whether it must be present."""

    name: str
    dtype: Dtype
    required: bool
    description: str
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSpec:
    """One canonical table: primary key (empty for events), columns, time column."""

    name: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    required: bool
    time_column: str | None
    description: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``; KeyError if the table has no such column."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(
            f"table {self.name!r} has no column {name!r}; columns: {', '.join(self.column_names)}"
        )


def _c(
    name: str,
    dtype: Dtype,
    required: bool,
    description: str,
    allowed: tuple[str, ...] | None = None,
) -> ColumnSpec:
    return ColumnSpec(name, dtype, required, description, allowed)


SPECS: dict[str, TableSpec] = {
    "accounts": TableSpec(
        "accounts",
        ("account_id",),
        (
            _c("account_id", "id", True, "account (company) id"),
            _c("name", "string", True, "company name"),
            _c("industry", "category", False, "industry (static)"),
            _c("employees", "int", False, "number of employees (static, >= 0)"),
            _c("annual_revenue", "float", False, "annual revenue (static, >= 0)"),
            _c("country", "category", False, "country (static)"),
            _c("founded_year", "int", False, "year the company was founded (static)"),
        ),
        True,
        None,
        "one row per account; firmographics plus optional static tech_* flags",
    ),
    "contacts": TableSpec(
        "contacts",
        ("contact_id",),
        (
            _c("contact_id", "id", True, "contact (person) id"),
            _c("account_id", "id", True, "account the contact works for"),
            _c(
                "role",
                "category",
                False,
                "buying-group role",
                ("user", "influencer", "decision_maker", "it"),
            ),
            _c("seniority", "category", False, "seniority level"),
            _c("created_at", "timestamp", False, "when the contact was created (counts from then)"),
        ),
        False,
        "created_at",
        "one row per contact",
    ),
    "events": TableSpec(
        "events",
        (),
        (
            _c("account_id", "id", True, "account of the event"),
            _c(
                "contact_id",
                "id",
                False,
                "contact of the event; missing = anonymous (e.g. reverse-IP visit)",
            ),
            _c("ts", "timestamp", True, "when the event happened"),
            _c("event_type", "category", True, "event type (free text)"),
            _c("channel", "category", False, "marketing channel"),
            _c("minutes", "float", False, "duration in minutes (>= 0)"),
        ),
        False,
        "ts",
        "one row per engagement event",
    ),
    "intent": TableSpec(
        "intent",
        ("account_id", "week", "topic"),
        (
            _c("account_id", "id", True, "account"),
            _c("week", "timestamp", True, "week start date (known from week + 7 days)"),
            _c("topic", "category", True, "intent topic"),
            _c("score", "float", True, "surge score, 0..100"),
        ),
        False,
        "week",
        "third-party intent, one row per account, week and topic",
    ),
    "opportunities": TableSpec(
        "opportunities",
        ("opportunity_id",),
        (
            _c("opportunity_id", "id", True, "opportunity id"),
            _c("account_id", "id", True, "account"),
            _c("created_at", "timestamp", True, "when the opportunity was created"),
            _c(
                "closed_at", "timestamp", False, "when it was won or lost (outcome known from then)"
            ),
            _c("outcome", "category", True, "won / lost / open", ("won", "lost", "open")),
            _c("amount", "float", False, "deal amount (>= 0)"),
            _c(
                "type", "category", False, "new_business / expansion", ("new_business", "expansion")
            ),
        ),
        False,
        "created_at",
        "one row per sales opportunity",
    ),
}

_NON_NEGATIVE = {
    "accounts": ("employees", "annual_revenue"),
    "events": ("minutes",),
    "opportunities": ("amount",),
}
_MAX_EXAMPLES = 5


def is_static_account_column(name: str) -> bool:
    """True for account columns that may be used at any snapshot (firmographics, tech_* flags)."""
    return name in STATIC_ACCOUNT_COLUMNS or name.startswith(TECH_PREFIX)


def export_only_account_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """Account columns outside the contract and not tech_*: known only as of the export."""
    known = set(SPECS["accounts"].column_names)
    return tuple(c for c in columns if c not in known and not c.startswith(TECH_PREFIX))


# --------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class Problem:
    """One failed check: where, what (message includes the count), up to 5 example rows.

    ``column`` is None for table-level problems. Each example is a dict with the 0-based input
    row number under ``"row"`` and the row's identifying and offending values as read.
    """

    table: str
    column: str | None
    message: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"table {self.table!r}" + (
            f", column {self.column!r}" if self.column is not None else ""
        )
        text = f"{where}: {self.message}"
        if self.examples:
            rows = "; ".join(
                f"row {ex['row']} { ({k: v for k, v in ex.items() if k != 'row'}) }"
                for ex in self.examples
            )
            text += f", e.g. {rows}"
        return text


class ContractError(ValueError):
    """All problems found, each naming table, column, what is wrong, count and example rows."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):  # keep picklable despite the custom __init__
        return (type(self), (self.problems,))


class ContractWarning(UserWarning):
    """Rows dropped by ``unknown_accounts="drop"``."""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _py(value: Any) -> Any:
    """A plain, readable Python value for error examples."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _problem(
    table: str,
    column: str | None,
    message: str,
    mask: np.ndarray,
    raw: pd.DataFrame,
    columns: Iterable[str],
) -> Problem:
    rows = np.flatnonzero(mask)
    show = [c for c in dict.fromkeys(columns) if c in raw.columns]
    examples = [
        {"row": int(i), **{c: _py(raw[c].iat[i]) for c in show}} for i in rows[:_MAX_EXAMPLES]
    ]
    return Problem(table, column, message, len(rows), examples)


def _id_columns(spec: TableSpec) -> tuple[str, ...]:
    return spec.key or ("account_id",)


# --------------------------------------------------------------------------------------------
# coercion: the single place that parses types

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


def _isin(values: pd.Series, reference: pd.Series) -> np.ndarray:
    """Membership test through Arrow (pandas' isin on Arrow strings loops in Python)."""
    found = pc.is_in(
        pa.array(values.astype("str"), from_pandas=True),
        value_set=pa.array(reference.astype("str").unique(), from_pandas=True),
    )
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _as_text(s: pd.Series) -> pd.Series:
    text = s.astype("str").str.strip()
    return text.mask(text == "")


def _coerce_id(s: pd.Series) -> tuple[pd.Series, np.ndarray, str | None]:
    if pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[~np.isnan(values)]
        if np.all(finite == np.round(finite)) and np.all(np.abs(finite) < 2**53):
            s = s.astype("Int64")
    return _as_text(s), np.zeros(len(s), dtype=bool), None


def _coerce_category(
    s: pd.Series, allowed: tuple[str, ...] | None
) -> tuple[pd.Series, np.ndarray, str | None]:
    text = _as_text(s)
    if allowed is not None:
        text = text.str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    return text, np.zeros(len(s), dtype=bool), None


def _coerce_timestamp(s: pd.Series) -> tuple[pd.Series, np.ndarray, str | None]:
    message = "not parseable timestamps (ISO 8601 text, e.g. 2024-01-31 or 2024-01-31T09:30:00Z)"
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        return out, np.zeros(len(s), dtype=bool), None
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return s.astype("datetime64[us]"), np.zeros(len(s), dtype=bool), None
    if pd.api.types.is_numeric_dtype(s.dtype):  # epoch numbers: unit unknown, refuse
        bad = s.notna().to_numpy()
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]"), bad, message
    text = _as_text(s)
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = (text.notna() & parsed.isna()).to_numpy()
    return parsed.dt.tz_localize(None).astype("datetime64[us]"), bad, message


def _coerce_float(s: pd.Series) -> tuple[pd.Series, np.ndarray, str | None]:
    if pd.api.types.is_numeric_dtype(s.dtype):
        present = s.notna().to_numpy()
        values = s.astype("float64")
    else:
        text = _as_text(s)
        present = text.notna().to_numpy()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    finite = np.isfinite(values.to_numpy())
    bad = present & ~finite
    return values.where(finite), bad, "not parseable numbers"


def _coerce_int(s: pd.Series) -> tuple[pd.Series, np.ndarray, str | None]:
    values, bad, _ = _coerce_float(s)
    array = values.to_numpy()
    whole = np.isnan(array) | ((array == np.round(array)) & (np.abs(array) < 2**53))
    bad = bad | ~whole
    return values.where(whole).astype("Int64"), bad, "not whole numbers"


def _coerce_bool(s: pd.Series) -> tuple[pd.Series, np.ndarray, str | None]:
    message = "not booleans (true/false, yes/no, 1/0)"
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean"), np.zeros(len(s), dtype=bool), None
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.astype("float64")
        ok = values.isna() | values.isin([0.0, 1.0])
        return values.where(ok).astype("boolean"), (~ok).to_numpy(), message
    text = _as_text(s).str.lower()
    mapped = text.map(
        lambda v: True if v in _TRUE else (False if v in _FALSE else None), na_action="ignore"
    )
    out = mapped.astype("boolean")
    bad = (text.notna() & out.isna()).to_numpy()
    return out, bad, message


def _coerce(s: pd.Series, spec: ColumnSpec) -> tuple[pd.Series, np.ndarray, str | None]:
    """Canonical dtype of one column, a mask of present-but-unparseable values, its message."""
    if spec.dtype == "id":
        return _coerce_id(s)
    if spec.dtype in ("string", "category"):
        return _coerce_category(s, spec.allowed)
    if spec.dtype == "timestamp":
        return _coerce_timestamp(s)
    if spec.dtype == "float":
        return _coerce_float(s)
    if spec.dtype == "int":
        return _coerce_int(s)
    if spec.dtype == "bool":
        return _coerce_bool(s)
    raise ValueError(f"unknown dtype {spec.dtype!r} in the spec of column {spec.name!r}")


# --------------------------------------------------------------------------------------------
# tables


@dataclass(frozen=True, eq=False)
class Tables:
    """Validated canonical tables; ``accounts`` always present, others None when absent."""

    accounts: pd.DataFrame
    contacts: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    intent: pd.DataFrame | None = None
    opportunities: pd.DataFrame | None = None

    def present(self) -> tuple[str, ...]:
        """Names of the tables that are not None, in TABLE_NAMES order."""
        return tuple(name for name in TABLE_NAMES if getattr(self, name) is not None)

    def get(self, name: str) -> pd.DataFrame | None:
        """The table ``name`` or None if absent; KeyError for a name outside TABLE_NAMES."""
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}; tables are: {', '.join(TABLE_NAMES)}")
        return getattr(self, name)

    @property
    def export_only_account_columns(self) -> tuple[str, ...]:
        """Extra account columns known only as of the export (never features at a past date)."""
        return export_only_account_columns(self.accounts.columns)

    @property
    def static_account_columns(self) -> tuple[str, ...]:
        """Account columns present here that are static (usable at any snapshot)."""
        return tuple(c for c in self.accounts.columns if is_static_account_column(c))


def _check_table(
    spec: TableSpec, frame: pd.DataFrame, problems: list[Problem]
) -> pd.DataFrame | None:
    """Coerce and check one table; append problems; None when the table cannot be checked."""
    name = spec.name
    if len(frame) == 0:
        problems.append(
            Problem(name, None, "empty table (0 rows); remove the file when the data is absent", 0)
        )
        return None
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        cols = ", ".join(map(str, dict.fromkeys(duplicated)))
        problems.append(Problem(name, None, f"duplicate column names: {cols}", len(duplicated)))
        return None

    raw = frame.reset_index(drop=True)
    out = raw.copy(deep=False)
    ids = _id_columns(spec)
    found = ", ".join(map(str, raw.columns))
    for col in spec.required_columns:
        if col not in raw.columns:
            problems.append(
                Problem(name, col, f"missing required column (columns found: {found})", 0)
            )

    columns = [c for c in spec.columns if c.name in raw.columns]
    if name == "accounts":
        columns += [
            ColumnSpec(str(c), "bool", False, "technographic flag")
            for c in raw.columns
            if str(c).startswith(TECH_PREFIX)
        ]
    unparseable: dict[str, np.ndarray] = {}
    for col in columns:
        values, bad, message = _coerce(raw[col.name], col)
        out[col.name] = values.set_axis(out.index)
        unparseable[col.name] = bad
        if bad.any():
            problems.append(
                _problem(
                    name,
                    col.name,
                    f"{_plural(int(bad.sum()), 'value')} are {message}",
                    bad,
                    raw,
                    (*ids, col.name),
                )
            )

    present = set(unparseable)
    for col in spec.required_columns:
        if col in present:
            missing = out[col].isna().to_numpy() & ~unparseable[col]
            if missing.any():
                problems.append(
                    _problem(
                        name,
                        col,
                        f"{_plural(int(missing.sum()), 'value')} missing in a required column",
                        missing,
                        raw,
                        (*ids, col),
                    )
                )

    if spec.key and set(spec.key) <= present:
        complete = out[list(spec.key)].notna().all(axis=1)
        dup = (out.duplicated(subset=list(spec.key), keep=False) & complete).to_numpy()
        if dup.any():
            n_keys = int(out.loc[dup, list(spec.key)].drop_duplicates().shape[0])
            problems.append(
                _problem(
                    name,
                    ", ".join(spec.key),
                    f"{_plural(int(dup.sum()), 'row')} share a duplicate key ({_plural(n_keys, 'key')} duplicated)",
                    dup,
                    raw,
                    spec.key,
                )
            )

    for col in _NON_NEGATIVE.get(name, ()):
        if col in present:
            negative = (out[col] < 0).fillna(False).to_numpy(dtype=bool)
            if negative.any():
                problems.append(
                    _problem(
                        name,
                        col,
                        f"{_plural(int(negative.sum()), 'value')} are negative",
                        negative,
                        raw,
                        (*ids, col),
                    )
                )
    if name == "intent" and "score" in present:
        outside = ((out["score"] < 0) | (out["score"] > 100)).to_numpy()
        if outside.any():
            problems.append(
                _problem(
                    name,
                    "score",
                    f"{_plural(int(outside.sum()), 'value')} are outside 0..100",
                    outside,
                    raw,
                    (*ids, "score"),
                )
            )

    for col in columns:
        if col.allowed is not None:
            invalid = (out[col.name].notna() & ~out[col.name].isin(col.allowed)).to_numpy()
            if invalid.any():
                message = f"{_plural(int(invalid.sum()), 'value')} not allowed (allowed: {', '.join(col.allowed)})"
                problems.append(_problem(name, col.name, message, invalid, raw, (*ids, col.name)))

    if name == "opportunities":
        _check_opportunity_dates(out, raw, present, unparseable, problems)
    return out


def _check_opportunity_dates(
    out: pd.DataFrame,
    raw: pd.DataFrame,
    present: set[str],
    unparseable: dict[str, np.ndarray],
    problems: list[Problem],
) -> None:
    ids = ("opportunity_id",)
    if {"created_at", "closed_at"} <= present:
        before = (out["closed_at"] < out["created_at"]).to_numpy()
        if before.any():
            problems.append(
                _problem(
                    "opportunities",
                    "closed_at",
                    f"{_plural(int(before.sum()), 'value')} before created_at",
                    before,
                    raw,
                    (*ids, "created_at", "closed_at"),
                )
            )
    if "outcome" not in present:
        return
    closed = out["outcome"].isin(("won", "lost")).to_numpy()
    if "closed_at" in present:
        no_date = closed & out["closed_at"].isna().to_numpy() & ~unparseable["closed_at"]
        has_date = (out["outcome"] == "open").to_numpy() & out["closed_at"].notna().to_numpy()
    else:
        no_date, has_date = closed, np.zeros(len(out), dtype=bool)
    if no_date.any():
        message = f"{_plural(int(no_date.sum()), 'row')} with outcome won/lost and no closed_at (closed outcome needs closed_at)"
        problems.append(
            _problem(
                "opportunities", "closed_at", message, no_date, raw, (*ids, "outcome", "closed_at")
            )
        )
    if has_date.any():
        message = f"{_plural(int(has_date.sum()), 'row')} with outcome open but a closed_at (open opportunity cannot be closed)"
        problems.append(
            _problem(
                "opportunities", "closed_at", message, has_date, raw, (*ids, "outcome", "closed_at")
            )
        )


def validate_tables(
    raw: Mapping[str, pd.DataFrame | None],
    *,
    unknown_accounts: UnknownAccounts = "error",
) -> Tables:
    """Coerce ``raw`` tables to the canonical dtypes and check them (see the module docstring).

    Raises ContractError listing every problem found. Never mutates the inputs and never writes;
    a None value counts as an absent table. With ``unknown_accounts="drop"``, rows whose
    ``account_id`` is not in accounts (and events whose set ``contact_id`` is not in contacts)
    are dropped with a ContractWarning per table instead of being errors.
    """
    if unknown_accounts not in ("error", "drop"):
        raise ValueError(f"unknown_accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    problems: list[Problem] = []
    for name in raw:
        if name not in SPECS:
            problems.append(
                Problem(
                    str(name), None, f"unknown table name; tables are: {', '.join(TABLE_NAMES)}", 0
                )
            )

    checked: dict[str, pd.DataFrame] = {}
    originals: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        frame = raw.get(name)
        if frame is None:
            if SPECS[name].required:
                problems.append(
                    Problem(
                        name,
                        None,
                        f"missing required table (provide {name}.csv or {name}.parquet)",
                        0,
                    )
                )
            continue
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"table {name!r} must be a pandas DataFrame, got {type(frame).__name__}"
            )
        out = _check_table(SPECS[name], frame, problems)
        if out is not None:
            checked[name] = out
            originals[name] = frame.reset_index(drop=True)

    keep = {name: np.ones(len(frame), dtype=bool) for name, frame in checked.items()}
    notes: list[str] = []

    def orphans(name: str, column: str, reference: pd.Series, parent: str) -> None:
        frame = checked[name]
        unknown = frame[column].notna().to_numpy() & ~_isin(frame[column], reference)
        if not unknown.any():
            return
        what = f"{_plural(int(unknown.sum()), 'row')} whose {column} is not in {parent}"
        if unknown_accounts == "error":
            ids = _id_columns(SPECS[name])
            problems.append(_problem(name, column, what, unknown, originals[name], (*ids, column)))
        else:
            keep[name] &= ~unknown
            notes.append(f"table {name!r}, column {column!r}: dropped {what}")

    accounts = checked.get("accounts")
    if accounts is not None and "account_id" in accounts.columns:
        account_ids = accounts["account_id"].dropna()
        for name in TABLE_NAMES[1:]:
            if name in checked and "account_id" in checked[name].columns:
                orphans(name, "account_id", account_ids, "accounts")
    contacts = checked.get("contacts")
    events = checked.get("events")
    if (
        contacts is not None
        and events is not None
        and "contact_id" in contacts.columns
        and "contact_id" in events.columns
    ):
        orphans(
            "events", "contact_id", contacts["contact_id"][keep["contacts"]].dropna(), "contacts"
        )

    if problems:
        raise ContractError(problems)

    frames: dict[str, pd.DataFrame | None] = {}
    for name, frame in checked.items():
        if not keep[name].all():
            frame = frame.loc[keep[name]].reset_index(drop=True)
            if len(frame) == 0:
                notes.append(f"table {name!r}: no rows left after dropping, treated as absent")
                frame = None
        frames[name] = frame
    for note in notes:
        warnings.warn(note, ContractWarning, stacklevel=2)
    return Tables(**frames)


# --------------------------------------------------------------------------------------------
# files


def _table_files(folder: Path) -> dict[str, list[Path]]:
    return {
        name: [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.is_file()]
        for name in TABLE_NAMES
    }


def read_tables(folder: Path | str) -> dict[str, pd.DataFrame]:
    """Raw tables of a folder: ``NAME.parquet`` or ``NAME.csv`` per table, as stored.

    CSV columns are all read as text ("" and the usual NA markers are missing), so that
    validate_tables is the single place that parses types. Other files and subfolders (such as
    ``truth/``) are ignored. FileNotFoundError / NotADirectoryError for a bad folder;
    ContractError when accounts is missing or a table has both a CSV and a Parquet file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"table folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"table folder {folder} is not a directory")
    problems: list[Problem] = []
    tables: dict[str, pd.DataFrame] = {}
    for name, paths in _table_files(folder).items():
        if len(paths) > 1:
            problems.append(
                Problem(
                    name, None, f"both {name}.csv and {name}.parquet exist in {folder}; keep one", 2
                )
            )
        elif paths:
            path = paths[0]
            tables[name] = (
                pd.read_csv(path, dtype=str, keep_default_na=True)
                if path.suffix == ".csv"
                # same frame as pd.read_parquet, about three times faster on large text columns
                else pq.read_table(path).to_pandas()
            )
        elif SPECS[name].required:
            problems.append(
                Problem(
                    name,
                    None,
                    f"missing required table ({name}.csv or {name}.parquet) in {folder}",
                    0,
                )
            )
    if problems:
        raise ContractError(problems)
    return tables


def load_tables(folder: Path | str, *, unknown_accounts: UnknownAccounts = "error") -> Tables:
    """read_tables + validate_tables."""
    return validate_tables(read_tables(folder), unknown_accounts=unknown_accounts)


def write_tables(tables: Tables, folder: Path | str) -> None:
    """Write each present table as ``NAME.parquet`` in ``folder`` (created if needed), atomically.

    Each file is written to a temporary file in the same folder and moved into place with
    os.replace. Raises FileExistsError, before writing anything, when a file in the folder would
    make it read back differently: any ``NAME.csv``, or a ``NAME.parquet`` of an absent table.
    Existing ``NAME.parquet`` files of present tables are replaced.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    present = set(tables.present())
    stale = [
        p
        for name, paths in _table_files(folder).items()
        for p in paths
        if p.suffix == ".csv" or name not in present
    ]
    if stale:
        raise FileExistsError(
            f"{folder} holds table files that would not match the tables written: {', '.join(p.name for p in stale)}; remove them first"
        )
    for name in tables.present():
        write_parquet(tables.get(name), folder / f"{name}.parquet")


# --------------------------------------------------------------------------------------------
# summary


@dataclass(frozen=True)
class ValidationReport:
    """What a validated set of tables holds: sizes, data window, coverage, win rate, families."""

    rows: dict[str, int]
    date_min: pd.Timestamp | None
    date_max: pd.Timestamp | None
    accounts_with_engagement: int
    accounts_with_intent: int
    accounts_with_opportunities: int
    opportunities_won: int
    opportunities_lost: int
    win_rate: float | None
    families_present: tuple[str, ...]
    export_only_account_columns: tuple[str, ...]

    def to_lines(self) -> list[str]:
        """A short human summary, one fact per line."""
        n_accounts = self.rows.get("accounts", 0)

        def share(count: int) -> str:
            return (
                f"{count} of {n_accounts} ({count / n_accounts:.1%})" if n_accounts else str(count)
            )

        lines = ["rows: " + ", ".join(f"{name} {count:,}" for name, count in self.rows.items())]
        if self.date_min is not None:
            lines.append(f"data window: {self.date_min:%Y-%m-%d} .. {self.date_max:%Y-%m-%d}")
        else:
            lines.append("data window: none (no dated tables)")
        lines.append(f"accounts with engagement: {share(self.accounts_with_engagement)}")
        lines.append(f"accounts with intent: {share(self.accounts_with_intent)}")
        lines.append(f"accounts with opportunities: {share(self.accounts_with_opportunities)}")
        if self.win_rate is None:
            lines.append("win rate: n/a (no closed opportunities)")
        else:
            closed = self.opportunities_won + self.opportunities_lost
            lines.append(
                f"win rate: {self.win_rate:.1%} ({self.opportunities_won} won of {closed} closed)"
            )
        lines.append(f"feature families present: {', '.join(self.families_present)}")
        if self.export_only_account_columns:
            lines.append(
                f"export-only account columns (never features): {', '.join(self.export_only_account_columns)}"
            )
        return lines


def summarize(tables: Tables) -> ValidationReport:
    """Summary of validated tables; dates span events.ts, intent.week, opportunity dates."""
    rows = {name: len(tables.get(name)) for name in tables.present()}
    dates = []
    for name, column in (
        ("events", "ts"),
        ("intent", "week"),
        ("opportunities", "created_at"),
        ("opportunities", "closed_at"),
    ):
        frame = tables.get(name)
        if frame is not None and column in frame.columns:
            dates += [frame[column].min(), frame[column].max()]
    dates = [d for d in dates if not pd.isna(d)]

    def accounts_in(name: str) -> int:
        frame = tables.get(name)
        return 0 if frame is None else int(frame["account_id"].nunique())

    won = lost = 0
    if tables.opportunities is not None:
        outcome = tables.opportunities["outcome"]
        won, lost = int((outcome == "won").sum()), int((outcome == "lost").sum())
    return ValidationReport(
        rows=rows,
        date_min=min(dates) if dates else None,
        date_max=max(dates) if dates else None,
        accounts_with_engagement=accounts_in("events"),
        accounts_with_intent=accounts_in("intent"),
        accounts_with_opportunities=accounts_in("opportunities"),
        opportunities_won=won,
        opportunities_lost=lost,
        win_rate=won / (won + lost) if won + lost else None,
        families_present=tuple(family for family, table in FAMILY_TABLES.items() if table in rows),
        export_only_account_columns=tables.export_only_account_columns,
    )
