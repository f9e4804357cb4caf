"""The contract's checks as DuckDB queries: over files where they lie or over registered frames.

:func:`check_tables` takes each table as read (a :class:`RawTable`: a relation in a DuckDB
connection) and parses every column with the one parser's SQL rules
(:func:`propensity.data.parse.column_rule`), then runs every check of the contract (see
:mod:`propensity.data.contract` for the list) as queries: one scan per table counts every
row-level check, duplicate keys are a grouping, references to accounts and contacts are checked
on each table's distinct reference values. Each failed check is a :class:`Problem` with the
count and up to five example rows, named by their position in the input. Nothing is loaded
into pandas: files larger than memory are checked as they lie.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb

from propensity.data.parse import Rule, column_rule, is_float_type, whole_number_query
from propensity.data.problems import MAX_EXAMPLES, ContractError, Problem, plural
from propensity.data.specs import SPECS, TABLE_NAMES, TECH_PREFIX, ColumnSpec, TableSpec
from propensity.duck import scalar

__all__ = ["ROW", "RawTable", "UnknownAccounts", "Validated", "check_tables", "quote"]

UnknownAccounts = Literal["error", "drop"]

_NON_NEGATIVE = {
    "accounts": ("employees", "annual_revenue"),
    "events": ("minutes",),
    "opportunities": ("amount",),
}


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
    unchanged: frozenset[str] = frozenset()  # text columns the parse changed nowhere: as read
    rules: dict[str, Rule] = field(default_factory=dict)  # the parse of each column

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
        f"SELECT {ROW} FROM {source} WHERE {condition} ORDER BY {ROW} LIMIT {MAX_EXAMPLES}"
    ).fetchall()
    return [int(r[0]) for r in rows]


@dataclass(frozen=True)
class _Check:
    """One row-level check: where, the SQL condition of a failing row, the words; ``single``
    when the condition reads its column only (then a text column is checked on its distinct
    values)."""

    column: str | None
    condition: str
    noun: str
    what: str
    show: tuple[str, ...]
    single: bool = False


def _count_checks(
    con: duckdb.DuckDBPyConnection, checked: _Checked, checks: list[_Check]
) -> list[int]:
    """The failing rows of every check: the checks of one text column on its distinct values
    with their counts (the parse of a text column costs far more than grouping by it), the
    others in one scan of the table."""
    counts: dict[int, int] = {}
    by_text = {
        column: [i for i, c in enumerate(checks) if c.single and c.column == column]
        for column in checked.text
    }
    for column, indexes in by_text.items():
        if not indexes:
            continue
        rule, name = checked.rules[column], quote(column)
        distinct = (
            f"SELECT {rule.value} AS {name}, {rule.failed} AS {_failed(column)}, "
            f"{name} AS {_as_read(column)}, n "
            f"FROM (SELECT {name}, count(*) AS n FROM {checked.raw.relation} GROUP BY {name})"
        )
        sums = ", ".join(
            f"coalesce(sum(n) FILTER (WHERE coalesce({checks[i].condition}, false)), 0)"
            for i in indexes
        )
        found = con.execute(f"SELECT {sums} FROM ({distinct})").fetchall()[0]
        counts.update(zip(indexes, found, strict=True))
    rest = [i for i in range(len(checks)) if i not in counts]
    if rest:
        row = con.execute(
            "SELECT "
            + ", ".join(
                f"count(*) FILTER (WHERE coalesce({checks[i].condition}, false))" for i in rest
            )
            + f" FROM {checked.view}"
        ).fetchall()[0]
        counts.update(zip(rest, row, strict=True))
    return [int(counts[i]) for i in range(len(checks))]


def _report(
    con: duckdb.DuckDBPyConnection,
    checked: _Checked,
    checks: list[_Check],
    counts: list[int],
    problems: list[Problem],
    stage: int,
) -> None:
    """A Problem with example rows for each check that failed."""
    for i, (check, count) in enumerate(zip(checks, counts, strict=True)):
        if count:
            condition = f"coalesce({check.condition}, false)"
            order = (TABLE_NAMES.index(checked.raw.name), stage, i)
            _add(con, checked, check, count, condition, problems, order)


def _add(
    con: duckdb.DuckDBPyConnection,
    checked: _Checked,
    check: _Check,
    count: int,
    condition: str,
    problems: list[Problem],
    order: tuple[int, ...],
) -> None:
    rows = _example_rows(con, checked, condition)
    columns = [c for c in dict.fromkeys((*checked.ids, *check.show)) if c in checked.raw.columns]
    message = f"{plural(count, check.noun)} {check.what}"
    problems.append(
        Problem(
            checked.raw.name,
            check.column,
            message,
            count,
            checked.raw.examples(rows, columns),
            order,
        )
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
    return Problem(
        spec.name, None, message, len(missing), [], (TABLE_NAMES.index(spec.name), 0, -1)
    )


def _parse_view(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    unchanged: frozenset[str] = frozenset(),
    known: dict[str, Rule] | None = None,
) -> _Checked:
    """Create ``parsed_NAME``: every contract column (and tech_* flag) through the one parser,
    but the ``unchanged`` text columns (the parse changes none of their values) as read;
    ``known``: the rules of a first pass (not worked out again)."""
    known = known or {}
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
    rules: dict[str, Rule] = {}
    for col in columns:
        name, sql_type = quote(col.name), raw.types[col.name]
        rule = known.get(col.name)
        if rule is None:
            whole = (
                col.dtype == "id"
                and is_float_type(sql_type)
                and bool(scalar(con, whole_number_query(name, raw.relation)))
            )
            rule = column_rule(name, sql_type, col.dtype, col.allowed, whole)
        rules[col.name] = rule
        if col.name in unchanged:
            rule = rule._replace(value=name, failed="false")
        selected += [f"{rule.value} AS {name}", f"{rule.failed} AS {_failed(col.name)}"]
        dtypes[col.name] = col.dtype
        if sql_type == "VARCHAR" and col.dtype in ("id", "string", "category") and not unchanged:
            selected.append(f"{name} AS {_as_read(col.name)}")
            text.append(col.name)
    selected += [quote(c) for c in extra]
    view = f"parsed_{raw.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {', '.join(selected)} FROM {raw.relation}"
    )
    return _Checked(raw, view, dtypes, extra, tuple(text), unchanged, rules)


def _table_checks(checked: _Checked) -> list[_Check]:
    """Parse failures and missing required values (checked before duplicate keys)."""
    spec = SPECS[checked.raw.name]
    checks = [
        _Check(c, _failed(c), "value", f"are {_problem_text(checked.dtypes[c])}", (c,), True)
        for c in checked.dtypes
    ]
    checks += [
        _Check(
            c,
            f"{quote(c)} IS NULL AND NOT {_failed(c)}",
            "value",
            "missing in a required column",
            (c,),
            True,
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
        _Check(c, f"{quote(c)} < 0", "value", "are negative", (c,), True)
        for c in _NON_NEGATIVE.get(spec.name, ())
        if c in present
    ]
    if spec.name == "intent" and "score" in present:
        checks.append(
            _Check(
                "score", "score < 0 OR score > 100", "value", "are outside 0..100", ("score",), True
            )
        )
    checks += [
        _Check(
            c.name,
            f"{quote(c.name)} NOT IN ({_in_list(c.allowed)})",
            "value",
            f"not allowed (allowed: {', '.join(c.allowed)})",
            (c.name,),
            True,
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
    what = f"share a duplicate key ({plural(int(keys), 'key')} duplicated)"
    check = _Check(", ".join(key), condition, "row", what, key)
    order = (TABLE_NAMES.index(checked.raw.name), 2, 0)
    _add(con, checked, check, int(rows), condition, problems, order)


EMPTY_TABLE = "empty table (0 rows); remove the file when the data is absent"


def _check_table(
    con: duckdb.DuckDBPyConnection, raw: RawTable, problems: list[Problem], empty_ok: bool
) -> _Checked | None:
    """Parse and check one table; append problems; None when the table cannot be checked (empty,
    unless ``empty_ok``; duplicate column names; another table's file)."""
    name, spec = raw.name, SPECS[raw.name]
    if not empty_ok and not scalar(con, f"SELECT EXISTS (SELECT 1 FROM {raw.relation})"):
        problems.append(Problem(name, None, EMPTY_TABLE, 0))
        return None
    duplicated = [c for c, n in Counter(raw.columns).items() if n > 1]
    if duplicated:
        cols = ", ".join(duplicated)
        what = f"duplicate column names: {cols}"
        problems.append(
            Problem(name, None, what, len(duplicated), [], (TABLE_NAMES.index(name), 0, -1))
        )
        return None
    if mixed_up := _mixed_up(spec, raw.columns):
        problems.append(mixed_up)
        return None
    found = ", ".join(raw.columns)
    for i, col in enumerate(spec.required_columns):
        if col not in raw.types:
            what = f"missing required column (columns found: {found})"
            problems.append(Problem(name, col, what, 0, [], (TABLE_NAMES.index(name), 0, i)))
    checked = _parse_view(con, raw)
    first, then = _table_checks(checked), _value_checks(checked)
    # counted in the same scan: the text columns whose parse changes nothing (clean text, the
    # usual case in Parquet) are then used as read, so later queries skip the parse
    changes = [
        _Check(c, f"{_as_read(c)} IS DISTINCT FROM {quote(c)}", "", "", (), True)
        for c in checked.text
    ]
    counts = _count_checks(con, checked, first + then + changes)
    changed = counts[len(first) + len(then) :]
    if unchanged := frozenset(c for c, n in zip(checked.text, changed, strict=True) if not n):
        # later queries read those columns as read
        checked = _parse_view(con, raw, unchanged, checked.rules)
    _report(con, checked, first, counts[: len(first)], problems, 1)
    _check_duplicate_keys(con, checked, problems)
    _report(con, checked, then, counts[len(first) : len(first) + len(then)], problems, 3)
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
    grouped = {table: f"references_{table}" for table, _, _ in references}
    for table, view in grouped.items():
        keys = ", ".join(quote(column) for name, column, _ in references if name == table)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT {keys}, count(*) AS n "
            f"FROM {checked[table].view} GROUP BY ALL"
        )
    for i, (name, column, parent) in enumerate(references):  # contacts before events
        kept_parent = " AND ".join(keep[parent]) or "true"
        col = quote(column)
        known = (
            f"SELECT {col} FROM {checked[parent].view} WHERE {kept_parent} AND {col} IS NOT NULL"
        )
        unknown = f"{col} IS NOT NULL AND {col} NOT IN ({known})"
        count = scalar(con, f"SELECT coalesce(sum(n), 0) FROM {grouped[name]} WHERE {unknown}")
        if not count:
            continue
        what = f"whose {column} is not in {parent}"
        if unknown_accounts == "error":
            check = _Check(column, unknown, "row", what, (column,))
            _add(con, checked[name], check, int(count), unknown, problems, (len(TABLE_NAMES), i))
        else:
            keep[name].append(f"NOT ({unknown})")
            notes.append(
                f"table {name!r}, column {column!r}: dropped {plural(int(count), 'row')} {what}"
            )
    for view in grouped.values():
        con.execute(f"DROP TABLE {view}")
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
    empty_ok: bool = False,
) -> Validated:
    """Parse and check tables as read (see propensity.data.contract), in DuckDB.

    Raises ContractError listing every problem found. Leaves one view per table that passed in
    ``con`` (see :class:`Validated`); a table left with no rows after dropping is absent. Every
    check runs as a query over the relations, so files larger than memory are checked without
    being loaded. With ``empty_ok`` a table with no rows is checked like any other (a part of a
    table split by account, as Spark checks it, may be empty) and kept.
    """
    if unknown_accounts not in ("error", "drop"):
        raise ValueError(f"unknown_accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    con.execute("SET TimeZone = 'UTC'")  # naive timestamp text is UTC, whoever opened con
    problems = [
        Problem(
            str(name),
            None,
            f"unknown table name; tables are: {', '.join(TABLE_NAMES)}",
            0,
            [],
            (-1,),
        )
        for name in unknown_names
    ]
    checked: dict[str, _Checked] = {}
    for name in TABLE_NAMES:
        if name not in raw:
            if SPECS[name].required:
                what = f"missing required table (provide {name}.csv or {name}.parquet)"
                problems.append(Problem(name, None, what, 0, [], (TABLE_NAMES.index(name), 0, -1)))
            continue
        result = _check_table(con, raw[name], problems, empty_ok)
        if result is not None:
            checked[name] = result
    keep, notes = _orphans(con, checked, unknown_accounts, problems)
    if problems:
        raise ContractError(problems)
    views: dict[str, str] = {}
    for name, table in checked.items():
        spec_columns = [quote(c) for c in table.dtypes]
        numbered = [ROW] if table.raw.numbered else []
        where = " AND ".join(keep[name]) or "true"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT "
            f"{', '.join([*spec_columns, *map(quote, table.extra), *numbered])} "
            f"FROM {table.view} WHERE {where}"
        )
        if not empty_ok and keep[name] and not scalar(con, f"SELECT EXISTS (SELECT 1 FROM {name})"):
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
