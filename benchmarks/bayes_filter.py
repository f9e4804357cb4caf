"""The Bayes-optimal conversion score on what the data show (used by ``ceiling.py``).

This runs the exact forward filter of the world's own hidden Markov chain over each account's
weekly journey state, with the generator's true parameters, and returns P(conversion label |
everything observed before as_of), mixed over the filtered state with the world's exact
:func:`conversion_probability`. Where engagement trails the journey by ``L`` weeks and intent
by ``L_i`` (``engagement_lag_weeks`` and the intent lag of the world's config), a signal of week
``t`` is evidence about the journey week ``t - L`` (``t - L_i``), and at as_of the filter has it
only for the signal weeks already seen: the journey's last ``L`` weeks are known from the CRM
and the intent seen so far, not from engagement. The filter is handed, as **privileged** nuisance values, each
account's true fit, trap kind and auto-open gateway, each contact's engagement propensity,
newsletter open probability and subscription, and each intent topic's base level; everything
else it must infer, as a model must: the journey state and the buying-group roles of the current
episode (marginalised over the 15 role sets), from

* contacts' events per type and week (Poisson, rates by state, role and propensity), and the
  events of the current week before as_of (rates times the elapsed fraction);
* anonymous visits (Poisson by state and company size);
* newsletter opens and clicks (Bernoulli by state), every second week;
* delivered intent scores of the relevant topics and their absence (base + noise + a surge
  drawn by state; only scores >= the report floor are delivered), for the weeks known at as_of;
* the opportunity history: an opportunity opened in a week means buying then, none means the
  buying state did not open one (probability 0.7); deals and customers are known states.

The posterior probability is the best-ranking score on this information (Neyman-Pearson), and
the privileged values only add information, so its ROC-AUC bounds from above what any model on
the observable data can reach, up to sampling noise on the test rows. Only a newsletter sent in
the week of as_of is left out (at most one e-mail per contact, a few hours before as_of), and on
a lagged world the signals of its first ``L`` weeks (they show the journey before the data
start, years before any test row).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.stats import norm

from propensity.data.world.chunk import HiddenChunk, simulate_hidden
from propensity.data.world.config import DAY, WEEK, WorldConfig
from propensity.data.world.engagement import (
    ANONYMOUS_VISIT_RATES,
    CONTACT_RATES,
    EVENT_TYPES,
    ROLE_MULTIPLIERS,
)
from propensity.data.world.intent import RELEVANT_TOPICS
from propensity.data.world.journey import (
    BUYING,
    BUYING_TO_OUT,
    CUSTOMER,
    DEAL,
    OPPORTUNITY_RATE,
    OUT,
    RESEARCH,
    RESEARCH_TO_OUT,
    conversion_probability,
    entry_rate,
    research_to_buying,
)

PROSPECT = (OUT, RESEARCH, BUYING)  # the engagement states a prospect can be in
MASKS = np.arange(1, 16)  # buying-group role sets of an episode (bit per role)
N_HYPOTHESES = 1 + 2 * len(MASKS)  # out; researching with each role set; buying with each
SURGE = {RESEARCH: 0.55, BUYING: 0.35}
NEWSLETTER_BOOST = {OUT: 1.0, RESEARCH: 1.25, BUYING: 1.3}


def mask_probabilities(fit: np.ndarray) -> np.ndarray:
    """P(role set) of a new episode per account, as ``draw_roles`` draws it: each role with
    chance 0.45 + 0.45 fit, and one role at random when none is drawn."""
    q = 0.45 + 0.45 * fit
    bits = (MASKS[:, None] >> np.arange(4)[None, :]) & 1  # (15, 4)
    k = bits.sum(axis=1)
    p = q[:, None] ** k[None, :] * (1 - q[:, None]) ** (4 - k[None, :])
    p[:, k == 1] += ((1 - q) ** 4)[:, None] / 4
    return p


def _week_of(ts: np.ndarray, start: int) -> np.ndarray:
    return (ts - start) // WEEK


class Evidence:
    """Log-likelihood of each account-week's observations under each engagement state, per
    buying-group role (contacts) or per account (anonymous visits, intent)."""

    def __init__(self, hidden: HiddenChunk, config: WorldConfig, first_contact: int) -> None:
        if config.regime_change:
            raise ValueError("the Bayes filter covers worlds without a regime change")
        self.hidden, self.config = hidden, config
        n, weeks = hidden.journey.state.shape
        self.n, self.weeks, self.start = n, weeks, hidden.clock.start
        self.informative = (hidden.traps.kind == 0).astype(float)  # traps engage regardless
        contacts = hidden.contacts
        self.role_of_contact = contacts.role.astype(int)
        self.events = hidden.events
        self.known = self.events.contact >= 0
        self.contact = np.where(self.known, self.events.contact - first_contact, 0)
        # per contact type: sum over types of rate(state) * role multiplier (events per week)
        self.contact_rate = np.stack(
            [
                sum(
                    CONTACT_RATES[t][e] * np.asarray(ROLE_MULTIPLIERS[t])[self.role_of_contact]
                    for t in CONTACT_RATES
                )
                * contacts.propensity
                * config.engagement_scale
                for e in PROSPECT
            ],
            axis=1,
        )  # (contacts, 3)
        self.size = (0.5 + 0.35 * hidden.firms.log_employees) * (
            config.engagement_scale * config.anonymous_traffic_scale
        )
        self._full_weeks()

    def _event_terms(self, keep: np.ndarray, weeks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum of count * log(rate) per account, week of ``weeks``, role and state for the
        contacts' typed events, and per account, week and state for anonymous visits (``keep``:
        per event, count it or not)."""
        ev, n = self.events, self.n
        position = np.full(self.weeks, -1)
        position[weeks] = np.arange(len(weeks))
        week = position[_week_of(ev.ts, self.start)]
        keep = keep & (week >= 0)
        contact_terms = np.zeros((n, len(weeks), 4, 3))
        for type_name in CONTACT_RATES:
            sel = keep & self.known & (ev.type == EVENT_TYPES.index(type_name))
            role = self.role_of_contact[self.contact[sel]]
            for j, e in enumerate(PROSPECT):
                rate = CONTACT_RATES[type_name][e]
                log_rate = np.log(rate) if rate > 0 else -np.inf
                np.add.at(contact_terms[:, :, :, j], (ev.account[sel], week[sel], role), log_rate)
        anon_sel = keep & ~self.known
        anon_counts = np.zeros((n, len(weeks)))
        np.add.at(anon_counts, (ev.account[anon_sel], week[anon_sel]), 1.0)
        anon_terms = anon_counts[:, :, None] * np.log(np.asarray(ANONYMOUS_VISIT_RATES)[:3])
        return contact_terms, anon_terms

    def _rate_terms(self, fraction: float, weeks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Minus the expected events per account, week of ``weeks``, role and state (contacts
        known in the week), and per account, week and state (anonymous visits), over
        ``fraction`` of a week."""
        contacts, n = self.hidden.contacts, self.n
        active = weeks[None, :] >= contacts.created_week[:, None]  # (contacts, weeks)
        contact_terms = np.zeros((n, len(weeks), 4, 3))
        for j in range(3):
            for r in range(4):
                sel = self.role_of_contact == r
                per_week = active[sel] * self.contact_rate[sel, j][:, None]
                np.add.at(contact_terms[:, :, r, j], contacts.account[sel], -fraction * per_week)
        anon = -fraction * self.size[:, None, None] * np.asarray(ANONYMOUS_VISIT_RATES)[:3]
        return contact_terms, np.broadcast_to(anon, (n, len(weeks), 3)).copy()

    def _newsletter_terms(self) -> np.ndarray:
        """Opens and clicks (and their absence) per account, week, role and state."""
        h, n, weeks = self.hidden, self.n, self.weeks
        contacts, ev = h.contacts, self.events
        terms = np.zeros((n, weeks, 4, 3))
        week = _week_of(ev.ts, self.start)
        opened = np.zeros((len(contacts.account), weeks), bool)
        clicked = np.zeros_like(opened)
        for flag, name in ((opened, "email_open"), (clicked, "email_click")):
            sel = self.known & (ev.type == EVENT_TYPES.index(name))
            flag[self.contact[sel], week[sel]] = True
        sends = np.arange(weeks)[np.arange(weeks) % 2 == 0]
        autoopen = h.traps.email_autoopen[contacts.account]
        for wk in sends:
            eligible = np.flatnonzero(
                contacts.subscribed & (wk >= contacts.created_week) & ~autoopen
            )
            o, c = opened[eligible, wk], clicked[eligible, wk]
            for j, e in enumerate(PROSPECT):
                boost = NEWSLETTER_BOOST[e]
                p_open = np.minimum(
                    contacts.open_probability[eligible]
                    * boost
                    * min(self.config.engagement_scale, 3),
                    1 - 1e-12,
                )
                p_click = 0.12 * boost**3
                ll = np.where(o, np.log(p_open), np.log1p(-p_open)) + np.where(
                    o, np.where(c, np.log(p_click), np.log1p(-p_click)), 0.0
                )
                np.add.at(
                    terms[:, wk, :, j],
                    (contacts.account[eligible], self.role_of_contact[eligible]),
                    ll,
                )
        return terms

    def _intent_terms(self) -> np.ndarray:
        """Per account, week and state: log-likelihood of the relevant topics' delivered scores
        and of the missing ones (below the report floor)."""
        intent, n, weeks = self.hidden.intent, self.n, self.weeks
        floor = self.config.intent_report_floor
        covered = np.flatnonzero(intent.covered)
        base = intent.base[:, 0, :RELEVANT_TOPICS]  # (covered, topics)
        position = np.full(n, -1)
        position[covered] = np.arange(len(covered))
        lo = np.full((len(covered), weeks, RELEVANT_TOPICS), -np.inf)
        hi = np.full_like(lo, floor - 0.5)  # not delivered: rounded score below the floor
        sel = intent.topic < RELEVANT_TOPICS
        at = (position[intent.account[sel]], intent.week[sel], intent.topic[sel])
        score = intent.score[sel]
        lo[at] = score - 0.5
        hi[at] = np.where(score >= 100, np.inf, score + 0.5)

        def plain(a):  # P(score below a), no surge
            return norm.cdf((a - base[:, None, :]) / 11)

        def surged(a):  # P(score below a) with a surge uniform on (22, 50)
            def g(z):
                return z * norm.cdf(z) + norm.pdf(z)

            z_hi = (a - base[:, None, :] - 22) / 11
            z_lo = (a - base[:, None, :] - 50) / 11
            with np.errstate(invalid="ignore"):
                value = (11 / 28) * (g(z_hi) - g(z_lo))
            return np.where(np.isposinf(a), 1.0, np.where(np.isneginf(a), 0.0, value))

        p_plain = np.clip(plain(hi) - plain(lo), 1e-300, None)
        p_surge = np.clip(surged(hi) - surged(lo), 1e-300, None)
        terms = np.zeros((n, weeks, 3))
        for j, e in enumerate(PROSPECT):
            s = SURGE.get(e, 0.0)
            terms[covered, :, j] = np.log(s * p_surge + (1 - s) * p_plain).sum(axis=2)
        return terms

    def _full_weeks(self) -> None:
        """Log-likelihood per account, **journey** week and hypothesis (out; researching /
        buying with each role set): ``engagement`` of the events (and e-mails) of the signal
        week ``L`` weeks later, ``intent`` of the intent scores of the week ``L_i`` later (intent
        of week w is known from the end of week w, as the features read it); ``full_weeks``
        is their sum."""
        every = np.arange(self.weeks)
        contact_counts, anon_counts = self._event_terms(np.ones(len(self.events.ts), bool), every)
        contact_rates, anon_rates = self._rate_terms(1.0, every)
        contacts = contact_counts + contact_rates + self._newsletter_terms()
        engagement = self._hypotheses(contacts, anon_counts + anon_rates)
        intent = self._hypotheses(np.zeros_like(contacts), self._intent_terms())
        self.engagement = earlier(engagement, self.config.engagement_lag_weeks)
        self.intent = earlier(intent, self.config.intent_lag_weeks)
        self.full_weeks = self.engagement + self.intent

    def partial_week(self, as_of: int, week: int) -> np.ndarray:
        """Log-likelihood per account and hypothesis of the events in the signal week ``week``
        before ``as_of`` (evidence about the journey week ``week - L``)."""
        fraction = (as_of - (self.start + week * WEEK)) / WEEK
        only = np.array([week])
        contact_counts, anon_counts = self._event_terms(self.events.ts < as_of, only)
        contact_rates, anon_rates = self._rate_terms(fraction, only)
        contacts, account = contact_counts + contact_rates, anon_counts + anon_rates
        return self._hypotheses(contacts, account)[:, 0]

    def _hypotheses(self, contacts: np.ndarray, account: np.ndarray) -> np.ndarray:
        """(accounts, weeks, N_HYPOTHESES): contacts of a role outside the episode's role set
        engage as the out of market."""
        bits = (MASKS[:, None] >> np.arange(4)[None, :]) & 1  # (15, 4)
        out = contacts[..., 0].sum(axis=2) + account[..., 0]
        columns = [out[..., None]]
        for j in (1, 2):
            inside = np.where(
                bits.astype(bool), contacts[..., j][..., None, :], contacts[..., 0][..., None, :]
            )
            columns.append(inside.sum(axis=3) + account[..., j][..., None])
        ll = np.concatenate(columns, axis=2)
        return np.where(self.informative[:, None, None] > 0, ll, 0.0)


def earlier(per_week: np.ndarray, weeks: int, fill=0) -> np.ndarray:
    """Signals of week ``w + weeks`` moved to week ``w`` (the journey week they show); the last
    ``weeks`` weeks get ``fill`` (no evidence)."""
    if weeks == 0:
        return per_week
    moved = np.full_like(per_week, fill)
    moved[:, :-weeks] = per_week[:, weeks:]
    return moved


def without_privileges(hidden: HiddenChunk) -> HiddenChunk:
    """The chunk as a filter sees it that knows the world's law (rates, transition
    probabilities) but none of its hidden traits: every account has the population's mean fit
    and is an ordinary prospect (no trap, no auto-open gateway), its intent topics at the
    population's base level; every contact engages and opens e-mail at the population's mean.
    Which accounts the intent vendor covers it keeps: the data show it in effect (on the
    default world 98.6 % of the covered accounts have a delivered score within the first 52
    weeks, from noise alone if not from a surge, and no uncovered account ever has one), and a
    filter that took every account as covered would read a missing score as out of market."""
    contacts, intent = hidden.contacts, hidden.intent
    covered = int(intent.covered.sum())
    base = np.full((covered, 1, intent.base.shape[2]), 22.0)  # the generator's mean topic level
    return dataclasses.replace(
        hidden,
        fit=np.full(len(hidden.fit), hidden.fit.mean()),
        traps=dataclasses.replace(
            hidden.traps,
            kind=np.zeros_like(hidden.traps.kind),
            email_autoopen=np.zeros_like(hidden.traps.email_autoopen),
        ),
        contacts=dataclasses.replace(
            contacts,
            propensity=np.ones_like(contacts.propensity),  # gamma(1, 1)
            open_probability=np.full_like(contacts.open_probability, 1.2 / 7.2),  # beta(1.2, 6)
        ),
        intent=dataclasses.replace(intent, base=base),
    )


def transition(prior: np.ndarray, fit: np.ndarray, research_weeks_scale: float) -> np.ndarray:
    """One week of the prospect chain (no opportunity opened the week before)."""
    p_enter, p_rb = entry_rate(fit), research_to_buying(fit, research_weeks_scale)
    masks = mask_probabilities(fit)
    out, res, buy = prior[:, :1], prior[:, 1:16], prior[:, 16:]
    new_out = out[:, 0] * (1 - p_enter) + res.sum(1) * RESEARCH_TO_OUT + buy.sum(1) * BUYING_TO_OUT
    new_res = out * p_enter[:, None] * masks + res * (1 - p_rb - RESEARCH_TO_OUT)[:, None]
    new_buy = res * p_rb[:, None] + buy * (1 - BUYING_TO_OUT)
    return np.concatenate([new_out[:, None], new_res, new_buy], axis=1)


def _update(prior: np.ndarray, loglik: np.ndarray) -> np.ndarray:
    shift = np.max(np.where(prior > 0, loglik, -np.inf), axis=1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    post = prior * np.exp(loglik - shift)
    total = post.sum(axis=1, keepdims=True)
    return np.where(total > 0, post / np.where(total > 0, total, 1), prior)


def week_step(
    belief: np.ndarray,
    fit: np.ndarray,
    research_weeks_scale: float,
    previous: np.ndarray,
    current: np.ndarray,
    loglik: np.ndarray,
    opened: np.ndarray,
    elapsed: float,
) -> np.ndarray:
    """The filter through one week (``elapsed``: the fraction of it seen): the chain's step, a
    lost deal's restart out of market, the week's evidence, and the opportunity evidence (one
    opened: buying; none: buying did not open one). Deals and customers (``current``, known from
    the CRM) get no prospect mass."""
    prior = transition(belief, fit, research_weeks_scale)
    restart = (previous == DEAL) & (current == OUT)
    prior[restart] = 0.0
    prior[restart, 0] = 1.0
    belief = _update(prior, loglik)
    belief[opened, :16] = 0.0
    belief[~opened, 16:] *= 1 - OPPORTUNITY_RATE * elapsed
    belief /= np.maximum(belief.sum(axis=1, keepdims=True), 1e-300)
    belief[np.isin(current, (DEAL, CUSTOMER))] = 0.0
    return belief


def bayes_conversion(
    hidden: HiddenChunk,
    config: WorldConfig,
    keys: pd.DataFrame,
    horizon_days: int,
    first_contact: int = 0,
) -> pd.DataFrame:
    """Per row of ``keys`` (``account`` index into the chunk, ``as_of``): P(new-business
    opportunity in (as_of, as_of + horizon_days] | observations before as_of) and the filtered
    probability of each prospect state (all 0 for deals and customers)."""
    evidence = Evidence(hidden, config, first_contact)
    journey, fit, start = hidden.journey, hidden.fit, hidden.clock.start
    n, weeks = journey.state.shape
    scale = config.research_weeks_scale
    opened_week = np.zeros((n, weeks), bool)
    opened_created = np.zeros((n, weeks), np.int64)
    for w in range(weeks):
        deals = journey.deals[2 * w]
        opened_week[deals.account, w] = True
        opened_created[deals.account, w] = deals.created
    as_of_s = (
        (pd.to_datetime(keys["as_of"]) - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    ).to_numpy(np.int64)
    days = (as_of_s - start) // DAY
    week_of_row, into = days // 7, days % 7
    account = keys["account"].to_numpy()
    result = np.full(len(keys), np.nan)
    masses = np.zeros((len(keys), 3))

    # the filter after each week: out / researching / buying mass per account, deals known
    belief = np.zeros((n, N_HYPOTHESES))
    initial_research = np.clip(0.1 * fit, 0, 1)
    belief[:, 0] = 1 - initial_research
    belief[:, 1:16] = initial_research[:, None] * mask_probabilities(fit)
    state = journey.state
    lag, intent_lag = config.engagement_lag_weeks, config.intent_lag_weeks
    cut = {}  # week -> the belief before that week's transition (after week - 1)
    needed = {max(w - lag, 0) for w in week_of_row.tolist()}
    for w in range(weeks + 1):
        if w in needed:
            cut[w] = belief.copy()
        if w == weeks:
            break
        previous = state[:, w - 1] if w > 0 else journey.initial_state
        belief = week_step(
            belief,
            fit,
            scale,
            previous,
            state[:, w],
            evidence.full_weeks[:, w],
            opened_week[:, w],
            1.0,
        )

    for w in sorted(set(week_of_row.tolist())):
        rows = np.flatnonzero(week_of_row == w)
        for fraction_days in np.unique(into[rows]):
            sel = rows[into[rows] == fraction_days]
            acc = account[sel]
            as_of = start + w * WEEK + int(fraction_days) * DAY
            # the events of this week before as_of show the journey week w - lag
            seen_now = (
                evidence.partial_week(as_of, w)[acc]
                if fraction_days > 0
                else np.zeros((len(acc), N_HYPOTHESES))
            )
            # the journey's last `lag` weeks: no engagement seen yet, intent where it is
            belief_w = cut[max(w - lag, 0)][acc]  # rows in the first `lag` weeks: the start
            for k in range(max(w - lag, 0), w):
                loglik = evidence.intent[acc, k] if k + intent_lag <= w - 1 else 0.0
                if k == w - lag:
                    loglik = loglik + seen_now
                belief_w = week_step(
                    belief_w,
                    fit[acc],
                    scale,
                    state[acc, k - 1] if k > 0 else journey.initial_state[acc],
                    state[acc, k],
                    np.broadcast_to(loglik, belief_w.shape),
                    opened_week[acc, k],
                    1.0,
                )
            if fraction_days > 0:  # the days of the week before as_of
                opened_before = opened_week[acc, w] & (opened_created[acc, w] < as_of)
                previous = state[acc, w - 1] if w > 0 else journey.initial_state[acc]
                belief_w = week_step(
                    belief_w,
                    fit[acc],
                    scale,
                    previous,
                    state[acc, w],
                    seen_now if lag == 0 else np.zeros_like(seen_now),
                    opened_before,
                    fraction_days / 7,
                )
                belief_w[opened_before] = 0.0  # an opportunity already open: not a prospect
            mass = np.stack(
                [belief_w[:, 0], belief_w[:, 1:16].sum(1), belief_w[:, 16:].sum(1)], axis=1
            )
            total = mass.sum(axis=1, keepdims=True)
            share = mass / np.where(total > 0, total, 1)  # all 0: in deal or a customer
            chance = np.stack(
                [
                    conversion_probability(
                        np.full(len(sel), e, dtype=np.int8),
                        fit[acc],
                        fraction_days / 7.0,
                        horizon_days,
                        state_known=fraction_days > 0,
                        research_weeks_scale=scale,
                    )
                    for e in PROSPECT
                ],
                axis=1,
            )
            result[sel] = (share * chance).sum(axis=1)
            masses[sel] = share
    return pd.DataFrame(
        {
            "probability": result,
            **{f"p_{name}": masses[:, j] for j, name in enumerate(("out", "research", "buying"))},
        },
        index=keys.index,
    )


def bayes_for_world(
    config: WorldConfig, keys: pd.DataFrame, horizon_days: int, privileged: bool = True
) -> pd.DataFrame:
    """:func:`bayes_conversion` for spine rows (``account_id``, ``as_of``) of a generated world,
    its chunks simulated again (same seed and config: the same draws as the files); without
    ``privileged``, on the chunks :func:`without_privileges`."""
    number = keys["account_id"].astype(str).str[1:].astype(int).to_numpy()
    parts, first_contact = [], 0
    for chunk_index, first in enumerate(range(0, config.n_accounts, config.chunk_accounts)):
        size = min(config.chunk_accounts, config.n_accounts - first)
        hidden = simulate_hidden(config, chunk_index, size, first_contact)
        seen = hidden if privileged else without_privileges(hidden)
        inside = (number >= first) & (number < first + size)
        rows = pd.DataFrame({"account": number[inside] - first, "as_of": keys["as_of"][inside]})
        parts.append(bayes_conversion(seen, config, rows, horizon_days, first_contact))
        first_contact += len(hidden.contacts.account)
    return pd.concat(parts).reindex(keys.index)
