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
* Leakage bait in ``accounts``: ``lifecycle_stage`` and ``last_activity_at`` as of the export
  date. They describe the end of the data and must never become a feature at a past snapshot.

Accounts are simulated in chunks of ``chunk_accounts`` with a random stream per chunk, so memory
stays flat for a million accounts and the same seed and config give identical files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

OUT, RESEARCH, BUYING, DEAL, CUSTOMER = 0, 1, 2, 3, 4
STATE_NAMES = ("out_of_market", "researching", "buying", "in_deal", "customer")

ROLES = ("user", "influencer", "decision_maker", "it")
ROLE_SHARES = (0.40, 0.28, 0.16, 0.16)
SENIORITY_BY_ROLE = {
    "user": (("individual_contributor", "manager"), (0.75, 0.25)),
    "influencer": (("manager", "director"), (0.6, 0.4)),
    "decision_maker": (("director", "vp", "c_level"), (0.35, 0.4, 0.25)),
    "it": (("individual_contributor", "manager", "director"), (0.5, 0.35, 0.15)),
}

# name: (share of accounts, median employees, sigma of log employees, fit effect, revenue per employee)
INDUSTRIES = {
    "software": (0.17, 80, 1.3, 0.7, 220_000),
    "financial_services": (0.10, 300, 1.5, 0.6, 400_000),
    "professional_services": (0.13, 45, 1.2, 0.3, 150_000),
    "manufacturing": (0.15, 220, 1.4, 0.2, 250_000),
    "healthcare": (0.10, 250, 1.5, 0.0, 180_000),
    "telecom": (0.04, 600, 1.5, 0.2, 450_000),
    "retail": (0.12, 120, 1.6, -0.4, 200_000),
    "media": (0.06, 60, 1.3, -0.2, 160_000),
    "education": (0.08, 150, 1.4, -1.1, 90_000),
    "government": (0.05, 500, 1.5, -1.4, 120_000),
}
COUNTRIES = {  # name: (share, fit effect)
    "us": (0.44, 0.25),
    "gb": (0.12, 0.2),
    "de": (0.10, 0.0),
    "fr": (0.06, -0.1),
    "ca": (0.06, 0.2),
    "nl": (0.04, 0.05),
    "au": (0.05, 0.15),
    "in": (0.07, -0.6),
    "br": (0.06, -0.5),
}
TECH_FLAGS = (
    "tech_crm",
    "tech_marketing_automation",
    "tech_cloud_data_warehouse",
    "tech_legacy_erp",
)
CRM_AFFINE_INDUSTRIES = ("software", "financial_services", "professional_services")

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
INTENT_TOPICS = (
    "crm migration",
    "sales engagement",
    "revenue operations",
    "marketing automation",
    "account based marketing",
    "cloud security",
    "payroll software",
    "office furniture",
)
RELEVANT_TOPICS = 5  # the first five topics are the ones this (fictional) vendor sells into
TRAP_TYPES = ("none", "student", "competitor", "vendor_staff")


class WorldConfig(BaseModel):
    """Settings of a synthetic world. Realistic B2B magnitudes (checked by the tests):

    * a new-business opportunity for 1-6 % of prospect accounts per 90 days;
    * 15-35 % of closed new-business opportunities won;
    * 30-60 % of web visits anonymous (reverse-IP, no contact);
    * most prospect accounts have no engagement at all in a given month.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_accounts: int = Field(20_000, ge=50, le=5_000_000, description="accounts in the world")
    seed: int = Field(7, ge=0, description="random seed; same seed and config -> identical files")
    start: date = Field(date(2024, 1, 1), description="first day of the data (a Monday)")
    weeks: int = Field(104, ge=30, le=520, description="weeks of simulated history")
    horizon_days: int = Field(90, ge=7, le=365, description="conversion-label horizon of truth/")
    chunk_accounts: int = Field(25_000, ge=50, description="accounts simulated per chunk")
    intent_coverage: float = Field(0.6, ge=0, le=1, description="share of accounts with intent")
    intent_report_floor: float = Field(
        50, ge=0, le=100, description="lowest delivered intent score"
    )
    trap_no_fit_share: float = Field(0.03, ge=0, le=0.5, description="students/competitors/vendors")
    trap_email_autoopen_share: float = Field(
        0.06, ge=0, le=0.5, description="auto-opening mail gateways"
    )
    customer_share_at_start: float = Field(
        0.10, ge=0, le=0.9, description="accounts already customers"
    )
    engagement_scale: float = Field(
        1.0, gt=0, le=50, description="multiplies every engagement rate"
    )
    truth_dates: str = Field("weekly_and_monthly", description="snapshot dates written to truth/")

    @field_validator("start")
    @classmethod
    def _start_is_monday(cls, value: date) -> date:
        if value.weekday() != 0:
            raise ValueError(
                f"start must be a Monday (weeks start on Mondays), got {value} ({value:%A})"
            )
        return value

    @field_validator("truth_dates")
    @classmethod
    def _known_truth_dates(cls, value: str) -> str:
        allowed = ("weekly_and_monthly", "monthly")
        if value not in allowed:
            raise ValueError(f"truth_dates must be one of {allowed}, got {value!r}")
        return value

    @property
    def end(self) -> date:
        """Export date: the first day after the data."""
        return self.start + timedelta(weeks=self.weeks)


# --------------------------------------------------------------------------------------------
# hidden dynamics shared by the simulation and the truth computation


def _entry_rate(fit: np.ndarray) -> np.ndarray:
    """Weekly probability that an out-of-market account starts researching."""
    return 0.001 + 0.017 * fit**1.5


def _research_to_buying(fit: np.ndarray) -> np.ndarray:
    return 0.02 + 0.06 * fit


RESEARCH_TO_OUT = 0.04
BUYING_TO_OUT = 0.05
OPPORTUNITY_RATE = 0.30  # weekly probability that a buying account opens an opportunity
EXPANSION_RATE = 0.006  # weekly probability of an expansion opportunity for a customer


def _win_probability(
    fit: np.ndarray, roles_engaged: np.ndarray, dm_engaged: np.ndarray
) -> np.ndarray:
    logit = -5.1 + 3.4 * fit + 0.45 * roles_engaged + 0.5 * dm_engaged
    return 1.0 / (1.0 + np.exp(-logit))


def conversion_probability(
    state: np.ndarray,
    fit: np.ndarray,
    weeks_into_window: float,
    horizon_days: int,
    state_known: bool,
) -> np.ndarray:
    """Exact P(new-business opportunity created in (s, s + horizon]) under the world's dynamics.

    ``state`` is the state of the week containing ``s`` when ``state_known`` (s is inside the
    week), else the state of the week before (s is a week start: the week's transition has not
    happened yet). ``weeks_into_window`` is the fraction of the week already elapsed at ``s``.
    Accounts in deal or customers get 0 (they are not prospects).
    """
    n = len(state)
    p_enter, p_rb = _entry_rate(fit), _research_to_buying(fit)
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


# --------------------------------------------------------------------------------------------
# one chunk of accounts


@dataclass
class _Chunk:
    accounts: pa.Table
    contacts: pa.Table
    events: pa.Table
    intent: pa.Table
    opportunities: pa.Table
    truth_accounts: pa.Table
    truth_conversion: pa.Table


def _dictionary(
    codes: np.ndarray, names: tuple[str, ...] | list[str] | np.ndarray, mask=None
) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string()))


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]"))


def _simulate_chunk(
    config: WorldConfig, chunk_index: int, first_account: int, n: int, first_contact: int
) -> _Chunk:
    rng = np.random.default_rng([config.seed, chunk_index])
    weeks = config.weeks
    start_s = int(pd.Timestamp(config.start).timestamp())
    week_s = 7 * 86_400
    end_s = start_s + weeks * week_s

    # ---- firmographics
    names = list(INDUSTRIES)
    industry = rng.choice(
        len(names),
        size=n,
        p=np.array([INDUSTRIES[i][0] for i in names]) / sum(INDUSTRIES[i][0] for i in names),
    )
    med = np.array([INDUSTRIES[i][1] for i in names])[industry]
    sig = np.array([INDUSTRIES[i][2] for i in names])[industry]
    employees = np.clip(np.round(np.exp(np.log(med) + sig * rng.standard_normal(n))), 1, 400_000)
    rev_per_emp = np.array([INDUSTRIES[i][4] for i in names])[industry]
    revenue = np.round(employees * rev_per_emp * np.exp(0.45 * rng.standard_normal(n)), -3)
    cnames = list(COUNTRIES)
    country = rng.choice(
        len(cnames),
        size=n,
        p=np.array([COUNTRIES[c][0] for c in cnames]) / sum(COUNTRIES[c][0] for c in cnames),
    )
    log_emp = np.log10(employees)
    age = np.clip(rng.gamma(2.0, 4.0 + 4.0 * log_emp), 0, 150)
    founded_year = np.clip(np.round(config.start.year - age), 1850, config.start.year)
    p_crm = np.clip(
        0.2
        + 0.15 * log_emp
        + 0.15 * np.isin(industry, [names.index(i) for i in CRM_AFFINE_INDUSTRIES]),
        0,
        0.95,
    )
    tech = {
        "tech_crm": rng.random(n) < p_crm,
        "tech_marketing_automation": rng.random(n) < np.clip(0.1 + 0.12 * log_emp, 0, 0.9),
        "tech_cloud_data_warehouse": rng.random(n) < np.clip(0.05 + 0.1 * log_emp, 0, 0.9),
        "tech_legacy_erp": rng.random(n)
        < np.clip(
            0.05 + 0.08 * log_emp + 0.15 * (industry == names.index("manufacturing")), 0, 0.9
        ),
    }

    # ---- hidden ICP fit
    sweet_spot = 1.6 * np.exp(-((log_emp - np.log10(400)) ** 2) / (2 * 0.5**2)) - 0.8
    crm_interaction = (
        0.9 * tech["tech_crm"] * np.isin(industry, [names.index(i) for i in CRM_AFFINE_INDUSTRIES])
    )
    fit_logit = (
        np.array([INDUSTRIES[i][3] for i in names])[industry]
        + np.array([COUNTRIES[c][1] for c in cnames])[country]
        + sweet_spot
        + crm_interaction
        + 0.4 * tech["tech_marketing_automation"]
        - 0.5 * tech["tech_legacy_erp"]
        + 0.25 * rng.standard_normal(n)
        - 1.0
    )

    # ---- traps
    trap = np.zeros(n, dtype=np.int8)
    trapped = rng.random(n) < config.trap_no_fit_share
    trap[trapped] = rng.choice([1, 2, 3], size=trapped.sum(), p=[0.4, 0.35, 0.25])
    industry[trap == 1] = names.index("education")
    employees[trap == 1] = np.clip(
        np.round(np.exp(np.log(30) + 1.0 * rng.standard_normal((trap == 1).sum()))), 1, None
    )
    industry[trap == 2] = names.index("software")
    industry[trap == 3] = names.index("professional_services")
    fit_logit[trap > 0] -= 4.0
    fit = 1.0 / (1.0 + np.exp(-fit_logit))
    autoopen = (rng.random(n) < config.trap_email_autoopen_share) & (trap == 0)

    # ---- buying state, weekly
    state = np.empty((n, weeks), dtype=np.int8)
    roles_mask = np.zeros((n, weeks), dtype=np.int8)  # bit per role engaged in the current episode
    p_enter, p_rb = _entry_rate(fit), _research_to_buying(fit)
    customer0 = (rng.random(n) < config.customer_share_at_start * 2.5 * fit) & (trap == 0)
    u0 = rng.random(n)
    current = np.where(customer0, CUSTOMER, np.where(u0 < 0.05 * fit * 2, RESEARCH, OUT)).astype(
        np.int8
    )
    initial_state = current.copy()
    episode_roles = np.zeros(n, dtype=np.int8)
    role_engage_p = 0.45 + 0.45 * fit

    def draw_roles(count: int, p: np.ndarray) -> np.ndarray:
        bits = rng.random((count, 4)) < p[:, None]
        bits[~bits.any(axis=1), rng.integers(0, 4, size=(~bits.any(axis=1)).sum())] = True
        return (bits * np.array([1, 2, 4, 8])).sum(axis=1).astype(np.int8)

    new_res = current == RESEARCH
    episode_roles[new_res] = draw_roles(new_res.sum(), role_engage_p[new_res])
    deal_close_week = np.full(n, -1, dtype=np.int64)
    deal_won = np.zeros(n, dtype=bool)
    opened_last_week = np.zeros(n, dtype=bool)
    opp_rows: list[tuple[np.ndarray, ...]] = []
    for w in range(weeks):
        u = rng.random(n)
        nxt = current.copy()
        out = current == OUT
        enter = out & (u < p_enter)
        nxt[enter] = RESEARCH
        episode_roles[enter] = draw_roles(enter.sum(), role_engage_p[enter])
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
        idx = np.flatnonzero(opens)
        bits = episode_roles[idx]
        n_roles = np.unpackbits(bits.astype(np.uint8)[:, None], axis=1)[:, 4:].sum(axis=1)
        dm = (bits & 4) > 0
        won = rng.random(len(idx)) < _win_probability(fit[idx], n_roles, dm)
        created = start_s + w * week_s + rng.integers(0, week_s, size=len(idx))
        days_open = np.round(np.exp(np.log(50) + 0.6 * rng.standard_normal(len(idx)))).clip(7, 400)
        closed = created + (days_open * 86_400).astype(np.int64)
        deal_close_week[idx] = (closed - start_s) // week_s + 1
        deal_won[idx] = won
        opened_last_week = opens
        opp_rows.append((idx, created, closed, won, np.zeros(len(idx), dtype=bool)))

        expands = (current == CUSTOMER) & (rng.random(n) < EXPANSION_RATE)
        idx = np.flatnonzero(expands)
        created = start_s + w * week_s + rng.integers(0, week_s, size=len(idx))
        closed = created + (rng.integers(14, 120, size=len(idx)) * 86_400)
        opp_rows.append(
            (idx, created, closed, rng.random(len(idx)) < 0.6, np.ones(len(idx), dtype=bool))
        )

    # history before the data starts: the won deal of today's customers, and some lost deals
    hist_lost = (rng.random(n) < 0.08 + 0.1 * fit) & (trap == 0)
    for mask, won in ((customer0, True), (hist_lost, False)):
        idx = np.flatnonzero(mask)
        created = start_s - rng.integers(8 * week_s, 150 * week_s, size=len(idx))
        closed = np.minimum(
            created + rng.integers(20, 200, size=len(idx)) * 86_400, start_s - 86_400
        )
        opp_rows.append(
            (idx, created, closed, np.full(len(idx), won), np.zeros(len(idx), dtype=bool))
        )

    opp_account = np.concatenate([r[0] for r in opp_rows]).astype(np.int64)
    opp_created = np.concatenate([r[1] for r in opp_rows]).astype(np.int64)
    opp_closed = np.concatenate([r[2] for r in opp_rows]).astype(np.int64)
    opp_won = np.concatenate([r[3] for r in opp_rows]).astype(bool)
    opp_expansion = np.concatenate([r[4] for r in opp_rows]).astype(bool)
    order = np.lexsort((opp_created, opp_account))
    opp_account, opp_created, opp_closed, opp_won, opp_expansion = (
        a[order] for a in (opp_account, opp_created, opp_closed, opp_won, opp_expansion)
    )
    opp_open = opp_closed >= end_s
    outcome = np.where(opp_open, 2, np.where(opp_won, 0, 1))
    base_amount = 12_000 * (employees[opp_account] / 100) ** 0.35
    amount = np.round(
        base_amount
        * np.exp(0.5 * rng.standard_normal(len(opp_account)))
        * np.where(opp_expansion, 0.3, 1.0),
        -2,
    )

    # ---- contacts
    has_contacts = rng.random(n) < 0.62
    n_contacts = np.where(has_contacts, 1 + rng.poisson(np.clip(0.8 + 0.9 * log_emp, 0.5, 6)), 0)
    n_contacts = np.minimum(n_contacts, 40)
    c_account = np.repeat(np.arange(n), n_contacts)
    m = len(c_account)
    c_role = rng.choice(4, size=m, p=ROLE_SHARES).astype(np.int8)
    c_seniority = np.empty(m, dtype=object)
    for r, role in enumerate(ROLES):
        levels, shares = SENIORITY_BY_ROLE[role]
        sel = c_role == r
        c_seniority[sel] = rng.choice(levels, size=sel.sum(), p=shares)
    known_before = rng.random(m) < 0.7
    c_created = np.where(
        known_before,
        start_s - rng.integers(1, 3 * 365, size=m) * 86_400,
        start_s + rng.integers(0, weeks * week_s, size=m),
    ) - rng.integers(0, 86_400, size=m)
    c_created_week = np.maximum((c_created - start_s) // week_s + 1, 0)  # first full week known
    c_propensity = rng.gamma(1.0, 1.0, size=m)
    c_subscribed = rng.random(m) < 0.45
    c_open_p = rng.beta(1.2, 6.0, size=m)

    # ---- engagement state per account-week, and per contact-week
    eng_state = np.minimum(state, DEAL).astype(np.int8)
    eng_state[state == CUSTOMER] = OUT
    eng_state[trap > 0] = RESEARCH
    full_mask = np.int8(15)
    eng_roles = np.where(trap[:, None] > 0, full_mask, roles_mask)
    week_idx = np.arange(weeks)
    contact_active = week_idx[None, :] >= c_created_week[:, None]
    in_group = (eng_roles[c_account] & (1 << c_role)[:, None].astype(np.int8)) > 0
    contact_state = np.where(in_group, eng_state[c_account], OUT).astype(np.int8)
    trap_boost = np.where(trap[c_account] > 0, 1.3, 1.0)[:, None]
    scale = config.engagement_scale

    ev_account, ev_contact, ev_ts, ev_type, ev_minutes = [], [], [], [], []

    def emit(
        account: np.ndarray,
        contact: np.ndarray,
        ts: np.ndarray,
        type_name: str,
        minutes: np.ndarray | None,
    ) -> None:
        ev_account.append(account)
        ev_contact.append(contact)
        ev_ts.append(ts)
        ev_type.append(np.full(len(account), EVENT_TYPES.index(type_name), dtype=np.int8))
        ev_minutes.append(
            np.full(len(account), np.nan, dtype=np.float32)
            if minutes is None
            else minutes.astype(np.float32)
        )

    for type_name, rates in CONTACT_RATES.items():
        rate = (
            np.asarray(rates, dtype=np.float32)[contact_state]
            * np.asarray(ROLE_MULTIPLIERS[type_name], dtype=np.float32)[c_role][:, None]
            * c_propensity[:, None].astype(np.float32)
            * trap_boost
            * scale
        )
        if type_name in ("pricing_page", "meeting"):
            rate = np.where(trap[c_account][:, None] > 0, rate * 0.05, rate)
        rate = np.where(contact_active, rate, 0)
        counts = rng.poisson(rate)
        ci, wi = np.nonzero(counts)
        reps = counts[ci, wi]
        ci, wi = np.repeat(ci, reps), np.repeat(wi, reps)
        ts = start_s + wi * week_s + rng.integers(0, week_s, size=len(ci))
        k = len(ci)
        minutes = {
            "web_visit": np.exp(np.log(2.5) + 0.8 * rng.standard_normal(k)),
            "pricing_page": np.exp(np.log(1.5) + 0.6 * rng.standard_normal(k)),
            "webinar": rng.uniform(10, 60, size=k),
            "meeting": rng.choice([30.0, 45.0, 60.0], size=k),
        }.get(type_name)
        emit(
            c_account[ci],
            first_contact + ci,
            ts,
            type_name,
            None if minutes is None else np.round(minutes, 1),
        )

    # anonymous reverse-IP visits per account-week
    size_factor = 0.5 + 0.35 * log_emp
    anon_rate = (
        np.asarray(ANONYMOUS_VISIT_RATES, dtype=np.float32)[eng_state]
        * size_factor[:, None]
        * scale
    )
    anon_rate = np.where(trap[:, None] > 0, anon_rate * 1.3, anon_rate)
    counts = rng.poisson(anon_rate)
    ai, wi = np.nonzero(counts)
    reps = counts[ai, wi]
    ai, wi = np.repeat(ai, reps), np.repeat(wi, reps)
    emit(
        ai,
        np.full(len(ai), -1, dtype=np.int64),
        start_s + wi * week_s + rng.integers(0, week_s, size=len(ai)),
        "web_visit",
        np.round(np.exp(np.log(1.8) + 0.8 * rng.standard_normal(len(ai))), 1),
    )

    # newsletter every second Tuesday to subscribed contacts; auto-open gateways open and click all
    send_weeks = week_idx[week_idx % 2 == 0]
    boost = np.asarray((1.0, 1.25, 1.3, 1.2), dtype=np.float32)
    for wk in send_weeks:
        send = start_s + wk * week_s + 86_400 + 9 * 3600
        eligible = c_subscribed & contact_active[:, wk]
        p_open = np.where(
            autoopen[c_account], 0.97, c_open_p * boost[contact_state[:, wk]] * min(scale, 3)
        )
        opened = eligible & (rng.random(m) < p_open)
        p_click = np.where(autoopen[c_account], 0.7, 0.12 * boost[contact_state[:, wk]] ** 3)
        clicked = opened & (rng.random(m) < p_click)
        delay = np.where(
            autoopen[c_account],
            rng.integers(1, 120, size=m),
            rng.exponential(8 * 3600, size=m).astype(np.int64) + 60,
        )
        ci = np.flatnonzero(opened)
        emit(c_account[ci], first_contact + ci, send + delay[ci], "email_open", None)
        ci = np.flatnonzero(clicked)
        emit(
            c_account[ci],
            first_contact + ci,
            send + delay[ci] + rng.integers(5, 600, size=len(ci)),
            "email_click",
            None,
        )

    e_account = np.concatenate(ev_account)
    e_contact = np.concatenate(ev_contact)
    e_ts = np.concatenate(ev_ts)
    e_type = np.concatenate(ev_type)
    e_minutes = np.concatenate(ev_minutes)
    keep = e_ts < end_s
    e_account, e_contact, e_ts, e_type, e_minutes = (
        a[keep] for a in (e_account, e_contact, e_ts, e_type, e_minutes)
    )
    order = np.lexsort((e_ts, e_account))
    e_account, e_contact, e_ts, e_type, e_minutes = (
        a[order] for a in (e_account, e_contact, e_ts, e_type, e_minutes)
    )
    n_events = len(e_account)
    channel_names = (*WEB_CHANNELS, "email", "webinar", "sales")
    web_channel = rng.choice(len(WEB_CHANNELS), size=n_events, p=WEB_CHANNEL_SHARES)
    e_channel = np.select(
        [np.isin(e_type, [6, 7]), e_type == 3, e_type == 5],
        [len(WEB_CHANNELS), len(WEB_CHANNELS) + 1, len(WEB_CHANNELS) + 2],
        web_channel,
    )

    # ---- intent
    covered = rng.random(n) < config.intent_coverage
    cov_idx = np.flatnonzero(covered)
    n_topics = len(INTENT_TOPICS)
    base = rng.normal(22, 9, size=(len(cov_idx), 1, n_topics))
    intent_rows = []
    for w0 in range(0, weeks, 26):  # in blocks of weeks to bound memory
        w1 = min(w0 + 26, weeks)
        st = eng_state[cov_idx, w0:w1][:, :, None]
        score = base + rng.normal(0, 11, size=(len(cov_idx), w1 - w0, n_topics))
        relevant = np.arange(n_topics)[None, None, :] < RELEVANT_TOPICS
        surge_p = np.select([st == RESEARCH, st == BUYING], [0.55, 0.35], 0.0) * relevant
        surge = rng.random(score.shape) < surge_p
        score = score + surge * rng.uniform(22, 50, size=score.shape)
        score = np.clip(np.round(score), 0, 100)
        ai, wi, ti = np.nonzero(score >= config.intent_report_floor)
        intent_rows.append((cov_idx[ai], w0 + wi, ti, score[ai, wi, ti]))
    i_account = np.concatenate([r[0] for r in intent_rows])
    i_week = np.concatenate([r[1] for r in intent_rows])
    i_topic = np.concatenate([r[2] for r in intent_rows])
    i_score = np.concatenate([r[3] for r in intent_rows])
    order = np.lexsort((i_topic, i_week, i_account))
    i_account, i_week, i_topic, i_score = (a[order] for a in (i_account, i_week, i_topic, i_score))

    # ---- missingness and leakage bait
    ids = np.array([f"A{first_account + i:07d}" for i in range(n)], dtype=object)
    emp_missing = rng.random(n) < 0.08
    rev_missing = rng.random(n) < (0.12 + 0.15 * (employees < 50))
    ind_missing = rng.random(n) < 0.04
    cty_missing = rng.random(n) < 0.03
    fy_missing = rng.random(n) < 0.15
    last_state = state[:, -1]
    ever_opp = np.zeros(n, dtype=bool)
    ever_opp[opp_account[(opp_created >= start_s) & ~opp_expansion]] = True
    last_activity = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_activity, e_account, e_ts)
    engaged_recently = last_activity >= end_s - 13 * week_s
    lifecycle = np.select(
        [last_state == CUSTOMER, last_state == DEAL, ever_opp, engaged_recently, n_contacts > 0],
        [0, 1, 2, 3, 4],
        5,
    )
    lifecycle_names = (
        "customer",
        "opportunity",
        "sales_qualified_lead",
        "marketing_qualified_lead",
        "subscriber",
        "unknown",
    )

    accounts = pa.table(
        {
            "account_id": pa.array(ids, pa.string()),
            "name": pa.array(_company_names(rng, n), pa.string()),
            "industry": _dictionary(industry, names, mask=ind_missing),
            "employees": pa.array(employees.astype(np.int64), mask=emp_missing),
            "annual_revenue": pa.array(revenue, mask=rev_missing),
            "country": _dictionary(country, cnames, mask=cty_missing),
            "founded_year": pa.array(founded_year.astype(np.int64), mask=fy_missing),
            **{flag: pa.array(tech[flag]) for flag in TECH_FLAGS},
            "lifecycle_stage": _dictionary(lifecycle, lifecycle_names),
            "last_activity_at": pa.array(
                last_activity.astype("datetime64[s]").astype("datetime64[us]"),
                mask=last_activity < 0,
            ),
        }
    )
    contacts = pa.table(
        {
            "contact_id": pa.array([f"C{first_contact + i:08d}" for i in range(m)], pa.string()),
            "account_id": _dictionary(c_account, ids),
            "role": _dictionary(c_role, ROLES),
            "seniority": pa.array(c_seniority.astype(str), pa.string()),
            "created_at": _timestamps(c_created),
        }
    )
    contact_ids = np.array([f"C{first_contact + i:08d}" for i in range(m)], dtype=object)
    local_contact = e_contact - first_contact
    events = pa.table(
        {
            "account_id": _dictionary(e_account, ids),
            "contact_id": _dictionary(
                np.where(local_contact >= 0, local_contact, 0),
                contact_ids if m else np.array([""], dtype=object),
                mask=local_contact < 0,
            ),
            "ts": _timestamps(e_ts),
            "event_type": _dictionary(e_type, EVENT_TYPES),
            "channel": _dictionary(e_channel, channel_names),
            "minutes": pa.array(e_minutes.astype(np.float64), mask=np.isnan(e_minutes)),
        }
    )
    week_dates = (start_s + i_week * week_s).astype(np.int64)
    intent = pa.table(
        {
            "account_id": _dictionary(i_account, ids),
            "week": _timestamps(week_dates),
            "topic": _dictionary(i_topic, INTENT_TOPICS),
            "score": pa.array(i_score.astype(np.float64)),
        }
    )
    k = len(opp_account)
    opportunities = pa.table(
        {
            "opportunity_id": pa.array(
                [f"O{chunk_index:04d}{i:07d}" for i in range(k)], pa.string()
            ),
            "account_id": _dictionary(opp_account, ids),
            "created_at": _timestamps(opp_created),
            "closed_at": pa.array(
                opp_closed.astype("datetime64[s]").astype("datetime64[us]"), mask=opp_open
            ),
            "outcome": _dictionary(outcome, ("won", "lost", "open")),
            "amount": pa.array(amount),
            "type": _dictionary(opp_expansion.astype(np.int8), ("new_business", "expansion")),
        }
    )
    truth_accounts = pa.table(
        {
            "account_id": pa.array(ids, pa.string()),
            "true_fit": pa.array(fit),
            "true_fit_logit": pa.array(fit_logit),
            "trap": _dictionary(trap, TRAP_TYPES),
            "email_autoopen": pa.array(autoopen),
            "intent_covered": pa.array(covered),
            "initial_state": _dictionary(initial_state, STATE_NAMES),
        }
    )
    truth_conversion = _truth_conversion(
        config, ids, state, initial_state, fit, opp_account, opp_created, opp_expansion
    )
    return _Chunk(
        accounts, contacts, events, intent, opportunities, truth_accounts, truth_conversion
    )


def truth_dates(config: WorldConfig) -> list[pd.Timestamp]:
    """Snapshot dates for which truth/ holds the conversion probability (inside the data)."""
    start, end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    dates = set(pd.date_range(start, end, freq="MS"))
    if config.truth_dates == "weekly_and_monthly":
        dates |= set(pd.date_range(start, end, freq="7D"))
    return sorted(d for d in dates if start < d < end)


def _truth_conversion(
    config, ids, state, initial_state, fit, opp_account, opp_created, opp_expansion
) -> pa.Table:
    start = pd.Timestamp(config.start)
    start_s = int(start.timestamp())
    frames = []
    new_business = ~opp_expansion
    for as_of in truth_dates(config):
        days = (as_of - start).days
        week, into = divmod(days, 7)
        if into == 0:
            known = state[:, week - 1] if week > 0 else initial_state
        else:
            known = state[:, week]
        p = conversion_probability(
            known, fit, into / 7.0, config.horizon_days, state_known=into > 0
        )
        # realised label, for sanity checks (the pipeline computes its own from opportunities)
        s = start_s + days * 86_400
        hit = new_business & (opp_created > s) & (opp_created <= s + config.horizon_days * 86_400)
        label = np.zeros(len(ids), dtype=bool)
        label[opp_account[hit]] = True
        frames.append(
            pa.table(
                {
                    "account_id": pa.array(ids, pa.string()),
                    "as_of": pa.array(
                        np.full(len(ids), as_of.to_datetime64().astype("datetime64[us]"))
                    ),
                    "true_state": _dictionary(known, STATE_NAMES),
                    "true_conversion_probability": pa.array(p),
                    "realised_label": pa.array(label),
                }
            )
        )
    return pa.concat_tables(frames)


_NAME_HEADS = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Blue Sun",
    "Monarch",
    "Nakatomi",
    "Oceanic",
    "Pied Piper",
    "Sterling",
    "Virtucon",
    "Wernham",
    "Zorg",
    "Dunder",
    "Prestige",
    "Massive",
    "Octan",
    "Rekall",
    "Sirius",
    "Tessier",
    "Nordlicht",
    "Rivera",
    "Lumen",
    "Kestrel",
)
_NAME_TAILS = (
    "Systems",
    "Labs",
    "Holdings",
    "Analytics",
    "Group",
    "Industries",
    "Partners",
    "Software",
    "Logistics",
    "Health",
    "Capital",
    "Media",
    "Works",
    "Networks",
    "Foods",
    "Robotics",
)
_NAME_FORMS = ("Inc.", "Ltd", "GmbH", "SAS", "LLC", "B.V.", "Pty Ltd", "")


def _company_names(rng: np.random.Generator, n: int) -> list[str]:
    heads = rng.integers(0, len(_NAME_HEADS), n)
    tails = rng.integers(0, len(_NAME_TAILS), n)
    forms = rng.integers(0, len(_NAME_FORMS), n)
    numbers = rng.integers(1, 1000, n)
    return [
        f"{_NAME_HEADS[h]} {_NAME_TAILS[t]} {num} {_NAME_FORMS[f]}".strip()
        for h, t, f, num in zip(heads, tails, forms, numbers, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# public entry points

WORLD_TABLES = ("accounts", "contacts", "events", "intent", "opportunities")


def iter_world_chunks(config: WorldConfig) -> Iterator[_Chunk]:
    """Simulate the world chunk by chunk (independent random stream per chunk)."""
    first_contact = 0
    for chunk_index, first in enumerate(range(0, config.n_accounts, config.chunk_accounts)):
        size = min(config.chunk_accounts, config.n_accounts - first)
        chunk = _simulate_chunk(config, chunk_index, first, size, first_contact)
        first_contact += chunk.contacts.num_rows
        yield chunk


def generate_world(
    config: WorldConfig,
    out: Path | str,
    *,
    overwrite: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a world folder (five contract tables as Parquet + ``truth/``) atomically.

    The folder is assembled in a temporary sibling and renamed into place at the end, so an
    interrupted run never leaves a half-written world. ``on_chunk(done, total)`` reports progress.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"world folder {out} already exists (pass overwrite=True / --overwrite to replace it)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "truth").mkdir()
        writers: dict[str, pq.ParquetWriter] = {}
        total = -(-config.n_accounts // config.chunk_accounts)
        for done, chunk in enumerate(iter_world_chunks(config), start=1):
            for name in (*WORLD_TABLES, "truth_accounts", "truth_conversion"):
                table: pa.Table = getattr(chunk, name)
                # dictionaries differ per chunk: write plain strings so chunks share one schema
                table = table.cast(pa.schema([_plain(f) for f in table.schema]))
                if name not in writers:
                    path = (
                        staging / "truth" / f"{name.removeprefix('truth_')}.parquet"
                        if name.startswith("truth_")
                        else staging / f"{name}.parquet"
                    )
                    writers[name] = pq.ParquetWriter(path, table.schema, compression="zstd")
                writers[name].write_table(table, row_group_size=1_000_000)
            if on_chunk:
                on_chunk(done, total)
        for writer in writers.values():
            writer.close()
        (staging / "truth" / "world_config.json").write_text(
            json.dumps(config.model_dump(mode="json"), indent=2) + "\n"
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _plain(field: pa.Field) -> pa.Field:
    if pa.types.is_dictionary(field.type):
        return pa.field(field.name, field.type.value_type, nullable=True)
    return field


def read_truth(folder: Path | str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Ground truth of a generated world: (accounts, conversion), or None for other folders."""
    truth = Path(folder) / "truth"
    if not (truth / "accounts.parquet").exists():
        return None
    return pd.read_parquet(truth / "accounts.parquet"), pd.read_parquet(
        truth / "conversion.parquet"
    )
