"""Ground truth the pipeline never reads: hidden fit, weekly state, exact conversion probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from propensity.data.world.accounts import TRAP_TYPES, Traps
from propensity.data.world.columns import dictionary
from propensity.data.world.config import DAY, Clock, WorldConfig
from propensity.data.world.journey import STATE_NAMES, Journey, conversion_probability
from propensity.data.world.opportunities import Opportunities


def truth_dates(config: WorldConfig) -> list[pd.Timestamp]:
    """Snapshot dates for which truth/ holds the conversion probability (inside the data)."""
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    dates = set(pd.date_range(start, end, freq="MS"))
    if config.truth_dates == "weekly_and_monthly":
        dates |= set(pd.date_range(start, end, freq="7D"))
    return sorted(d for d in dates if start < d < end)


def truth_accounts_table(
    ids: np.ndarray,
    fit_logit: np.ndarray,
    fit: np.ndarray,
    traps: Traps,
    intent_covered: np.ndarray,
    journey: Journey,
) -> pa.Table:
    """``truth/accounts``: hidden fit, trap kind, auto-open gateway, intent coverage, start state."""
    return pa.table(
        {
            "account_id": pa.array(ids, pa.string()),
            "true_fit": pa.array(fit),
            "true_fit_logit": pa.array(fit_logit),
            "trap": dictionary(traps.kind, TRAP_TYPES),
            "email_autoopen": pa.array(traps.email_autoopen),
            "intent_covered": pa.array(intent_covered),
            "initial_state": dictionary(journey.initial_state, STATE_NAMES),
        }
    )


def truth_conversion_table(
    config: WorldConfig,
    ids: np.ndarray,
    fit: np.ndarray,
    journey: Journey,
    opps: Opportunities,
) -> pa.Table:
    """``truth/conversion``: per account and truth date the state, the exact probability of the
    conversion label and the realised label."""
    start = pd.Timestamp(config.start)
    start_s = Clock.of(config).start
    frames = []
    new_business = ~opps.expansion
    for as_of in truth_dates(config):
        days = (as_of - start).days
        week, into = divmod(days, 7)
        if into == 0:
            known = journey.state[:, week - 1] if week > 0 else journey.initial_state
        else:
            known = journey.state[:, week]
        p = conversion_probability(
            known,
            fit,
            into / 7.0,
            config.horizon_days,
            state_known=into > 0,
            research_weeks_scale=config.research_weeks_scale,
        )
        # realised label, for sanity checks (the pipeline computes its own from opportunities)
        s = start_s + days * DAY
        hit = new_business & (opps.created > s) & (opps.created <= s + config.horizon_days * DAY)
        label = np.zeros(len(ids), dtype=bool)
        label[opps.account[hit]] = True
        frames.append(
            pa.table(
                {
                    "account_id": pa.array(ids, pa.string()),
                    "as_of": pa.array(
                        np.full(len(ids), as_of.to_datetime64().astype("datetime64[us]"))
                    ),
                    "true_state": dictionary(known, STATE_NAMES),
                    "true_conversion_probability": pa.array(p),
                    "realised_label": pa.array(label),
                }
            )
        )
    return pa.concat_tables(frames)


def read_truth(folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Ground truth of a generated world: (accounts, conversion), or None for other folders."""
    truth = Path(folder) / "truth"
    if not (truth / "accounts.parquet").exists():
        return None
    return pd.read_parquet(truth / "accounts.parquet"), pd.read_parquet(
        truth / "conversion.parquet"
    )
