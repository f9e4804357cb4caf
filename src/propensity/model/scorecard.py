"""The incumbent hand-tuned points scorecard, read from YAML (``configs/scorecard.yaml``).

Points per ICP attribute (industry, size band, country, technographic flags) plus points per
engagement activity with a step decay by age (the 7/30/90-day windows of the feature matrix),
rolled up over the account's contacts, engagement points capped; an account at or above the
hand-over threshold is a "marketing-qualified account". It reads the same feature matrix as
the models, so both are compared on the same accounts, dates and label.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from propensity import settings


class FitPoints(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    industry: dict[str, float] = Field(default_factory=dict)
    size_band: dict[str, float] = Field(default_factory=dict)
    country: dict[str, float] = Field(default_factory=dict)
    flags: dict[str, float] = Field(default_factory=dict)


class EngagementPoints(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    points: dict[str, float] = Field(default_factory=dict)
    decay: dict[int, float] = Field(default_factory=lambda: {7: 1.0, 30: 0.5, 90: 0.25})
    cap: float | None = Field(None, gt=0)

    @field_validator("decay")
    @classmethod
    def _decay_is_decreasing(cls, value: dict[int, float]) -> dict[int, float]:
        weights = [value[k] for k in sorted(value)]
        if any(b > a for a, b in zip(weights, weights[1:], strict=False)) or any(
            w < 0 for w in weights
        ):
            raise ValueError(f"decay weights must be >= 0 and not increase with age, got {value}")
        return value


class Scorecard(BaseModel):
    """A points scorecard; see configs/scorecard.yaml for the annotated default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "scorecard"
    handover_threshold: float = 100
    fit: FitPoints = Field(default_factory=FitPoints)
    engagement: EngagementPoints = Field(default_factory=EngagementPoints)

    @classmethod
    def from_yaml(cls, path: Path | str | None = None) -> Scorecard:
        """An explicit file, else the project's configs/scorecard.yaml, else the packaged default."""
        text, _ = settings.config_text("scorecard", path)
        return cls.model_validate(yaml.safe_load(text) or {})

    def fit_points_by_column(self, features: pd.DataFrame) -> pd.DataFrame:
        """ICP points per row and feature column (missing attributes score 0, as in an MA tool)."""
        parts = {}
        for column, table in (
            ("industry", self.fit.industry),
            ("size_band", self.fit.size_band),
            ("country", self.fit.country),
        ):
            if column in features and table:
                parts[column] = features[column].map(table).astype(float).fillna(0.0)
        for flag, points in self.fit.flags.items():
            if flag in features:
                parts[flag] = features[flag].fillna(0).astype(float) * points
        return pd.DataFrame(parts, index=features.index)

    def engagement_points_by_column(self, features: pd.DataFrame) -> pd.DataFrame:
        """Decayed activity points per row and ``eng_<type>_<window>d`` column: each window's new
        events times its decay weight; a capped total is shared out in proportion."""
        parts = {}
        windows = sorted(self.engagement.decay)
        for event_type, points in self.engagement.points.items():
            previous = pd.Series(0.0, index=features.index)
            for window in windows:
                column = f"eng_{event_type}_{window}d"
                if column not in features:
                    continue
                count = features[column].fillna(0).astype(float)
                parts[column] = (
                    (count - previous).clip(lower=0) * points * self.engagement.decay[window]
                )
                previous = count
        table = pd.DataFrame(parts, index=features.index)
        if self.engagement.cap is not None and len(table.columns):
            total = table.sum(axis=1)
            over = total > self.engagement.cap
            scale = (self.engagement.cap / total[over]).to_numpy()[:, None]
            table.loc[over] = table.loc[over].to_numpy() * scale
        return table

    def points_by_column(self, features: pd.DataFrame, head: str = "conversion") -> pd.DataFrame:
        """The points of a head per row and feature column: fit points only for the fit head,
        fit + engagement for the conversion head (each row sums to :meth:`score`)."""
        fit = self.fit_points_by_column(features)
        if head == "fit":
            return fit
        return pd.concat([fit, self.engagement_points_by_column(features)], axis=1)

    def fit_points(self, features: pd.DataFrame) -> pd.Series:
        """ICP points per row."""
        return self.fit_points_by_column(features).sum(axis=1)

    def engagement_points(self, features: pd.DataFrame) -> pd.Series:
        """Decayed, capped activity points per row."""
        return self.engagement_points_by_column(features).sum(axis=1)

    def score(self, features: pd.DataFrame) -> pd.Series:
        """Total points (fit + engagement) per row."""
        return self.fit_points(features) + self.engagement_points(features)

    def qualified(self, features: pd.DataFrame) -> pd.Series:
        """Rows at or above the hand-over threshold."""
        return self.score(features) >= self.handover_threshold


def missing_inputs(scorecard: Scorecard, features: pd.DataFrame) -> list[str]:
    """Scorecard inputs absent from the feature matrix (their points are never given)."""
    wanted = ["industry", "size_band", "country", *scorecard.fit.flags]
    wanted += [
        f"eng_{t}_{w}d" for t in scorecard.engagement.points for w in scorecard.engagement.decay
    ]
    return [c for c in wanted if c not in features]


__all__ = ["Scorecard", "missing_inputs"]
