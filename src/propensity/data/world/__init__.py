"""Synthetic B2B world with ground truth: the embedded default data of demo, tests and benchmarks.

A world is a folder with the five contract tables (``accounts``, ``contacts``, ``events``,
``intent``, ``opportunities`` as Parquet) and a ``truth/`` subfolder that the pipeline never
reads: the hidden ICP fit per account, the hidden buying state and the exact probability of the
conversion label per account and snapshot date (so an oracle can be scored on any window), and
the config that made the world.

How the world works (all hidden, weekly):

* Firmographics are correlated (industry mix, log-normal employees and revenue by industry,
  country, founded year, technographic flags) with realistic missingness.
* ICP fit is a non-linear function of them: a company-size sweet spot, industry and country
  effects, and an interaction of the CRM flag with the industry.
* A buying state per account and week: out of market -> researching -> buying -> (opportunity)
  in deal -> customer or back out. The entry rate grows with fit; each buying episode engages a
  random subset of the buying-group roles, broader for better-fit accounts.
* Contacts in roles (user, influencer, decision maker, IT) produce engagement events whose rates
  depend on the state, on whether their role is in the episode's buying group and on the
  contact's own propensity; anonymous (reverse-IP) web visits come per account.
* Traps for a hand-tuned scorecard: no-fit accounts that engage all the time (students,
  competitors, vendors' staff) and accounts whose mail gateway auto-opens and clicks every
  e-mail (only e-mail engagement, no intent behind it).
* Third-party intent for a covered subset of accounts: weekly topic scores that surge while
  researching (and, for competitors, all the time); only scores >= ``intent_report_floor`` are
  delivered, as intent vendors do.
* Opportunities are created from the buying state; their outcome depends on fit and on the
  breadth of the buying group; a share of accounts were customers before the data starts.
* What differs between companies is a knob (defaults: the world above, byte for byte): how long
  accounts research (``research_weeks_scale``), how many weeks engagement trails the journey
  (``engagement_lag_weeks``) and intent comes before engagement (``intent_lead_weeks``), intent
  coverage, anonymous traffic (``anonymous_traffic_scale``), the odds of winning
  (``win_rate_shift``) and the sales cycle (``sales_cycle_days``); ``conversion_probability``
  follows the research phase, so the truth stays exact.
* Optionally a regime change at a date (``WorldConfig.regime_change``): a share of the accounts
  loses its intent feed or its engagement events from then on, while the market is unchanged,
  so a model trained before the change drifts (what monitoring must catch).
* Leakage bait in ``accounts``: ``lifecycle_stage`` and ``last_activity_at`` as of the export
  date. They describe the end of the data and must never become a feature at a past snapshot.

Accounts are simulated in chunks of ``chunk_accounts`` with a random stream per chunk, so memory
stays flat for a million accounts and the same seed and config give identical files.

One module per process, in the order a chunk runs through them (``chunk.py``): ``config``
(settings and clock), ``accounts`` (firmographics, fit, traps, names, leakage bait), ``journey``
(the buying-state chain and ``conversion_probability``), ``opportunities``, ``contacts``,
``engagement`` (events), ``intent``, ``regime`` (what a regime change removes), ``truth`` (the
truth tables) and ``generate`` (chunks to Parquet files).
"""

from propensity.data.world.config import RegimeChange, WorldConfig
from propensity.data.world.generate import WORLD_TABLES, generate_world, iter_world_chunks
from propensity.data.world.journey import STATE_NAMES, conversion_probability
from propensity.data.world.truth import read_truth, truth_dates

__all__ = [
    "STATE_NAMES",
    "WORLD_TABLES",
    "RegimeChange",
    "WorldConfig",
    "conversion_probability",
    "generate_world",
    "iter_world_chunks",
    "read_truth",
    "truth_dates",
]
