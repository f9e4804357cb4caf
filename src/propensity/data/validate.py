"""Validation of canonical tables held as pandas frames, and rows dated after the plausible end.

:func:`validate_tables` is what :mod:`propensity.data.contract` describes for frames: it registers
them in DuckDB (not copied) and runs the contract's checks (:func:`propensity.data.checks.
check_tables`, the same checks as for files), then returns the frames with every column typed by
the one parser, or raises one :class:`ContractError` listing every :class:`Problem`, each with
example rows.

:func:`late_dates` finds rows dated after the newest plausible date of valid tables (a warning,
not an error: see its docstring for the rule).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from propensity.data.checks import ROW, RawTable, UnknownAccounts, check_tables, quote
from propensity.data.parse import PANDAS_DTYPES, registrable, to_pandas_columns
from propensity.data.problems import (
    MAX_EXAMPLES,
    ContractError,
    ContractWarning,
    Problem,
    plural,
    readable,
)
from propensity.data.specs import SPECS, TECH_PREFIX, Table, Tables, TableView
from propensity.duck import connect

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
        {"row": int(i), **{c: readable(raw[c].iat[i]) for c in show}} for i in rows[:MAX_EXAMPLES]
    ]
    return Problem(table, column, message, len(rows), examples)


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
    total = sum(_dated_count(tables.get(n), c) for n, c in columns)
    if total < 2:
        return LateDates(None, None)
    set_aside = max(1, int(total * _BULK_SHARE))
    # the pooled values' (set_aside + 1)-th largest is among each column's set_aside + 1 largest
    tops = np.concatenate([_largest(tables.get(n), c, set_aside + 1) for n, c in columns])
    bulk_end = pd.Timestamp(np.sort(tops)[-1 - set_aside])
    today = pd.Timestamp.now(tz="UTC").tz_localize(None) if today is None else pd.Timestamp(today)
    newest = min(
        today.normalize() + pd.Timedelta(days=1), bulk_end + pd.Timedelta(days=LATE_MARGIN_DAYS)
    )
    problems = []
    for name, column in columns:
        show = (*(SPECS[name].key or ("account_id",)), column)
        late = _late(name, tables.get(name), column, newest, show)
        if late is None:
            continue
        count, latest, examples = late
        message = (
            f"{plural(count, 'value')} dated after {newest:%Y-%m-%d}, the newest "
            f"plausible date (the earlier of tomorrow and a year after the bulk of the data "
            f"ends, {bulk_end:%Y-%m-%d}): a wrong year or clock? They move the end of the "
            f"data, and the default --as-of, to {latest:%Y-%m-%d}"
        )
        problems.append(Problem(name, column, message, count, examples))
    return LateDates(bulk_end, newest, tuple(problems))


def _dated_count(table: Table, column: str) -> int:
    if isinstance(table, TableView):
        return int(
            table.connection.execute(
                f"SELECT count({quote(column)}) FROM {quote(table.name)}"
            ).fetchall()[0][0]
        )
    return int(table[column].notna().sum())


def _largest(table: Table, column: str, n: int) -> np.ndarray:
    if isinstance(table, TableView):
        found = table.connection.sql(
            f"SELECT {quote(column)} FROM {quote(table.name)} WHERE {quote(column)} IS NOT NULL "
            f"ORDER BY 1 DESC LIMIT {n}"
        ).to_arrow_table()
        return found.column(0).to_numpy().astype("datetime64[us]")
    return table[column].dropna().nlargest(n).to_numpy(dtype="datetime64[us]")


def _late(
    name: str, table: Table, column: str, newest: pd.Timestamp, show: tuple[str, ...]
) -> tuple[int, pd.Timestamp, list[dict[str, Any]]] | None:
    """Rows of ``column`` after ``newest``: their count, the latest, example rows (None: none)."""
    if not isinstance(table, TableView):
        late = (table[column] > newest).to_numpy(dtype=bool)
        if not late.any():
            return None
        problem = _problem(name, column, "", late, table, show)
        return problem.count, table.loc[late, column].max(), problem.examples
    con, view, col = table.connection, quote(table.name), quote(column)
    count, latest = con.execute(
        f"SELECT count(*), max({col}) FROM {view} WHERE {col} > ?", [newest.to_pydatetime()]
    ).fetchall()[0]
    if not count:
        return None
    numbered = ROW in [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
    source = view if numbered else f"(SELECT row_number() OVER () - 1 AS {ROW}, * FROM {view})"
    shown = [c for c in dict.fromkeys(show) if c in table.columns]
    rows = con.execute(
        f"SELECT {', '.join([ROW, *map(quote, shown)])} FROM {source} WHERE {col} > ? "
        f"ORDER BY {ROW} LIMIT {MAX_EXAMPLES}",
        [newest.to_pydatetime()],
    ).fetchall()
    examples = [
        {"row": int(r[0]), **{c: readable(v) for c, v in zip(shown, r[1:], strict=True)}}
        for r in rows
    ]
    return int(count), pd.Timestamp(latest), examples
