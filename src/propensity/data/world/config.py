"""Settings of a synthetic world and its clock (Unix seconds, weeks starting on Mondays)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAY = 86_400  # seconds
WEEK = 7 * DAY


class RegimeChange(BaseModel):
    """What changes in the data from a date on (see :mod:`propensity.data.world.regime`):
    a share of the intent-covered accounts loses its intent feed, a share of all accounts loses
    its engagement events. The market itself does not change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: date = Field(description="first day of the new regime")
    intent_stop_share: float = Field(
        0.0, ge=0, le=1, description="share of intent-covered accounts whose intent stops"
    )
    events_stop_share: float = Field(
        0.0, ge=0, le=1, description="share of accounts whose engagement events stop"
    )

    @model_validator(mode="after")
    def _something_changes(self) -> RegimeChange:
        if self.intent_stop_share == 0 and self.events_stop_share == 0:
            raise ValueError("a regime change needs intent_stop_share or events_stop_share above 0")
        return self


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
    # what differs between companies (the robustness benchmark turns these; 1 / 0: as documented)
    research_weeks_scale: float = Field(
        1.0, gt=0, le=10, description="multiplies how long an account researches before buying"
    )
    engagement_lag_weeks: int = Field(
        0, ge=0, le=26, description="weeks the contacts' engagement trails the buying journey"
    )
    intent_lead_weeks: int = Field(
        0, ge=0, le=26, description="weeks third-party intent surges come before engagement"
    )
    anonymous_traffic_scale: float = Field(
        1.0, ge=0, le=10, description="multiplies anonymous (reverse-IP) web visits"
    )
    win_rate_shift: float = Field(
        0.0, ge=-5, le=5, description="added to the log-odds that a new-business deal is won"
    )
    sales_cycle_days: float = Field(
        50, ge=7, le=400, description="median days a new-business deal stays open"
    )
    regime_change: RegimeChange | None = Field(
        None, description="a change from a date on (None: the world stays the same)"
    )

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

    @model_validator(mode="after")
    def _intent_cannot_see_the_future(self) -> WorldConfig:
        if self.intent_lead_weeks > self.engagement_lag_weeks:
            raise ValueError(
                f"intent_lead_weeks ({self.intent_lead_weeks}) must not exceed "
                f"engagement_lag_weeks ({self.engagement_lag_weeks}): intent follows the "
                "journey, so it leads engagement only by as much as engagement trails it"
            )
        return self

    @property
    def intent_lag_weeks(self) -> int:
        """Weeks intent surges trail the buying journey."""
        return self.engagement_lag_weeks - self.intent_lead_weeks

    @property
    def end(self) -> date:
        """Export date: the first day after the data."""
        return self.start + timedelta(weeks=self.weeks)


@dataclass(frozen=True)
class Clock:
    """The world's time in Unix seconds: week ``w`` starts at ``start + w * WEEK``."""

    start: int
    end: int  # the export date
    weeks: int

    @classmethod
    def of(cls, config: WorldConfig) -> Clock:
        """The clock of a world config."""
        start = int(pd.Timestamp(config.start).timestamp())
        return cls(start=start, end=start + config.weeks * WEEK, weeks=config.weeks)
