"""The Bayes filter behind the observable bound of ``benchmarks/ceiling.md``: calibrated,
between the fit alone and the oracle, blind to what happens from as_of on, and reading lagged
signals as evidence about the weeks they show."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from propensity.data.world import WorldConfig
from propensity.data.world.chunk import simulate_chunk, simulate_hidden
from propensity.data.world.config import WEEK
from propensity.data.world.journey import OUT, conversion_probability

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bayes_filter import bayes_conversion  # noqa: E402

ON_TIME = WorldConfig(n_accounts=2_500, seed=5)
# engagement 3 weeks behind the journey, intent 1 week behind it (2 weeks ahead of engagement)
LAGGED = WorldConfig(n_accounts=2_500, seed=5, engagement_lag_weeks=3, intent_lead_weeks=2)


def prospect_rows(config: WorldConfig):
    """A world's chunk, and monthly snapshots of its prospects (truth table) with the realised
    label."""
    hidden = simulate_hidden(config, 0, config.n_accounts, 0)
    truth = simulate_chunk(config, 0, 0, config.n_accounts, 0).truth_conversion.to_pandas()
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    keep = (
        (truth["as_of"].dt.day == 1)
        & (truth["as_of"] > start + pd.Timedelta(days=180))
        & (truth["as_of"] < end - pd.Timedelta(days=config.horizon_days + 5))
        & truth["true_state"].isin(["out_of_market", "researching", "buying"])
    )
    rows = truth[keep].reset_index(drop=True)
    rows["account"] = rows["account_id"].str[1:].astype(int)
    return hidden, rows


@pytest.fixture(scope="module", params=[ON_TIME, LAGGED], ids=["on_time", "lagged"])
def prospects(request):
    return request.param, *prospect_rows(request.param)


def test_filter_is_calibrated_and_ranks_between_the_fit_alone_and_the_oracle(prospects):
    config, hidden, rows = prospects
    bayes = bayes_conversion(hidden, config, rows[["account", "as_of"]], config.horizon_days)
    label = rows["realised_label"].astype(int)
    assert bayes["probability"].notna().all()
    assert abs(bayes["probability"].mean() - label.mean()) < 0.15 * label.mean()
    fit_alone = conversion_probability(
        np.full(len(rows), OUT, dtype=np.int8),
        hidden.fit[rows["account"]],
        0.0,
        config.horizon_days,
        state_known=False,
    )
    oracle = roc_auc_score(label, rows["true_conversion_probability"])
    bound = roc_auc_score(label, bayes["probability"])
    assert roc_auc_score(label, fit_alone) + 0.05 < bound < oracle
    # a distribution over the prospect states, or none where an opportunity opened this week
    # before as_of (no longer a prospect)
    states = bayes[["p_out", "p_research", "p_buying"]].sum(axis=1).to_numpy()
    assert np.all(np.isclose(states, 1.0) | (states == 0))
    assert (states == 0).mean() < 0.01


def test_events_and_intent_from_as_of_on_do_not_move_the_filter(prospects):
    config, hidden, rows = prospects
    as_of = pd.Timestamp("2025-03-01")
    keys = rows.loc[rows["as_of"] == as_of, ["account", "as_of"]]
    seen = bayes_conversion(hidden, config, keys, config.horizon_days)
    cutoff = int(as_of.timestamp())
    events = hidden.events
    before = events.ts < cutoff
    intent = hidden.intent
    known_week = (hidden.clock.start + (intent.week + 1) * WEEK) <= cutoff
    truncated = dataclasses.replace(
        hidden,
        events=type(events)(*(getattr(events, f)[before] for f in events.__dataclass_fields__)),
        intent=dataclasses.replace(
            intent,
            account=intent.account[known_week],
            week=intent.week[known_week],
            topic=intent.topic[known_week],
            score=intent.score[known_week],
        ),
    )
    assert before.sum() < len(events.ts)
    again = bayes_conversion(truncated, config, keys, config.horizon_days)
    assert np.allclose(seen.to_numpy(), again.to_numpy())


def test_lagged_signals_are_read_as_evidence_about_the_journey_weeks_they_show():
    """On a world whose engagement trails the journey, the filter that reads each signal as
    evidence about the journey week it shows scores the label and the state better (log loss,
    Brier) than the same filter reading the signals as if on time: the true posterior has the
    lowest expected loss."""
    hidden, rows = prospect_rows(LAGGED)
    on_time = LAGGED.model_copy(update={"engagement_lag_weeks": 0, "intent_lead_weeks": 0})
    label = rows["realised_label"].astype(int)
    state = rows["true_state"].astype(str)
    truth_states = np.stack(
        [(state == s).to_numpy(float) for s in ("out_of_market", "researching", "buying")], 1
    )
    losses = {}
    for name, config in (("lagged", LAGGED), ("as if on time", on_time)):
        bayes = bayes_conversion(hidden, config, rows[["account", "as_of"]], LAGGED.horizon_days)
        states = bayes[["p_out", "p_research", "p_buying"]].to_numpy()
        prospect = states.sum(axis=1) > 0
        losses[name] = (
            log_loss(label, bayes["probability"]),
            ((states - truth_states)[prospect] ** 2).sum(axis=1).mean(),
        )
    assert losses["lagged"][0] < losses["as if on time"][0]
    assert losses["lagged"][1] < 0.95 * losses["as if on time"][1]
