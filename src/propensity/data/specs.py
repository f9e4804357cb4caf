"""The canonical tables: their names, columns, dtypes, keys and time columns, and :class:`Tables`.

What each dtype means once validated, and every check, is described in
:mod:`propensity.data.contract`; the checks themselves are in :mod:`propensity.data.validate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

__all__ = [
    "FAMILY_TABLES",
    "SPECS",
    "STATIC_ACCOUNT_COLUMNS",
    "TABLE_NAMES",
    "TECH_PREFIX",
    "ColumnSpec",
    "Dtype",
    "Table",
    "TableSpec",
    "TableView",
    "Tables",
    "export_only_account_columns",
    "is_static_account_column",
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


def is_static_account_column(name: str) -> bool:
    """True for account columns that may be used at any snapshot (firmographics, tech_* flags)."""
    return name in STATIC_ACCOUNT_COLUMNS or name.startswith(TECH_PREFIX)


def export_only_account_columns(columns: Iterable[str]) -> tuple[str, ...]:
    """Account columns outside the contract and not tech_*: known only as of the export."""
    known = set(SPECS["accounts"].column_names)
    return tuple(c for c in columns if c not in known and not c.startswith(TECH_PREFIX))


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


@dataclass(frozen=True, eq=False)
class TableView:
    """A validated table that stays in DuckDB: the view ``name`` in ``connection`` (canonical
    columns over the table's files, read on every query), for tables larger than memory. The
    connection must stay open while the view is used."""

    connection: Any  # a duckdb.DuckDBPyConnection (imported lazily: pandas users need no DuckDB)
    name: str
    columns: tuple[str, ...]

    def __contains__(self, column: object) -> bool:
        return column in self.columns

    def __len__(self) -> int:
        rows = self.connection.execute(f"SELECT count(*) FROM {_quote(self.name)}").fetchall()
        return int(rows[0][0])

    def time_range(self, column: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Earliest and latest value of a timestamp column (None when all are missing)."""
        first, last = self.connection.execute(
            f"SELECT min({_quote(column)}), max({_quote(column)}) FROM {_quote(self.name)}"
        ).fetchall()[0]
        return None if first is None else (pd.Timestamp(first), pd.Timestamp(last))

    def to_pandas(self) -> pd.DataFrame:
        """The whole table in memory (only for tables known to fit)."""
        columns = ", ".join(map(_quote, self.columns))
        return self.connection.sql(f"SELECT {columns} FROM {_quote(self.name)}").df()

    def frames(self, rows: int = 1_000_000) -> Iterator[pd.DataFrame]:
        """The table as pandas frames of at most ``rows`` rows each, in reading order, with the
        dtypes :meth:`to_pandas` gives (for a pass over a table larger than memory)."""
        import pyarrow as pa

        from propensity.data.parse import to_pandas_columns  # the parser's canonical dtypes

        spec = {c.name: c.dtype for c in SPECS[self.name].columns} if self.name in SPECS else {}
        dtypes = {c: spec[c] for c in self.columns if c in spec}
        columns = ", ".join(map(_quote, self.columns))
        reader = self.connection.sql(f"SELECT {columns} FROM {_quote(self.name)}").to_arrow_reader(
            rows
        )
        for batch in reader:  # the connection is busy until the last batch is read
            yield to_pandas_columns(pa.Table.from_batches([batch]), dtypes)


Table = pd.DataFrame | TableView


@dataclass(frozen=True, eq=False)
class Tables:
    """Validated canonical tables; ``accounts`` always present, others None when absent.

    A table is a pandas frame, or a :class:`TableView` when it stays in DuckDB (see
    :func:`propensity.data.contract.open_tables`: accounts and opportunities, which are the
    size of the spine, are always frames)."""

    accounts: pd.DataFrame
    contacts: Table | None = None
    events: Table | None = None
    intent: Table | None = None
    opportunities: pd.DataFrame | None = None

    def present(self) -> tuple[str, ...]:
        """Names of the tables that are not None, in TABLE_NAMES order."""
        return tuple(name for name in TABLE_NAMES if getattr(self, name) is not None)

    def get(self, name: str) -> Table | None:
        """The table ``name`` or None if absent; KeyError for a name outside TABLE_NAMES."""
        if name not in TABLE_NAMES:
            raise KeyError(f"unknown table {name!r}; tables are: {', '.join(TABLE_NAMES)}")
        return getattr(self, name)

    @property
    def connection(self) -> Any | None:
        """The DuckDB connection holding the tables kept in DuckDB (None: all are frames)."""
        views = [t for t in map(self.get, TABLE_NAMES) if isinstance(t, TableView)]
        return views[0].connection if views else None

    def time_range(self, name: str, column: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """Earliest and latest value of a timestamp column; None when the table or the column
        is absent or every value is missing."""
        table = self.get(name)
        if table is None or column not in table:
            return None
        if isinstance(table, TableView):
            return table.time_range(column)
        values = table[column].dropna()
        return (values.min(), values.max()) if len(values) else None

    @property
    def export_only_account_columns(self) -> tuple[str, ...]:
        """Extra account columns known only as of the export (never features at a past date)."""
        return export_only_account_columns(self.accounts.columns)

    @property
    def static_account_columns(self) -> tuple[str, ...]:
        """Account columns present here that are static (usable at any snapshot)."""
        return tuple(c for c in self.accounts.columns if is_static_account_column(c))

    def latest_before(
        self, name: str, column: str, before: pd.Timestamp, delay_days: int = 0
    ) -> pd.Timestamp | None:
        """The latest ``column + delay_days`` at or before ``before`` when ``delay_days`` > 0
        (a row known ``delay_days`` after its date), else the latest ``column`` strictly before
        ``before``; None when the table or column is absent or no row qualifies."""
        table = self.get(name)
        if table is None or column not in table:
            return None
        delay = pd.Timedelta(days=delay_days)
        if isinstance(table, TableView):
            known = f"{_quote(column)} + INTERVAL {int(delay_days)} DAY"
            condition = f"{known} <= ?" if delay_days else f"{_quote(column)} < ?"
            latest = table.connection.execute(
                f"SELECT max({known}) FROM {_quote(table.name)} WHERE {condition}",
                [before.to_pydatetime()],
            ).fetchall()[0][0]
            return None if latest is None else pd.Timestamp(latest)
        if delay_days:
            known = table[column] + delay
            latest = known[known <= before].max()
        else:
            latest = table[column][table[column] < before].max()
        return None if pd.isna(latest) else pd.Timestamp(latest)

    def rows_of(self, name: str, accounts: Iterable[str]) -> pd.DataFrame | None:
        """The rows of table ``name`` whose ``account_id`` is in ``accounts``, as a frame (a
        table kept in DuckDB is filtered there: only those rows are read); None if absent."""
        table = self.get(name)
        if table is None:
            return None
        accounts = pd.Series(list(accounts), dtype="str")
        if not isinstance(table, TableView):
            return table[table["account_id"].isin(accounts)]
        con = table.connection
        con.register("rows_of_accounts", pd.DataFrame({"account_id": accounts}))
        try:
            columns = ", ".join(_quote(c) for c in table.columns)
            return con.sql(
                f"SELECT {columns} FROM {_quote(table.name)} "
                "WHERE account_id IN (SELECT account_id FROM rows_of_accounts)"
            ).df()
        finally:
            con.unregister("rows_of_accounts")

    def known_before(self, day: pd.Timestamp | str) -> Tables:
        """The tables as an export made at ``day`` would have held them: events, contacts and
        opportunities created before ``day``, intent weeks delivered by then (a week is known
        from its start + 7 days), and an opportunity still open at ``day`` shown open (its
        outcome and ``closed_at`` lie after the export). Accounts are kept whole; columns known
        only as of the real export stay as they are (the leakage screen handles them).

        What a model trained at ``day`` saw: for a backtest or a monitoring test. Tables in
        memory only (:func:`propensity.data.contract.load_tables`)."""
        if self.connection is not None:
            raise TypeError(
                "known_before needs the tables in memory (load_tables), not kept in DuckDB"
            )
        day = pd.Timestamp(day)

        def before(name: str, keep) -> pd.DataFrame | None:
            frame = self.get(name)
            return None if frame is None else frame[keep(frame)].reset_index(drop=True)

        opportunities = before("opportunities", lambda f: f["created_at"] < day)
        if opportunities is not None and "closed_at" in opportunities:
            later = opportunities["closed_at"] >= day
            opportunities.loc[later, "closed_at"] = pd.NaT
            opportunities.loc[later, "outcome"] = "open"
        return Tables(
            accounts=self.accounts,
            contacts=before(
                "contacts",
                lambda f: (
                    f["created_at"].isna() | (f["created_at"] < day)
                    if "created_at" in f
                    else pd.Series(True, index=f.index)
                ),
            ),
            events=before("events", lambda f: f["ts"] < day),
            intent=before("intent", lambda f: f["week"] + pd.Timedelta(days=7) <= day),
            opportunities=opportunities,
        )
