"""Feature definitions: one record per feature, shared by training, scoring and reasons."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from propensity.duck import SIZE_PATTERN

FAMILIES = ("firmographic", "engagement", "intent", "history")
Kind = Literal["numeric", "categorical", "context"]


@dataclass(frozen=True)
class FeatureSpec:
    """A named feature.

    ``field`` groups features that sales reads as one fact (the 7/30/90-day counts of one event
    type); ``label`` is the plain-language name used in reasons; ``availability`` says why the
    value is known at scoring time. ``kind="context"`` columns are carried for reason wording
    and never fed to a model. ``empty_value`` is the value that means "nothing observed" (0 for a
    count), so coverage and reasons can tell activity from its absence.
    """

    name: str
    family: str
    field: str
    label: str
    definition: str
    availability: str
    kind: Kind = "numeric"
    empty_value: float | None = None


@dataclass(frozen=True)
class FamilyBuild:
    """What a family's ``build`` gives the feature matrix: its features in column order, and the
    columns it computed outside SQL (``computed``: name -> one float per spine row, in ``_row``
    order; or a future of them, still being computed). The view ``features_<family>`` holds
    the others."""

    specs: list[FeatureSpec]
    computed: dict[str, np.ndarray] | Future[dict[str, np.ndarray]] = field(default_factory=dict)


class FeatureConfig(BaseModel):
    """Settings of the feature build. A trained model stores the config its features used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: tuple[str, ...] = Field(
        FAMILIES, description="families to build when their tables exist"
    )
    windows_days: tuple[int, ...] = Field((7, 30, 90), description="engagement count windows")
    momentum_recent_days: int = Field(30, ge=1, le=365)
    momentum_prior_days: int = Field(90, ge=1, le=730)
    # the weekly-rhythm groups; the defaults follow the feature ablation
    # (benchmarks/feature_ablation.md): on where a group helped the model by a measurable amount
    # (its interval's lower bound >= 0.001 ROC-AUC) on some world and hurt it on none
    short_windows_days: tuple[int, ...] = Field(
        (),
        description="more windows of the all-events count for a weekly rhythm, e.g. "
        "[14, 21, 28] (1-4 weeks next to windows_days); () for none",
    )
    momentum_weeks: tuple[tuple[int, int], ...] = Field(
        (),
        description="(recent weeks, prior weeks) pairs, e.g. [[1, 3], [3, 12]]: engagement and "
        "intent of the recent weeks against the weeks just before them, as intent vendors "
        "define surges; () for none",
    )
    episode_gap_days: int | None = Field(
        28,
        ge=7,
        le=365,
        description="a quiet spell longer than this ends an episode of engagement or of intent "
        "surges (the days since an episode began are features); None: no episode features",
    )
    new_contacts_days: int | None = Field(
        None,
        ge=1,
        le=365,
        description="window of the contacts engaged for the first time (buying-group growth); "
        "None: not built",
    )
    event_types: tuple[str, ...] | None = Field(
        None, description="event types to count (None: every type in the data, most frequent first)"
    )
    max_event_types: int = Field(12, ge=1, le=50)
    intent_topics: tuple[str, ...] | None = Field(
        None, description="relevant intent topics (None: all)"
    )
    intent_surge_threshold: float = Field(60, ge=0, le=100)
    intent_prior_weeks: int = Field(12, ge=1, le=52)
    extra_static_account_columns: tuple[str, ...] = Field(
        (), description="account columns the user declares static (known before any snapshot)"
    )
    duckdb_threads: int | None = Field(None, ge=1, description="DuckDB threads (None: all cores)")
    duckdb_memory_limit: str | None = Field(
        None,
        pattern=SIZE_PATTERN,
        description="DuckDB memory limit, e.g. '8GB' (None: half of the machine's memory); "
        "beyond it DuckDB spills to duckdb_temp_directory",
    )
    duckdb_temp_directory: str | None = Field(
        None,
        description="where DuckDB spills (None: a new folder in the system's temporary "
        "directory, removed after the build)",
    )

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown feature families {unknown}; allowed: {list(FAMILIES)}")
        return value

    @field_validator("windows_days")
    @classmethod
    def _windows_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(w < 1 or w > 730 for w in value):
            raise ValueError(f"windows_days must be 1..730 days, got {value}")
        return tuple(sorted(set(value)))

    @field_validator("short_windows_days")
    @classmethod
    def _short_windows_sorted(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 or w > 730 for w in value):
            raise ValueError(f"short_windows_days must be 1..730 days, got {value}")
        return tuple(sorted(set(value)))

    @field_validator("momentum_weeks")
    @classmethod
    def _momentum_weeks(cls, value: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
        wrong = [pair for pair in value if not (1 <= pair[0] <= 26 and 1 <= pair[1] <= 52)]
        if wrong:
            raise ValueError(
                f"momentum_weeks pairs are (recent weeks 1..26, prior weeks 1..52), got {wrong}"
            )
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _new_contacts_inside_the_windows(self) -> FeatureConfig:
        # engaged contacts are read within the longest window: a newer first event is in it
        if self.new_contacts_days is not None and self.new_contacts_days > max(self.windows_days):
            raise ValueError(
                f"new_contacts_days ({self.new_contacts_days}) must not exceed the longest of "
                f"windows_days ({max(self.windows_days)})"
            )
        return self

    @property
    def count_windows_days(self) -> tuple[int, ...]:
        """Windows of the all-events count: the configured windows and the short ones."""
        return tuple(sorted({*self.windows_days, *self.short_windows_days}))

    @property
    def engagement_lookback_days(self) -> int:
        return max(
            max(self.count_windows_days),
            self.momentum_recent_days + self.momentum_prior_days,
            *(7 * (recent + prior) for recent, prior in self.momentum_weeks),
            self.new_contacts_days or 0,
        )
