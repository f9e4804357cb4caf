"""Third-party intent features: topic surge scores per account and week.

Point-in-time rule: the score of the week starting ``week`` is known from ``week + 7 days``; a
snapshot ``as_of`` sees it only if ``week + 7 days <= as_of``. "Last 1 week" is the latest week
known at ``as_of`` (known within the last 7 days), "last 4 weeks" the four latest, and the trend
compares them with the ``intent_prior_weeks`` before. Accounts with no delivered score in a
window have missing max/mean (not observed), and zero surging topics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from propensity.features.phrases import Wording, all_missing, is_missing, number, plain
from propensity.features.registry import FamilyBuild, FeatureConfig, FeatureSpec
from propensity.features.sql import known_at, quote_literal

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

FAMILY = "intent"
AVAILABLE = (
    "intent weeks whose last day (week + 6 days) is before as_of (published after the week ends)"
)


def build(con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig) -> FamilyBuild:
    """Create the view ``features_intent`` (``_row`` of the spine, then the features)."""
    con.execute(_view(config))
    return FamilyBuild(_specs(config))


def _specs(config: FeatureConfig) -> list[FeatureSpec]:
    """The intent features, in the order of the view's columns."""
    threshold = config.intent_surge_threshold
    return [
        FeatureSpec(
            "intent_max_1w",
            FAMILY,
            "intent_surge",
            "top intent surge last week",
            "max topic score of the latest known week",
            AVAILABLE,
        ),
        FeatureSpec(
            "intent_mean_1w",
            FAMILY,
            "intent_surge",
            "mean intent score last week",
            "mean delivered topic score of the latest known week",
            AVAILABLE,
        ),
        FeatureSpec(
            "intent_max_4w",
            FAMILY,
            "intent_surge",
            "top intent surge in the last 4 weeks",
            "max topic score over the 4 latest known weeks",
            AVAILABLE,
        ),
        FeatureSpec(
            "intent_mean_4w",
            FAMILY,
            "intent_surge",
            "mean intent score in the last 4 weeks",
            "mean delivered topic score over the 4 latest known weeks",
            AVAILABLE,
        ),
        FeatureSpec(
            "intent_surging_topics_4w",
            FAMILY,
            "intent_breadth",
            f"topics surging (score >= {threshold:g}) in the last 4 weeks",
            f"distinct topics with a score >= {threshold:g} in the 4 latest known weeks",
            AVAILABLE,
            empty_value=0.0,
        ),
        FeatureSpec(
            "intent_trend",
            FAMILY,
            "intent_trend",
            f"intent trend vs the prior {config.intent_prior_weeks} weeks",
            f"mean score of the last 4 weeks - mean score of the {config.intent_prior_weeks} weeks before",
            AVAILABLE,
        ),
        FeatureSpec(
            "intent_top_topic_4w",
            FAMILY,
            "intent_surge",
            "top intent topic",
            "topic with the highest score in the last 4 weeks (for reason wording)",
            AVAILABLE,
            kind="context",
        ),
    ]


def _view(config: FeatureConfig) -> str:
    """SQL of ``features_intent``: the scores known at each snapshot, aggregated per window."""
    threshold = config.intent_surge_threshold
    prior_days = 28 + 7 * config.intent_prior_weeks
    topic_filter = ""
    if config.intent_topics is not None:
        topic_filter = (
            "AND i.topic IN (" + ", ".join(quote_literal(t) for t in config.intent_topics) + ")"
        )
    return f"""
        CREATE OR REPLACE TEMP VIEW features_intent AS
        -- topics as integer codes in name order: the groupings below run on them
        WITH topics AS MATERIALIZED (
            SELECT topic, CAST(row_number() OVER (ORDER BY topic) AS INTEGER) AS code
            FROM (SELECT DISTINCT topic FROM intent)
        ),
        known AS MATERIALIZED (
            SELECT a.akey, CAST(CAST(i.week AS DATE) + INTERVAL 6 DAY AS DATE) AS last_day,
                   t.code AS topic, CAST(round(i.score * 1000) AS BIGINT) AS score_milli
            FROM intent i JOIN spine_accounts a ON a.account_id = i.account_id
            JOIN topics t ON t.topic = i.topic
            WHERE true {topic_filter}
        ),
        -- (last day of a week, snapshot) pairs that see the week: a small table, so each
        -- intent row meets its snapshots through a hash join, not a range join
        week_map AS MATERIALIZED (
            SELECT d.last_day, s.as_of,
                   date_diff('day', d.last_day, CAST(s.as_of AS DATE)) - 1 AS age
            FROM (SELECT DISTINCT last_day FROM known) d
            JOIN snapshot_dates s
              ON {known_at("d.last_day", "CAST(s.as_of AS DATE)")}
             AND CAST(s.as_of AS DATE) <= d.last_day + INTERVAL {prior_days} DAY
        ),
        -- every window is a run of whole weeks: the last 4 weeks (the latest one among them)
        -- and the weeks before are aggregated apart, so the wider window carries two sums
        -- only; the top topic is the row with the highest score (ties: the first topic by name)
        recent AS (
            SELECT k.akey, m.as_of,
                   max(k.score_milli) FILTER (WHERE m.age < 7) / 1000.0 AS intent_max_1w,
                   sum(k.score_milli) FILTER (WHERE m.age < 7)
                     / count(*) FILTER (WHERE m.age < 7) / 1000.0 AS intent_mean_1w,
                   max(k.score_milli) / 1000.0 AS intent_max_4w,
                   sum(k.score_milli) / count(*) / 1000.0 AS intent_mean_4w,
                   count(DISTINCT k.topic) FILTER (WHERE k.score_milli >= {threshold * 1000})
                       AS intent_surging_topics_4w,
                   -struct_extract(
                       max({{'score': k.score_milli, 'minus_topic': -k.topic}}), 'minus_topic'
                   ) AS intent_top_topic_4w
            FROM known k JOIN week_map m ON m.last_day = k.last_day AND m.age < 28
            GROUP BY k.akey, m.as_of
        ),
        prior AS (
            SELECT k.akey, m.as_of, sum(k.score_milli) / count(*) / 1000.0 AS prior_mean
            FROM known k JOIN week_map m ON m.last_day = k.last_day AND m.age >= 28
            GROUP BY k.akey, m.as_of
        )
        SELECT s._row,
               CAST(r.intent_max_1w AS DOUBLE) AS intent_max_1w,
               CAST(r.intent_mean_1w AS DOUBLE) AS intent_mean_1w,
               CAST(r.intent_max_4w AS DOUBLE) AS intent_max_4w,
               CAST(r.intent_mean_4w AS DOUBLE) AS intent_mean_4w,
               CAST(coalesce(r.intent_surging_topics_4w, 0) AS DOUBLE) AS intent_surging_topics_4w,
               CAST(r.intent_mean_4w - p.prior_mean AS DOUBLE) AS intent_trend,
               t.topic AS intent_top_topic_4w
        FROM spine s
        LEFT JOIN recent r ON r.akey = s.akey AND r.as_of = s.as_of
        LEFT JOIN prior p ON p.akey = s.akey AND p.as_of = s.as_of
        LEFT JOIN topics t ON t.code = r.intent_top_topic_4w
        """


# ---- wording of the reasons: business field -> sentence from the account's values

NO_INTENT = "No third-party intent data for this account"


def _surge(field: str, values: dict, reference: dict) -> str:
    if all_missing(values):
        return NO_INTENT
    topic = values.get("intent_top_topic_4w")
    top = values.get("intent_max_4w")
    if is_missing(top):
        return "No intent surge delivered in the last 4 weeks"
    about = f" on '{topic}'" if isinstance(topic, str) else ""
    level = "surging" if top >= 60 else "at"
    return f"Intent{about} {level} {number(top)} in the last 4 weeks"


def _breadth(field: str, values: dict, reference: dict) -> str:
    if all_missing(values):
        return NO_INTENT
    count = values.get("intent_surging_topics_4w", 0)
    if not count:
        return "No intent topic surging in the last 4 weeks"
    return f"{number(count)} intent topic{'s' if count != 1 else ''} surging in the last 4 weeks"


def _trend(field: str, values: dict, reference: dict) -> str:
    if all_missing(values):
        return NO_INTENT
    trend = values.get("intent_trend")
    if is_missing(trend):
        return "Intent trend unknown (too little intent history)"
    return (
        f"Intent {'rising' if trend > 0 else 'falling'} ({trend:+.0f} points vs the prior 12 weeks)"
    )


def _any_intent(field: str, values: dict, reference: dict) -> str:
    """Any other field named intent*: missing means no intent data was delivered."""
    return NO_INTENT if all_missing(values) else plain(field, values)


# business field -> wording; with no value at all, every intent field says so in one sentence
WORDING: dict[str, Wording] = {
    "intent_surge": _surge,
    "intent_breadth": _breadth,
    "intent_trend": _trend,
    "intent*": _any_intent,
}
