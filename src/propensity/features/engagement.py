"""Engagement features: contacts' and anonymous activity rolled up to the account.

Point-in-time rule: an event counts for snapshot ``as_of`` only if ``ts < as_of`` (``as_of`` is
a midnight, so "day of ts < as_of" is the same test). An event's contact counts as identified
only if the contact was known before ``as_of`` (``created_at < as_of``, or no created_at);
events of contacts created later count as anonymous, as they were then.

This module declares the features (with the SQL expression of each column) and their wording
in reasons; :mod:`propensity.features.engagement_engine` computes the tables they read.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

import propensity.features.engagement_engine as engine
import propensity.features.engagement_windows as counting
from propensity.features.phrases import (
    Wording,
    all_missing,
    is_missing,
    momentum_pairs,
    number,
    unknown,
    window_counts,
)
from propensity.features.registry import FamilyBuild, FeatureConfig, FeatureSpec
from propensity.features.sql import slug

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

FAMILY = "engagement"
AVAILABLE = "counts events with ts strictly before as_of"
CONTACTS_AVAILABLE = "contacts with created_at strictly before as_of"

# a spec and the SQL of its column in features_engagement, or None: counted in numpy
# (:class:`propensity.features.engagement_counting.WindowCounts`)
Feature = tuple[FeatureSpec, str | None]
RECENCY = "eng_days_since_last_event"
EPISODE = "eng_days_in_episode"


def build(con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig) -> FamilyBuild:
    """Create the view ``features_engagement`` (``_row`` of the spine, then the features not
    counted in numpy)."""
    has_contacts = tables.contacts is not None
    has_minutes = "minutes" in tables.events
    has_channel = "channel" in tables.events
    profile = engine.profile_events(con, config, has_channel)
    cuts = engine.create_period_maps(con, config, profile)
    has_contact = "contact_id" in tables.events
    episodes = config.episode_gap_days is not None
    mask_columns = engine.create_daily(con, profile, has_contact, has_minutes, episodes)
    count_specs, sums = _counts(config, profile.types, has_minutes)
    helpers = counting.helper_sums(config)
    daily, spine = counting.read_daily(con, sums + helpers, mask_columns, episodes)
    counter = counting.WindowCounts(daily, spine, config, cuts)
    del daily, spine
    # the counts the SQL features read, as integers (as they were counted)
    counts = counter.sums(helpers)
    rows = np.arange(counter.n_rows, dtype=np.int64)
    con.register(
        "engagement_counts",
        pa.table({"_row": rows, **{name: v.astype(np.int64) for name, v in counts.items()}}),
    )
    features: list[Feature] = [(spec, None) for spec in count_specs]
    features += _buying_group(config, has_contacts)
    features += _activity(config, has_channel)
    features += _rhythm(config)
    if has_contacts:
        features += _coverage(config)
    # the window counts, channels and recency are features as numpy counts them (no SQL), on
    # one core while DuckDB works on the contacts and the other families
    pool = ThreadPoolExecutor(max_workers=1)
    counted = pool.submit(
        _counted,
        counter,
        [spec.name for spec, sql in features if sql is None],
        sums,
        (mask_columns, len(profile.channels), max(config.windows_days)) if has_channel else None,
        config.episode_gap_days,
    )
    pool.shutdown(wait=False)  # the thread ends with its one task
    engine.create_contact_periods(con, has_contact)
    engine.create_contacts(con, config, has_contacts)
    if has_contacts:
        engine.create_known(con)
    engine.create_view(con, [sql for _, sql in features if sql is not None], has_contacts)
    engine.drop_intermediates(con)
    return FamilyBuild([spec for spec, _ in features], counted)


def _counted(
    counter: counting.WindowCounts,
    names: list[str],
    sums: list[counting.WindowSum],
    channels: tuple[list[str], int, int] | None,
    episode_gap_days: int | None,
) -> dict[str, np.ndarray]:
    """The features counted in numpy (``names``): the window ``sums``, the channels reached
    (``channels``: mask columns, number of channels, window), the recency and the days into
    the current episode (``episode_gap_days``: the quiet spell that ends one)."""
    counted = counter.sums(sums)
    if channels is not None:
        mask_columns, n_channels, days = channels
        counted[f"eng_channels_{days}d"] = counter.channels(mask_columns, n_channels, days)
    counted[RECENCY] = counter.days_since()
    if episode_gap_days is not None:
        counted[EPISODE] = counter.days_in_episode(episode_gap_days)
    return {name: counted[name] for name in names}


def _spec(
    name: str,
    field: str,
    label: str,
    definition: str,
    empty: float | None = 0.0,
    availability: str = AVAILABLE,
) -> FeatureSpec:
    return FeatureSpec(name, FAMILY, field, label, definition, availability, empty_value=empty)


def _counts(
    config: FeatureConfig, types: tuple[str, ...], has_minutes: bool
) -> tuple[list[FeatureSpec], list[counting.WindowSum]]:
    """The window counts: their specs and their sums over ``engagement_daily`` (same order)."""
    specs: list[FeatureSpec] = []
    sums: list[counting.WindowSum] = []
    for event_type, column in engine.type_columns(types).items():
        type_slug = slug(event_type)
        for window in config.windows_days:
            name = f"eng_{type_slug}_{window}d"
            sums.append(counting.WindowSum(name, column, window))
            specs.append(
                _spec(
                    name,
                    f"eng_{type_slug}",
                    f"{event_type.replace('_', ' ')} events in the last {window} days",
                    f"count of '{event_type}' events with as_of - {window} days <= ts < as_of",
                )
            )
    for window in config.count_windows_days:
        name = f"eng_events_{window}d"
        sums.append(counting.WindowSum(name, "n_all", window))
        specs.append(
            _spec(
                name,
                "eng_total",
                f"engagement events in the last {window} days",
                f"all events in the last {window} days",
            )
        )
    if has_minutes:
        for window in sorted({engine.THIRTY_DAYS, max(config.windows_days)}):
            name = f"eng_minutes_{window}d"
            sums.append(counting.WindowSum(name, "minutes_milli", window, scale=1000.0))
            specs.append(
                _spec(
                    name,
                    "eng_minutes",
                    f"engagement minutes in the last {window} days",
                    f"sum of event minutes in the last {window} days",
                )
            )
    return specs, sums


def _buying_group(config: FeatureConfig, has_contacts: bool) -> list[Feature]:
    """Identified contacts engaged per window; with a contacts table, their roles."""
    longest = max(config.windows_days)
    features = [
        (
            _spec(
                f"eng_contacts_{w}d",
                "eng_buying_group",
                f"contacts engaged in the last {w} days",
                f"distinct identified contacts with an event in the last {w} days",
            ),
            f"CAST(coalesce(k.eng_contacts_{w}d, 0) AS DOUBLE) AS eng_contacts_{w}d",
        )
        for w in sorted({engine.THIRTY_DAYS, longest})
    ]
    if config.new_contacts_days is not None:
        days = config.new_contacts_days
        features.append(
            (
                _spec(
                    f"eng_new_contacts_{days}d",
                    "eng_buying_group_growth",
                    f"contacts engaged for the first time in the last {days} days",
                    f"distinct identified contacts whose first event is in the last {days} days "
                    "(the buying group growing)",
                ),
                f"CAST(coalesce(k.eng_new_contacts_{days}d, 0) AS DOUBLE) AS eng_new_contacts_{days}d",
            )
        )
    if not has_contacts:
        return features
    roles, decision = f"eng_roles_{longest}d", f"eng_decision_maker_{longest}d"
    return [
        *features,
        (
            _spec(
                roles,
                "eng_buying_group",
                f"buying-group roles engaged in the last {longest} days",
                f"distinct contact roles (user/influencer/decision_maker/it) engaged in the last {longest} days",
            ),
            f"CAST(coalesce(k.{roles}, 0) AS DOUBLE) AS {roles}",
        ),
        (
            _spec(
                decision,
                "eng_buying_group",
                f"decision maker engaged in the last {longest} days",
                f"1 if a decision-maker contact had an event in the last {longest} days",
            ),
            f"CAST(coalesce(k.{decision}, false) AS DOUBLE) AS {decision}",
        ),
    ]


def _activity(config: FeatureConfig, has_channel: bool) -> list[Feature]:
    """Reach, anonymous share, momentum (ratios over the counts) and recency."""
    longest = max(config.windows_days)
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    features = []
    if has_channel:
        channels = f"eng_channels_{longest}d"
        features.append(
            (
                _spec(
                    channels,
                    "eng_reach",
                    f"channels reached in the last {longest} days",
                    f"distinct channels of events in the last {longest} days",
                ),
                None,
            )
        )
    anonymous = (
        f"(coalesce(c._no_contact_long, 0) + coalesce(k._not_known_yet_long, 0))::DOUBLE"
        f" / NULLIF(c._events_long, 0) AS eng_anonymous_share_{longest}d"
    )
    momentum = f"(coalesce(c._recent, 0) + 1.0) / (coalesce(c._prior, 0) * {recent / prior} + 1.0) AS eng_momentum"
    return [
        *features,
        (
            _spec(
                f"eng_anonymous_share_{longest}d",
                "eng_anonymous",
                f"share of anonymous activity in the last {longest} days",
                f"anonymous (or not yet identified) events / all events in the last {longest} days",
                empty=None,
            ),
            anonymous,
        ),
        (
            _spec(
                "eng_momentum",
                "eng_momentum",
                f"engagement momentum (last {recent} days vs the prior {prior} days)",
                f"(events in the last {recent} days + 1) / (rate of the prior {prior} days scaled to {recent} days + 1)",
                empty=1.0,
            ),
            momentum,
        ),
        (
            _spec(
                RECENCY,
                "eng_recency",
                "days since the last engagement",
                "days between the last event before as_of and as_of (missing: never engaged)",
                empty=None,
            ),
            None,
        ),
    ]


def momentum_name(recent_weeks: int, prior_weeks: int) -> str:
    return f"eng_momentum_{recent_weeks}w_{prior_weeks}w"


def _rhythm(config: FeatureConfig) -> list[Feature]:
    """Momentum of the recent weeks against the weeks just before, and the days since the
    current episode of engagement began."""
    features: list[Feature] = []
    for recent, prior in config.momentum_weeks:
        name = momentum_name(recent, prior)
        weeks = f"{recent} week{'s' if recent != 1 else ''}"
        features.append(
            (
                _spec(
                    name,
                    "eng_surge",
                    f"engagement in the last {weeks} vs the {prior} weeks before",
                    f"(events in the last {7 * recent} days + 1) / (events of the {prior} weeks "
                    f"before, scaled to {recent} weeks, + 1)",
                    empty=1.0,
                ),
                f"(coalesce(c._{name}_recent, 0) + 1.0) / "
                f"(coalesce(c._{name}_prior, 0) * {recent / prior} + 1.0) AS {name}",
            )
        )
    if config.episode_gap_days is not None:
        gap = config.episode_gap_days
        features.append(
            (
                _spec(
                    EPISODE,
                    "eng_episode",
                    "days since the current engagement episode began",
                    f"days from the first event of the current episode (active days with no "
                    f"quiet spell over {gap} days between two, the last within {gap} days of "
                    "as_of) to as_of; missing: no current episode",
                    empty=None,
                ),
                None,
            )
        )
    return features


def _coverage(config: FeatureConfig) -> list[Feature]:
    """Contacts known at as_of and the share of them engaged (needs the contacts table)."""
    longest = max(config.windows_days)
    return [
        (
            _spec(
                "eng_known_contacts",
                "eng_coverage",
                "known contacts",
                "contacts known before as_of",
                availability=CONTACTS_AVAILABLE,
            ),
            "kn.known_contacts AS eng_known_contacts",
        ),
        (
            _spec(
                "eng_known_decision_makers",
                "eng_coverage",
                "known decision makers",
                "decision-maker contacts known before as_of",
                availability=CONTACTS_AVAILABLE,
            ),
            "kn.known_decision_makers AS eng_known_decision_makers",
        ),
        (
            _spec(
                "eng_contact_coverage",
                "eng_coverage",
                f"share of known contacts engaged in the last {longest} days",
                f"engaged contacts ({longest} days) / known contacts",
                empty=None,
                availability=CONTACTS_AVAILABLE,
            ),
            f"coalesce(k.eng_contacts_{longest}d, 0)::DOUBLE / NULLIF(kn.known_contacts, 0)"
            " AS eng_contact_coverage",
        ),
    ]


# ---- wording of the reasons: business field -> sentence from the account's values


def _event_type(field: str, values: dict, reference: dict) -> str:
    """One field per event type (``eng_<event type>``): its shortest window with events."""
    if all_missing(values):
        return unknown(field)
    event = field.removeprefix("eng_")
    counts = window_counts(values, f"eng_{event}_")
    label = event.replace("_", " ")
    observed = [(d, v) for d, v in counts if not is_missing(v) and v > 0]
    if not observed:
        longest = counts[-1][0] if counts else 90
        return f"No {label} events in {longest} days"
    days, count = observed[0]
    return f"{number(count)} {label} event{'s' if count != 1 else ''} in the last {days} days"


def _total(field: str, values: dict, reference: dict) -> str:
    windows = [(d, v) for d, v in window_counts(values, "eng_events_") if not is_missing(v)]
    positive = [(d, v) for d, v in windows if v > 0]
    if not positive:
        return f"No engagement in {windows[-1][0] if windows else 90} days"
    days, count = positive[0]
    return f"{number(count)} engagement events in the last {days} days"


def _buying_group_wording(field: str, values: dict, reference: dict) -> str:
    contacts = [(d, v) for d, v in window_counts(values, "eng_contacts_") if not is_missing(v)]
    roles = next(
        (v for k, v in values.items() if k.startswith("eng_roles_") and not is_missing(v)), None
    )
    decision = next(
        (v for k, v in values.items() if k.startswith("eng_decision_maker_") and not is_missing(v)),
        0,
    )
    engaged = [(d, v) for d, v in contacts if v > 0]
    if not engaged:
        longest = contacts[-1][0] if contacts else 90
        return f"No known contact engaged in {longest} days"
    days, count = engaged[0]
    text = f"{number(count)} contact{'s' if count != 1 else ''} engaged in the last {days} days"
    if roles:
        text += f", {number(roles)} buying-group role{'s' if roles != 1 else ''}"
    return text + (", incl. a decision maker" if decision else ", no decision maker")


def _recency(field: str, values: dict, reference: dict) -> str:
    days = values.get("eng_days_since_last_event")
    return "Never engaged" if is_missing(days) else f"Last engagement {number(days)} days ago"


def _momentum(field: str, values: dict, reference: dict) -> str:
    ratio = values.get("eng_momentum")
    if is_missing(ratio):
        return "Engagement trend unknown"
    if ratio >= 1.5:
        return f"Engagement accelerating ({ratio:.1f}x the prior rate)"
    if ratio <= 0.67:
        return f"Engagement slowing ({ratio:.1f}x the prior rate)"
    return "Engagement steady versus the prior months"


def _coverage_wording(field: str, values: dict, reference: dict) -> str:
    known = values.get("eng_known_contacts")
    share = values.get("eng_contact_coverage")
    if is_missing(known) or known == 0:
        return "No known contacts at this account"
    text = f"{number(known)} known contact{'s' if known != 1 else ''}"
    return text + ("" if is_missing(share) else f", {share:.0%} engaged recently")


def _anonymous(field: str, values: dict, reference: dict) -> str:
    share = next(iter(values.values()))
    if is_missing(share):
        return "No recent activity (nothing anonymous or identified)"
    return f"{share:.0%} of recent activity anonymous (web visits without a known contact)"


def _reach(field: str, values: dict, reference: dict) -> str:
    count = next(iter(values.values()))
    if is_missing(count):
        return "Channels reached unknown"
    return f"Reached through {number(count)} channel{'s' if count != 1 else ''} in 90 days"


def _minutes(field: str, values: dict, reference: dict) -> str:
    windows = [(d, v) for d, v in window_counts(values, "eng_minutes_") if not is_missing(v)]
    positive = [(d, v) for d, v in windows if v > 0]
    if not positive:
        return "No time spent on content or meetings recently"
    days, minutes = positive[0]
    return f"{number(round(minutes))} minutes of engagement in the last {days} days"


def _surge(field: str, values: dict, reference: dict) -> str:
    """The shortest momentum pair (``eng_momentum_<r>w_<p>w``): the recent weeks' rate."""
    pairs = momentum_pairs(values, "eng_momentum_")
    if not pairs:
        return "Engagement trend over the last weeks unknown"
    recent, prior, ratio = pairs[0]
    weeks = "this week" if recent == 1 else f"the last {recent} weeks"
    if ratio >= 1.5:
        return f"Engagement surging: {weeks} at {ratio:.1f}x the rate of the prior {prior} weeks"
    if ratio <= 0.67:
        return f"Engagement cooling: {weeks} at {ratio:.1f}x the rate of the prior {prior} weeks"
    return f"No change in engagement {weeks} versus the prior {prior} weeks"


def _episode(field: str, values: dict, reference: dict) -> str:
    days = values.get(EPISODE)
    if is_missing(days):
        return "No current engagement episode"
    weeks = days / 7
    if weeks < 2:
        return f"Engagement episode began {number(days)} days ago"
    return f"Engagement episode running for {weeks:.0f} weeks (began {number(days)} days ago)"


def _growth(field: str, values: dict, reference: dict) -> str:
    name, count = next(iter(values.items()))
    days = name.removeprefix("eng_new_contacts_").removesuffix("d")
    if is_missing(count) or count == 0:
        return f"No new contact engaged in the last {days} days"
    plural = "s" if count != 1 else ""
    return f"{number(count)} contact{plural} engaged for the first time in the last {days} days"


# business field -> wording; "eng_*" words the fields of the counted event types
WORDING: dict[str, Wording] = {
    "eng_total": _total,
    "eng_buying_group": _buying_group_wording,
    "eng_recency": _recency,
    "eng_momentum": _momentum,
    "eng_coverage": _coverage_wording,
    "eng_anonymous": _anonymous,
    "eng_reach": _reach,
    "eng_minutes": _minutes,
    "eng_surge": _surge,
    "eng_episode": _episode,
    "eng_buying_group_growth": _growth,
    "eng_*": _event_type,
}
