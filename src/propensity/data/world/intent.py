"""Third-party intent: weekly topic scores for a covered subset of accounts.

Scores surge on the vendor's relevant topics while an account researches or buys (and, for
competitors, all the time: traps engage as if researching). Only scores at or above
``intent_report_floor`` are delivered, as intent vendors do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from propensity.data.world.columns import dictionary, timestamps
from propensity.data.world.config import WEEK, Clock, WorldConfig
from propensity.data.world.engagement import lagged
from propensity.data.world.journey import BUYING, RESEARCH

INTENT_TOPICS = (
    "crm migration",
    "sales engagement",
    "revenue operations",
    "marketing automation",
    "account based marketing",
    "cloud security",
    "payroll software",
    "office furniture",
)
RELEVANT_TOPICS = 5  # the first five topics are the ones this (fictional) vendor sells into
_BLOCK_WEEKS = 26  # weeks drawn at once, to bound memory


@dataclass
class Intent:
    """Delivered intent scores of a chunk, sorted by account, week and topic."""

    covered: np.ndarray  # per account: the intent vendor knows the account
    account: np.ndarray
    week: np.ndarray
    topic: np.ndarray  # codes into INTENT_TOPICS
    score: np.ndarray
    base: np.ndarray  # (covered accounts, 1, topics): each topic's score level without a surge


def draw_intent(rng: np.random.Generator, config: WorldConfig, eng_state: np.ndarray) -> Intent:
    """Weekly topic scores (0-100) of the covered accounts, above the report floor."""
    eng_state = lagged(eng_state, config.intent_lag_weeks)
    n, weeks = eng_state.shape
    covered = rng.random(n) < config.intent_coverage
    cov_idx = np.flatnonzero(covered)
    n_topics = len(INTENT_TOPICS)
    base = rng.normal(22, 9, size=(len(cov_idx), 1, n_topics))
    rows = []
    for w0 in range(0, weeks, _BLOCK_WEEKS):
        w1 = min(w0 + _BLOCK_WEEKS, weeks)
        st = eng_state[cov_idx, w0:w1][:, :, None]
        score = base + rng.normal(0, 11, size=(len(cov_idx), w1 - w0, n_topics))
        relevant = np.arange(n_topics)[None, None, :] < RELEVANT_TOPICS
        surge_p = np.select([st == RESEARCH, st == BUYING], [0.55, 0.35], 0.0) * relevant
        surge = rng.random(score.shape) < surge_p
        score = score + surge * rng.uniform(22, 50, size=score.shape)
        score = np.clip(np.round(score), 0, 100)
        ai, wi, ti = np.nonzero(score >= config.intent_report_floor)
        rows.append((cov_idx[ai], w0 + wi, ti, score[ai, wi, ti]))
    account, week, topic, score = (np.concatenate([r[i] for r in rows]) for i in range(4))
    order = np.lexsort((topic, week, account))
    return Intent(covered, account[order], week[order], topic[order], score[order], base)


def intent_table(intent: Intent, ids: np.ndarray, clock: Clock) -> pa.Table:
    """The ``intent`` contract table (one row per account, week and topic delivered)."""
    week_dates = (clock.start + intent.week * WEEK).astype(np.int64)
    return pa.table(
        {
            "account_id": dictionary(intent.account, ids),
            "week": timestamps(week_dates),
            "topic": dictionary(intent.topic, INTENT_TOPICS),
            "score": pa.array(intent.score.astype(np.float64)),
        }
    )
