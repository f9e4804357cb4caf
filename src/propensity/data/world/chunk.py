"""One chunk of accounts through every process of the world, with its own random stream.

The processes draw from one generator in a fixed order (firmographics, fit, traps, journey,
deal history and amounts, contacts, engagement, intent, missingness, names): changing the order
changes every world, so keep it when editing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from propensity.data.world.accounts import (
    Firmographics,
    Traps,
    account_ids,
    accounts_table,
    company_names,
    draw_firmographics,
    draw_fit_logit,
    draw_missing,
    lifecycle_stage,
    place_traps,
)
from propensity.data.world.config import Clock, WorldConfig
from propensity.data.world.contacts import Contacts, contact_ids, contacts_table, draw_contacts
from propensity.data.world.engagement import Events, draw_events, engagement_state, events_table
from propensity.data.world.intent import Intent, draw_intent, intent_table
from propensity.data.world.journey import Journey, simulate_journey
from propensity.data.world.opportunities import (
    Opportunities,
    collect_opportunities,
    draw_history,
    opportunities_table,
)
from propensity.data.world.regime import change_events, change_intent, regime_rng
from propensity.data.world.truth import truth_accounts_table, truth_conversion_table


@dataclass
class WorldChunk:
    """The five contract tables and the two truth tables of one chunk of accounts."""

    accounts: pa.Table
    contacts: pa.Table
    events: pa.Table
    intent: pa.Table
    opportunities: pa.Table
    truth_accounts: pa.Table
    truth_conversion: pa.Table


@dataclass
class HiddenChunk:
    """Everything one chunk's processes drew, before it is written as tables: the hidden
    traits (fit, traps, the weekly journey, each contact's propensity, intent levels) next to
    what the data show. ``rng`` continues the chunk's stream (missingness and names)."""

    clock: Clock
    firms: Firmographics
    fit_logit: np.ndarray
    fit: np.ndarray
    traps: Traps
    journey: Journey
    opportunities: Opportunities
    contacts: Contacts
    events: Events
    intent: Intent
    rng: np.random.Generator


def simulate_hidden(
    config: WorldConfig, chunk_index: int, n: int, first_contact: int
) -> HiddenChunk:
    """Run the processes of chunk ``chunk_index`` (``n`` accounts) in their fixed order."""
    rng = np.random.default_rng([config.seed, chunk_index])
    clock = Clock.of(config)

    firms = draw_firmographics(rng, config, n)
    fit_logit = draw_fit_logit(rng, firms)
    firms, fit_logit, traps = place_traps(rng, config, firms, fit_logit)
    fit = 1.0 / (1.0 + np.exp(-fit_logit))

    journey = simulate_journey(rng, config, clock, fit, traps.kind)
    deals = [*journey.deals, *draw_history(rng, fit, traps.kind, journey.customer_at_start, clock)]
    opps = collect_opportunities(rng, deals, firms.employees, clock)

    contacts = draw_contacts(rng, clock, firms.log_employees)
    eng_state = engagement_state(journey, traps.kind)
    events = draw_events(
        rng, config, clock, journey, eng_state, traps, contacts, firms.log_employees, first_contact
    )
    intent = draw_intent(rng, config, eng_state)
    if config.regime_change is not None:
        change_rng = regime_rng(config, chunk_index)
        intent = change_intent(change_rng, config, clock, intent)
        events = change_events(change_rng, config, n, events)
    return HiddenChunk(
        clock, firms, fit_logit, fit, traps, journey, opps, contacts, events, intent, rng
    )


def simulate_chunk(
    config: WorldConfig, chunk_index: int, first_account: int, n: int, first_contact: int
) -> WorldChunk:
    """Simulate accounts ``first_account`` .. ``first_account + n - 1`` (chunk ``chunk_index``).

    ``first_contact`` numbers the chunk's contacts after those of the earlier chunks.
    """
    hidden = simulate_hidden(config, chunk_index, n, first_contact)
    rng, clock, firms, fit = hidden.rng, hidden.clock, hidden.firms, hidden.fit
    journey, opps, contacts = hidden.journey, hidden.opportunities, hidden.contacts
    events, intent, traps = hidden.events, hidden.intent, hidden.traps

    # the leakage bait describes the export date
    ids = account_ids(first_account, n)
    missing = draw_missing(rng, firms.employees)
    ever_opportunity = np.zeros(n, dtype=bool)
    ever_opportunity[opps.account[(opps.created >= clock.start) & ~opps.expansion]] = True
    last_activity = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_activity, events.account, events.ts)
    lifecycle = lifecycle_stage(
        journey.state[:, -1], ever_opportunity, last_activity, contacts.per_account, clock
    )
    names = company_names(rng, n)

    contact_id = contact_ids(first_contact, len(contacts.account))
    return WorldChunk(
        accounts=accounts_table(ids, names, firms, missing, lifecycle, last_activity),
        contacts=contacts_table(contacts, ids, contact_id),
        events=events_table(events, ids, contact_id, first_contact),
        intent=intent_table(intent, ids, clock),
        opportunities=opportunities_table(opps, ids, chunk_index),
        truth_accounts=truth_accounts_table(
            ids, hidden.fit_logit, fit, traps, intent.covered, journey
        ),
        truth_conversion=truth_conversion_table(config, ids, fit, journey, opps),
    )
