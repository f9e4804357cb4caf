"""The learned journey filter of ``benchmarks/journey.md``: it finds how late engagement is from
the data alone, and a snapshot's journey features read only the weeks before it."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.data.world import WorldConfig, generate_world

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from journey_hmm import (  # noqa: E402
    PROSPECT,
    choose_lags,
    fit_journey,
    journey_features,
    weekly_history,
)

# engagement 3 weeks behind the journey, intent 1 week behind it (2 weeks ahead of engagement)
LAGGED = WorldConfig(n_accounts=3_000, seed=5, engagement_lag_weeks=3, intent_lead_weeks=2)
CUTOFF_WEEK = 40


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    folder = generate_world(LAGGED, tmp_path_factory.mktemp("journey") / "world")
    return weekly_history(folder, pd.Timestamp(LAGGED.start), LAGGED.weeks)


def test_the_lag_of_engagement_behind_the_opportunities_is_found_from_the_data(history):
    lags, scores = choose_lags(history, CUTOFF_WEEK, max_lag=4, iterations=8)
    assert lags == (3, 1)
    assert scores["3/1"] > max(scores["0/0"], scores["3/0"], scores["3/3"]) + 100  # no near tie


def test_journey_features_read_only_the_weeks_before_the_snapshot(history):
    model = fit_journey(history, CUTOFF_WEEK, (3, 1), iterations=8)
    week = 60
    account = np.arange(len(history.accounts))
    as_of_week = np.full(len(account), week)
    seen = journey_features(history, model, account, as_of_week)

    rng = np.random.default_rng(0)
    later = np.arange(history.opened.shape[1]) >= week

    def scrambled(values: np.ndarray) -> np.ndarray:
        values = values.copy()
        values[:, later] = rng.permutation(values[:, later].ravel()).reshape(values[:, later].shape)
        return values

    changed = dataclasses.replace(
        history,
        events=scrambled(history.events),
        contacts=scrambled(history.contacts),
        intent_topics=scrambled(history.intent_topics),
        intent_seen=scrambled(history.intent_seen),
        opened=scrambled(history.opened),
        crm_state=scrambled(history.crm_state),
    )
    assert not np.array_equal(changed.events, history.events)
    again = journey_features(changed, model, account, as_of_week)
    assert np.allclose(seen, again, equal_nan=True)

    prospect = ~np.isnan(seen[:, 0])
    assert 0.8 < prospect.mean() < 1.0
    # in a deal or a customer in the week before: no prospect state
    assert np.isnan(seen[history.crm_state[:, week - 1] > 0]).all()
    assert np.allclose(seen[prospect, :PROSPECT].sum(axis=1), 1.0)
    assert np.all((seen[prospect, -1] >= 0) & (seen[prospect, -1] <= 1))
