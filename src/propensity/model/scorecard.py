"""The incumbent hand-tuned points scorecard, read from YAML (``configs/scorecard.yaml``).

Points per ICP attribute (industry, size band, country, technographic flags) plus points per
engagement activity with a step decay by age (the 7/30/90-day windows of the feature matrix),
rolled up over the account's contacts, engagement points capped; an account at or above the
hand-over threshold is a "marketing-qualified account". It reads the same feature matrix as
the models, so both are compared on the same accounts, dates and label.

A learned card (:mod:`propensity.model.learned_scorecard`) has the same shape, plus ``fields``:
points by any feature column's value or range, which a hand-made card may use too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from propensity import settings


class _CardDumper(yaml.SafeDumper):
    """Lists (a field's edges and points) on one line, as a person writes them."""


_CardDumper.add_representer(
    list, lambda dumper, value: dumper.represent_sequence("tag:yaml.org,2002:seq", value, True)
)


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


class FieldPoints(BaseModel):
    """Points by one feature column: by value (``categories``; a value not listed, or missing,
    gets ``other``) or by range (``edges`` cut the column into one more bins than edges, a bin
    holding [edge, next edge), the first from minus infinity; ``points`` one per bin; a missing
    value gets ``missing``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    categories: dict[str, float] | None = None
    other: float = 0
    edges: list[float] | None = None
    points: list[float] | None = None
    missing: float = 0

    @model_validator(mode="after")
    def _one_kind(self) -> FieldPoints:
        if (self.categories is None) == (self.edges is None):
            raise ValueError("give either categories (points by value) or edges and points")
        if self.edges is not None:
            if self.points is None or len(self.points) != len(self.edges) + 1:
                raise ValueError(
                    f"{len(self.edges)} edges cut {len(self.edges) + 1} bins: give as many "
                    f"points, got {0 if self.points is None else len(self.points)}"
                )
            if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
                raise ValueError(f"edges must increase, got {self.edges}")
        elif self.points is not None:
            raise ValueError("points go with edges; by value, give categories")
        return self

    def of(self, values: pd.Series) -> pd.Series:
        """The points of each value."""
        if self.categories is not None:
            text = values.astype("object").where(values.notna(), None).map(str)
            return text.map(self.categories).astype(float).fillna(self.other)
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        index = np.searchsorted(np.asarray(self.edges, dtype=float), numbers, side="right")
        points = np.asarray(self.points, dtype=float)[np.minimum(index, len(self.edges))]
        return pd.Series(np.where(np.isnan(numbers), self.missing, points), index=values.index)


class Scorecard(BaseModel):
    """A points scorecard; see configs/scorecard.yaml for the annotated default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "scorecard"
    handover_threshold: float = 100
    fit: FitPoints = Field(default_factory=FitPoints)
    engagement: EngagementPoints = Field(default_factory=EngagementPoints)
    fields: dict[str, FieldPoints] = Field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: Path | str | None = None) -> Scorecard:
        """An explicit file, else the project's configs/scorecard.yaml, else the packaged default."""
        text, _ = settings.config_text("scorecard", path)
        return cls.model_validate(yaml.safe_load(text) or {})

    def to_yaml(self, header: str = "") -> str:
        """The card as ``scorecard.yaml`` holds it (whole points written as integers, empty
        sections left out), after ``header`` as comment lines; :meth:`from_yaml` reads it back."""

        def whole(value):
            if isinstance(value, dict):
                return {k: whole(v) for k, v in value.items()}
            if isinstance(value, list):
                return [whole(v) for v in value]
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value

        card = whole(self.model_dump(mode="json", exclude_none=True))
        card["fit"] = {k: v for k, v in card["fit"].items() if v}
        for name, points in card.get("fields", {}).items():
            kind = (
                ("categories", "other")
                if "categories" in points
                else ("edges", "points", "missing")
            )
            card["fields"][name] = {k: points[k] for k in kind}
        if not self.engagement.points:
            del card["engagement"]
        card = {k: v for k, v in card.items() if v != {}}
        comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
        return comments + yaml.dump(card, Dumper=_CardDumper, sort_keys=False, allow_unicode=True)

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

    def field_points_by_column(self, features: pd.DataFrame) -> pd.DataFrame:
        """Points per row and ``fields`` column (a column absent from ``features`` scores 0)."""
        parts = {c: points.of(features[c]) for c, points in self.fields.items() if c in features}
        return pd.DataFrame(parts, index=features.index)

    def points_by_column(self, features: pd.DataFrame, head: str = "conversion") -> pd.DataFrame:
        """The points of a head per row and feature column: fit points and ``fields`` for the
        fit head, and engagement points too for the conversion head (a row of the conversion
        head sums to :meth:`score`). A learned card is learned for one head and has no
        engagement points when learned for the fit head."""
        fit = pd.concat(
            [self.fit_points_by_column(features), self.field_points_by_column(features)], axis=1
        )
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
        """Total points (fit + fields + engagement) per row."""
        return self.points_by_column(features).sum(axis=1)

    def qualified(self, features: pd.DataFrame) -> pd.Series:
        """Rows at or above the hand-over threshold."""
        return self.score(features) >= self.handover_threshold


def missing_inputs(scorecard: Scorecard, features: pd.DataFrame) -> list[str]:
    """Scorecard inputs absent from the feature matrix (their points are never given)."""
    wanted = ["industry", "size_band", "country", *scorecard.fit.flags, *scorecard.fields]
    wanted += [
        f"eng_{t}_{w}d" for t in scorecard.engagement.points for w in scorecard.engagement.decay
    ]
    return [c for c in wanted if c not in features]


__all__ = ["FieldPoints", "FitPoints", "Scorecard", "missing_inputs"]
