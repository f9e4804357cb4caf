"""The buying journey: a weekly chain out of market -> researching -> buying -> in deal -> customer.

Out-of-market accounts start researching at a rate that grows with fit; each buying episode
engages a random subset of the buying-group roles, broader for better-fit accounts. A buying
account opens an opportunity at ``OPPORTUNITY_RATE`` a week and is in deal from the next week
until the deal closes (won: customer, lost: out of market). ``conversion_probability`` is the
exact chance of a new-business opportunity under this chain, used for the truth tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from propensity.data.world.config import WEEK, Clock, WorldConfig
from propensity.data.world.opportunities import Deals, open_expansions, open_new_business

OUT, RESEARCH, BUYING, DEAL, CUSTOMER = 0, 1, 2, 3, 4
STATE_NAMES = ("out_of_market", "researching", "buying", "in_deal", "customer")

RESEARCH_TO_OUT = 0.04
BUYING_TO_OUT = 0.05
OPPORTUNITY_RATE = 0.30  # weekly probability that a buying account opens an opportunity
EXPANSION_RATE = 0.006  # weekly probability of an expansion opportunity for a customer


def entry_rate(fit: np.ndarray) -> np.ndarray:
    """Weekly probability that an out-of-market account starts researching."""
    return 0.001 + 0.017 * fit**1.5


def research_to_buying(fit: np.ndarray, research_weeks_scale: float = 1.0) -> np.ndarray:
    """Weekly probability that a researching account starts buying (``research_weeks_scale``
    stretches the research phase)."""
    return (0.02 + 0.06 * fit) / research_weeks_scale


def conversion_probability(
    state: np.ndarray,
    fit: np.ndarray,
    weeks_into_window: float,
    horizon_days: int,
    state_known: bool,
    research_weeks_scale: float = 1.0,
) -> np.ndarray:
    """Exact P(new-business opportunity created in (s, s + horizon]) under the world's dynamics.

    ``state`` is the state of the week containing ``s`` when ``state_known`` (s is inside the
    week), else the state of the week before (s is a week start: the week's transition has not
    happened yet). ``weeks_into_window`` is the fraction of the week already elapsed at ``s``.
    Accounts in deal or customers get 0 (they are not prospects).
    """
    n = len(state)
    p_enter, p_rb = entry_rate(fit), research_to_buying(fit, research_weeks_scale)
    mass = np.zeros((n, 3))  # out, researching, buying; opportunity creation absorbs the mass
    prospect = state <= BUYING
    mass[np.arange(n)[prospect], state[prospect]] = 1.0

    def step(m: np.ndarray) -> np.ndarray:
        out, res, buy = m[:, 0], m[:, 1], m[:, 2]
        return np.stack(
            [
                out * (1 - p_enter) + res * RESEARCH_TO_OUT + buy * BUYING_TO_OUT,
                out * p_enter + res * (1 - p_rb - RESEARCH_TO_OUT),
                res * p_rb + buy * (1 - BUYING_TO_OUT),
            ],
            axis=1,
        )

    if not state_known:
        mass = step(mass)
    window_end = weeks_into_window + horizon_days / 7.0
    probability = np.zeros(n)
    week = 0
    while week < window_end:
        lo, hi = max(week, weeks_into_window), min(week + 1, window_end)
        inside = max(hi - lo, 0.0)
        if week == 0 and weeks_into_window > 0:
            # condition on no opportunity earlier in this week (else the account is not a prospect)
            rate = OPPORTUNITY_RATE * inside / (1 - OPPORTUNITY_RATE * weeks_into_window)
        else:
            rate = OPPORTUNITY_RATE * inside
        probability += mass[:, 2] * rate
        mass[:, 2] *= 1 - OPPORTUNITY_RATE
        mass = step(mass)
        week += 1
    probability[~prospect] = 0.0
    return probability


@dataclass
class Journey:
    """Weekly buying state of each account of a chunk, and the deals the journey opened."""

    state: np.ndarray  # (accounts, weeks), codes into STATE_NAMES
    roles: np.ndarray  # (accounts, weeks), one bit per role engaged in the current episode
    initial_state: np.ndarray  # the state before the first week
    customer_at_start: np.ndarray
    deals: list[Deals]


def draw_roles(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Buying-group roles of new episodes (bit per role, at least one), each with chance ``p``."""
    bits = rng.random((len(p), 4)) < p[:, None]
    bits[~bits.any(axis=1), rng.integers(0, 4, size=(~bits.any(axis=1)).sum())] = True
    return (bits * np.array([1, 2, 4, 8])).sum(axis=1).astype(np.int8)


def simulate_journey(
    rng: np.random.Generator, config: WorldConfig, clock: Clock, fit: np.ndarray, trap: np.ndarray
) -> Journey:
    """Walk every account through the weekly chain, opening opportunities on the way."""
    n, weeks = len(fit), clock.weeks
    state = np.empty((n, weeks), dtype=np.int8)
    roles_mask = np.zeros((n, weeks), dtype=np.int8)
    p_enter, p_rb = entry_rate(fit), research_to_buying(fit, config.research_weeks_scale)
    customer0 = (rng.random(n) < config.customer_share_at_start * 2.5 * fit) & (trap == 0)
    u0 = rng.random(n)
    current = np.where(customer0, CUSTOMER, np.where(u0 < 0.05 * fit * 2, RESEARCH, OUT)).astype(
        np.int8
    )
    initial_state = current.copy()
    episode_roles = np.zeros(n, dtype=np.int8)
    role_engage_p = 0.45 + 0.45 * fit
    new_res = current == RESEARCH
    episode_roles[new_res] = draw_roles(rng, role_engage_p[new_res])
    deal_close_week = np.full(n, -1, dtype=np.int64)
    deal_won = np.zeros(n, dtype=bool)
    opened_last_week = np.zeros(n, dtype=bool)
    deals: list[Deals] = []
    for w in range(weeks):
        u = rng.random(n)
        nxt = current.copy()
        enter = (current == OUT) & (u < p_enter)
        nxt[enter] = RESEARCH
        episode_roles[enter] = draw_roles(rng, role_engage_p[enter])
        res = current == RESEARCH
        nxt[res & (u < p_rb)] = BUYING
        nxt[res & (u >= p_rb) & (u < p_rb + RESEARCH_TO_OUT)] = OUT
        buy = current == BUYING
        nxt[buy & opened_last_week] = DEAL
        nxt[buy & ~opened_last_week & (u < BUYING_TO_OUT)] = OUT
        closing = (current == DEAL) & (deal_close_week <= w)
        nxt[closing & deal_won] = CUSTOMER
        nxt[closing & ~deal_won] = OUT
        episode_roles[nxt == OUT] = 0
        current = nxt
        state[:, w] = current
        roles_mask[:, w] = episode_roles

        opens = (current == BUYING) & (rng.random(n) < OPPORTUNITY_RATE)
        new = open_new_business(
            rng,
            np.flatnonzero(opens),
            fit,
            episode_roles,
            clock,
            w,
            win_rate_shift=config.win_rate_shift,
            sales_cycle_days=config.sales_cycle_days,
        )
        deal_close_week[new.account] = (new.closed - clock.start) // WEEK + 1
        deal_won[new.account] = new.won
        opened_last_week = opens
        deals.append(new)

        expands = (current == CUSTOMER) & (rng.random(n) < EXPANSION_RATE)
        deals.append(open_expansions(rng, np.flatnonzero(expands), clock, w))
    return Journey(state, roles_mask, initial_state, customer0, deals)
