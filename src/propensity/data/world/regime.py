"""A regime change: from a date on, the data stops describing the world as it did.

What changes is the data feed, not the market: a share of the intent-covered accounts gets no
more intent (a vendor drops part of its panel), and a share of the accounts gets no more
engagement events (a marketing-automation sync breaks for a business unit, a tracking script is
removed). The accounts keep researching, buying and opening opportunities as before, so the
truth tables are unchanged, while a model trained on the old feed sees quieter accounts than
there are: its features drift and its probabilities fall below what happens.

The change draws from a random stream of its own (``REGIME_STREAM``), so a world without a
change is identical to one made before this option existed, and a world with a change is
identical to its unchanged twin (same seed) up to the change date.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from propensity.data.world.config import WEEK, Clock, WorldConfig
from propensity.data.world.engagement import Events
from propensity.data.world.intent import Intent

REGIME_STREAM = 1


def regime_rng(config: WorldConfig, chunk_index: int) -> np.random.Generator:
    return np.random.default_rng([config.seed, chunk_index, REGIME_STREAM])


def _change_seconds(config: WorldConfig) -> int:
    return int(pd.Timestamp(config.regime_change.at).timestamp())


def change_intent(
    rng: np.random.Generator, config: WorldConfig, clock: Clock, intent: Intent
) -> Intent:
    """Drop the intent of ``intent_stop_share`` of the covered accounts from the change on
    (weeks starting on or after the change date)."""
    change = config.regime_change
    if change is None or change.intent_stop_share == 0:
        return intent
    stopped = intent.covered & (rng.random(len(intent.covered)) < change.intent_stop_share)
    first_week = -(-(_change_seconds(config) - clock.start) // WEEK)  # ceiling
    keep = ~(stopped[intent.account] & (intent.week >= first_week))
    return replace(
        intent,
        account=intent.account[keep],
        week=intent.week[keep],
        topic=intent.topic[keep],
        score=intent.score[keep],
    )


def change_events(
    rng: np.random.Generator, config: WorldConfig, n_accounts: int, events: Events
) -> Events:
    """Drop the engagement events of ``events_stop_share`` of the accounts from the change on."""
    change = config.regime_change
    if change is None or change.events_stop_share == 0:
        return events
    stopped = rng.random(n_accounts) < change.events_stop_share
    keep = ~(stopped[events.account] & (events.ts >= _change_seconds(config)))
    return Events(*(getattr(events, f)[keep] for f in Events.__dataclass_fields__))
