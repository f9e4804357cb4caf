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

from propensity.features.phrases import (
    Wording,
    all_missing,
    is_missing,
    momentum_pairs,
    number,
    plain,
)
from propensity.features.registry import FamilyBuild, FeatureConfig, FeatureSpec
from propensity.features.sql import known_at, quote_literal

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

FAMILY = "intent"
EPISODE = "intent_days_in_surge"
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
        *_rhythm_specs(config),
    ]


def momentum_name(recent_weeks: int, prior_weeks: int) -> str:
    return f"intent_momentum_{recent_weeks}w_{prior_weeks}w"


def _rhythm_specs(config: FeatureConfig) -> list[FeatureSpec]:
    """Momentum of the recent weeks against the weeks before; days into the surge episode."""
    specs = [
        FeatureSpec(
            momentum_name(recent, prior),
            FAMILY,
            "intent_momentum",
            f"intent of the last {recent} week{'s' if recent != 1 else ''} vs the {prior} "
            "weeks before",
            f"mean score of the {recent} latest known weeks - mean score of the {prior} weeks "
            "before",
            AVAILABLE,
        )
        for recent, prior in config.momentum_weeks
    ]
    if config.episode_gap_days is not None:
        gap = config.episode_gap_days
        specs.append(
            FeatureSpec(
                EPISODE,
                FAMILY,
                "intent_episode",
                "days since the current intent surge began",
                f"days from the first surging week (a topic >= {config.intent_surge_threshold:g}) "
                f"of the current run of surging weeks (no gap over {gap} days, the latest known "
                f"within {gap} days of as_of) to as_of, counted from when that week became "
                "known; missing: no current surge",
                AVAILABLE,
            )
        )
    return specs


def _view(config: FeatureConfig) -> str:
    """SQL of ``features_intent``: the scores known at each snapshot, aggregated per window."""
    threshold = config.intent_surge_threshold
    prior_days = max(
        [28 + 7 * config.intent_prior_weeks]
        + [7 * (recent + prior) for recent, prior in config.momentum_weeks]
    )
    topic_filter = ""
    if config.intent_topics is not None:
        topic_filter = (
            "AND i.topic IN (" + ", ".join(quote_literal(t) for t in config.intent_topics) + ")"
        )
    # momentum: the mean score of the recent weeks and of the weeks before them, per pair
    momentum_means, outputs = "", ""
    for recent, prior in config.momentum_weeks:
        name = momentum_name(recent, prior)
        for part, lo, hi in (
            ("recent", 0, 7 * recent),
            ("prior", 7 * recent, 7 * (recent + prior)),
        ):
            band = f"m.age >= {lo} AND m.age < {hi}"
            momentum_means += (
                f",\n                   sum(k.score_milli) FILTER (WHERE {band}) / "
                f"count(*) FILTER (WHERE {band}) / 1000.0 AS _{name}_{part}"
            )
        outputs += f",\n               CAST(p._{name}_recent - p._{name}_prior AS DOUBLE) AS {name}"
    episode_ctes, episode_join = "", ""
    if config.episode_gap_days is not None:
        gap = config.episode_gap_days
        # surging weeks, each with the first week of its run (a gap over `gap` days starts a
        # new run); a snapshot reads the latest surging week it knows (an as-of join)
        episode_ctes = f""",
        surging AS (
            SELECT akey, last_day,
                   CASE WHEN last_day - lag(last_day) OVER w > {gap} OR lag(last_day) OVER w IS NULL
                        THEN last_day END AS run_start
            FROM (SELECT akey, last_day FROM known GROUP BY akey, last_day
                  HAVING max(score_milli) >= {threshold * 1000})
            WINDOW w AS (PARTITION BY akey ORDER BY last_day)
        ),
        episodes AS (
            SELECT akey, last_day,
                   max(run_start) OVER (PARTITION BY akey ORDER BY last_day
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       AS episode_start
            FROM surging
        )"""
        episode_join = f"""
        ASOF LEFT JOIN episodes e ON e.akey = s.akey AND {known_at("e.last_day", "CAST(s.as_of AS DATE)")}"""
        outputs += (
            f",\n               CASE WHEN date_diff('day', e.last_day, CAST(s.as_of AS DATE)) <= {gap}"
            f" THEN CAST(date_diff('day', e.episode_start, CAST(s.as_of AS DATE)) AS DOUBLE)"
            f" END AS {EPISODE}"
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
            SELECT k.akey, m.as_of,
                   sum(k.score_milli) FILTER (WHERE m.age >= 28 AND m.age < {28 + 7 * config.intent_prior_weeks})
                     / count(*) FILTER (WHERE m.age >= 28 AND m.age < {28 + 7 * config.intent_prior_weeks})
                     / 1000.0 AS prior_mean{momentum_means}
            FROM known k JOIN week_map m ON m.last_day = k.last_day{"" if config.momentum_weeks else " AND m.age >= 28"}
            GROUP BY k.akey, m.as_of
        ){episode_ctes}
        SELECT s._row,
               CAST(r.intent_max_1w AS DOUBLE) AS intent_max_1w,
               CAST(r.intent_mean_1w AS DOUBLE) AS intent_mean_1w,
               CAST(r.intent_max_4w AS DOUBLE) AS intent_max_4w,
               CAST(r.intent_mean_4w AS DOUBLE) AS intent_mean_4w,
               CAST(coalesce(r.intent_surging_topics_4w, 0) AS DOUBLE) AS intent_surging_topics_4w,
               CAST(r.intent_mean_4w - p.prior_mean AS DOUBLE) AS intent_trend,
               t.topic AS intent_top_topic_4w{outputs}
        FROM spine s
        LEFT JOIN recent r ON r.akey = s.akey AND r.as_of = s.as_of
        LEFT JOIN prior p ON p.akey = s.akey AND p.as_of = s.as_of
        LEFT JOIN topics t ON t.code = r.intent_top_topic_4w{episode_join}
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


def _momentum(field: str, values: dict, reference: dict) -> str:
    """The shortest momentum pair (``intent_momentum_<r>w_<p>w``): points over the prior weeks."""
    if all_missing(values):
        return NO_INTENT
    pairs = momentum_pairs(values, "intent_momentum_")
    if not pairs:
        return "Intent momentum unknown (too few delivered weeks)"
    recent, prior, change = pairs[0]
    weeks = "last week" if recent == 1 else f"the last {recent} weeks"
    return f"Intent {weeks} {change:+.0f} points vs the prior {prior} weeks"


def _episode(field: str, values: dict, reference: dict) -> str:
    days = values.get(EPISODE)
    if is_missing(days):
        return "No current intent surge"
    if days < 14:
        return f"Intent surge began {number(days)} days ago"
    return f"Intent surging for {days / 7:.0f} weeks (first surge {number(days)} days ago)"


def _any_intent(field: str, values: dict, reference: dict) -> str:
    """Any other field named intent*: missing means no intent data was delivered."""
    return NO_INTENT if all_missing(values) else plain(field, values)


# business field -> wording; with no value at all, every intent field says so in one sentence
WORDING: dict[str, Wording] = {
    "intent_surge": _surge,
    "intent_breadth": _breadth,
    "intent_trend": _trend,
    "intent_momentum": _momentum,
    "intent_episode": _episode,
    "intent*": _any_intent,
}
