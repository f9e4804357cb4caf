"""A journey-stage filter learned from the observable tables (used by ``journey.py``).

The Bayes bound of ``ceiling.md`` knows the world's own hidden Markov chain. This learns one from
the data a company has, the way a feature family would, to measure what a learned journey stage
adds to the conversion model before it becomes one (issue 15):

* per account and week: contacts' events per type (e-mail opens and clicks left out: they
  follow the newsletter's calendar, not the journey), anonymous visits, the contacts known,
  delivered intent topics and whether any intent was delivered before, new-business
  opportunities opened, and the CRM state (prospect, open deal, customer);
* five states: out of market, researching and buying (hidden), in a deal and customer (known
  from the CRM, so only that state is allowed in those weeks). Events are Poisson with rates per
  state (contacts' events times the contacts known), intent topics Poisson per state where the
  account has had intent before, and an opportunity opens from each prospect state with its own
  weekly chance: the buying state is the one that opens them, so the opportunities anchor it;
* fitted by EM (Baum-Welch) on the weeks before a cutoff, from a fixed start; the lags by which
  engagement and intent trail the journey are chosen by the likelihood of the same observations
  (:func:`choose_lags`): the opportunities are on time, so aligning the signals with them
  identifies the lag;
* point in time: a snapshot in week ``W`` reads the signal weeks before ``W`` only; with an
  engagement lag ``L`` the journey's last ``L`` weeks are known from the CRM and the intent
  seen so far, as in :mod:`bayes_filter`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from bayes_filter import earlier

CONTACT_EVENT_TYPES = (
    "web_visit",
    "content_download",
    "webinar",
    "pricing_page",
    "meeting",
    "form_fill",
)
OUT, RESEARCH, BUYING, DEAL, CUSTOMER = range(5)
STATES = 5
PROSPECT = 3  # the first three states are a prospect's
FEATURES = ("journey_p_out", "journey_p_research", "journey_p_buying", "journey_open_13w")


@dataclass(frozen=True)
class WeeklyHistory:
    """Per account (rows, ``accounts``) and week from ``start`` (columns): what the tables show."""

    accounts: pd.Index
    start: pd.Timestamp
    events: np.ndarray  # (accounts, weeks, CONTACT_EVENT_TYPES + anonymous visits)
    contacts: np.ndarray  # contacts created by the end of the week
    intent_topics: np.ndarray  # delivered intent rows of the week
    intent_seen: np.ndarray  # any intent delivered in an earlier week
    opened: np.ndarray  # a new-business opportunity created in the week
    crm_state: np.ndarray  # 0 prospect, 1 in an open new-business deal, 2 customer


def _week(ts: pd.Series, start: pd.Timestamp) -> np.ndarray:
    return ((ts - start).dt.days // 7).to_numpy()


def _table(folder: Path, name: str, columns: list[str]) -> pd.DataFrame:
    """A contract table's columns, or no rows where the table is absent (the contract allows
    every table but accounts to be missing)."""
    path = folder / f"{name}.parquet"
    if path.exists():
        return pd.read_parquet(path, columns=columns)
    timestamps = {"ts", "week", "created_at", "closed_at"}
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[us]" if c in timestamps else "object") for c in columns}
    )


def weekly_history(folder: Path, start: pd.Timestamp, weeks: int) -> WeeklyHistory:
    """Aggregate a world's contract tables (Parquet files in ``folder``) to weeks; an absent
    table is a signal with no rows."""
    accounts = pd.Index(
        pd.read_parquet(folder / "accounts.parquet", columns=["account_id"])["account_id"]
    )
    n = len(accounts)
    ev = _table(folder, "events", ["account_id", "contact_id", "ts", "event_type"])
    account, week = accounts.get_indexer(ev["account_id"]), _week(ev["ts"], start)
    keep = (account >= 0) & (week >= 0) & (week < weeks)
    known = ev["contact_id"].notna().to_numpy() & keep
    kind = ev["event_type"].to_numpy()
    events = np.zeros((n, weeks, len(CONTACT_EVENT_TYPES) + 1), np.float32)
    for c, name in enumerate(CONTACT_EVENT_TYPES):
        sel = known & (kind == name)
        np.add.at(events[:, :, c], (account[sel], week[sel]), 1)
    sel = keep & ~ev["contact_id"].notna().to_numpy() & (kind == "web_visit")
    np.add.at(events[:, :, -1], (account[sel], week[sel]), 1)

    co = _table(folder, "contacts", ["account_id", "created_at"])
    created = np.clip(_week(co["created_at"], start), 0, None)
    inside = created < weeks
    contacts = np.zeros((n, weeks), np.float32)
    np.add.at(contacts, (accounts.get_indexer(co["account_id"])[inside], created[inside]), 1)
    contacts = np.cumsum(contacts, axis=1)
    if co.empty:  # no contacts table: contacts' events per account, as if one contact
        contacts = np.ones((n, weeks), np.float32)

    it = _table(folder, "intent", ["account_id", "week"])
    account, week = accounts.get_indexer(it["account_id"]), _week(it["week"], start)
    keep = (account >= 0) & (week >= 0) & (week < weeks)
    intent = np.zeros((n, weeks), np.float32)
    np.add.at(intent, (account[keep], week[keep]), 1)
    seen = np.cumsum(intent > 0, axis=1) > 0
    intent_seen = np.concatenate([np.zeros((n, 1), bool), seen[:, :-1]], axis=1)

    op = _table(
        folder, "opportunities", ["account_id", "created_at", "closed_at", "outcome", "type"]
    )
    op = op[op["type"] == "new_business"]
    opened = np.zeros((n, weeks), bool)
    crm_state = np.zeros((n, weeks), np.int8)
    closed = np.where(op["closed_at"].isna(), weeks, _week(op["closed_at"].fillna(start), start))
    for a, created_week, closed_week, outcome in zip(
        accounts.get_indexer(op["account_id"]),
        _week(op["created_at"], start),
        closed,
        op["outcome"],
        strict=True,
    ):
        if 0 <= created_week < weeks:
            opened[a, created_week] = True
        lo, hi = max(created_week + 1, 0), min(closed_week, weeks - 1)
        if lo <= hi:
            crm_state[a, lo : hi + 1] = np.maximum(crm_state[a, lo : hi + 1], 1)
        if outcome == "won" and closed_week + 1 < weeks:
            crm_state[a, max(closed_week + 1, 0) :] = 2
    return WeeklyHistory(accounts, start, events, contacts, intent, intent_seen, opened, crm_state)


@dataclass(frozen=True)
class JourneyModel:
    """The learned chain: Poisson rates per state (contacts' events per contact, anonymous
    visits, intent topics), each prospect state's weekly chance to open an opportunity, the
    start and transition probabilities, and the lags its signals were aligned by."""

    event_rates: np.ndarray  # (STATES, contact event types)
    visit_rates: np.ndarray  # (STATES,)
    intent_rates: np.ndarray  # (STATES,)
    open_chance: np.ndarray  # (PROSPECT,)
    start_probability: np.ndarray  # (STATES,)
    transition: np.ndarray  # (STATES, STATES)
    engagement_lag_weeks: int
    intent_lag_weeks: int
    log_likelihood: float = float("nan")


@dataclass(frozen=True)
class _Aligned:
    """The history with each signal moved to the journey week it shows."""

    events: np.ndarray
    contacts: np.ndarray
    intent_topics: np.ndarray
    intent_seen: np.ndarray
    opened: np.ndarray
    crm_state: np.ndarray
    engagement_lag: int
    intent_lag: int

    @classmethod
    def of(cls, history: WeeklyHistory, engagement_lag: int, intent_lag: int) -> _Aligned:
        return cls(
            earlier(history.events, engagement_lag),
            earlier(history.contacts, engagement_lag),
            earlier(history.intent_topics, intent_lag),
            earlier(history.intent_seen, intent_lag, False),
            history.opened,
            history.crm_state,
            engagement_lag,
            intent_lag,
        )

    def seen(self, before_week: int, from_week: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Per journey week: are its engagement and its intent from signal weeks in
        [``from_week``, ``before_week``)?"""
        k = np.arange(self.opened.shape[1])
        engagement = (k + self.engagement_lag < before_week) & (
            k + self.engagement_lag >= from_week
        )
        intent = (k + self.intent_lag < before_week) & (k + self.intent_lag >= from_week)
        return engagement, intent


def _log_likelihood(
    data: _Aligned,
    model: JourneyModel,
    engagement_seen: np.ndarray,
    intent_seen: np.ndarray,
    rows=slice(None),
    weeks=slice(None),
) -> np.ndarray:
    """(accounts, weeks, STATES): log-likelihood of each week's evidence per state. Deal and
    customer weeks allow only that state but emit signals like any state, so every lag scores
    the same observations."""
    events, contacts = data.events[rows, weeks], data.contacts[rows, weeks]
    topics, covered = data.intent_topics[rows, weeks], data.intent_seen[rows, weeks]
    opened, crm = data.opened[rows, weeks], data.crm_state[rows, weeks]
    engagement_seen, intent_seen = engagement_seen[weeks], intent_seen[weeks]
    ll = np.zeros((*opened.shape, STATES))
    for k in range(STATES):
        rate = model.event_rates[k][None, None, :] * contacts[..., None]
        term = (events[..., :-1] * np.log(np.maximum(rate, 1e-12)) - rate).sum(-1)
        term += events[..., -1] * np.log(model.visit_rates[k]) - model.visit_rates[k]
        intent = np.where(
            covered, topics * np.log(model.intent_rates[k]) - model.intent_rates[k], 0.0
        )
        ll[..., k] = term * engagement_seen[None, :] + intent * intent_seen[None, :]
        if k < PROSPECT:
            chance = model.open_chance[k]
            ll[..., k] += np.where(opened, np.log(chance), np.log1p(-chance))
    allowed = np.stack([crm == 0] * PROSPECT + [crm == 1, crm == 2], axis=-1)
    return np.where(allowed, ll, -np.inf)


def _step(belief: np.ndarray, transition: np.ndarray | None, ll: np.ndarray) -> tuple:
    """Predict (unless ``transition`` is None: ``belief`` is the prior) and update; the new
    belief and the log of the normaliser."""
    prior = belief if transition is None else belief @ transition
    shift = ll.max(axis=1, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    post = prior * np.exp(ll - shift)
    total = post.sum(axis=1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, post / safe, prior), np.log(safe[:, 0]) + shift[:, 0]


def _forward(ll: np.ndarray, model: JourneyModel) -> tuple[np.ndarray, float]:
    n, weeks, _ = ll.shape
    alpha = np.zeros_like(ll)
    belief, total = np.tile(model.start_probability, (n, 1)), 0.0
    for t in range(weeks):
        belief, log_c = _step(belief, None if t == 0 else model.transition, ll[:, t])
        alpha[:, t], total = belief, total + log_c.sum()
    return alpha, total


def _backward(ll: np.ndarray, transition: np.ndarray) -> np.ndarray:
    beta = np.ones_like(ll)
    for t in range(ll.shape[1] - 2, -1, -1):
        shift = ll[:, t + 1].max(axis=1, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        b = (np.exp(ll[:, t + 1] - shift) * beta[:, t + 1]) @ transition.T
        beta[:, t] = b / np.maximum(b.sum(axis=1, keepdims=True), 1e-300)
    return beta


def _start(
    data: _Aligned, engagement_seen: np.ndarray, intent_seen: np.ndarray, lags: tuple[int, int]
) -> JourneyModel:
    """A fixed, data-scaled start: out of market quiet, researching and buying busier, the
    buying state opening opportunities."""
    prospect = engagement_seen[None, :] & (data.crm_state == 0)
    per_contact = data.events[prospect][:, :-1].sum(0) / max(data.contacts[prospect].sum(), 1.0)
    visits = data.events[prospect][:, -1].mean()
    covered = data.intent_seen & (data.crm_state == 0) & intent_seen[None, :]
    topics = max(float(data.intent_topics[covered].mean()) if covered.any() else 0.0, 1e-3)
    scale = np.array([0.5, 3.0, 4.0, 3.0, 0.5])
    transition = (
        np.array(
            [
                [0.97, 0.03, 0.0, 0.0, 0.0],
                [0.06, 0.88, 0.06, 0.0, 0.0],
                [0.04, 0.0, 0.66, 0.30, 0.0],
                [0.02, 0.0, 0.0, 0.96, 0.02],
                [0.0, 0.0, 0.0, 0.0, 1.0],
            ]
        )
        + 1e-3
    )
    return JourneyModel(
        event_rates=scale[:, None] * per_contact[None, :] + 1e-6,
        visit_rates=np.array([0.7, 2.0, 2.5, 2.0, 0.7]) * visits + 1e-6,
        intent_rates=np.array([0.3, 4.0, 3.0, 1.0, 0.3]) * topics + 1e-6,
        open_chance=np.array([1e-4, 1e-3, 0.3]),
        start_probability=np.array([0.8, 0.1, 0.01, 0.04, 0.05]),
        transition=transition / transition.sum(axis=1, keepdims=True),
        engagement_lag_weeks=lags[0],
        intent_lag_weeks=lags[1],
    )


def fit_journey(
    history: WeeklyHistory,
    cutoff_week: int,
    lags: tuple[int, int] = (0, 0),
    iterations: int = 40,
    from_week: int = 6,
) -> JourneyModel:
    """EM on the journey weeks before ``cutoff_week`` whose signals (of the signal weeks in
    [``from_week``, ``cutoff_week``)) are known before it."""
    data = _Aligned.of(history, *lags)
    engagement_seen, intent_seen = data.seen(cutoff_week, from_week)
    weeks = slice(0, cutoff_week)
    model = _start(data, engagement_seen, intent_seen, lags)
    events, contacts = data.events[:, weeks], data.contacts[:, weeks]
    topics = data.intent_topics[:, weeks]
    covered = data.intent_seen[:, weeks] & intent_seen[None, weeks]
    opened = data.opened[:, weeks]
    engaged = engagement_seen[None, weeks, None]
    for _ in range(iterations):
        ll = _log_likelihood(data, model, engagement_seen, intent_seen, weeks=weeks)
        alpha, _ = _forward(ll, model)
        beta = _backward(ll, model.transition)
        gamma = alpha * beta
        gamma /= np.maximum(gamma.sum(axis=-1, keepdims=True), 1e-300)
        shift = ll[:, 1:].max(axis=-1, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0.0)
        emission = np.exp(ll[:, 1:] - shift) * beta[:, 1:]
        xi = alpha[:, :-1, :, None] * model.transition[None, None] * emission[:, :, None, :]
        xi /= np.maximum(xi.sum(axis=(-1, -2), keepdims=True), 1e-300)
        counts = xi.sum(axis=(0, 1)) + 1e-3
        g_seen = gamma * engaged
        g_intent = gamma * covered[..., None]
        model = replace(
            model,
            event_rates=np.einsum("ntk,ntc->kc", g_seen, events[..., :-1])
            / np.maximum(np.einsum("ntk,nt->k", g_seen, contacts), 1e-9)[:, None]
            + 1e-9,
            visit_rates=np.einsum("ntk,nt->k", g_seen, events[..., -1])
            / np.maximum(g_seen.sum(axis=(0, 1)), 1e-9)
            + 1e-9,
            intent_rates=np.einsum("ntk,nt->k", g_intent, topics)
            / np.maximum(g_intent.sum(axis=(0, 1)), 1e-9)
            + 1e-9,
            open_chance=np.clip(
                np.einsum("ntk,nt->k", gamma[..., :PROSPECT], opened.astype(float))
                / np.maximum(gamma[..., :PROSPECT].sum(axis=(0, 1)), 1e-9),
                1e-6,
                0.99,
            ),
            start_probability=(gamma[:, 0].mean(axis=0) + 1e-6)
            / (gamma[:, 0].mean(axis=0) + 1e-6).sum(),
            transition=counts / counts.sum(axis=1, keepdims=True),
        )
    ll = _log_likelihood(data, model, engagement_seen, intent_seen, weeks=weeks)
    return replace(model, log_likelihood=_forward(ll, model)[1])


def choose_lags(
    history: WeeklyHistory,
    cutoff_week: int,
    max_lag: int = 6,
    iterations: int = 10,
    from_week: int = 6,
) -> tuple[tuple[int, int], dict[str, float]]:
    """The (engagement, intent) lags in weeks whose chain explains the same observations best:
    first the engagement lag (0..``max_lag``, intent on time or as late as engagement), then
    the intent lag (0..engagement lag) for it. ``from_week`` (>= ``max_lag``) keeps the
    observations the same for every lag; the scores are the log-likelihoods tried."""
    if from_week < max_lag:
        raise ValueError(f"from_week ({from_week}) must be at least max_lag ({max_lag})")
    scores: dict[str, float] = {}

    def score(lag: int, intent_lag: int) -> float:
        key = f"{lag}/{intent_lag}"
        if key not in scores:
            fitted = fit_journey(history, cutoff_week, (lag, intent_lag), iterations, from_week)
            scores[key] = fitted.log_likelihood
        return scores[key]

    lag = max(range(max_lag + 1), key=lambda lag: max(score(lag, 0), score(lag, lag)))
    intent_lag = max(range(lag + 1), key=lambda intent_lag: score(lag, intent_lag))
    return (lag, intent_lag), scores


def journey_features(
    history: WeeklyHistory,
    model: JourneyModel,
    account: np.ndarray,
    as_of_week: np.ndarray,
    horizon_weeks: int = 13,
) -> np.ndarray:
    """Per row (``account`` index, ``as_of_week``: the week as_of falls in), from the signal
    weeks before that week only: P(out / researching / buying this week) among the prospect
    states and the chain's chance that an opportunity opens within ``horizon_weeks`` (all
    missing where the account was in a deal or a customer, or opened an opportunity, in the
    last complete week). Columns: :data:`FEATURES`."""
    data = _Aligned.of(history, model.engagement_lag_weeks, model.intent_lag_weeks)
    weeks = data.opened.shape[1]
    everything = np.ones(weeks, bool)
    alpha, _ = _forward(_log_likelihood(data, model, everything, everything), model)
    lag, intent_lag = model.engagement_lag_weeks, model.intent_lag_weeks
    # a prospect that opened nothing last week stays a prospect: the chain's moves into a deal
    # are the openings, which the forecast counts with the opening chances instead
    staying = model.transition.copy()
    staying[:PROSPECT, PROSPECT:] = 0.0
    staying /= staying.sum(axis=1, keepdims=True)
    out = np.full((len(account), len(FEATURES)), np.nan)
    for week in np.unique(as_of_week):
        rows = np.flatnonzero(as_of_week == week)
        accounts = account[rows]
        # the belief after the last journey week all of whose signals are seen, then the
        # journey's last `lag` weeks from the CRM and the intent already published
        known = week - lag - 1
        belief = (
            alpha[accounts, known]
            if known >= 0
            else np.tile(model.start_probability, (len(accounts), 1))
        )
        for k in range(max(known + 1, 0), week):
            intent_seen = np.zeros(weeks, bool)
            intent_seen[k] = k + intent_lag < week
            ll = _log_likelihood(
                data, model, np.zeros(weeks, bool), intent_seen, accounts, slice(k, k + 1)
            )[:, 0]
            belief, _ = _step(belief, None if k == 0 else model.transition, ll)
        # in a deal or a customer at the end of the last complete week: not a prospect
        last = min(max(week - 1, 0), weeks - 1)
        prospect = (data.crm_state[accounts, last] == 0) & ~data.opened[accounts, last]
        now = (belief if week == 0 else belief @ staying)[:, :PROSPECT]
        total = now.sum(axis=1, keepdims=True)
        prospect &= total[:, 0] > 0
        share = now / np.where(total > 0, total, 1.0)
        out[rows[prospect], :PROSPECT] = share[prospect]
        chain = np.zeros((len(rows), STATES))
        chain[:, :PROSPECT] = share
        opens = np.zeros(len(rows))
        for _ in range(horizon_weeks):
            opens += chain[:, :PROSPECT] @ model.open_chance
            chain[:, :PROSPECT] *= 1 - model.open_chance[None, :]
            chain = chain @ staying
        out[rows[prospect], -1] = opens[prospect]
    return out
