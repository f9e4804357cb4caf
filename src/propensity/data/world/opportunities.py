"""Opportunities: new business opened from the buying state, expansions, and deals before the data.

A new-business deal is won with a probability that grows with fit and with the breadth of the
buying group (more roles engaged, a decision maker among them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from propensity.data.world.columns import dictionary, timestamps
from propensity.data.world.config import DAY, WEEK, Clock

OUTCOMES = ("won", "lost", "open")
OPPORTUNITY_TYPES = ("new_business", "expansion")


@dataclass
class Deals:
    """Opportunities opened together: account index, created and closed (seconds), won, type."""

    account: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    won: np.ndarray
    expansion: np.ndarray


def win_probability(
    fit: np.ndarray, roles_engaged: np.ndarray, dm_engaged: np.ndarray, shift: float = 0.0
) -> np.ndarray:
    """Probability that a new-business deal is won (``shift`` moves its log-odds)."""
    logit = -5.1 + 3.4 * fit + 0.45 * roles_engaged + 0.5 * dm_engaged + shift
    return 1.0 / (1.0 + np.exp(-logit))


def open_new_business(
    rng: np.random.Generator,
    idx: np.ndarray,
    fit: np.ndarray,
    episode_roles: np.ndarray,
    clock: Clock,
    week: int,
    win_rate_shift: float = 0.0,
    sales_cycle_days: float = 50,
) -> Deals:
    """New-business deals of accounts ``idx`` opened in ``week``; outcome drawn at once, days
    open log-normal around ``sales_cycle_days``."""
    bits = episode_roles[idx]
    n_roles = np.unpackbits(bits.astype(np.uint8)[:, None], axis=1)[:, 4:].sum(axis=1)
    dm = (bits & 4) > 0
    won = rng.random(len(idx)) < win_probability(fit[idx], n_roles, dm, win_rate_shift)
    created = clock.start + week * WEEK + rng.integers(0, WEEK, size=len(idx))
    days_open = np.round(
        np.exp(np.log(sales_cycle_days) + 0.6 * rng.standard_normal(len(idx)))
    ).clip(7, 400)
    closed = created + (days_open * DAY).astype(np.int64)
    return Deals(idx, created, closed, won, np.zeros(len(idx), dtype=bool))


def open_expansions(rng: np.random.Generator, idx: np.ndarray, clock: Clock, week: int) -> Deals:
    """Expansion deals of customer accounts ``idx`` opened in ``week``."""
    created = clock.start + week * WEEK + rng.integers(0, WEEK, size=len(idx))
    closed = created + (rng.integers(14, 120, size=len(idx)) * DAY)
    return Deals(idx, created, closed, rng.random(len(idx)) < 0.6, np.ones(len(idx), dtype=bool))


def draw_history(
    rng: np.random.Generator,
    fit: np.ndarray,
    trap: np.ndarray,
    customer_at_start: np.ndarray,
    clock: Clock,
) -> list[Deals]:
    """Deals before the data starts: the won deal of today's customers, and some lost deals."""
    hist_lost = (rng.random(len(fit)) < 0.08 + 0.1 * fit) & (trap == 0)
    deals = []
    for mask, won in ((customer_at_start, True), (hist_lost, False)):
        idx = np.flatnonzero(mask)
        created = clock.start - rng.integers(8 * WEEK, 150 * WEEK, size=len(idx))
        closed = np.minimum(created + rng.integers(20, 200, size=len(idx)) * DAY, clock.start - DAY)
        deals.append(
            Deals(idx, created, closed, np.full(len(idx), won), np.zeros(len(idx), dtype=bool))
        )
    return deals


@dataclass
class Opportunities:
    """All opportunities of a chunk, sorted by account and creation time."""

    account: np.ndarray
    created: np.ndarray
    closed: np.ndarray
    expansion: np.ndarray
    open: np.ndarray  # still open at the export date
    outcome: np.ndarray  # codes into OUTCOMES
    amount: np.ndarray


def collect_opportunities(
    rng: np.random.Generator, deals: list[Deals], employees: np.ndarray, clock: Clock
) -> Opportunities:
    """Sort the deals, settle their outcome at the export date and draw their amounts."""
    account = np.concatenate([d.account for d in deals]).astype(np.int64)
    created = np.concatenate([d.created for d in deals]).astype(np.int64)
    closed = np.concatenate([d.closed for d in deals]).astype(np.int64)
    won = np.concatenate([d.won for d in deals]).astype(bool)
    expansion = np.concatenate([d.expansion for d in deals]).astype(bool)
    order = np.lexsort((created, account))
    account, created, closed, won, expansion = (
        a[order] for a in (account, created, closed, won, expansion)
    )
    still_open = closed >= clock.end
    outcome = np.where(still_open, 2, np.where(won, 0, 1))
    base_amount = 12_000 * (employees[account] / 100) ** 0.35
    amount = np.round(
        base_amount
        * np.exp(0.5 * rng.standard_normal(len(account)))
        * np.where(expansion, 0.3, 1.0),
        -2,
    )
    return Opportunities(account, created, closed, expansion, still_open, outcome, amount)


def opportunities_table(opps: Opportunities, ids: np.ndarray, chunk_index: int) -> pa.Table:
    """The ``opportunities`` contract table (ids unique across chunks)."""
    k = len(opps.account)
    return pa.table(
        {
            "opportunity_id": pa.array(
                [f"O{chunk_index:04d}{i:07d}" for i in range(k)], pa.string()
            ),
            "account_id": dictionary(opps.account, ids),
            "created_at": timestamps(opps.created),
            "closed_at": timestamps(opps.closed, mask=opps.open),
            "outcome": dictionary(opps.outcome, OUTCOMES),
            "amount": pa.array(opps.amount),
            "type": dictionary(opps.expansion.astype(np.int8), OPPORTUNITY_TYPES),
        }
    )
