"""Validation of the canonical tables: every value parsed, every check, all problems at once.

:func:`validate_tables` is what :mod:`propensity.data.contract` describes: it types each column
with :mod:`propensity.data.parse`, checks the tables (see the contract's docstring for the list)
and raises one :class:`ContractError` listing every :class:`Problem`, each with example rows.

:func:`late_dates` finds rows dated after the newest plausible date of valid tables (a warning,
not an error: see its docstring for the rule).
"""

from __future__ import annotations

import datetime
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from propensity.data.parse import (
    PANDAS_DTYPES,
    column_rule,
    is_float_type,
    registrable,
    to_pandas_columns,
    whole_number_query,
)
from propensity.data.specs import SPECS, TABLE_NAMES, TECH_PREFIX, ColumnSpec, Tables, TableSpec
from propensity.duck import connect, scalar

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


def readable(value: Any) -> Any:
    """A plain, readable Python value for error examples."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, (pd.Timestamp, datetime.datetime, datetime.date)):
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
        {"row": int(i), **{c: readable(raw[c].iat[i]) for c in show}} for i in rows[:_MAX_EXAMPLES]
    ]
    return Problem(table, column, message, len(rows), examples)


# --------------------------------------------------------------------------------------------
# a table as read, in DuckDB

ROW = "__propensity_row"  # the 0-based position of a row in its input


def quote(name: str) -> str:
    """A SQL identifier."""
    return '"' + str(name).replace('"', '""') + '"'


def _in_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


@dataclass(frozen=True)
class RawTable:
    """One table as read, for the checks: a relation in the DuckDB connection with the columns
    as read (and the row position ``ROW`` when ``numbered``, else rows are numbered in reading
    order when an example is needed), the column names as read (duplicates included, to be
    reported), the DuckDB type of each column in the relation (a frame's columns outside the
    contract stay in pandas), and ``examples(rows, columns)``: the example dicts of the given
    row positions, showing those columns as read."""

    name: str
    relation: str
    columns: tuple[str, ...]
    types: Mapping[str, str]
    numbered: bool
    examples: Callable[[Sequence[int], Sequence[str]], list[dict[str, Any]]]


@dataclass
class _Checked:
    """A parsed table: its view (``parsed_NAME``: canonical columns, a ``__failed_<col>`` flag
    per parsed column, extra columns as read), the parsed columns and their dtypes."""

    raw: RawTable
    view: str
    dtypes: dict[str, str]  # parsed column -> canonical dtype
    extra: tuple[str, ...]  # columns kept as read
    text: tuple[str, ...] = ()  # text columns read as text: kept as read if parsing changes none
    unchanged: frozenset[str] = frozenset()  # of those, the ones parsing changed nowhere

    @property
    def ids(self) -> tuple[str, ...]:
        return SPECS[self.raw.name].key or ("account_id",)


def _as_read(column: str) -> str:
    return quote(f"__raw_{column}")


def _failed(column: str) -> str:
    return quote(f"__failed_{column}")


def _example_rows(con: duckdb.DuckDBPyConnection, checked: _Checked, condition: str) -> list[int]:
    """Positions of the first rows meeting ``condition`` (SQL over the parsed view)."""
    source = checked.view
    if not checked.raw.numbered:  # numbered in reading order (only when an example is needed)
        source = f"(SELECT row_number() OVER () - 1 AS {ROW}, * FROM {checked.view})"
    rows = con.execute(
        f"SELECT {ROW} FROM {source} WHERE {condition} ORDER BY {ROW} LIMIT {_MAX_EXAMPLES}"
    ).fetchall()
    return [int(r[0]) for r in rows]


@dataclass(frozen=True)
class _Check:
    """One row-level check: where, the SQL condition of a failing row, the words."""

    column: str | None
    condition: str
    noun: str
    what: str
    show: tuple[str, ...]


def _count_checks(
    con: duckdb.DuckDBPyConnection, checked: _Checked, checks: list[_Check]
) -> list[int]:
    """The failing rows of every check, counted in one scan of the table."""
    if not checks:
        return []
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE coalesce({c.condition}, false))" for c in checks)
        + f" FROM {checked.view}"
    ).fetchall()[0]
    return [int(c) for c in counts]


def _report(
    con: duckdb.DuckDBPyConnection,
    checked: _Checked,
    checks: list[_Check],
    counts: list[int],
    problems: list[Problem],
) -> None:
    """A Problem with example rows for each check that failed."""
    for check, count in zip(checks, counts, strict=True):
        if count:
            _add(con, checked, check, count, f"coalesce({check.condition}, false)", problems)


def _add(
    con: duckdb.DuckDBPyConnection,
    checked: _Checked,
    check: _Check,
    count: int,
    condition: str,
    problems: list[Problem],
) -> None:
    rows = _example_rows(con, checked, condition)
    columns = [c for c in dict.fromkeys((*checked.ids, *check.show)) if c in checked.raw.columns]
    message = f"{_plural(count, check.noun)} {check.what}"
    problems.append(
        Problem(checked.raw.name, check.column, message, count, checked.raw.examples(rows, columns))
    )


# --------------------------------------------------------------------------------------------
# one table


def _mixed_up(spec: TableSpec, names: Sequence[str]) -> Problem | None:
    """One problem when a table lacks required columns and has another table's instead (all of
    its required columns, and more of its columns than of its own: a file saved under the
    wrong name): its other checks would only add noise."""
    columns = set(names)
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
        f"({', '.join(names)}) are those of table {others[0]!r}: is this the "
        f"{others[0]} file? Save each table as NAME.csv or NAME.parquet"
    )
    return Problem(spec.name, None, message, len(missing))


def _parse_view(con: duckdb.DuckDBPyConnection, raw: RawTable) -> _Checked:
    """Create ``parsed_NAME``: every contract column (and tech_* flag) through the one parser."""
    spec = SPECS[raw.name]
    columns = [c for c in spec.columns if c.name in raw.types]
    if raw.name == "accounts":
        columns += [
            ColumnSpec(c, "bool", False, "technographic flag")
            for c in raw.columns
            if c.startswith(TECH_PREFIX)
        ]
    parsed = {c.name for c in columns}
    extra = tuple(c for c in raw.columns if c in raw.types and c not in parsed)
    selected = [ROW] if raw.numbered else []
    dtypes: dict[str, str] = {}
    text: list[str] = []
    for col in columns:
        name, sql_type = quote(col.name), raw.types[col.name]
        whole = (
            col.dtype == "id"
            and is_float_type(sql_type)
            and bool(scalar(con, whole_number_query(name, raw.relation)))
        )
        rule = column_rule(name, sql_type, col.dtype, col.allowed, whole)
        selected += [f"{rule.value} AS {name}", f"{rule.failed} AS {_failed(col.name)}"]
        dtypes[col.name] = col.dtype
        if sql_type == "VARCHAR" and col.dtype in ("id", "string", "category"):
            selected.append(f"{name} AS {_as_read(col.name)}")
            text.append(col.name)
    selected += [quote(c) for c in extra]
    view = f"parsed_{raw.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {', '.join(selected)} FROM {raw.relation}"
    )
    return _Checked(raw, view, dtypes, extra, tuple(text))


def _table_checks(checked: _Checked) -> list[_Check]:
    """Parse failures and missing required values (checked before duplicate keys)."""
    spec = SPECS[checked.raw.name]
    checks = [
        _Check(c, _failed(c), "value", f"are {_problem_text(checked.dtypes[c])}", (c,))
        for c in checked.dtypes
    ]
    checks += [
        _Check(
            c,
            f"{quote(c)} IS NULL AND NOT {_failed(c)}",
            "value",
            "missing in a required column",
            (c,),
        )
        for c in spec.required_columns
        if c in checked.dtypes
    ]
    return checks


def _problem_text(dtype: str) -> str:
    return column_rule("x", "VARCHAR", dtype).problem


def _value_checks(checked: _Checked) -> list[_Check]:
    """Negative amounts, intent scores outside 0..100, values outside a set, and the dates and
    outcomes of opportunities (checked after duplicate keys)."""
    spec, present = SPECS[checked.raw.name], set(checked.dtypes)
    checks = [
        _Check(c, f"{quote(c)} < 0", "value", "are negative", (c,))
        for c in _NON_NEGATIVE.get(spec.name, ())
        if c in present
    ]
    if spec.name == "intent" and "score" in present:
        checks.append(
            _Check("score", "score < 0 OR score > 100", "value", "are outside 0..100", ("score",))
        )
    checks += [
        _Check(
            c.name,
            f"{quote(c.name)} NOT IN ({_in_list(c.allowed)})",
            "value",
            f"not allowed (allowed: {', '.join(c.allowed)})",
            (c.name,),
        )
        for c in spec.columns
        if c.allowed is not None and c.name in present
    ]
    if spec.name == "opportunities":
        checks += _opportunity_checks(present)
    return checks


def _opportunity_checks(present: set[str]) -> list[_Check]:
    """closed_at not before created_at; won/lost need a closed_at, open rows have none."""
    checks = []
    if {"created_at", "closed_at"} <= present:
        checks.append(
            _Check(
                "closed_at",
                "closed_at < created_at",
                "value",
                "before created_at",
                ("created_at", "closed_at"),
            )
        )
    if "outcome" not in present:
        return checks
    closed = "outcome IN ('won', 'lost')"
    if "closed_at" in present:
        no_date = f"{closed} AND closed_at IS NULL AND NOT {_failed('closed_at')}"
        has_date = "outcome = 'open' AND closed_at IS NOT NULL"
    else:
        no_date, has_date = closed, "false"
    show = ("outcome", "closed_at")
    what = "with outcome won/lost and no closed_at (closed outcome needs closed_at)"
    checks.append(_Check("closed_at", no_date, "row", what, show))
    what = "with outcome open but a closed_at (open opportunity cannot be closed)"
    checks.append(_Check("closed_at", has_date, "row", what, show))
    return checks


def _check_duplicate_keys(
    con: duckdb.DuckDBPyConnection, checked: _Checked, problems: list[Problem]
) -> None:
    key = SPECS[checked.raw.name].key
    if not key or not set(key) <= set(checked.dtypes):
        return
    columns = ", ".join(map(quote, key))
    complete = " AND ".join(f"{quote(c)} IS NOT NULL" for c in key)
    duplicated = (
        f"SELECT {columns}, count(*) AS n FROM {checked.view} WHERE {complete} "
        f"GROUP BY {columns} HAVING count(*) > 1"
    )
    rows, keys = con.execute(f"SELECT sum(n), count(*) FROM ({duplicated})").fetchall()[0]
    if not keys:
        return
    condition = f"({columns}) IN (SELECT ({columns}) FROM ({duplicated}))"
    what = f"share a duplicate key ({_plural(int(keys), 'key')} duplicated)"
    check = _Check(", ".join(key), condition, "row", what, key)
    _add(con, checked, check, int(rows), condition, problems)


def _check_table(
    con: duckdb.DuckDBPyConnection, raw: RawTable, problems: list[Problem]
) -> _Checked | None:
    """Parse and check one table; append problems; None when the table cannot be checked (empty,
    duplicate column names, another table's file)."""
    name, spec = raw.name, SPECS[raw.name]
    if not scalar(con, f"SELECT EXISTS (SELECT 1 FROM {raw.relation})"):
        problems.append(
            Problem(name, None, "empty table (0 rows); remove the file when the data is absent", 0)
        )
        return None
    duplicated = [c for c, n in Counter(raw.columns).items() if n > 1]
    if duplicated:
        cols = ", ".join(duplicated)
        problems.append(Problem(name, None, f"duplicate column names: {cols}", len(duplicated)))
        return None
    if mixed_up := _mixed_up(spec, raw.columns):
        problems.append(mixed_up)
        return None
    found = ", ".join(raw.columns)
    for col in spec.required_columns:
        if col not in raw.types:
            problems.append(
                Problem(name, col, f"missing required column (columns found: {found})", 0)
            )
    checked = _parse_view(con, raw)
    first, then = _table_checks(checked), _value_checks(checked)
    # counted in the same scan: the text columns whose parse changes nothing (clean text, the
    # usual case in Parquet) are then used as read, so later queries skip the parse
    changes = [
        _Check(c, f"{_as_read(c)} IS DISTINCT FROM {quote(c)}", "", "", ()) for c in checked.text
    ]
    counts = _count_checks(con, checked, first + then + changes)
    _report(con, checked, first, counts[: len(first)], problems)
    _check_duplicate_keys(con, checked, problems)
    _report(con, checked, then, counts[len(first) : len(first) + len(then)], problems)
    changed = counts[len(first) + len(then) :]
    checked.unchanged = frozenset(c for c, n in zip(checked.text, changed, strict=True) if not n)
    return checked


# --------------------------------------------------------------------------------------------
# across tables


def _references(checked: dict[str, _Checked]) -> list[tuple[str, str, str]]:
    """(table, column, parent table) for every reference between present tables."""
    refs = []
    if "accounts" in checked and "account_id" in checked["accounts"].dtypes:
        refs += [
            (name, "account_id", "accounts")
            for name in TABLE_NAMES[1:]
            if name in checked and "account_id" in checked[name].dtypes
        ]
    if (
        "contacts" in checked
        and "events" in checked
        and "contact_id" in checked["contacts"].dtypes
        and "contact_id" in checked["events"].dtypes
    ):
        refs.append(("events", "contact_id", "contacts"))
    return refs


def _orphans(
    con: duckdb.DuckDBPyConnection,
    checked: dict[str, _Checked],
    unknown_accounts: UnknownAccounts,
    problems: list[Problem],
) -> tuple[dict[str, list[str]], list[str]]:
    """Per table, the conditions of the rows kept (all rows, unless dropping orphans), and the
    notes on what was dropped. Contacts are checked before events, so an event of a dropped
    contact is dropped too.

    Each table's references are counted on its distinct reference values (one grouping pass,
    e.g. events per account and contact), not row by row against each parent."""
    keep: dict[str, list[str]] = {name: [] for name in checked}
    notes: list[str] = []
    references = _references(checked)
    for name in dict.fromkeys(table for table, _, _ in references):
        columns = [column for table, column, _ in references if table == name]
        grouped = f"references_{name}"
        keys = ", ".join(map(quote, columns))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {grouped} AS SELECT {keys}, count(*) AS n "
            f"FROM {checked[name].view} GROUP BY ALL"
        )
        for table, column, parent in references:
            if table != name:
                continue
            kept_parent = " AND ".join(keep[parent]) or "true"
            col = quote(column)
            known = f"SELECT {col} FROM {checked[parent].view} WHERE {kept_parent} AND {col} IS NOT NULL"
            unknown = f"{col} IS NOT NULL AND {col} NOT IN ({known})"
            count = scalar(con, f"SELECT coalesce(sum(n), 0) FROM {grouped} WHERE {unknown}")
            if not count:
                continue
            what = f"whose {column} is not in {parent}"
            if unknown_accounts == "error":
                check = _Check(column, unknown, "row", what, (column,))
                _add(con, checked[name], check, int(count), unknown, problems)
            else:
                keep[name].append(f"NOT ({unknown})")
                notes.append(
                    f"table {name!r}, column {column!r}: dropped {_plural(int(count), 'row')} {what}"
                )
        con.execute(f"DROP TABLE {grouped}")
    return keep, notes


@dataclass(frozen=True)
class Validated:
    """What :func:`check_tables` leaves in the connection: a canonical view per present table
    (``NAME``: the canonical columns, then the extra columns as read, and ``ROW`` where the input
    is numbered), the canonical dtype of each parsed column, and the notes on dropped rows."""

    views: dict[str, str]
    dtypes: dict[str, dict[str, str]]
    extra: dict[str, tuple[str, ...]]
    notes: tuple[str, ...]
    unchanged: dict[str, frozenset[str]] = field(default_factory=dict)


def check_tables(
    con: duckdb.DuckDBPyConnection,
    raw: Mapping[str, RawTable],
    *,
    unknown_accounts: UnknownAccounts = "error",
    unknown_names: Sequence[str] = (),
) -> Validated:
    """Parse and check tables as read (see propensity.data.contract), in DuckDB.

    Raises ContractError listing every problem found. Leaves one view per table that passed in
    ``con`` (see :class:`Validated`); a table left with no rows after dropping is absent. Every
    check runs as a query over the relations, so files larger than memory are checked without
    being loaded.
    """
    if unknown_accounts not in ("error", "drop"):
        raise ValueError(f"unknown_accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    problems = [
        Problem(str(name), None, f"unknown table name; tables are: {', '.join(TABLE_NAMES)}", 0)
        for name in unknown_names
    ]
    checked: dict[str, _Checked] = {}
    for name in TABLE_NAMES:
        if name not in raw:
            if SPECS[name].required:
                what = f"missing required table (provide {name}.csv or {name}.parquet)"
                problems.append(Problem(name, None, what, 0))
            continue
        result = _check_table(con, raw[name], problems)
        if result is not None:
            checked[name] = result
    keep, notes = _orphans(con, checked, unknown_accounts, problems)
    if problems:
        raise ContractError(problems)
    views: dict[str, str] = {}
    for name, table in checked.items():
        spec_columns = [
            f"{_as_read(c)} AS {quote(c)}" if c in table.unchanged else quote(c)
            for c in table.dtypes
        ]
        numbered = [ROW] if table.raw.numbered else []
        where = " AND ".join(keep[name]) or "true"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT "
            f"{', '.join([*spec_columns, *map(quote, table.extra), *numbered])} "
            f"FROM {table.view} WHERE {where}"
        )
        if keep[name] and not scalar(con, f"SELECT EXISTS (SELECT 1 FROM {name})"):
            notes.append(f"table {name!r}: no rows left after dropping, treated as absent")
            con.execute(f"DROP VIEW {name}")
            continue
        views[name] = name
    return Validated(
        views,
        {n: checked[n].dtypes for n in views},
        {n: checked[n].extra for n in views},
        tuple(notes),
        {n: checked[n].unchanged for n in views},
    )


# --------------------------------------------------------------------------------------------
# pandas frames


def _frame_examples(frame: pd.DataFrame) -> Callable[[Sequence[int], Sequence[str]], list[dict]]:
    def examples(rows: Sequence[int], columns: Sequence[str]) -> list[dict[str, Any]]:
        return [{"row": int(i), **{c: readable(frame[c].iat[i]) for c in columns}} for i in rows]

    return examples


def _register_frame(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> RawTable:
    """A frame as a RawTable: its contract columns (and tech_* flags) registered in DuckDB with
    their positions; other columns are kept in pandas as they are."""
    names = tuple(map(str, frame.columns))
    frame = frame.set_axis(names, axis=1).reset_index(drop=True)
    checked = [
        c
        for c in dict.fromkeys(names)
        if c in SPECS[name].column_names or (name == "accounts" and c.startswith(TECH_PREFIX))
    ]
    types: dict[str, str] = {}
    if len(set(names)) == len(names):
        parts = {c: registrable(frame[c]) for c in checked}
        parts[ROW] = pd.Series(np.arange(len(frame), dtype=np.int64))
        relation = f"raw_{name}"
        con.register(relation, pd.DataFrame(parts))
        types.update(
            zip(
                checked,
                map(str, con.sql(f"SELECT * EXCLUDE ({ROW}) FROM {relation}").types),
                strict=True,
            )
        )
    else:  # duplicate names: reported before anything is read
        relation = f"(SELECT 1 FROM range({min(len(frame), 1)}))"
    return RawTable(name, relation, names, types, True, _frame_examples(frame))


def validate_tables(
    raw: Mapping[str, pd.DataFrame | None],
    *,
    unknown_accounts: UnknownAccounts = "error",
) -> Tables:
    """Coerce ``raw`` tables to the canonical dtypes and check them (see propensity.data.contract).

    Raises ContractError listing every problem found. Never mutates the inputs and never writes;
    a None value counts as an absent table. With ``unknown_accounts="drop"``, rows whose
    ``account_id`` is not in accounts (and events whose set ``contact_id`` is not in contacts)
    are dropped with a ContractWarning per table instead of being errors. The checks are those
    of :func:`check_tables` (the frames are registered in DuckDB, not copied).
    """
    frames: dict[str, pd.DataFrame] = {}
    for name, frame in raw.items():
        if frame is None or name not in SPECS:
            continue
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(
                f"table {name!r} must be a pandas DataFrame, got {type(frame).__name__}"
            )
        frames[name] = frame
    with connect() as con:
        tables = {name: _register_frame(con, name, frame) for name, frame in frames.items()}
        validated = check_tables(
            con,
            tables,
            unknown_accounts=unknown_accounts,
            unknown_names=[n for n in raw if n not in SPECS],
        )
        out = {
            name: _canonical_frame(
                con, name, frames[name], validated.dtypes[name], validated.unchanged[name]
            )
            for name in validated.views
        }
    for note in validated.notes:
        warnings.warn(note, ContractWarning, stacklevel=2)
    return Tables(**out)


def _canonical_frame(
    con: duckdb.DuckDBPyConnection,
    name: str,
    frame: pd.DataFrame,
    dtypes: dict[str, str],
    unchanged: frozenset[str],
) -> pd.DataFrame:
    """The rows kept, in input order, with the parsed columns in place of the raw ones and the
    other columns unchanged (text the parse left as it was, already of the canonical dtype, is
    not fetched back)."""
    frame = frame.set_axis(list(map(str, frame.columns)), axis=1)
    dtypes = {
        c: d
        for c, d in dtypes.items()
        if not (c in unchanged and frame[c].dtype == PANDAS_DTYPES[d])
    }
    columns = ", ".join([ROW, *map(quote, dtypes)])
    parsed = to_pandas_columns(
        con.sql(f"SELECT {columns} FROM {name} ORDER BY {ROW}").to_arrow_table(), dtypes
    )
    rows = parsed.pop(ROW).to_numpy()
    out = (
        frame.iloc[rows].reset_index(drop=True)
        if len(rows) < len(frame)
        else frame.reset_index(drop=True)
    )
    out = out.copy(deep=False)
    for column in parsed.columns:
        out[column] = parsed[column].set_axis(out.index)
    return out


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
