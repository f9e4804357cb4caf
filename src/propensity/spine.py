"""Snapshot spine, labels and the scoring population.

The spine is one row per (account_id, as_of): the accounts that were prospects at ``as_of``.
``as_of`` is a date (midnight); everything known at ``as_of`` happened strictly before it.
Labels look at ``(as_of, as_of + horizon_days]`` and are their own table, saved together with
the settings that produced them (:class:`SpineConfig`).

* conversion label: a new-business opportunity created in the window (``label_event="won"``:
  created in the window and won by the end of the data);
* fit label: the account won new business after ``as_of``, by the end of the data (defined for
  every row, censored at the end of the data);
* a snapshot whose label window reaches past the end of the data is unlabelled
  (``label_complete`` false): it is scored, never trained or evaluated on.

Scoring population (default): accounts that are not customers (no new-business opportunity won
and closed before ``as_of``) and have no open new-business opportunity at ``as_of`` (created
before it and not closed before it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from propensity.data.specs import Tables

NEW_BUSINESS = "new_business"


class SpineConfig(BaseModel):
    """Settings of the spine and its labels; saved next to every label table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cadence: Literal["weekly", "monthly"] = Field("monthly", description="snapshot cadence")
    start: date | None = Field(
        None, description="first snapshot (default: data start + lookback_days)"
    )
    end: date | None = Field(None, description="last snapshot (default: the end of the data)")
    lookback_days: int = Field(
        120, ge=0, le=3650, description="history needed before the first snapshot"
    )
    horizon_days: int = Field(
        90, ge=1, le=730, description="label window (as_of, as_of + horizon_days]"
    )
    label_event: Literal["created", "won"] = Field(
        "created", description="what counts as conversion"
    )
    exclude_customers: bool = True
    exclude_open_opportunities: bool = True
    stop_after_first_positive: bool = False

    @model_validator(mode="after")
    def _start_before_end(self) -> SpineConfig:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start ({self.start}) must not be after end ({self.end})")
        return self


class TimeRanges(Protocol):
    """What the data's dates are read from: :class:`Tables`, or a :class:`DataSpan`."""

    def time_range(self, name: str, column: str) -> tuple[pd.Timestamp, pd.Timestamp] | None: ...


@dataclass(frozen=True)
class DataSpan:
    """The earliest and latest value of every dated column (``(table, column) -> (first,
    last)``): what the snapshot dates, the end of the data and the as-of check read. An engine
    that holds the tables in parts (Spark) takes each part's span and merges them."""

    ranges: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)

    @classmethod
    def of(cls, tables: TimeRanges) -> DataSpan:
        ranges = {}
        for name, columns in _TIME_COLUMNS.items():
            for column in columns:
                span = tables.time_range(name, column)
                if span is not None:
                    ranges[(name, column)] = (pd.Timestamp(span[0]), pd.Timestamp(span[1]))
        return cls(ranges)

    @classmethod
    def merge(cls, spans: Iterable[DataSpan]) -> DataSpan:
        ranges: dict[tuple[str, str], tuple[pd.Timestamp, pd.Timestamp]] = {}
        for span in spans:
            for key, (first, last) in span.ranges.items():
                seen = ranges.get(key)
                ranges[key] = (
                    (first, last) if seen is None else (min(seen[0], first), max(seen[1], last))
                )
        return cls(ranges)

    def time_range(self, name: str, column: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        return self.ranges.get((name, column))


def data_end(tables: TimeRanges) -> pd.Timestamp:
    """First day after the last observed timestamp in any table (the export date)."""
    latest: list[pd.Timestamp] = []
    for name, columns in _TIME_COLUMNS.items():
        for column in columns:
            span = tables.time_range(name, column)
            if span is not None:
                # a week ends on its 7th day
                latest.append(span[1] + pd.Timedelta(days=6) if name == "intent" else span[1])
    if not latest:
        raise ValueError("no timestamps in any table: cannot tell where the data ends")
    return max(latest).normalize() + pd.Timedelta(days=1)


def data_start(tables: TimeRanges) -> pd.Timestamp:
    """Start of the activity data (midnight): the earliest event or intent week.

    CRM opportunity history often reaches back further than marketing data; it only sets the
    start when there are no events and no intent.
    """
    for names in ((("events", "ts"), ("intent", "week")), (("opportunities", "created_at"),)):
        spans = [tables.time_range(name, column) for name, column in names]
        earliest = [span[0] for span in spans if span is not None]
        if earliest:
            return min(earliest).normalize()
    raise ValueError("no activity timestamps: need events, intent or opportunities")


def data_first(tables: TimeRanges) -> pd.Timestamp:
    """The earliest timestamp in any table (the first dated row)."""
    spans = [
        tables.time_range(name, column)
        for name, columns in _TIME_COLUMNS.items()
        for column in columns
    ]
    earliest = [span[0] for span in spans if span is not None]
    if not earliest:
        raise ValueError("no timestamps in any table: cannot tell where the data starts")
    return min(earliest)


class AsOfError(ValueError):
    """An as-of date the data cannot describe; the message names the data's span."""


def check_as_of(
    tables: TimeRanges, as_of: pd.Timestamp | date | str, horizon_days: int, flag: str = "--as-of"
) -> pd.Timestamp:
    """``as_of`` (a midnight) when the data can describe it: after the first dated row (else no
    row is known before it) and at most one horizon after the end of the data (later, every
    account's history has gone quiet and the label window starts past anything observed).
    Otherwise an :class:`AsOfError` naming the span and the allowed dates."""
    as_of = pd.Timestamp(as_of).normalize()
    first, end = data_first(tables), data_end(tables)
    latest = end + pd.Timedelta(days=horizon_days)
    if as_of <= first or as_of > latest:
        side = "before the first row" if as_of <= first else "after the data"
        raise AsOfError(
            f"{flag} {as_of:%Y-%m-%d} is {side}: the data spans {first:%Y-%m-%d} .. "
            f"{end - pd.Timedelta(days=1):%Y-%m-%d}; give a date from "
            f"{first.normalize() + pd.Timedelta(days=1):%Y-%m-%d} to {latest:%Y-%m-%d} (at most "
            f"one horizon, {horizon_days} days, after the end of the data)"
        )
    return as_of


_TIME_COLUMNS = {
    "events": ("ts",),
    "intent": ("week",),
    "opportunities": ("created_at", "closed_at"),
    "contacts": ("created_at",),
}


def snapshot_dates(tables: TimeRanges, config: SpineConfig) -> pd.DatetimeIndex:
    """Snapshot dates at the configured cadence (Mondays, or first days of months)."""
    start = (
        pd.Timestamp(config.start)
        if config.start
        else data_start(tables) + pd.Timedelta(days=config.lookback_days)
    )
    end = pd.Timestamp(config.end) if config.end else data_end(tables)
    freq = "W-MON" if config.cadence == "weekly" else "MS"
    dates = pd.date_range(start.normalize(), end.normalize(), freq=freq)
    if len(dates) == 0:
        raise ValueError(
            f"no {config.cadence} snapshot date between {start.date()} and {end.date()}"
        )
    return dates.as_unit("us")


def account_status(tables: Tables, as_of: pd.DatetimeIndex) -> pd.DataFrame:
    """Per (account_id, as_of): is_customer and has_open_opportunity, known strictly before as_of.

    Rows by account (in the accounts table's order), then by as_of (sorted, as snapshot_dates
    returns them).
    """
    accounts = tables.accounts["account_id"]
    dates = as_of.as_unit("us").to_numpy()
    grid = pd.DataFrame(
        {
            "account_id": accounts.repeat(len(dates)).reset_index(drop=True),
            "as_of": np.tile(dates, len(accounts)),
        }
    )
    grid["is_customer"] = False
    grid["has_open_opportunity"] = False
    opps = tables.get("opportunities")
    if opps is None:
        return grid
    nb = opps[opps["type"].fillna(NEW_BUSINESS) == NEW_BUSINESS]
    account_index = pd.Index(accounts)
    won = nb[(nb["outcome"] == "won") & nb["closed_at"].notna()]
    first_won = won.groupby("account_id")["closed_at"].min().reindex(account_index)
    became = np.repeat(first_won.to_numpy(dtype="datetime64[us]"), len(dates))
    grid["is_customer"] = became < grid["as_of"].to_numpy()  # NaT (never won) compares False
    # open at as_of: created before it, not closed before it (outcome after as_of is unknown then);
    # an opportunity is open over a run of snapshot dates, marked by its first and past-last
    where = account_index.get_indexer(nb["account_id"])
    first = np.searchsorted(dates, nb["created_at"].to_numpy(dtype="datetime64[us]"), "right")
    closed = nb["closed_at"].to_numpy(dtype="datetime64[us]")
    past_last = np.where(np.isnat(closed), len(dates), np.searchsorted(dates, closed, "right"))
    marked = (where >= 0) & (first < past_last)
    runs = np.zeros((len(accounts), len(dates) + 1), dtype=np.int64)
    np.add.at(runs, (where[marked], first[marked]), 1)
    np.add.at(runs, (where[marked], past_last[marked]), -1)
    grid["has_open_opportunity"] = np.cumsum(runs, axis=1)[:, :-1].ravel() > 0
    return grid


def build_spine(
    tables: Tables,
    config: SpineConfig,
    as_of: pd.Timestamp | date | str | None = None,
    span: DataSpan | None = None,
) -> pd.DataFrame:
    """Rows (account_id, as_of) of the scoring population at each snapshot date, sorted.

    With ``as_of`` the spine is the single snapshot at that date (a midnight), as scoring builds it.
    The snapshot dates come from ``span`` when given (the whole data's, when ``tables`` hold
    only some accounts), else from ``tables``.
    """
    if as_of is not None:
        dates = pd.DatetimeIndex([pd.Timestamp(as_of).normalize()]).as_unit("us")
    else:
        dates = snapshot_dates(span or tables, config)
    status = account_status(tables, dates)
    keep = np.ones(len(status), dtype=bool)
    if config.exclude_customers:
        keep &= ~status["is_customer"].to_numpy()
    if config.exclude_open_opportunities:
        keep &= ~status["has_open_opportunity"].to_numpy()
    spine = status.loc[keep, ["account_id", "as_of"]]
    return spine.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)


def build_labels(
    tables: Tables, spine: pd.DataFrame, config: SpineConfig, span: DataSpan | None = None
) -> pd.DataFrame:
    """Labels for a spine: account_id, as_of, label_complete, conversion_label, fit_label, won_at,
    opened_at.

    ``conversion_label`` is a nullable boolean, missing where the label window is not complete.
    ``fit_label`` looks at the whole rest of the data (known for every row, censored at its end);
    ``won_at`` is the first new-business win after ``as_of`` (its closed_at), so a fit label can
    be censored at any cutoff (``won_at < cutoff``); ``opened_at`` is the first new-business
    opportunity opened after ``as_of`` (any outcome), for the "opened or won" fit label. With
    ``stop_after_first_positive`` an
    account's rows after its first positive conversion label are dropped. The end of the data
    comes from ``span`` when given (as in :func:`build_spine`).
    """
    end = data_end(span or tables)
    horizon = pd.Timedelta(days=config.horizon_days)
    labels = spine[["account_id", "as_of"]].copy()
    labels["label_complete"] = (labels["as_of"] + horizon) < end
    conversion = np.zeros(len(labels), dtype=bool)
    won_at = pd.Series(pd.NaT, index=labels.index, dtype="datetime64[us]")
    opened_at = won_at.copy()
    opps = tables.get("opportunities")
    if opps is not None and len(labels):
        nb = opps[opps["type"].fillna(NEW_BUSINESS) == NEW_BUSINESS]
        target = nb[nb["outcome"] == "won"] if config.label_event == "won" else nb
        next_created = _next_time(labels, target, "created_at")
        opened_at = (
            next_created
            if config.label_event == "created"
            else _next_time(labels, nb, "created_at")
        )
        conversion = (next_created.notna() & (next_created <= labels["as_of"] + horizon)).to_numpy()
        won = nb[(nb["outcome"] == "won") & nb["closed_at"].notna()]
        won_at = _next_time(labels, won, "closed_at")
    complete = labels["label_complete"].to_numpy()
    labels["conversion_label"] = pd.array(np.where(complete, conversion, False), dtype="boolean")
    labels.loc[~complete, "conversion_label"] = pd.NA
    labels["fit_label"] = pd.array(won_at.notna().to_numpy(), dtype="boolean")
    labels["won_at"] = won_at.astype("datetime64[us]")
    labels["opened_at"] = opened_at.astype("datetime64[us]")
    if config.stop_after_first_positive:
        positive_as_of = labels["as_of"].where(labels["conversion_label"].fillna(False))
        first = positive_as_of.groupby(labels["account_id"]).transform("min")
        labels = labels[first.isna() | (labels["as_of"] <= first)].reset_index(drop=True)
    return labels


def _next_time(labels: pd.DataFrame, rows: pd.DataFrame, column: str) -> pd.Series:
    """For each label row: the first ``column`` time of its account strictly after as_of (or NaT)."""
    if rows.empty:
        return pd.Series(pd.NaT, index=labels.index, dtype="datetime64[us]")
    times = rows[["account_id", column]].dropna().rename(columns={column: "next_time"})
    merged = pd.merge_asof(
        labels[["as_of", "account_id"]].reset_index().sort_values("as_of"),
        times.sort_values("next_time"),
        left_on="as_of",
        right_on="next_time",
        by="account_id",
        direction="forward",
        allow_exact_matches=False,
    ).set_index("index")
    return merged["next_time"].reindex(labels.index)
