"""Engagement features: contacts' and anonymous activity rolled up to the account.

Point-in-time rule: an event counts for snapshot ``as_of`` only if ``ts < as_of`` (``as_of`` is
a midnight, so "day of ts < as_of" is the same test). An event's contact counts as identified
only if the contact was known before ``as_of`` (``created_at < as_of`` or no created_at); events
of contacts created later count as anonymous, as they were then.

Engine: events are pre-aggregated per (account, day, type, channel, contact) and joined to the
snapshot dates whose look-back window covers the day (a tiny table), so each daily row expands
to ``lookback / cadence`` rows instead of every event meeting every snapshot.
"""

from __future__ import annotations

import duckdb

from propensity.contract import Tables
from propensity.features import sql
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier, quote_literal, slug

FAMILY = "engagement"
AVAILABLE = "counts events with ts strictly before as_of"


def event_types(tables: Tables, config: FeatureConfig) -> tuple[str, ...]:
    """Event types to count: the config's list, else the most frequent in the data."""
    if config.event_types is not None:
        return config.event_types
    counts = tables.events["event_type"].value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[: config.max_event_types])


def build(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> list[FeatureSpec]:
    """Create ``features_engagement`` (account_id, as_of, ...) for the rows of ``spine``."""
    events = tables.events
    has_contacts = tables.contacts is not None
    has_minutes = "minutes" in events
    has_channel = "channel" in events
    lookback = config.engagement_lookback_days
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    longest = max(config.windows_days)
    specs: list[FeatureSpec] = []
    aggregates: list[str] = []

    def add(name, sql, field, label, definition, empty=0.0):
        aggregates.append(f"{sql} AS {quote_identifier(name)}")
        specs.append(
            FeatureSpec(name, FAMILY, field, label, definition, AVAILABLE, empty_value=empty)
        )

    for event_type in event_types(tables, config):
        type_slug = slug(event_type)
        for window in config.windows_days:
            add(
                f"eng_{type_slug}_{window}d",
                f"coalesce(sum(n) FILTER (WHERE event_type = {quote_literal(event_type)} AND age <= {window}), 0)",
                f"eng_{type_slug}",
                f"{event_type.replace('_', ' ')} events in the last {window} days",
                f"count of '{event_type}' events with as_of - {window} days <= ts < as_of",
            )
    for window in config.windows_days:
        add(
            f"eng_events_{window}d",
            f"coalesce(sum(n) FILTER (WHERE age <= {window}), 0)",
            "eng_total",
            f"engagement events in the last {window} days",
            f"all events in the last {window} days",
        )
    if has_minutes:
        for window in sorted({30, longest}):
            add(
                f"eng_minutes_{window}d",
                f"coalesce(sum(minutes) FILTER (WHERE age <= {window}), 0) / 1000.0",
                "eng_minutes",
                f"engagement minutes in the last {window} days",
                f"sum of event minutes in the last {window} days",
            )
    identified = f"(contact_id IS NOT NULL AND (contact_created_at IS NULL OR {sql.known_at('contact_created_at', 'as_of')}))"
    for window in sorted({30, longest}):
        add(
            f"eng_contacts_{window}d",
            f"count(DISTINCT contact_id) FILTER (WHERE {identified} AND age <= {window})",
            "eng_buying_group",
            f"contacts engaged in the last {window} days",
            f"distinct identified contacts with an event in the last {window} days",
        )
    if has_contacts:
        add(
            f"eng_roles_{longest}d",
            f"count(DISTINCT role) FILTER (WHERE {identified} AND age <= {longest})",
            "eng_buying_group",
            f"buying-group roles engaged in the last {longest} days",
            f"distinct contact roles (user/influencer/decision_maker/it) engaged in the last {longest} days",
        )
        add(
            f"eng_decision_maker_{longest}d",
            f"CAST(coalesce(bool_or(role = 'decision_maker') FILTER (WHERE {identified} AND age <= {longest}), false) AS DOUBLE)",
            "eng_buying_group",
            f"decision maker engaged in the last {longest} days",
            f"1 if a decision-maker contact had an event in the last {longest} days",
        )
    if has_channel:
        add(
            f"eng_channels_{longest}d",
            f"count(DISTINCT channel) FILTER (WHERE age <= {longest})",
            "eng_reach",
            f"channels reached in the last {longest} days",
            f"distinct channels of events in the last {longest} days",
        )
    add(
        f"eng_anonymous_share_{longest}d",
        f"coalesce(sum(n) FILTER (WHERE NOT {identified} AND age <= {longest}), 0)::DOUBLE"
        f" / NULLIF(sum(n) FILTER (WHERE age <= {longest}), 0)",
        "eng_anonymous",
        f"share of anonymous activity in the last {longest} days",
        f"anonymous (or not yet identified) events / all events in the last {longest} days",
        empty=None,
    )
    add(
        "eng_momentum",
        f"(coalesce(sum(n) FILTER (WHERE age <= {recent}), 0) + 1.0) / "
        f"(coalesce(sum(n) FILTER (WHERE age > {recent} AND age <= {recent + prior}), 0) * {recent / prior} + 1.0)",
        "eng_momentum",
        f"engagement momentum (last {recent} days vs the prior {prior} days)",
        f"(events in the last {recent} days + 1) / (rate of the prior {prior} days scaled to {recent} days + 1)",
        empty=1.0,
    )

    contact_join = "LEFT JOIN contacts c ON c.contact_id = e.contact_id" if has_contacts else ""
    role = "c.role" if has_contacts else "CAST(NULL AS VARCHAR)"
    contact_created = "c.created_at" if has_contacts else "CAST(NULL AS TIMESTAMP)"
    # minutes are summed as integer thousandths: exact, so the result is the same whatever the
    # row order or thread count
    minutes = (
        "sum(CAST(round(e.minutes * 1000) AS BIGINT))" if has_minutes else "CAST(NULL AS BIGINT)"
    )
    channel = "e.channel" if has_channel else "CAST(NULL AS VARCHAR)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_daily AS
        SELECT e.account_id, CAST(e.ts AS DATE) AS day, e.event_type, {channel} AS channel,
               e.contact_id, {role} AS role, {contact_created} AS contact_created_at,
               count(*) AS n, {minutes} AS minutes
        FROM events e {contact_join}
        WHERE e.account_id IN (SELECT DISTINCT account_id FROM spine)
        GROUP BY ALL
        """
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_windows AS
        WITH in_window AS (
            SELECT d.*, s.as_of, date_diff('day', d.day, CAST(s.as_of AS DATE)) AS age
            FROM engagement_daily d
            JOIN snapshot_dates s
              ON {sql.known_at("d.day", "CAST(s.as_of AS DATE)")}
             AND CAST(s.as_of AS DATE) <= d.day + INTERVAL {lookback} DAY
        )
        SELECT account_id, as_of, {", ".join(aggregates)}
        FROM in_window
        GROUP BY account_id, as_of
        """
    )
    # last event before as_of, over all history: an as-of join on the per-day activity
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_recency AS
        SELECT s.account_id, s.as_of,
               CAST(date_diff('day', last.day, CAST(s.as_of AS DATE)) AS DOUBLE) AS eng_days_since_last_event
        FROM spine s
        ASOF LEFT JOIN (SELECT DISTINCT account_id, day FROM engagement_daily) last
          ON s.account_id = last.account_id AND {sql.known_at("last.day", "CAST(s.as_of AS DATE)")}
        """
    )
    specs.append(
        FeatureSpec(
            "eng_days_since_last_event",
            FAMILY,
            "eng_recency",
            "days since the last engagement",
            "days between the last event before as_of and as_of (missing: never engaged)",
            AVAILABLE,
        )
    )
    known_select = "NULL::DOUBLE AS eng_known_contacts"
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
            """
            CREATE OR REPLACE TEMP TABLE contacts_undated AS
            SELECT account_id, count(*) AS known_contacts,
                   count(*) FILTER (WHERE role = 'decision_maker') AS known_decision_makers
            FROM contacts WHERE created_at IS NULL GROUP BY account_id
            """
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE engagement_known AS
            SELECT s.account_id, s.as_of,
                   CAST(coalesce(k.known_contacts, 0) + coalesce(u.known_contacts, 0) AS DOUBLE) AS known_contacts,
                   CAST(coalesce(k.known_decision_makers, 0) + coalesce(u.known_decision_makers, 0) AS DOUBLE)
                       AS known_decision_makers
            FROM spine s
            ASOF LEFT JOIN contacts_known k
              ON s.account_id = k.account_id AND {sql.known_at("k.created_at", "s.as_of")}
            LEFT JOIN contacts_undated u ON u.account_id = s.account_id
            """
        )
        known_select = (
            "k.known_contacts AS eng_known_contacts, "
            "k.known_decision_makers AS eng_known_decision_makers, "
            f"CAST(coalesce(w.eng_contacts_{longest}d, 0) AS DOUBLE) / NULLIF(k.known_contacts, 0) "
            "AS eng_contact_coverage"
        )
        known_join = (
            "LEFT JOIN engagement_known k ON k.account_id = s.account_id AND k.as_of = s.as_of"
        )
        contact_availability = "contacts with created_at strictly before as_of"
        specs += [
            FeatureSpec(
                "eng_known_contacts",
                FAMILY,
                "eng_coverage",
                "known contacts",
                "contacts known before as_of",
                contact_availability,
                empty_value=0.0,
            ),
            FeatureSpec(
                "eng_known_decision_makers",
                FAMILY,
                "eng_coverage",
                "known decision makers",
                "decision-maker contacts known before as_of",
                contact_availability,
                empty_value=0.0,
            ),
            FeatureSpec(
                "eng_contact_coverage",
                FAMILY,
                "eng_coverage",
                f"share of known contacts engaged in the last {longest} days",
                f"engaged contacts ({longest} days) / known contacts",
                contact_availability,
            ),
        ]

    # spine rows without any event in the look-back window are real zeros, not missing
    window_columns = []
    for spec in specs:
        if spec.name in (
            "eng_days_since_last_event",
            "eng_known_contacts",
            "eng_known_decision_makers",
            "eng_contact_coverage",
            f"eng_anonymous_share_{longest}d",
        ):
            continue
        fill = "1.0" if spec.name == "eng_momentum" else "0"
        window_columns.append(
            f"CAST(coalesce(w.{quote_identifier(spec.name)}, {fill}) AS DOUBLE) AS {quote_identifier(spec.name)}"
        )
    window_columns.append(f"w.eng_anonymous_share_{longest}d")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE features_engagement AS
        SELECT s.account_id, s.as_of, {", ".join(window_columns)},
               r.eng_days_since_last_event, {known_select}
        FROM spine s
        LEFT JOIN engagement_windows w ON w.account_id = s.account_id AND w.as_of = s.as_of
        LEFT JOIN engagement_recency r ON r.account_id = s.account_id AND r.as_of = s.as_of
        {known_join}
        """
    )
    for table in ("engagement_daily", "engagement_windows", "engagement_recency"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return specs
