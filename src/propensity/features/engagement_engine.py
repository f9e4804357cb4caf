"""The engine of the engagement family: DuckDB over the events, running totals in numpy.

Point-in-time rule (as in :mod:`propensity.features.engagement`): an event counts for snapshot
``as_of`` only if ``ts < as_of``; its contact counts as identified only if the contact was known
before ``as_of``.

The events (``events``: a view over their files, or a registered frame) are read three times:
one pass finds the event types, the channels and the first and last day; one counts them per
(account, period) with a count per event type and a bitmask of the channels seen
(``engagement_daily``); one counts the events of identified contacts per (account, contact,
period) (``engagement_contact_periods``). Periods are cut at every window's ends before every
snapshot, so every window is a run of whole periods. Then:

* window counts, minutes, momentum, channels reached, recency and episodes
  (:class:`propensity.features.engagement_windows.WindowCounts`, numpy, run while DuckDB works
  on the contacts): running totals over the daily rows, each spine row reading the totals
  before the periods where its windows start and end (a binary search);
* engaged contacts, roles and the events of contacts not known yet (:func:`create_contacts`):
  the per contact-period rows joined to the snapshots that see them through a small (period,
  snapshot) map, so a row meets ``lookback / cadence`` snapshots, not every snapshot;
* contacts known before as_of (:func:`create_known`): an as-of join on the contacts.

:func:`create_view` joins them to the spine as ``features_engagement``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from propensity.features.registry import FeatureConfig
from propensity.features.sql import known_at

MASK_BITS = 62  # channels per BIGINT bitmask (kept clear of the sign bit)

THIRTY_DAYS = 30  # the short window of the minutes and engaged-contacts features

INTERMEDIATE_TABLES = (
    "engagement_daily",
    "engagement_types",
    "engagement_channels",
    "engagement_contact_periods",
    "engagement_contact_daily",
    "engagement_contact_info",
    "contacts_known",
    "engagement_day_map",
    "engagement_periods",
    "engagement_period_map",
)


@dataclass(frozen=True)
class EventProfile:
    """What one pass over the events finds: the event types counted (most frequent first, ties
    by name; or the config's list), the channels seen, the first and last event time."""

    types: tuple[str, ...]
    channels: tuple[str, ...]
    first: object | None
    last: object | None


def profile_events(
    con: duckdb.DuckDBPyConnection, config: FeatureConfig, has_channel: bool
) -> EventProfile:
    """Event types, channels and time span of ``events`` in one scan."""
    channel = "channel" if has_channel else "CAST(NULL AS VARCHAR)"
    rows = con.execute(
        f"SELECT event_type, {channel}, count(*), min(ts), max(ts) FROM events GROUP BY ALL"
    ).fetchall()
    per_type: dict[str, int] = {}
    for event_type, _, count, _, _ in rows:
        if event_type is not None:
            per_type[event_type] = per_type.get(event_type, 0) + count
    types = config.event_types or rank_event_types(per_type, config)
    channels = tuple(sorted({r[1] for r in rows if r[1] is not None}))
    firsts = [r[3] for r in rows if r[3] is not None]
    lasts = [r[4] for r in rows if r[4] is not None]
    return EventProfile(
        tuple(types), channels, min(firsts) if firsts else None, max(lasts) if lasts else None
    )


def rank_event_types(per_type: dict[str, int], config: FeatureConfig) -> tuple[str, ...]:
    """The event types counted when the config names none: the ``max_event_types`` most
    frequent (``per_type``: events per type), ties by name."""
    ranked = sorted(per_type.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[: config.max_event_types])


def event_type_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Events per event type in ``events`` (what :func:`rank_event_types` ranks)."""
    rows = con.execute(
        "SELECT event_type, count(*) FROM events WHERE event_type IS NOT NULL GROUP BY ALL"
    ).fetchall()
    return {event_type: int(count) for event_type, count in rows}


def create_period_maps(
    con: duckdb.DuckDBPyConnection, config: FeatureConfig, profile: EventProfile
) -> np.ndarray:
    """Cut the days into periods that every window of every snapshot covers whole or not at all;
    returns the cuts (:func:`period_cuts`).

    The cuts are the days ``as_of - edge`` for every snapshot and window edge, so counting per
    (account, period) instead of per (account, day) gives the same window sums from about a
    third of the rows (monthly snapshots share most cuts). ``engagement_periods`` maps each day
    from the first to the last event to its period; ``engagement_period_map`` each period to
    the snapshots that see it, with the age of its oldest day (any day would do, as the window
    filters are whole-period).
    """
    lookback = config.engagement_lookback_days
    first_day, last_day = profile.first, profile.last
    as_of_days = con.sql("SELECT CAST(as_of AS DATE) AS day FROM snapshot_dates").to_arrow_table()
    cuts = period_cuts(
        as_of_days.column("day").to_numpy().astype("datetime64[D]"), config, first_day, last_day
    )
    con.register("engagement_cut_days", pa.table({"cut": pa.array(cuts, pa.date32())}))
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
        """
        CREATE OR REPLACE TEMP TABLE engagement_periods AS
        WITH cuts AS (SELECT cut FROM engagement_cut_days),
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
    con.unregister("engagement_cut_days")
    return cuts


def period_cuts(
    as_of_days: np.ndarray, config: FeatureConfig, first: object | None, last: object | None
) -> np.ndarray:
    """The days where a period starts, sorted: ``as_of - edge`` for every snapshot and window
    edge (:func:`period_edges`). With episode features, a period that would span more than
    ``episode_gap_days + 1`` days of the events' span (``first`` to ``last``) is cut every
    ``episode_gap_days`` days, so two active days of one period are never more than the gap
    apart and the quiet spells that end an episode lie between periods, whatever snapshots are
    built (only the periods that need it are cut: each cut adds daily rows)."""
    edges = np.array(period_edges(config), dtype="timedelta64[D]")
    cuts = np.unique((np.unique(as_of_days)[:, None] - edges).ravel())
    gap = config.episode_gap_days
    if gap is None or first is None or last is None:
        return cuts
    # the starts and ends of the periods over the events' span, the first one from `first`
    span_first, span_end = np.datetime64(first, "D"), np.datetime64(last, "D") + 1
    inside = cuts[(cuts > span_first) & (cuts < span_end)]
    starts = np.concatenate([[span_first], inside])
    ends = np.concatenate([inside, [span_end]])
    step = np.timedelta64(gap, "D")
    extra = [
        np.arange(start + step, end, step)
        for start, end in zip(starts, ends, strict=True)
        if end - start > step + np.timedelta64(1, "D")
    ]
    return np.unique(np.concatenate([cuts, *extra])) if extra else cuts


def type_columns(types: tuple[str, ...]) -> dict[str, str]:
    """Event type -> its count column in ``engagement_daily``."""
    return {t: f"n_{i}" for i, t in enumerate(types)}


def create_daily(
    con: duckdb.DuckDBPyConnection,
    profile: EventProfile,
    has_contact: bool,
    has_minutes: bool,
    first_day: bool,
) -> list[str]:
    """``engagement_daily``: the events of the spine's accounts per (account, period): last day
    (and the first, with ``first_day``: what episodes read), count, count without a contact, minutes, one count column per event type
    (:func:`type_columns`) and the channel bitmasks. Returns the bitmask columns."""
    _create_codes(con, "engagement_types", "event_type", "tcode", profile.types)
    _create_codes(con, "engagement_channels", "channel", "ccode", profile.channels)
    per_type = "".join(
        f", count(*) FILTER (WHERE t.tcode = {i}) AS {c}"
        for i, c in enumerate(type_columns(profile.types).values())
    )
    no_contact = "count(*) FILTER (WHERE e.contact_id IS NULL)" if has_contact else "count(*)"
    # minutes are summed as integer thousandths: exact, so the result does not depend on row
    # order or thread count
    minutes = "CAST(sum(CAST(round(e.minutes * 1000) AS BIGINT)) AS BIGINT)" if has_minutes else "0"
    # the channels seen, as bits (one BIGINT per MASK_BITS channels): one aggregate, not a
    # count per channel
    mask_columns = [f"channels_{j}" for j in range(-(-len(profile.channels) // MASK_BITS))]
    masks = "".join(
        f", bit_or(CAST(1 AS BIGINT) << (c.ccode % {MASK_BITS})) "
        f"FILTER (WHERE c.ccode // {MASK_BITS} = {j}) AS {m}"
        for j, m in enumerate(mask_columns)
    )
    channel_join = (
        "LEFT JOIN engagement_channels c ON c.channel = e.channel" if mask_columns else ""
    )
    first = "min(p.day) AS first_day, " if first_day else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_daily AS
        SELECT a.akey, p.period, {first}max(p.day) AS last_day, count(*) AS n_all,
               {no_contact} AS n_no_contact, {minutes} AS minutes_milli{per_type}{masks}
        FROM events e
        JOIN spine_accounts a ON a.account_id = e.account_id
        JOIN engagement_periods p ON p.day = CAST(e.ts AS DATE)
        LEFT JOIN engagement_types t ON t.event_type = e.event_type
        {channel_join}
        GROUP BY a.akey, p.period
        """
    )
    return mask_columns


def create_contact_periods(con: duckdb.DuckDBPyConnection, has_contact: bool) -> None:
    """``engagement_contact_periods``: the events of identified contacts of the spine's
    accounts, counted per (account, contact, period)."""
    source = (
        """
        SELECT a.akey, e.contact_id, p.period, count(*) AS n
        FROM events e
        JOIN spine_accounts a ON a.account_id = e.account_id
        JOIN engagement_periods p ON p.day = CAST(e.ts AS DATE)
        WHERE e.contact_id IS NOT NULL
        GROUP BY a.akey, e.contact_id, p.period
        """
        if has_contact
        else "SELECT 0 AS akey, '' AS contact_id, 0 AS period, 0 AS n WHERE false"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE engagement_contact_periods AS {source}")


def _create_codes(
    con: duckdb.DuckDBPyConnection, table: str, column: str, code: str, values: tuple[str, ...]
) -> None:
    """A small table of ``values`` and their integer codes (their positions)."""
    rows = ", ".join(f"({_literal(v)}, {i})" for i, v in enumerate(values))
    source = (
        f"(VALUES {rows}) v({column}, {code})"
        if rows
        else f"(SELECT '' AS {column}, 0 AS {code} WHERE false)"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {source}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def period_edges(config: FeatureConfig) -> list[int]:
    """Days before as_of where a period starts: every window's ends (the configured and short
    windows, the momentum windows, the new-contacts window and the 30-day window of the minutes
    and contacts features)."""
    lookback = config.engagement_lookback_days
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    weekly = {7 * w for pair in config.momentum_weeks for w in (pair[0], sum(pair))}
    growth = {config.new_contacts_days} if config.new_contacts_days is not None else set()
    return sorted(
        {0, lookback, recent, recent + prior, THIRTY_DAYS, *config.count_windows_days}
        | weekly
        | growth
    )


def create_contacts(
    con: duckdb.DuckDBPyConnection, config: FeatureConfig, has_contacts: bool
) -> None:
    """``engagement_contacts``: per (akey, as_of), identified contacts engaged per window, those
    engaged for the first time in the new-contacts window, roles, whether a decision maker
    engaged, and the events of contacts not known yet (anonymous).

    A known contact is engaged in a window iff its last period with activity before as_of lies
    in it, so each contact meets a snapshot through one row: the row whose next period with
    activity (``next_period``) is not before as_of.
    """
    longest = max(config.windows_days)
    short_and_long = sorted({THIRTY_DAYS, longest})
    contact_join = "LEFT JOIN contacts c ON c.contact_id = i.contact_id" if has_contacts else ""
    role = "c.role" if has_contacts else "CAST(NULL AS VARCHAR)"
    created = "c.created_at" if has_contacts else "CAST(NULL AS TIMESTAMP)"
    roles = (
        "SELECT DISTINCT role FROM contacts WHERE role IS NOT NULL"
        if has_contacts
        else "SELECT '' AS role WHERE false"
    )
    n_roles = con.execute(f"SELECT count(*) FROM ({roles})").fetchall()[0][0]
    if n_roles > MASK_BITS:  # the contract allows a handful of roles
        raise ValueError(
            f"contacts has {n_roles} distinct roles; at most {MASK_BITS} are supported"
        )
    # integer contact keys: the groupings below run on them, not on the ids; roles as bits,
    # so the distinct roles engaged are one bit_or
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contact_info AS
        WITH roles AS (
            SELECT role, CAST(row_number() OVER (ORDER BY role) - 1 AS INTEGER) AS code
            FROM ({roles})
        )
        SELECT i.contact_id, CAST(row_number() OVER (ORDER BY i.contact_id) AS INTEGER) AS ckey,
               CAST(1 AS BIGINT) << r.code AS role_bit,
               {role} = 'decision_maker' AS decision_maker,
               {created} AS contact_created_at
        FROM (SELECT DISTINCT contact_id FROM engagement_contact_periods) i
        {contact_join}
        LEFT JOIN roles r ON r.role = {role}
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE engagement_contact_daily AS
        SELECT g.akey, g.period, g.n, i.role_bit, i.decision_maker, i.contact_created_at,
               lead(g.period) OVER (PARTITION BY g.akey, i.ckey ORDER BY g.period)
                   AS next_period,
               min(g.period) OVER (PARTITION BY g.akey, i.ckey) AS first_period
        FROM engagement_contact_periods g JOIN engagement_contact_info i ON i.contact_id = g.contact_id
        """
    )
    known = f"(d.contact_created_at IS NULL OR {known_at('d.contact_created_at', 'm.as_of')})"
    days = config.new_contacts_days
    new_contacts = (
        ""
        if days is None
        else f"count(*) FILTER (WHERE known AND first_age <= {days}) AS eng_new_contacts_{days}d, "
    )
    first_age = "NULL" if days is None else "f.age"
    first_join = (
        ""
        if days is None
        else "LEFT JOIN engagement_period_map f ON f.period = d.first_period AND f.as_of = m.as_of"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE engagement_contacts AS
        WITH last_periods AS (  -- per snapshot, the last period before as_of
            SELECT as_of, max(period) AS last_period FROM engagement_period_map GROUP BY as_of
        ),
        engaged AS (  -- per snapshot, each known contact's last period in the longest window,
                      -- and the age of its first period (NULL: older than the lookback)
            SELECT d.akey, m.as_of, m.age, {first_age} AS first_age, d.role_bit,
                   d.decision_maker, 0 AS n, true AS known
            FROM engagement_contact_daily d
            JOIN engagement_period_map m ON m.period = d.period AND m.age <= {longest}
            JOIN last_periods l ON l.as_of = m.as_of
            {first_join}
            WHERE (d.next_period IS NULL OR d.next_period > l.last_period) AND {known}
        ),
        first_days AS (SELECT period, min(day) AS first_day FROM engagement_periods GROUP BY period),
        not_known AS (  -- events of contacts created after as_of: only of periods they postdate
            SELECT d.akey, m.as_of, NULL AS age, NULL AS first_age, NULL AS role_bit,
                   NULL AS decision_maker, d.n, false AS known
            FROM engagement_contact_daily d
            JOIN first_days f ON f.period = d.period AND d.contact_created_at > f.first_day
            JOIN engagement_period_map m ON m.period = d.period AND m.age <= {longest}
            WHERE NOT {known}
        )
        SELECT akey, as_of,
               {", ".join(f"count(*) FILTER (WHERE known AND age <= {w}) AS eng_contacts_{w}d" for w in short_and_long)},
               {new_contacts}bit_count(bit_or(role_bit)) AS eng_roles_{longest}d,
               coalesce(bool_or(decision_maker), false) AS eng_decision_maker_{longest}d,
               sum(n) AS _not_known_yet_long
        FROM (SELECT * FROM engaged UNION ALL SELECT * FROM not_known)
        GROUP BY akey, as_of
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
    over the aliases c = counts and recency, k = contacts, kn = known contacts)."""
    known_join = "LEFT JOIN engagement_known kn ON kn._row = s._row" if has_contacts else ""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW features_engagement AS
        SELECT s._row, {", ".join(outputs)}
        FROM spine s
        LEFT JOIN engagement_counts c ON c._row = s._row
        LEFT JOIN engagement_contacts k ON k.akey = s.akey AND k.as_of = s.as_of
        {known_join}
        """
    )


def drop_intermediates(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what the view does not read."""
    for table in INTERMEDIATE_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {table}")
