"""Opportunity-history features: what the CRM knew about past deals at ``as_of``.

Point-in-time rule: an opportunity counts from its ``created_at < as_of``; its outcome (won /
lost, amount won) only from ``closed_at < as_of``. A deal closed after ``as_of`` was open then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from propensity.features.phrases import Wording, is_missing, number
from propensity.features.registry import FamilyBuild, FeatureConfig, FeatureSpec
from propensity.features.sql import known_at

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

FAMILY = "history"
CREATED = "opportunities created strictly before as_of"
CLOSED = "outcomes of opportunities closed strictly before as_of"


def build(con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig) -> FamilyBuild:
    """Create the view ``features_history`` (``_row`` of the spine, then the features)."""
    has_amount = "amount" in tables.opportunities
    con.execute(_view(has_amount))
    return FamilyBuild(_specs(has_amount))


def _specs(has_amount: bool) -> list[FeatureSpec]:
    """The history features, in the order of the view's columns."""
    specs = [
        FeatureSpec(
            "hist_opportunities",
            FAMILY,
            "hist_opportunities",
            "earlier opportunities",
            "opportunities created before as_of",
            CREATED,
            empty_value=0.0,
        ),
        FeatureSpec(
            "hist_lost",
            FAMILY,
            "hist_lost",
            "earlier lost opportunities",
            "opportunities closed lost before as_of",
            CLOSED,
            empty_value=0.0,
        ),
        FeatureSpec(
            "hist_days_since_last_closed",
            FAMILY,
            "hist_recency",
            "days since the last closed deal",
            "days between the last closed_at before as_of and as_of (missing: none)",
            CLOSED,
        ),
        FeatureSpec(
            "hist_days_since_last_opportunity",
            FAMILY,
            "hist_recency",
            "days since the last opportunity",
            "days since the last created_at before as_of",
            CREATED,
        ),
    ]
    if has_amount:
        specs.append(
            FeatureSpec(
                "hist_won_amount",
                FAMILY,
                "hist_won_amount",
                "amount won before",
                "sum of amounts of opportunities won before as_of",
                CLOSED,
                empty_value=0.0,
            )
        )
    return specs


def _view(has_amount: bool) -> str:
    """SQL of ``features_history``: per snapshot, the opportunities created before it."""
    closed_before = known_at("o.closed_at", "s.as_of")
    won_amount = (
        f"sum(o.amount) FILTER (WHERE o.outcome = 'won' AND {closed_before})"
        if has_amount
        else "NULL"
    )
    return f"""
        CREATE OR REPLACE TEMP VIEW features_history AS
        WITH per_snapshot AS (
            SELECT s.account_id, s.as_of,
                   count(*) AS hist_opportunities,
                   count(*) FILTER (WHERE o.outcome = 'lost' AND {closed_before}) AS hist_lost,
                   date_diff('day', CAST(max(o.closed_at) FILTER (WHERE {closed_before}) AS DATE),
                             CAST(s.as_of AS DATE)) AS hist_days_since_last_closed,
                   date_diff('day', CAST(max(o.created_at) AS DATE), CAST(s.as_of AS DATE))
                       AS hist_days_since_last_opportunity,
                   {won_amount} AS hist_won_amount
            FROM spine s
            JOIN opportunities o ON o.account_id = s.account_id AND {known_at("o.created_at", "s.as_of")}
            GROUP BY s.account_id, s.as_of
        )
        SELECT s._row,
               CAST(coalesce(p.hist_opportunities, 0) AS DOUBLE) AS hist_opportunities,
               CAST(coalesce(p.hist_lost, 0) AS DOUBLE) AS hist_lost,
               CAST(p.hist_days_since_last_closed AS DOUBLE) AS hist_days_since_last_closed,
               CAST(p.hist_days_since_last_opportunity AS DOUBLE) AS hist_days_since_last_opportunity
               {", CAST(coalesce(p.hist_won_amount, 0) AS DOUBLE) AS hist_won_amount" if has_amount else ""}
        FROM spine s
        LEFT JOIN per_snapshot p ON p.account_id = s.account_id AND p.as_of = s.as_of
        """


# ---- wording of the reasons: business field -> sentence from the account's values


def _deals(field: str, values: dict, reference: dict) -> str:
    """Earlier and lost opportunities, read together: '3 earlier opportunities, 1 lost'."""
    parts = []
    if not is_missing(values.get("hist_opportunities")):
        count = values["hist_opportunities"]
        parts.append(
            "no earlier opportunity"
            if count == 0
            else f"{number(count)} earlier opportunit{'ies' if count != 1 else 'y'}"
        )
    if not is_missing(values.get("hist_lost")) and values["hist_lost"] > 0:
        parts.append(f"{number(values['hist_lost'])} lost")
    return (", ".join(parts) or "deal history").capitalize()


def _recency(field: str, values: dict, reference: dict) -> str:
    closed = values.get("hist_days_since_last_closed")
    if not is_missing(closed):
        return f"Last deal closed {number(closed)} days ago"
    opened = values.get("hist_days_since_last_opportunity")
    return (
        "No earlier deal" if is_missing(opened) else f"Last opportunity {number(opened)} days ago"
    )


# business field -> wording (hist_won_amount reads as its value: "hist won amount: 12,000")
WORDING: dict[str, Wording] = {
    "hist_opportunities": _deals,
    "hist_lost": _deals,
    "hist_recency": _recency,
}
