"""The engine of the engagement family: the events coded with Arrow and DuckDB's temp tables.

Point-in-time rule (as in :mod:`propensity.features.engagement`): an event counts for snapshot
``as_of`` only if ``ts < as_of``; its contact counts as identified only if the contact was known
before ``as_of``.

The text columns of the events are first turned into small integer codes with Arrow (account
key, contact key, event-type and channel codes), so that DuckDB never hashes or compares strings
over the events. The events are then pre-aggregated into two small period tables (per
account-period with one count column per event type and a bitmask of the channels seen; per
contact-period), each joined to the snapshot dates whose look-back window covers the period (a
tiny table), so a period row expands to ``lookback / cadence`` rows instead of every event
meeting every snapshot. Distinct contacts are two-stage (first the most recent day per contact,
then a plain count), distinct channels a bit count of the OR of the daily masks; both are much
cheaper than ``count(DISTINCT ...)`` under a filter. Each ``create_*`` function below creates
one temp table; :func:`create_view` joins them to the spine as ``features_engagement``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from propensity.features.registry import FeatureConfig
from propensity.features.sql import known_at

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

MASK_BITS = 62  # channels per BIGINT bitmask (kept clear of the sign bit)

INTERMEDIATE_TABLES = (
    "engagement_daily",
    "engagement_contact_daily",
    "engagement_contact_info",
    "contacts_known",
    "engagement_day_map",
    "engagement_periods",
    "engagement_period_map",
)
INTERMEDIATE_VIEWS = ("engagement_input", "engagement_contact_ids")


def ranked_types(encoded: tuple[pa.ChunkedArray, pa.Array], config: FeatureConfig):
    """The ``max_event_types`` most frequent event types (ties by name) of coded events."""
    codes, values = encoded
    counts = np.bincount(
        pc.drop_null(codes).to_numpy() if len(codes) else np.array([], dtype=np.int64),
        minlength=len(values),
    )
    ranked = sorted(
        zip(values.to_pylist(), counts.tolist(), strict=True), key=lambda item: (-item[1], item[0])
    )
    return tuple(name for name, _ in ranked[: config.max_event_types])


def encode(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.Array]:
    """Dictionary codes of a text column (nulls stay null) and the dictionary."""
    encoded = pc.dictionary_encode(column)
    if encoded.num_chunks == 0:
        return pa.chunked_array([], type=pa.int32()), pa.array([], type=column.type)
    # one hash table over all chunks: every chunk carries the same, final dictionary
    codes = pa.chunked_array([chunk.indices for chunk in encoded.chunks], type=pa.int32())
    return codes, encoded.chunk(0).dictionary


def coded_events(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> tuple[pa.Table, tuple[str, ...], pa.Array | None, int]:
    """The events with integer codes instead of text.

    Returns the table (akey, ckey, tcode, ccode, ts, minutes), the counted event types (tcode
    indexes them), the contact ids (ckey indexes them) and the number of channels.
    """
    events = pa.Table.from_pandas(tables.events, preserve_index=False)
    accounts = con.sql("SELECT account_id FROM spine_accounts ORDER BY akey").to_arrow_table()
    akey = pc.add(pc.index_in(events["account_id"], value_set=accounts["account_id"]), 1)
    type_codes, type_values = encode(events["event_type"])
    types = config.event_types or ranked_types((type_codes, type_values), config)
    # dictionary code -> position in ``types`` (null for the types not counted)
    lookup = pc.index_in(type_values, value_set=pa.array(types, type=type_values.type))
    columns = {
        "akey": pc.cast(akey, pa.int32()),
        "ckey": None,
        "tcode": pc.take(lookup, type_codes),
        "ccode": None,
        "ts": events["ts"],
    }
    contact_ids = None
    if "contact_id" in events.column_names:
        columns["ckey"], contact_ids = encode(events["contact_id"])
    else:
        columns["ckey"] = pa.nulls(len(events), pa.int32())
    n_channels = 0
    if "channel" in events.column_names:
        columns["ccode"], channel_values = encode(events["channel"])
        n_channels = len(channel_values)
    else:
        columns["ccode"] = pa.nulls(len(events), pa.int32())
    if "minutes" in events.column_names:
        columns["minutes"] = events["minutes"]
    return pa.table(columns), tuple(types), contact_ids, n_channels


def in_window(table: str, lookback: int) -> str:
    """Rows of a period table joined to the snapshot dates that can see them, with their age.

    The join goes through ``engagement_period_map`` (period -> as_of, age), a table of a few
    thousand rows, so it is a hash join on ``period`` rather than a range join.
    """
    return f"""
        SELECT d.*, m.as_of, m.age
        FROM {table} d
        JOIN engagement_period_map m ON m.period = d.period AND m.age <= {lookback}
    """


def create_period_maps(
    con: duckdb.DuckDBPyConnection, config: FeatureConfig, coded: pa.Table
) -> None:
    """Cut the days into periods that every window of every snapshot covers whole or not at all.

    The cuts are the days ``as_of - edge`` for every snapshot and window edge, so counting per
    (account, period) instead of per (account, day) gives the same window sums from about a
    third of the rows (monthly snapshots share most cuts). ``engagement_periods`` maps each day
    from the first to the last event to its period; ``engagement_period_map`` each period to
    the snapshots that see it, with the age of its oldest day (any day would do, as the window
    filters are whole-period).
    """
    lookback = config.engagement_lookback_days
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    edges = sorted({0, lookback, recent, recent + prior, *config.windows_days})
    if len(coded):
        first_day, last_day = (v.as_py() for v in pc.min_max(coded["ts"]).values())
    else:
        first_day = last_day = None
    as_of_day = "CAST(s.as_of AS DATE)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_day_map AS
        SELECT CAST(d.day AS DATE) AS day, s.as_of, date_diff('day', CAST(d.day AS DATE), {as_of_day}) AS age
        FROM (
            SELECT unnest(generate_series(
                CAST(min(as_of) AS DATE) - INTERVAL {lookback} DAY, CAST(max(as_of) AS DATE), INTERVAL 1 DAY
            )) AS day
            FROM snapshot_dates
        ) d
        JOIN snapshot_dates s
          ON {known_at("CAST(d.day AS DATE)", as_of_day)}
         AND {as_of_day} <= CAST(d.day AS DATE) + INTERVAL {lookback} DAY
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_periods AS
        WITH cuts AS (
            SELECT DISTINCT CAST(as_of AS DATE) - CAST(e AS INTEGER) AS cut
            FROM snapshot_dates, (SELECT unnest({list(edges)}) AS e)
        ),
        days AS (
            SELECT CAST(unnest(generate_series(
                least(CAST(? AS DATE), min(day)), greatest(CAST(? AS DATE), max(day)), INTERVAL 1 DAY
            )) AS DATE) AS day
            FROM engagement_day_map
        )
        SELECT d.day, CAST(count(c.cut) AS INTEGER) AS period
        FROM days d LEFT JOIN cuts c ON c.cut <= d.day
        GROUP BY d.day
        """,
        [first_day, last_day],
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE engagement_period_map AS
        SELECT p.period, m.as_of, max(m.age) AS age
        FROM engagement_day_map m JOIN engagement_periods p ON p.day = m.day
        GROUP BY p.period, m.as_of
        """
    )


def type_columns(types: tuple[str, ...]) -> dict[str, str]:
    """Event type -> its count column in ``engagement_daily``."""
    return {t: f"n_{i}" for i, t in enumerate(types)}


def create_daily(
    con: duckdb.DuckDBPyConnection, types: tuple[str, ...], n_channels: int, has_minutes: bool
) -> list[str]:
    """``engagement_daily``: per account-period, totals, minutes, one count column per event
    type (:func:`type_columns`) and the channel bitmasks. Returns the bitmask columns."""
    per_type = "".join(
        f", count(*) FILTER (WHERE tcode = {i}) AS {c}"
        for i, c in enumerate(type_columns(types).values())
    )
    # minutes are summed as integer thousandths: exact, so the result does not depend on row
    # order or thread count
    minutes = "sum(CAST(round(minutes * 1000) AS BIGINT))" if has_minutes else "0"
    mask_columns = [f"channels_{j}" for j in range(-(-n_channels // MASK_BITS))]
    masks = "".join(
        f", bit_or(CAST(1 AS BIGINT) << (ccode % {MASK_BITS})) "
        f"FILTER (WHERE ccode // {MASK_BITS} = {j}) AS {c}"
        for j, c in enumerate(mask_columns)
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_daily AS
        SELECT akey, p.period, max(p.day) AS last_day, count(*) AS n_all,
               count(*) FILTER (WHERE ckey IS NULL) AS n_no_contact,
               {minutes} AS minutes_milli{per_type}{masks}
        FROM engagement_input e JOIN engagement_periods p ON p.day = CAST(e.ts AS DATE)
        WHERE akey IS NOT NULL
        GROUP BY akey, p.period
        """
    )
    return mask_columns


def create_counts(
    con: duckdb.DuckDBPyConnection,
    config: FeatureConfig,
    sums: list[str],
    mask_columns: list[str],
    has_channel: bool,
) -> None:
    """``engagement_counts``: per (akey, as_of), the window ``sums`` over ``engagement_daily``,
    then the anonymous, recent and prior counts and the channels reached."""
    longest = max(config.windows_days)
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    sums = [
        *sums,
        f"sum(n_no_contact) FILTER (WHERE age <= {longest}) AS _no_contact_long",
        f"sum(n_all) FILTER (WHERE age <= {recent}) AS _recent",
        f"sum(n_all) FILTER (WHERE age > {recent} AND age <= {recent + prior}) AS _prior",
    ]
    channel_count = " + ".join(
        f"coalesce(bit_count(bit_or({c}) FILTER (WHERE age <= {longest})), 0)" for c in mask_columns
    )
    if has_channel:
        sums.append(f"{channel_count or '0'} AS eng_channels_{longest}d")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_counts AS
        SELECT akey, as_of, {", ".join(sums)}
        FROM ({in_window("engagement_daily", config.engagement_lookback_days)})
        GROUP BY akey, as_of
        """
    )


def _create_contact_info(
    con: duckdb.DuckDBPyConnection, contact_ids: pa.Array | None, has_contacts: bool
) -> None:
    """``engagement_contact_info``: per contact key, the role and created_at of the contact."""
    if contact_ids is None:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE engagement_contact_info AS
            SELECT CAST(NULL AS INTEGER) AS ckey, CAST(NULL AS VARCHAR) AS role,
                   CAST(NULL AS TIMESTAMP) AS contact_created_at
            WHERE false
            """
        )
        return
    ckeys = pa.array(np.arange(len(contact_ids), dtype=np.int32))
    con.register("engagement_contact_ids", pa.table({"ckey": ckeys, "contact_id": contact_ids}))
    contact_join = "LEFT JOIN contacts c ON c.contact_id = i.contact_id" if has_contacts else ""
    role = "c.role" if has_contacts else "CAST(NULL AS VARCHAR)"
    created = "c.created_at" if has_contacts else "CAST(NULL AS TIMESTAMP)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contact_info AS
        SELECT i.ckey, {role} AS role, {created} AS contact_created_at
        FROM engagement_contact_ids i {contact_join}
        """
    )


def create_contacts(
    con: duckdb.DuckDBPyConnection,
    config: FeatureConfig,
    contact_ids: pa.Array | None,
    has_contacts: bool,
) -> None:
    """``engagement_contacts``: per (akey, as_of), identified contacts engaged per window, roles,
    whether a decision maker engaged, and the events of contacts not known yet (anonymous)."""
    longest = max(config.windows_days)
    short_and_long = sorted({30, longest})
    _create_contact_info(con, contact_ids, has_contacts)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE engagement_contact_daily AS
        SELECT d.akey, d.ckey, i.role, i.contact_created_at, d.period, d.n
        FROM (
            SELECT akey, ckey, p.period, count(*) AS n
            FROM engagement_input e JOIN engagement_periods p ON p.day = CAST(e.ts AS DATE)
            WHERE akey IS NOT NULL AND ckey IS NOT NULL
            GROUP BY akey, ckey, p.period
        ) d
        JOIN engagement_contact_info i ON i.ckey = d.ckey
        """
    )
    known = f"(contact_created_at IS NULL OR {known_at('contact_created_at', 'as_of')})"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contacts AS
        WITH per_contact AS (
            SELECT akey, as_of, ckey, any_value(role) AS role,
                   min(age) FILTER (WHERE {known}) AS last_age,
                   sum(n) FILTER (WHERE NOT {known} AND age <= {longest}) AS n_not_known_yet
            FROM ({in_window("engagement_contact_daily", longest)})
            GROUP BY akey, as_of, ckey
        )
        SELECT akey, as_of,
               {", ".join(f"count(*) FILTER (WHERE last_age <= {w}) AS eng_contacts_{w}d" for w in short_and_long)},
               count(DISTINCT role) FILTER (WHERE last_age <= {longest}) AS eng_roles_{longest}d,
               coalesce(bool_or(role = 'decision_maker' AND last_age <= {longest}), false)
                   AS eng_decision_maker_{longest}d,
               coalesce(sum(n_not_known_yet), 0) AS _not_known_yet_long
        FROM per_contact
        GROUP BY akey, as_of
        """
    )


def create_recency(con: duckdb.DuckDBPyConnection) -> None:
    """``engagement_recency``: per spine row, days since the last day with activity (all
    history, an as-of join on the periods with activity)."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_recency AS
        SELECT s._row,
               CAST(date_diff('day', last.day, CAST(s.as_of AS DATE)) AS DOUBLE) AS days_since
        FROM spine s
        ASOF LEFT JOIN (SELECT akey, last_day AS day FROM engagement_daily) last
          ON s.akey = last.akey AND {known_at("last.day", "CAST(s.as_of AS DATE)")}
        """
    )


def create_known(con: duckdb.DuckDBPyConnection) -> None:
    """``engagement_known``: per spine row, contacts and decision makers known before as_of
    (contacts without created_at count as always known)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE contacts_known AS
        SELECT account_id, created_at,
               count(*) OVER w AS known_contacts,
               count(*) FILTER (WHERE role = 'decision_maker') OVER w AS known_decision_makers
        FROM contacts
        WHERE created_at IS NOT NULL
        WINDOW w AS (PARTITION BY account_id ORDER BY created_at
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_known AS
        WITH undated AS (
            SELECT account_id, count(*) AS known_contacts,
                   count(*) FILTER (WHERE role = 'decision_maker') AS known_decision_makers
            FROM contacts WHERE created_at IS NULL GROUP BY account_id
        )
        SELECT s._row,
               CAST(coalesce(k.known_contacts, 0) + coalesce(u.known_contacts, 0) AS DOUBLE)
                   AS known_contacts,
               CAST(coalesce(k.known_decision_makers, 0) + coalesce(u.known_decision_makers, 0)
                   AS DOUBLE) AS known_decision_makers
        FROM spine s
        ASOF LEFT JOIN contacts_known k
          ON s.account_id = k.account_id AND {known_at("k.created_at", "s.as_of")}
        LEFT JOIN undated u ON u.account_id = s.account_id
        """
    )


def create_view(con: duckdb.DuckDBPyConnection, outputs: list[str], has_contacts: bool) -> None:
    """The view ``features_engagement``: the spine's ``_row``, then ``outputs`` (expressions
    over the aliases c = counts, k = contacts, r = recency, kn = known contacts)."""
    known_join = "LEFT JOIN engagement_known kn ON kn._row = s._row" if has_contacts else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW features_engagement AS
        SELECT s._row, {", ".join(outputs)}
        FROM spine s
        LEFT JOIN engagement_counts c ON c.akey = s.akey AND c.as_of = s.as_of
        LEFT JOIN engagement_contacts k ON k.akey = s.akey AND k.as_of = s.as_of
        LEFT JOIN engagement_recency r ON r._row = s._row
        {known_join}
        """
    )


def drop_intermediates(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what the view does not read."""
    for table in INTERMEDIATE_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for view in INTERMEDIATE_VIEWS:
        con.execute(f"DROP VIEW IF EXISTS {view}")
