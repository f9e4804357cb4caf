"""Engagement features: contacts' and anonymous activity rolled up to the account.

Point-in-time rule: an event counts for snapshot ``as_of`` only if ``ts < as_of`` (``as_of`` is
a midnight, so "day of ts < as_of" is the same test). An event's contact counts as identified
only if the contact was known before ``as_of`` (``created_at < as_of``, or no created_at);
events of contacts created later count as anonymous, as they were then.

Engine: the text columns of the events are first turned into small integer codes with Arrow
(account key, contact key, event-type and channel codes), so that DuckDB never hashes or
compares strings over the events. The events are then pre-aggregated into two small daily
tables (per account-day with one count column per event type and a bitmask of the channels
seen; per contact-day), each joined to the snapshot dates whose look-back window covers the
day (a tiny table), so a daily row expands to ``lookback / cadence`` rows instead of every event
meeting every snapshot. Distinct contacts are two-stage (first the most recent day per contact,
then a plain count), distinct channels a bit count of the OR of the daily masks; both are much
cheaper than ``count(DISTINCT ...)`` under a filter.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from propensity.data.contract import Tables
from propensity.features import sql
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier, slug

FAMILY = "engagement"
AVAILABLE = "counts events with ts strictly before as_of"
CONTACTS_AVAILABLE = "contacts with created_at strictly before as_of"
MASK_BITS = 62  # channels per BIGINT bitmask (kept clear of the sign bit)


def event_types(tables: Tables, config: FeatureConfig) -> tuple[str, ...]:
    """Event types to count: the config's list, else the most frequent in the data."""
    if config.event_types is not None:
        return config.event_types
    return _ranked_types(_encode(pa.chunked_array([pa.array(tables.events["event_type"])])), config)


def _ranked_types(encoded: tuple[pa.ChunkedArray, pa.Array], config: FeatureConfig):
    codes, values = encoded
    counts = np.bincount(
        pc.drop_null(codes).to_numpy() if len(codes) else np.array([], dtype=np.int64),
        minlength=len(values),
    )
    ranked = sorted(
        zip(values.to_pylist(), counts.tolist(), strict=True), key=lambda item: (-item[1], item[0])
    )
    return tuple(name for name, _ in ranked[: config.max_event_types])


def _encode(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.Array]:
    """Dictionary codes of a text column (nulls stay null) and the dictionary."""
    encoded = pc.dictionary_encode(column)
    if encoded.num_chunks == 0:
        return pa.chunked_array([], type=pa.int32()), pa.array([], type=column.type)
    # one hash table over all chunks: every chunk carries the same, final dictionary
    codes = pa.chunked_array([chunk.indices for chunk in encoded.chunks], type=pa.int32())
    return codes, encoded.chunk(0).dictionary


def _coded_events(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> tuple[pa.Table, tuple[str, ...], pa.Array | None, int]:
    """The events with integer codes instead of text.

    Returns the table (akey, ckey, tcode, ccode, ts, minutes), the counted event types (tcode
    indexes them), the contact ids (ckey indexes them) and the number of channels.
    """
    events = pa.Table.from_pandas(tables.events, preserve_index=False)
    accounts = con.sql("SELECT account_id FROM spine_accounts ORDER BY akey").to_arrow_table()
    akey = pc.add(pc.index_in(events["account_id"], value_set=accounts["account_id"]), 1)
    type_codes, type_values = _encode(events["event_type"])
    types = config.event_types or _ranked_types((type_codes, type_values), config)
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
        columns["ckey"], contact_ids = _encode(events["contact_id"])
    else:
        columns["ckey"] = pa.nulls(len(events), pa.int32())
    n_channels = 0
    if "channel" in events.column_names:
        columns["ccode"], channel_values = _encode(events["channel"])
        n_channels = len(channel_values)
    else:
        columns["ccode"] = pa.nulls(len(events), pa.int32())
    if "minutes" in events.column_names:
        columns["minutes"] = events["minutes"]
    return pa.table(columns), tuple(types), contact_ids, n_channels


def _in_window(table: str, lookback: int) -> str:
    """Rows of a period table joined to the snapshot dates that can see them, with their age.

    The join goes through ``engagement_period_map`` (period -> as_of, age), a table of a few
    thousand rows, so it is a hash join on ``period`` rather than a range join.
    """
    return f"""
        SELECT d.*, m.as_of, m.age
        FROM {table} d
        JOIN engagement_period_map m ON m.period = d.period AND m.age <= {lookback}
    """


def _create_period_maps(
    con: duckdb.DuckDBPyConnection, lookback: int, edges: list[int], first_day, last_day
) -> None:
    """Cut the days into periods that every window of every snapshot covers whole or not at all.

    The cuts are the days ``as_of - edge`` for every snapshot and window edge, so counting per
    (account, period) instead of per (account, day) gives the same window sums from about a
    third of the rows (monthly snapshots share most cuts). ``engagement_periods`` maps each day
    from ``first_day`` to ``last_day`` to its period; ``engagement_period_map`` each period to
    the snapshots that see it, with the age of its oldest day (any day would do, as the window
    filters are whole-period).
    """
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
          ON {sql.known_at("CAST(d.day AS DATE)", as_of_day)}
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


def build(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> list[FeatureSpec]:
    """Create the view ``features_engagement`` (``_row`` of the spine, then the features)."""
    has_contacts = tables.contacts is not None
    has_minutes = "minutes" in tables.events
    has_channel = "channel" in tables.events
    lookback = config.engagement_lookback_days
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    longest = max(config.windows_days)
    short_and_long = sorted({30, longest})
    specs: list[FeatureSpec] = []
    outputs: list[str] = []  # final SELECT expressions, in spec order

    def spec(name, field, label, definition, empty=0.0, availability=AVAILABLE):
        specs.append(
            FeatureSpec(name, FAMILY, field, label, definition, availability, empty_value=empty)
        )

    coded, types, contact_ids, n_channels = _coded_events(con, tables, config)
    con.register("engagement_input", coded)
    edges = sorted({0, lookback, recent, recent + prior, *config.windows_days})
    if len(coded):
        first_day, last_day = (v.as_py() for v in pc.min_max(coded["ts"]).values())
    else:
        first_day = last_day = None
    _create_period_maps(con, lookback, edges, first_day, last_day)

    # ---- 1. per account-day: one count column per event type, totals, minutes, channels
    type_columns = {t: f"n_{i}" for i, t in enumerate(types)}
    per_type = "".join(
        f", count(*) FILTER (WHERE tcode = {i}) AS {c}" for i, c in enumerate(type_columns.values())
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
    sums: list[str] = []
    for event_type, column in type_columns.items():
        type_slug = slug(event_type)
        for window in config.windows_days:
            name = f"eng_{type_slug}_{window}d"
            sums.append(f"sum({column}) FILTER (WHERE age <= {window}) AS {quote_identifier(name)}")
            spec(
                name,
                f"eng_{type_slug}",
                f"{event_type.replace('_', ' ')} events in the last {window} days",
                f"count of '{event_type}' events with as_of - {window} days <= ts < as_of",
            )
    for window in config.windows_days:
        name = f"eng_events_{window}d"
        sums.append(f"sum(n_all) FILTER (WHERE age <= {window}) AS {name}")
        spec(
            name,
            "eng_total",
            f"engagement events in the last {window} days",
            f"all events in the last {window} days",
        )
    if has_minutes:
        for window in short_and_long:
            name = f"eng_minutes_{window}d"
            sums.append(f"sum(minutes_milli) FILTER (WHERE age <= {window}) / 1000.0 AS {name}")
            spec(
                name,
                "eng_minutes",
                f"engagement minutes in the last {window} days",
                f"sum of event minutes in the last {window} days",
            )
    sums += [
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
        FROM ({_in_window("engagement_daily", lookback)})
        GROUP BY akey, as_of
        """
    )
    count_names = [s.name for s in specs]
    outputs += [
        f"CAST(coalesce(c.{quote_identifier(n)}, 0) AS DOUBLE) AS {quote_identifier(n)}"
        for n in count_names
    ]

    # ---- 2. per contact-day: who engaged, in which role, known from when
    if contact_ids is not None:
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
    else:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE engagement_contact_info AS
            SELECT CAST(NULL AS INTEGER) AS ckey, CAST(NULL AS VARCHAR) AS role,
                   CAST(NULL AS TIMESTAMP) AS contact_created_at
            WHERE false
            """
        )
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
    known = f"(contact_created_at IS NULL OR {sql.known_at('contact_created_at', 'as_of')})"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contacts AS
        WITH per_contact AS (
            SELECT akey, as_of, ckey, any_value(role) AS role,
                   min(age) FILTER (WHERE {known}) AS last_age,
                   sum(n) FILTER (WHERE NOT {known} AND age <= {longest}) AS n_not_known_yet
            FROM ({_in_window("engagement_contact_daily", longest)})
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
    for window in short_and_long:
        name = f"eng_contacts_{window}d"
        outputs.append(f"CAST(coalesce(k.{name}, 0) AS DOUBLE) AS {name}")
        spec(
            name,
            "eng_buying_group",
            f"contacts engaged in the last {window} days",
            f"distinct identified contacts with an event in the last {window} days",
        )
    if has_contacts:
        outputs += [
            f"CAST(coalesce(k.eng_roles_{longest}d, 0) AS DOUBLE) AS eng_roles_{longest}d",
            f"CAST(coalesce(k.eng_decision_maker_{longest}d, false) AS DOUBLE) AS eng_decision_maker_{longest}d",
        ]
        spec(
            f"eng_roles_{longest}d",
            "eng_buying_group",
            f"buying-group roles engaged in the last {longest} days",
            f"distinct contact roles (user/influencer/decision_maker/it) engaged in the last {longest} days",
        )
        spec(
            f"eng_decision_maker_{longest}d",
            "eng_buying_group",
            f"decision maker engaged in the last {longest} days",
            f"1 if a decision-maker contact had an event in the last {longest} days",
        )

    # ---- 3. reach: distinct channels, counted from the daily channel masks above
    if has_channel:
        outputs.append(
            f"CAST(coalesce(c.eng_channels_{longest}d, 0) AS DOUBLE) AS eng_channels_{longest}d"
        )
        spec(
            f"eng_channels_{longest}d",
            "eng_reach",
            f"channels reached in the last {longest} days",
            f"distinct channels of events in the last {longest} days",
        )

    # ---- ratios over the windows above
    total_long = f"c.eng_events_{longest}d"
    outputs.append(
        f"(coalesce(c._no_contact_long, 0) + coalesce(k._not_known_yet_long, 0))::DOUBLE"
        f" / NULLIF({total_long}, 0) AS eng_anonymous_share_{longest}d"
    )
    spec(
        f"eng_anonymous_share_{longest}d",
        "eng_anonymous",
        f"share of anonymous activity in the last {longest} days",
        f"anonymous (or not yet identified) events / all events in the last {longest} days",
        empty=None,
    )
    outputs.append(
        f"(coalesce(c._recent, 0) + 1.0) / (coalesce(c._prior, 0) * {recent / prior} + 1.0) AS eng_momentum"
    )
    spec(
        "eng_momentum",
        "eng_momentum",
        f"engagement momentum (last {recent} days vs the prior {prior} days)",
        f"(events in the last {recent} days + 1) / (rate of the prior {prior} days scaled to {recent} days + 1)",
        empty=1.0,
    )

    # ---- recency over all history: an as-of join on the days with activity
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_recency AS
        SELECT s._row,
               CAST(date_diff('day', last.day, CAST(s.as_of AS DATE)) AS DOUBLE) AS days_since
        FROM spine s
        ASOF LEFT JOIN (SELECT akey, last_day AS day FROM engagement_daily) last
          ON s.akey = last.akey AND {sql.known_at("last.day", "CAST(s.as_of AS DATE)")}
        """
    )
    outputs.append("r.days_since AS eng_days_since_last_event")
    spec(
        "eng_days_since_last_event",
        "eng_recency",
        "days since the last engagement",
        "days between the last event before as_of and as_of (missing: never engaged)",
        empty=None,
    )

    # ---- known contacts at as_of and the share of them engaged
    known_join = ""
    if has_contacts:
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
              ON s.account_id = k.account_id AND {sql.known_at("k.created_at", "s.as_of")}
            LEFT JOIN undated u ON u.account_id = s.account_id
            """
        )
        known_join = "LEFT JOIN engagement_known kn ON kn._row = s._row"
        outputs += [
            "kn.known_contacts AS eng_known_contacts",
            "kn.known_decision_makers AS eng_known_decision_makers",
            f"coalesce(k.eng_contacts_{longest}d, 0)::DOUBLE / NULLIF(kn.known_contacts, 0)"
            " AS eng_contact_coverage",
        ]
        spec(
            "eng_known_contacts",
            "eng_coverage",
            "known contacts",
            "contacts known before as_of",
            availability=CONTACTS_AVAILABLE,
        )
        spec(
            "eng_known_decision_makers",
            "eng_coverage",
            "known decision makers",
            "decision-maker contacts known before as_of",
            availability=CONTACTS_AVAILABLE,
        )
        spec(
            "eng_contact_coverage",
            "eng_coverage",
            f"share of known contacts engaged in the last {longest} days",
            f"engaged contacts ({longest} days) / known contacts",
            empty=None,
            availability=CONTACTS_AVAILABLE,
        )

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
    for table in (
        "engagement_daily",
        "engagement_contact_daily",
        "engagement_contact_info",
        "contacts_known",
        "engagement_day_map",
        "engagement_periods",
        "engagement_period_map",
    ):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    for view in ("engagement_input", "engagement_contact_ids"):
        con.execute(f"DROP VIEW IF EXISTS {view}")
    return specs
