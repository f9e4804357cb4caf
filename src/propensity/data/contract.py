"""Canonical tables: specs, reading, validation with clear errors, atomic writing, a summary.

A world or an import is a folder with one file per table, ``NAME.csv`` or ``NAME.parquet``, for
``NAME`` in :data:`TABLE_NAMES` (:func:`open_tables` also reads a folder ``NAME/`` of part
files). Only ``accounts`` is required; any other table may be absent (the toolkit trains on the
families that are present). Other files and the ``truth/`` subfolder are never read.

:func:`load_tables` reads the files into pandas with :mod:`propensity.io`; :func:`open_tables`
has DuckDB read them where they lie (:mod:`propensity.data.sources`), for tables larger than
memory. Either way a CSV's encoding and separator are given (``--encoding``, ``--sep``) or
detected per file (:func:`propensity.io.sniff_csv`: UTF-8, else cp1252, else latin-1; the
separator sniffed among , ; tab |), and a file that cannot be read (empty, binary, malformed,
a truncated Parquet file) is a problem naming the table and the file, like any other.

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
:func:`summarize` also warns (without failing) about rows dated after the newest plausible
date (:func:`late_dates`: later than tomorrow, or more than a year after the bulk of the data).
Row numbers in errors are 0-based positions in the input (for a CSV: data lines after the
header).

Where things are: the specs and :class:`Tables` in :mod:`propensity.data.specs`, the parsing of
text in :mod:`propensity.data.parse` (the one parser, its rules in DuckDB SQL), the checks as
DuckDB queries in :mod:`propensity.data.checks` (for files and frames alike), frames through
them in :mod:`propensity.data.validate`, files read by DuckDB in :mod:`propensity.data.sources`;
this module reads (:func:`load_tables` into pandas, :func:`open_tables` where the files lie, for
data larger than memory), writes and summarises table folders and re-exports the names above.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from propensity.data.checks import (
    ROW,
    RawTable,
    UnknownAccounts,
    Validated,
    check_tables,
    quote,
)
from propensity.data.parse import to_pandas_columns
from propensity.data.sources import find_table_files, raw_table
from propensity.data.specs import (
    FAMILY_TABLES,
    SPECS,
    STATIC_ACCOUNT_COLUMNS,
    TABLE_NAMES,
    TECH_PREFIX,
    ColumnSpec,
    Dtype,
    Tables,
    TableSpec,
    TableView,
    export_only_account_columns,
    is_static_account_column,
)
from propensity.data.validate import (
    ContractError,
    ContractWarning,
    Problem,
    late_dates,
    validate_tables,
)
from propensity.io import (
    InputFileError,
    check_encoding,
    check_separator,
    read_csv,
    read_parquet,
    write_parquet,
)

__all__ = [
    "FAMILY_TABLES",
    "SPECS",
    "STATIC_ACCOUNT_COLUMNS",
    "TABLE_NAMES",
    "TECH_PREFIX",
    "ColumnSpec",
    "ContractError",
    "ContractWarning",
    "Dtype",
    "Problem",
    "TableSpec",
    "Tables",
    "UnknownAccounts",
    "ValidationReport",
    "export_only_account_columns",
    "is_static_account_column",
    "late_dates",
    "load_tables",
    "open_tables",
    "read_tables",
    "summarize",
    "validate_tables",
    "write_tables",
]


# --------------------------------------------------------------------------------------------
# files


def _table_files(folder: Path) -> dict[str, list[Path]]:
    return {
        name: [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.is_file()]
        for name in TABLE_NAMES
    }


def read_tables(
    folder: Path | str, *, encoding: str | None = None, sep: str | None = None
) -> dict[str, pd.DataFrame]:
    """Raw tables of a folder: ``NAME.parquet`` or ``NAME.csv`` per table, as stored.

    CSV columns are all read as text ("" and the usual NA markers are missing), so that types
    are parsed in one place (validate_tables, with propensity.data.parse). A CSV's encoding and
    separator are ``encoding`` / ``sep`` when given, else detected per file
    (:func:`propensity.io.read_csv`: UTF-8, else cp1252, else latin-1; the separator sniffed
    among , ; tab |), with a :class:`propensity.io.CsvFormatWarning` when not UTF-8 or not
    ``,``. Other files and subfolders (such as ``truth/``) are ignored.
    FileNotFoundError / NotADirectoryError for a bad folder; ContractError when accounts is
    missing, a table has both a CSV and a Parquet file, or a file cannot be read (empty,
    binary, truncated or damaged Parquet, malformed CSV: each named with what to do).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"table folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"table folder {folder} is not a directory")
    encoding, sep = check_encoding(encoding), check_separator(sep)  # before any file is read
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
            try:
                tables[name] = (
                    read_csv(path, encoding=encoding, sep=sep, dtype=str, keep_default_na=True)
                    if path.suffix == ".csv"
                    else read_parquet(path)
                )
            except InputFileError as exc:
                problems.append(Problem(name, None, str(exc), 1))
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


def load_tables(
    folder: Path | str,
    *,
    unknown_accounts: UnknownAccounts = "error",
    encoding: str | None = None,
    sep: str | None = None,
) -> Tables:
    """read_tables + validate_tables."""
    raw = read_tables(folder, encoding=encoding, sep=sep)
    return validate_tables(raw, unknown_accounts=unknown_accounts)


IN_MEMORY_TABLES = ("accounts", "opportunities")  # the size of the spine: frames


def open_tables(
    folder: Path | str,
    con: duckdb.DuckDBPyConnection,
    *,
    unknown_accounts: UnknownAccounts = "error",
    encoding: str | None = None,
    sep: str | None = None,
) -> Tables:
    """The tables of ``folder`` read and validated by DuckDB where they lie (larger than memory).

    Each table is ``NAME.parquet``, ``NAME.csv`` or a folder ``NAME/`` of part files
    (:mod:`propensity.data.sources`). Every check of :func:`validate_tables` runs as queries
    over the files, with the same messages. Accounts and opportunities (the size of the spine)
    come back as pandas frames; contacts, events and intent stay in ``con`` as
    :class:`TableView`\\ s, so the connection must stay open while the tables are used.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"table folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"table folder {folder} is not a directory")
    encoding, sep = check_encoding(encoding), check_separator(sep)
    found, problems = find_table_files(folder)
    raw = {}
    for name, files in found.items():
        try:
            raw[name] = raw_table(con, files, encoding=encoding, sep=sep)
        except InputFileError as exc:
            problems.append(Problem(name, None, str(exc), 1))
    if problems:
        raise ContractError(problems)
    validated = check_tables(con, raw, unknown_accounts=unknown_accounts)
    for note in validated.notes:
        warnings.warn(note, ContractWarning, stacklevel=2)
    return checked_tables(con, raw, validated)


def checked_tables(
    con: duckdb.DuckDBPyConnection, raw: Mapping[str, RawTable], validated: Validated
) -> Tables:
    """The tables :func:`propensity.data.checks.check_tables` left in ``con``: accounts and
    opportunities as frames (in input order), the others as :class:`TableView`\\ s."""
    tables: dict[str, pd.DataFrame | TableView] = {}
    for name, view in validated.views.items():
        columns = (*validated.dtypes[name], *validated.extra[name])
        if name in IN_MEMORY_TABLES:
            order = f" ORDER BY {ROW}" if raw[name].numbered else ""
            selected = ", ".join(map(quote, columns))
            arrow = con.sql(f"SELECT {selected} FROM {view}{order}").to_arrow_table()
            tables[name] = to_pandas_columns(arrow, validated.dtypes[name])
            con.execute(f"DROP VIEW {view}")  # the feature build registers the frame instead
        else:
            tables[name] = TableView(con, view, columns)
    return Tables(**tables)


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
    newest_plausible: pd.Timestamp | None = None
    late: tuple[Problem, ...] = ()  # rows dated after newest_plausible (see late_dates)

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
        lines += [f"warning: {problem}" for problem in self.late]
        return lines


def summarize(tables: Tables, today: pd.Timestamp | None = None) -> ValidationReport:
    """Summary of validated tables; dates span events.ts, intent.week, opportunity dates. Rows
    dated after the newest plausible date (:func:`late_dates`, ``today`` fixes its clock) are
    warnings."""
    rows = {name: len(tables.get(name)) for name in tables.present()}
    dates = []
    for name, column in (
        ("events", "ts"),
        ("intent", "week"),
        ("opportunities", "created_at"),
        ("opportunities", "closed_at"),
    ):
        dates += list(tables.time_range(name, column) or ())

    def accounts_in(name: str) -> int:
        table = tables.get(name)
        if isinstance(table, TableView):
            query = f"SELECT count(DISTINCT account_id) FROM {quote(table.name)}"
            return int(table.connection.execute(query).fetchall()[0][0])
        return 0 if table is None else int(table["account_id"].nunique())

    late = late_dates(tables, today)
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
        newest_plausible=late.newest_plausible,
        late=late.problems,
    )
