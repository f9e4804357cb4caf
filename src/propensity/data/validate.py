"""Validation of the canonical tables: every value parsed, every check, all problems at once.

:func:`validate_tables` is what :mod:`propensity.data.contract` describes: it types each column
with :mod:`propensity.data.parse`, checks the tables (see the contract's docstring for the list)
and raises one :class:`ContractError` listing every :class:`Problem`, each with example rows.

:func:`late_dates` finds rows dated after the newest plausible date of valid tables (a warning,
not an error: see its docstring for the rule).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from propensity.data.parse import (
    Parsed,
    parse_booleans,
    parse_ids,
    parse_numbers,
    parse_text,
    parse_timestamps,
    parse_whole_numbers,
)
from propensity.data.specs import SPECS, TABLE_NAMES, TECH_PREFIX, ColumnSpec, Tables, TableSpec

__all__ = [
    "LATE_MARGIN_DAYS",
    "ContractError",
    "ContractWarning",
    "LateDates",
    "Problem",
    "UnknownAccounts",
    "late_dates",
    "validate_tables",
]

UnknownAccounts = Literal["error", "drop"]

_NON_NEGATIVE = {
    "accounts": ("employees", "annual_revenue"),
    "events": ("minutes",),
    "opportunities": ("amount",),
}
_MAX_EXAMPLES = 5
_PARSERS = {
    "id": parse_ids,
    "timestamp": parse_timestamps,
    "float": parse_numbers,
    "int": parse_whole_numbers,
    "bool": parse_booleans,
}


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


@dataclass
class _Checks:
    """The problems found in one table, each with example rows from ``raw`` (the input as read)."""

    spec: TableSpec
    raw: pd.DataFrame
    problems: list[Problem]

    @property
    def ids(self) -> tuple[str, ...]:
        return self.spec.key or ("account_id",)

    def flag(
        self, column: str | None, mask: np.ndarray, noun: str, what: str, show: Iterable[str] = ()
    ) -> None:
        """Add "<count> <noun>s <what>" for the rows in ``mask``, if any, showing ids + ``show``."""
        if mask.any():
            message = f"{_plural(int(mask.sum()), noun)} {what}"
            columns = (*self.ids, *show)
            self.problems.append(_problem(self.spec.name, column, message, mask, self.raw, columns))


# --------------------------------------------------------------------------------------------
# one table


def _parse(values: pd.Series, spec: ColumnSpec) -> Parsed:
    """Canonical dtype of one column; closed sets are spelled lower_case ("Decision Maker")."""
    if spec.dtype in _PARSERS:
        return _PARSERS[spec.dtype](values)
    if spec.dtype not in ("string", "category"):
        raise ValueError(f"unknown dtype {spec.dtype!r} in the spec of column {spec.name!r}")
    parsed = parse_text(values)
    if spec.allowed is None:
        return parsed
    text = parsed.values.str.lower().str.replace(r"[\s\-]+", "_", regex=True)
    return parsed._replace(values=text)


def _mixed_up(spec: TableSpec, frame: pd.DataFrame) -> Problem | None:
    """One problem when a table lacks required columns and has another table's instead (all of
    its required columns, and more of its columns than of its own: a file saved under the
    wrong name): its other checks would only add noise."""
    columns = set(map(str, frame.columns))
    missing = [c for c in spec.required_columns if c not in columns]

    def overlap(name: str) -> int:
        return len(columns & {c.name for c in SPECS[name].columns})

    others = [
        other
        for other in TABLE_NAMES
        if other != spec.name
        and set(SPECS[other].required_columns) <= columns
        and overlap(other) > overlap(spec.name)
    ]
    if not missing or not others:
        return None
    message = (
        f"missing required column {', '.join(missing)}; its columns "
        f"({', '.join(map(str, frame.columns))}) are those of table {others[0]!r}: is this the "
        f"{others[0]} file? Save each table as NAME.csv or NAME.parquet"
    )
    return Problem(spec.name, None, message, len(missing))


def _parse_columns(checks: _Checks) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The table with its contract columns (and tech_* flags) parsed, and each one's failures."""
    spec, raw = checks.spec, checks.raw
    found = ", ".join(map(str, raw.columns))
    for col in spec.required_columns:
        if col not in raw.columns:
            checks.problems.append(
                Problem(spec.name, col, f"missing required column (columns found: {found})", 0)
            )
    columns = [c for c in spec.columns if c.name in raw.columns]
    if spec.name == "accounts":
        columns += [
            ColumnSpec(str(c), "bool", False, "technographic flag")
            for c in raw.columns
            if str(c).startswith(TECH_PREFIX)
        ]
    out = raw.copy(deep=False)
    failed: dict[str, np.ndarray] = {}
    for col in columns:
        parsed = _parse(raw[col.name], col)
        out[col.name] = parsed.values.set_axis(out.index)
        failed[col.name] = parsed.failed
        checks.flag(col.name, parsed.failed, "value", f"are {parsed.problem}", (col.name,))
    return out, failed


def _check_values(checks: _Checks, out: pd.DataFrame, present: set[str]) -> None:
    """Duplicate keys, negative amounts, intent scores outside 0..100, values outside a set."""
    spec = checks.spec
    if spec.key and set(spec.key) <= present:
        complete = out[list(spec.key)].notna().all(axis=1)
        dup = (out.duplicated(subset=list(spec.key), keep=False) & complete).to_numpy()
        n_keys = int(out.loc[dup, list(spec.key)].drop_duplicates().shape[0])
        what = f"share a duplicate key ({_plural(n_keys, 'key')} duplicated)"
        checks.flag(", ".join(spec.key), dup, "row", what, spec.key)
    for col in _NON_NEGATIVE.get(spec.name, ()):
        if col in present:
            negative = (out[col] < 0).fillna(False).to_numpy(dtype=bool)
            checks.flag(col, negative, "value", "are negative", (col,))
    if spec.name == "intent" and "score" in present:
        outside = ((out["score"] < 0) | (out["score"] > 100)).to_numpy()
        checks.flag("score", outside, "value", "are outside 0..100", ("score",))
    for col in spec.columns:
        if col.allowed is not None and col.name in present:
            invalid = (out[col.name].notna() & ~out[col.name].isin(col.allowed)).to_numpy()
            what = f"not allowed (allowed: {', '.join(col.allowed)})"
            checks.flag(col.name, invalid, "value", what, (col.name,))


def _check_opportunity_dates(
    checks: _Checks, out: pd.DataFrame, present: set[str], failed: dict[str, np.ndarray]
) -> None:
    """closed_at not before created_at; won/lost need a closed_at, open rows have none."""
    dates = ("created_at", "closed_at")
    if set(dates) <= present:
        before = (out["closed_at"] < out["created_at"]).to_numpy()
        checks.flag("closed_at", before, "value", "before created_at", dates)
    if "outcome" not in present:
        return
    closed = out["outcome"].isin(("won", "lost")).to_numpy()
    if "closed_at" in present:
        no_date = closed & out["closed_at"].isna().to_numpy() & ~failed["closed_at"]
        has_date = (out["outcome"] == "open").to_numpy() & out["closed_at"].notna().to_numpy()
    else:
        no_date, has_date = closed, np.zeros(len(out), dtype=bool)
    show = ("outcome", "closed_at")
    what = "with outcome won/lost and no closed_at (closed outcome needs closed_at)"
    checks.flag("closed_at", no_date, "row", what, show)
    what = "with outcome open but a closed_at (open opportunity cannot be closed)"
    checks.flag("closed_at", has_date, "row", what, show)


def _check_table(
    spec: TableSpec, frame: pd.DataFrame, problems: list[Problem]
) -> pd.DataFrame | None:
    """Parse and check one table; append problems; None when the table cannot be checked (empty,
    duplicate column names, another table's file)."""
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
    if mixed_up := _mixed_up(spec, frame):
        problems.append(mixed_up)
        return None
    checks = _Checks(spec, frame.reset_index(drop=True), problems)
    out, failed = _parse_columns(checks)
    present = set(failed)
    for col in spec.required_columns:
        if col in present:
            missing = out[col].isna().to_numpy() & ~failed[col]
            checks.flag(col, missing, "value", "missing in a required column", (col,))
    _check_values(checks, out, present)
    if name == "opportunities":
        _check_opportunity_dates(checks, out, present, failed)
    return out


# --------------------------------------------------------------------------------------------
# across tables


def _isin(values: pd.Series, reference: pd.Series) -> np.ndarray:
    """Membership test through Arrow (pandas' isin on Arrow strings loops in Python)."""
    found = pc.is_in(
        pa.array(values.astype("str"), from_pandas=True),
        value_set=pa.array(reference.astype("str").unique(), from_pandas=True),
    )
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _orphan_checks(checked: dict[str, pd.DataFrame]) -> list[tuple[str, str, pd.Series, str]]:
    """(table, column, known ids, parent table) for every reference between present tables."""
    refs = []
    accounts = checked.get("accounts")
    if accounts is not None and "account_id" in accounts.columns:
        for name in TABLE_NAMES[1:]:
            if name in checked and "account_id" in checked[name].columns:
                refs.append((name, "account_id", accounts["account_id"].dropna(), "accounts"))
    contacts, events = checked.get("contacts"), checked.get("events")
    if (
        contacts is not None
        and events is not None
        and "contact_id" in contacts.columns
        and "contact_id" in events.columns
    ):
        refs.append(("events", "contact_id", contacts["contact_id"], "contacts"))
    return refs


def _find_orphans(
    checked: dict[str, pd.DataFrame],
    originals: dict[str, pd.DataFrame],
    unknown_accounts: UnknownAccounts,
    problems: list[Problem],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rows to keep per table (all, unless dropping orphans) and the notes on what was dropped.

    Contacts are checked before events, so an event of a dropped contact is dropped too.
    """
    keep = {name: np.ones(len(frame), dtype=bool) for name, frame in checked.items()}
    notes: list[str] = []
    for name, column, reference, parent in _orphan_checks(checked):
        if parent == "contacts":
            reference = reference[keep["contacts"]].dropna()
        frame = checked[name]
        unknown = frame[column].notna().to_numpy() & ~_isin(frame[column], reference)
        if not unknown.any():
            continue
        what = f"whose {column} is not in {parent}"
        if unknown_accounts == "error":
            _Checks(SPECS[name], originals[name], problems).flag(
                column, unknown, "row", what, (column,)
            )
        else:
            keep[name] &= ~unknown
            notes.append(
                f"table {name!r}, column {column!r}: dropped {_plural(int(unknown.sum()), 'row')} {what}"
            )
    return keep, notes


def validate_tables(
    raw: Mapping[str, pd.DataFrame | None],
    *,
    unknown_accounts: UnknownAccounts = "error",
) -> Tables:
    """Coerce ``raw`` tables to the canonical dtypes and check them (see propensity.data.contract).

    Raises ContractError listing every problem found. Never mutates the inputs and never writes;
    a None value counts as an absent table. With ``unknown_accounts="drop"``, rows whose
    ``account_id`` is not in accounts (and events whose set ``contact_id`` is not in contacts)
    are dropped with a ContractWarning per table instead of being errors.
    """
    if unknown_accounts not in ("error", "drop"):
        raise ValueError(f"unknown_accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    problems = [
        Problem(str(name), None, f"unknown table name; tables are: {', '.join(TABLE_NAMES)}", 0)
        for name in raw
        if name not in SPECS
    ]
    checked: dict[str, pd.DataFrame] = {}
    originals: dict[str, pd.DataFrame] = {}
    for name in TABLE_NAMES:
        frame = raw.get(name)
        if frame is None:
            if SPECS[name].required:
                what = f"missing required table (provide {name}.csv or {name}.parquet)"
                problems.append(Problem(name, None, what, 0))
            continue
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"table {name!r} must be a pandas DataFrame, got {type(frame).__name__}"
            )
        out = _check_table(SPECS[name], frame, problems)
        if out is not None:
            checked[name] = out
            originals[name] = frame.reset_index(drop=True)
    keep, notes = _find_orphans(checked, originals, unknown_accounts, problems)
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
# dates after the newest plausible date (a warning on valid tables)

LATE_MARGIN_DAYS = 365
_BULK_SHARE = 0.001


@dataclass(frozen=True)
class LateDates:
    """Where the bulk of the data ends, the newest plausible date, and the rows dated later."""

    bulk_end: pd.Timestamp | None
    newest_plausible: pd.Timestamp | None
    problems: tuple[Problem, ...] = ()


def _timestamp_columns(tables: Tables) -> list[tuple[str, str]]:
    return [
        (name, col.name)
        for name in tables.present()
        for col in SPECS[name].columns
        if col.dtype == "timestamp" and col.name in tables.get(name).columns
    ]


def late_dates(tables: Tables, today: pd.Timestamp | None = None) -> LateDates:
    """Rows dated after the newest plausible date: a wrong year (2031 for 2021), a clock error.

    The rule: every timestamp column of the contract (``contacts.created_at``, ``events.ts``,
    ``intent.week``, ``opportunities.created_at`` / ``closed_at``) is pooled; the bulk of the
    data ends at its newest value once the latest 0.1 % (at least one value) are set aside.
    The newest plausible date is the earlier of **tomorrow** (by the clock of the machine
    running the check, ``today`` to fix it: data cannot come from the future) and **one year
    after the bulk's end** (:data:`LATE_MARGIN_DAYS`; a table that keeps going after the others
    stopped stays plausible). Each column with later values gives one :class:`Problem` with the
    count and example rows; such rows also move the end of the data (and so the default as-of
    date). Fewer than two dated values: nothing to compare, nothing flagged.
    """
    columns = _timestamp_columns(tables)
    values = [tables.get(n)[c].dropna().to_numpy(dtype="datetime64[us]") for n, c in columns]
    pooled = np.concatenate(values) if values else np.array([], dtype="datetime64[us]")
    if len(pooled) < 2:
        return LateDates(None, None)
    set_aside = max(1, int(len(pooled) * _BULK_SHARE))
    bulk_end = pd.Timestamp(np.partition(pooled, len(pooled) - 1 - set_aside)[-1 - set_aside])
    today = pd.Timestamp.now(tz="UTC").tz_localize(None) if today is None else pd.Timestamp(today)
    newest = min(
        today.normalize() + pd.Timedelta(days=1), bulk_end + pd.Timedelta(days=LATE_MARGIN_DAYS)
    )
    problems = []
    for name, column in columns:
        frame = tables.get(name)
        late = (frame[column] > newest).to_numpy(dtype=bool)
        if late.any():
            latest = frame.loc[late, column].max()
            message = (
                f"{_plural(int(late.sum()), 'value')} dated after {newest:%Y-%m-%d}, the newest "
                f"plausible date (the earlier of tomorrow and a year after the bulk of the data "
                f"ends, {bulk_end:%Y-%m-%d}): a wrong year or clock? They move the end of the "
                f"data, and the default --as-of, to {latest:%Y-%m-%d}"
            )
            show = (*(SPECS[name].key or ("account_id",)), column)
            problems.append(_problem(name, column, message, late, frame, show))
    return LateDates(bulk_end, newest, tuple(problems))
