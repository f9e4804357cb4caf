"""Engagement features: contacts' and anonymous activity rolled up to the account.

Point-in-time rule: an event counts for snapshot ``as_of`` only if ``ts < as_of`` (``as_of`` is
a midnight, so "day of ts < as_of" is the same test). An event's contact counts as identified
only if the contact was known before ``as_of`` (``created_at < as_of``, or no created_at);
events of contacts created later count as anonymous, as they were then.

Engine: events are pre-aggregated into three small daily tables (per account-day with one
count column per event type; per contact-day; per channel-day), each joined to the snapshot
dates whose look-back window covers the day (a tiny table), so a daily row expands to
``lookback / cadence`` rows instead of every event meeting every snapshot. Distinct counts are
two-stage (first the most recent day per contact or channel, then a plain count), which is
much cheaper than ``count(DISTINCT ...)`` under a filter.
"""

from __future__ import annotations

import duckdb

from propensity.contract import Tables
from propensity.features import sql
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier, quote_literal, slug

FAMILY = "engagement"
AVAILABLE = "counts events with ts strictly before as_of"
CONTACTS_AVAILABLE = "contacts with created_at strictly before as_of"


def event_types(tables: Tables, config: FeatureConfig) -> tuple[str, ...]:
    """Event types to count: the config's list, else the most frequent in the data."""
    if config.event_types is not None:
        return config.event_types
    counts = tables.events["event_type"].value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[: config.max_event_types])


def _in_window(table: str, lookback: int) -> str:
    """Rows of a daily table joined to the snapshot dates that can see them, with their age.

    The join goes through ``engagement_day_map`` (day -> as_of, age), a table of a few thousand
    rows, so it is a hash join on ``day`` rather than a range join.
    """
    return f"""
        SELECT d.*, m.as_of, m.age
        FROM {table} d
        JOIN engagement_day_map m ON m.day = d.day AND m.age <= {lookback}
    """


def _create_day_map(con: duckdb.DuckDBPyConnection, lookback: int) -> None:
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


def build(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> list[FeatureSpec]:
    """Create ``features_engagement`` (``_row`` of the spine, then the features)."""
    events = tables.events
    has_contacts = tables.contacts is not None
    has_minutes = "minutes" in events
    has_channel = "channel" in events
    lookback = config.engagement_lookback_days
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    longest = max(config.windows_days)
    short_and_long = sorted({30, longest})
    types = event_types(tables, config)
    specs: list[FeatureSpec] = []
    outputs: list[str] = []  # final SELECT expressions, in spec order

    def spec(name, field, label, definition, empty=0.0, availability=AVAILABLE):
        specs.append(
            FeatureSpec(name, FAMILY, field, label, definition, availability, empty_value=empty)
        )

    _create_day_map(con, lookback)
    # one scan of the input, keyed by the integer account key of the spine
    minutes_column = "CAST(round(e.minutes * 1000) AS BIGINT)" if has_minutes else "0"
    channel_column = "e.channel" if has_channel else "CAST(NULL AS VARCHAR)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_events AS
        SELECT a.akey, CAST(e.ts AS DATE) AS day, e.event_type, {channel_column} AS channel,
               e.contact_id, {minutes_column} AS minutes_milli
        FROM events e JOIN spine_accounts a ON a.account_id = e.account_id
        """
    )

    # ---- 1. per account-day: one count column per event type, totals, minutes
    type_columns = {t: f"n_{i}" for i, t in enumerate(types)}
    per_type = ", ".join(
        f"count(*) FILTER (WHERE event_type = {quote_literal(t)}) AS {c}"
        for t, c in type_columns.items()
    )
    # minutes are summed as integer thousandths: exact, so the result does not depend on row
    # order or thread count
    minutes = "sum(minutes_milli)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_daily AS
        SELECT akey, day, count(*) AS n_all,
               count(*) FILTER (WHERE contact_id IS NULL) AS n_no_contact,
               {minutes} AS minutes_milli, {per_type}
        FROM engagement_events
        GROUP BY ALL
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
    role = "c.role" if has_contacts else "CAST(NULL AS VARCHAR)"
    created = "c.created_at" if has_contacts else "CAST(NULL AS TIMESTAMP)"
    contact_join = "LEFT JOIN contacts c ON c.contact_id = e.contact_id" if has_contacts else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contact_daily AS
        SELECT e.akey, e.contact_id, {role} AS role, {created} AS contact_created_at, e.day, count(*) AS n
        FROM engagement_events e {contact_join}
        WHERE e.contact_id IS NOT NULL
        GROUP BY ALL
        """
    )
    known = f"(contact_created_at IS NULL OR {sql.known_at('contact_created_at', 'as_of')})"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contacts AS
        WITH per_contact AS (
            SELECT akey, as_of, contact_id, any_value(role) AS role,
                   min(age) FILTER (WHERE {known}) AS last_age,
                   sum(n) FILTER (WHERE NOT {known} AND age <= {longest}) AS n_not_known_yet
            FROM ({_in_window("engagement_contact_daily", longest)})
            GROUP BY akey, as_of, contact_id
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

    # ---- 3. per channel-day: reach
    channel_join = ""
    if has_channel:
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE engagement_channel_daily AS
            SELECT DISTINCT akey, channel, day
            FROM engagement_events
            WHERE channel IS NOT NULL
            """
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE engagement_channels AS
            SELECT akey, as_of, count(DISTINCT channel) AS eng_channels_{longest}d
            FROM ({_in_window("engagement_channel_daily", longest)})
            GROUP BY akey, as_of
            """
        )
        outputs.append(
            f"CAST(coalesce(ch.eng_channels_{longest}d, 0) AS DOUBLE) AS eng_channels_{longest}d"
        )
        channel_join = "LEFT JOIN engagement_channels ch ON ch.akey = s.akey AND ch.as_of = s.as_of"
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
        ASOF LEFT JOIN (SELECT akey, day FROM engagement_daily) last
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
        CREATE OR REPLACE TEMP TABLE features_engagement AS
        SELECT s._row, {", ".join(outputs)}
        FROM spine s
        LEFT JOIN engagement_counts c ON c.akey = s.akey AND c.as_of = s.as_of
        LEFT JOIN engagement_contacts k ON k.akey = s.akey AND k.as_of = s.as_of
        LEFT JOIN engagement_recency r ON r._row = s._row
        {channel_join}
        {known_join}
        """
    )
    for table in (
        "engagement_daily",
        "engagement_counts",
        "engagement_contact_daily",
        "engagement_contacts",
        "engagement_channel_daily",
        "engagement_channels",
        "engagement_recency",
        "engagement_known",
        "contacts_known",
        "engagement_day_map",
        "engagement_events",
    ):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return specs
