"""A synthetic won/lost campaign export with planted drift: the table-mode test world.

One row per contacted lead over ``months`` months (time column ``contacted_at``), label
``subscribed`` (yes / no), shaped like the public time-ordered bank-marketing exports:

* genuine columns whose relation to the outcome does not change over time: ``age``, ``job``,
  ``balance``, ``previous_contacts``, and ``previous_outcome``, the result of an earlier,
  finished campaign (a legitimate pre-contact fact, though its name says "outcome");
* period indicators (``rate_3m``, ``employment_index``, ``confidence_index``): economy-wide
  figures, one value per month plus a little noise, moving steadily with time; they identify
  the month and say nothing about the lead;
* a base rate that moves with the economy: it sags through the first ``slump_share`` of the
  months (to ``1 / slump`` of its starting level), then climbs to ``base_rate_growth`` times
  the starting level by the last month. Trees that split on the indicators' exact values learn
  "the latest months convert least" and carry it into a period that converts most;
* ``call_duration``: a field filled in after the call (longer calls for leads who subscribe), a
  leak the screen must catch, whatever the protocol.

``signal`` scales how much the lead's own columns matter. Same arguments -> the same table.
With ``base_rate_growth=1``, ``slump=1`` and ``indicators=False`` there is no drift (the control).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

JOBS = ("admin", "blue-collar", "technician", "services", "management", "retired", "student")
JOB_SHARES = (0.22, 0.22, 0.17, 0.1, 0.17, 0.06, 0.06)
JOB_EFFECT = {
    "admin": 0.1,
    "blue-collar": -0.4,
    "technician": 0.0,
    "services": -0.3,
    "management": 0.2,
    "retired": 0.8,
    "student": 0.9,
}
PERIOD_INDICATORS = ("rate_3m", "employment_index", "confidence_index")
LEAK = "call_duration"


def month_log_odds(
    months: int, base_rate_growth: float, slump: float, slump_share: float
) -> np.ndarray:
    """The base rate's log-odds shift per month (0 at the first month): down by ``log(slump)``
    until ``slump_share`` of the months, then up to ``log(base_rate_growth)`` at the last."""
    position = np.arange(months) / max(months - 1, 1)
    bottom, top = -np.log(slump), np.log(base_rate_growth)
    falling = bottom * position / slump_share
    rising = bottom + (top - bottom) * (position - slump_share) / (1 - slump_share)
    return np.where(position <= slump_share, falling, rising)


def campaign_table(
    rows: int = 12_000,
    *,
    months: int = 24,
    seed: int = 0,
    base_rate_growth: float = 3.0,
    slump: float = 2.0,
    slump_share: float = 0.55,
    signal: float = 1.0,
    indicators: bool = True,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """The campaign export (see the module docstring), sorted by ``contacted_at``."""
    rng = np.random.default_rng(seed)
    month = np.sort(rng.integers(0, months, rows))
    day = rng.integers(0, 28, rows)
    contacted_at = pd.Timestamp(start) + pd.to_timedelta(month * 30 + day, unit="D")
    age = np.clip(rng.normal(41, 11, rows), 18, 90).round().astype(int)
    job = rng.choice(JOBS, rows, p=JOB_SHARES)
    balance = np.round(rng.lognormal(7, 1.2, rows) - 300, 2)
    previous_contacts = rng.poisson(0.6, rows)
    prior = np.where(
        previous_contacts == 0,
        "none",
        np.where(rng.random(rows) < 0.35, "success", "failure"),
    )
    # the lead's own propensity, the same relation in every month; thresholds and interactions
    # (a line through age or balance misses them), as trees are for
    lead = (
        np.vectorize(JOB_EFFECT.get)(job)
        + np.where((age < 25) | (age > 60), 1.0, 0.0)
        + np.where(balance > 1500, 0.8, 0.0)
        + np.where(prior == "success", 1.6, np.where(prior == "failure", -0.2, 0.0))
        + np.where((prior == "none") & (job == "blue-collar"), -0.8, 0.0)
    )
    shift = month_log_odds(months, base_rate_growth, slump, slump_share)
    logit = -3.0 + shift[month] + signal * (lead - 0.6)
    subscribed = rng.random(rows) < 1 / (1 + np.exp(-logit))
    table = pd.DataFrame(
        {
            "lead_id": [f"L{i:06d}" for i in range(rows)],
            "contacted_at": contacted_at,
            "age": age,
            "job": job,
            "balance": balance,
            "previous_contacts": previous_contacts,
            "previous_outcome": prior,
        }
    )
    if indicators:
        period = month / max(months - 1, 1)
        shock = rng.normal(0, 1, months)  # one draw per month, shared by its rows
        table["rate_3m"] = np.round(4.8 - 4.0 * period + 0.05 * shock[month], 3)
        table["employment_index"] = np.round(5200 - 150 * period + 4 * shock[month], 1)
        table["confidence_index"] = np.round(-42 + 12 * period + 0.8 * shock[month], 1)
    duration = rng.gamma(2.0, 90, rows) * np.where(subscribed, 2.5, 1.0)
    table[LEAK] = np.round(duration, 0)
    table["subscribed"] = np.where(subscribed, "yes", "no")
    return table
