"""Engagement events: what contacts and anonymous visitors do, week by week.

Contacts produce events at rates that depend on the account's engagement state, on whether
their role is in the episode's buying group and on their own propensity. Anonymous (reverse-IP)
web visits come per account, growing with company size. Every second Tuesday a newsletter goes
to subscribed contacts; auto-opening mail gateways open and click every one. Traps engage all
the time (as if researching, with every role) but rarely look at pricing or take meetings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from propensity.data.world.accounts import Traps
from propensity.data.world.columns import dictionary, timestamps
from propensity.data.world.config import DAY, WEEK, Clock, WorldConfig
from propensity.data.world.contacts import Contacts
from propensity.data.world.journey import CUSTOMER, DEAL, OUT, RESEARCH, Journey

EVENT_TYPES = (
    "web_visit",
    "pricing_page",
    "content_download",
    "webinar",
    "form_fill",
    "meeting",
    "email_open",
    "email_click",
)
# Expected events per contact-week by engagement state (out, researching, buying, in deal) for a
# contact of average propensity whose role is part of the episode's buying group.
CONTACT_RATES = {
    "web_visit": (0.012, 0.5, 0.7, 0.3),
    "pricing_page": (0.002, 0.05, 0.35, 0.10),
    "content_download": (0.004, 0.18, 0.10, 0.03),
    "webinar": (0.002, 0.06, 0.04, 0.01),
    "form_fill": (0.001, 0.04, 0.15, 0.02),
    "meeting": (0.0, 0.005, 0.25, 0.35),
}
ROLE_MULTIPLIERS = {  # (user, influencer, decision_maker, it)
    "web_visit": (1.0, 1.2, 0.6, 0.8),
    "pricing_page": (0.5, 1.2, 1.5, 0.6),
    "content_download": (1.0, 1.2, 0.5, 1.3),
    "webinar": (1.0, 1.2, 0.5, 1.0),
    "form_fill": (0.8, 1.2, 1.0, 0.8),
    "meeting": (0.3, 1.0, 2.5, 0.8),
}
ANONYMOUS_VISIT_RATES = (0.02, 0.75, 0.95, 0.3)  # per account-week, times a size factor
WEB_CHANNELS = ("organic_search", "direct", "paid_search", "paid_social", "referral")
WEB_CHANNEL_SHARES = (0.36, 0.26, 0.16, 0.12, 0.10)
CHANNELS = (*WEB_CHANNELS, "email", "webinar", "sales")


def engagement_state(journey: Journey, trap: np.ndarray) -> np.ndarray:
    """State that drives engagement per account-week: customers engage like the out of market."""
    eng_state = np.minimum(journey.state, DEAL).astype(np.int8)
    eng_state[journey.state == CUSTOMER] = OUT
    eng_state[trap > 0] = RESEARCH
    return eng_state


def lagged(weekly: np.ndarray, weeks: int) -> np.ndarray:
    """A (accounts, weeks) array as seen ``weeks`` later: week w shows week w - ``weeks`` (the
    first weeks repeat the first)."""
    if weeks == 0:
        return weekly
    return np.concatenate([np.repeat(weekly[:, :1], weeks, axis=1), weekly[:, :-weeks]], axis=1)


@dataclass
class Events:
    """Engagement events of a chunk (contact -1: anonymous), sorted by account and time."""

    account: np.ndarray
    contact: np.ndarray
    ts: np.ndarray
    type: np.ndarray  # codes into EVENT_TYPES
    minutes: np.ndarray  # NaN where the event has no duration
    channel: np.ndarray  # codes into CHANNELS


@dataclass
class _Log:
    account: list[np.ndarray] = field(default_factory=list)
    contact: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    type: list[np.ndarray] = field(default_factory=list)
    minutes: list[np.ndarray] = field(default_factory=list)

    def emit(
        self,
        account: np.ndarray,
        contact: np.ndarray,
        ts: np.ndarray,
        type_name: str,
        minutes: np.ndarray | None,
    ) -> None:
        self.account.append(account)
        self.contact.append(contact)
        self.ts.append(ts)
        self.type.append(np.full(len(account), EVENT_TYPES.index(type_name), dtype=np.int8))
        self.minutes.append(
            np.full(len(account), np.nan, dtype=np.float32)
            if minutes is None
            else minutes.astype(np.float32)
        )


@dataclass
class _Audience:
    """Who engages in which week: the chunk's contacts in the light of the journey."""

    contacts: Contacts
    first_contact: int  # contact number of the chunk's first contact
    active: np.ndarray  # (contacts, weeks): the contact is known
    state: np.ndarray  # (contacts, weeks): engagement state, OUT unless in the buying group
    trap: np.ndarray  # per contact: trap kind of the account


def draw_events(
    rng: np.random.Generator,
    config: WorldConfig,
    clock: Clock,
    journey: Journey,
    eng_state: np.ndarray,
    traps: Traps,
    contacts: Contacts,
    log_employees: np.ndarray,
    first_contact: int,
) -> Events:
    """Known-contact events, anonymous visits and newsletter e-mails of a chunk."""
    trap = traps.kind
    full_mask = np.int8(15)
    # engagement trails the journey by config.engagement_lag_weeks: its state and roles alike
    eng_state = lagged(eng_state, config.engagement_lag_weeks)
    eng_roles = lagged(
        np.where(trap[:, None] > 0, full_mask, journey.roles), config.engagement_lag_weeks
    )
    c_account, c_role = contacts.account, contacts.role
    in_group = (eng_roles[c_account] & (1 << c_role)[:, None].astype(np.int8)) > 0
    audience = _Audience(
        contacts=contacts,
        first_contact=first_contact,
        active=np.arange(clock.weeks)[None, :] >= contacts.created_week[:, None],
        state=np.where(in_group, eng_state[c_account], OUT).astype(np.int8),
        trap=trap[c_account],
    )
    log = _Log()
    _contact_events(rng, config, clock, audience, log)
    _anonymous_visits(rng, config, clock, eng_state, trap, log_employees, log)
    _newsletter(rng, config, clock, audience, traps.email_autoopen, log)
    return _collect(rng, clock, log)


def _contact_events(
    rng: np.random.Generator, config: WorldConfig, clock: Clock, audience: _Audience, log: _Log
) -> None:
    contacts = audience.contacts
    trap_boost = np.where(audience.trap > 0, 1.3, 1.0)[:, None]
    for type_name, rates in CONTACT_RATES.items():
        rate = (
            np.asarray(rates, dtype=np.float32)[audience.state]
            * np.asarray(ROLE_MULTIPLIERS[type_name], dtype=np.float32)[contacts.role][:, None]
            * contacts.propensity[:, None].astype(np.float32)
            * trap_boost
            * config.engagement_scale
        )
        if type_name in ("pricing_page", "meeting"):
            rate = np.where(audience.trap[:, None] > 0, rate * 0.05, rate)
        rate = np.where(audience.active, rate, 0)
        counts = rng.poisson(rate)
        ci, wi = np.nonzero(counts)
        reps = counts[ci, wi]
        ci, wi = np.repeat(ci, reps), np.repeat(wi, reps)
        ts = clock.start + wi * WEEK + rng.integers(0, WEEK, size=len(ci))
        k = len(ci)
        # every event type draws all four durations: the random stream must not depend on the type
        minutes = {
            "web_visit": np.exp(np.log(2.5) + 0.8 * rng.standard_normal(k)),
            "pricing_page": np.exp(np.log(1.5) + 0.6 * rng.standard_normal(k)),
            "webinar": rng.uniform(10, 60, size=k),
            "meeting": rng.choice([30.0, 45.0, 60.0], size=k),
        }.get(type_name)
        log.emit(
            contacts.account[ci],
            audience.first_contact + ci,
            ts,
            type_name,
            None if minutes is None else np.round(minutes, 1),
        )


def _anonymous_visits(
    rng: np.random.Generator,
    config: WorldConfig,
    clock: Clock,
    eng_state: np.ndarray,
    trap: np.ndarray,
    log_employees: np.ndarray,
    log: _Log,
) -> None:
    size_factor = 0.5 + 0.35 * log_employees
    anon_rate = (
        np.asarray(ANONYMOUS_VISIT_RATES, dtype=np.float32)[eng_state]
        * size_factor[:, None]
        * config.engagement_scale
        * config.anonymous_traffic_scale
    )
    anon_rate = np.where(trap[:, None] > 0, anon_rate * 1.3, anon_rate)
    counts = rng.poisson(anon_rate)
    ai, wi = np.nonzero(counts)
    reps = counts[ai, wi]
    ai, wi = np.repeat(ai, reps), np.repeat(wi, reps)
    log.emit(
        ai,
        np.full(len(ai), -1, dtype=np.int64),
        clock.start + wi * WEEK + rng.integers(0, WEEK, size=len(ai)),
        "web_visit",
        np.round(np.exp(np.log(1.8) + 0.8 * rng.standard_normal(len(ai))), 1),
    )


def _newsletter(
    rng: np.random.Generator,
    config: WorldConfig,
    clock: Clock,
    audience: _Audience,
    email_autoopen: np.ndarray,
    log: _Log,
) -> None:
    contacts, m = audience.contacts, len(audience.contacts.account)
    autoopen = email_autoopen[contacts.account]
    week_idx = np.arange(clock.weeks)
    boost = np.asarray((1.0, 1.25, 1.3, 1.2), dtype=np.float32)
    for wk in week_idx[week_idx % 2 == 0]:
        send = clock.start + wk * WEEK + DAY + 9 * 3600  # Tuesday 09:00
        eligible = contacts.subscribed & audience.active[:, wk]
        state_boost = boost[audience.state[:, wk]]
        p_open = np.where(
            autoopen,
            0.97,
            contacts.open_probability * state_boost * min(config.engagement_scale, 3),
        )
        opened = eligible & (rng.random(m) < p_open)
        p_click = np.where(autoopen, 0.7, 0.12 * state_boost**3)
        clicked = opened & (rng.random(m) < p_click)
        delay = np.where(
            autoopen,
            rng.integers(1, 120, size=m),
            rng.exponential(8 * 3600, size=m).astype(np.int64) + 60,
        )
        ci = np.flatnonzero(opened)
        first = audience.first_contact
        log.emit(contacts.account[ci], first + ci, send + delay[ci], "email_open", None)
        ci = np.flatnonzero(clicked)
        log.emit(
            contacts.account[ci],
            first + ci,
            send + delay[ci] + rng.integers(5, 600, size=len(ci)),
            "email_click",
            None,
        )


def _collect(rng: np.random.Generator, clock: Clock, log: _Log) -> Events:
    """Drop events after the export date, sort by account and time, draw the web channel."""
    columns = [np.concatenate(c) for c in (log.account, log.contact, log.ts, log.type, log.minutes)]
    keep = columns[2] < clock.end
    columns = [c[keep] for c in columns]
    order = np.lexsort((columns[2], columns[0]))
    account, contact, ts, type_, minutes = (c[order] for c in columns)
    web_channel = rng.choice(len(WEB_CHANNELS), size=len(account), p=WEB_CHANNEL_SHARES)
    channel = np.select(
        [
            np.isin(type_, [EVENT_TYPES.index("email_open"), EVENT_TYPES.index("email_click")]),
            type_ == EVENT_TYPES.index("webinar"),
            type_ == EVENT_TYPES.index("meeting"),
        ],
        [CHANNELS.index("email"), CHANNELS.index("webinar"), CHANNELS.index("sales")],
        web_channel,
    )
    return Events(account, contact, ts, type_, minutes, channel)


def events_table(
    events: Events, ids: np.ndarray, contact_id: np.ndarray, first_contact: int
) -> pa.Table:
    """The ``events`` contract table (``contact_id`` null for anonymous visits)."""
    local_contact = events.contact - first_contact
    return pa.table(
        {
            "account_id": dictionary(events.account, ids),
            "contact_id": dictionary(
                np.where(local_contact >= 0, local_contact, 0),
                contact_id if len(contact_id) else np.array([""], dtype=object),
                mask=local_contact < 0,
            ),
            "ts": timestamps(events.ts),
            "event_type": dictionary(events.type, EVENT_TYPES),
            "channel": dictionary(events.channel, CHANNELS),
            "minutes": pa.array(events.minutes.astype(np.float64), mask=np.isnan(events.minutes)),
        }
    )
