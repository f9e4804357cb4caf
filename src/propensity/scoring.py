"""Scoring a snapshot with a trained run: scores, tiers and reasons, stored together.

Every scored row carries account_id, as_of, both heads' calibrated probability, a 0-100 score
(the probability's percentile in the validation window, so it is stable from batch to batch),
a tier (fit A-D, conversion hot/warm/cold, cut-offs fixed at training and stored with the
model), the reasons of each head computed now from the same model (text and JSON), and the
model version that produced them. Features are built by the same code as in training, for the
single snapshot ``as_of`` (the scoring population: prospects at that date).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import pandas as pd

from propensity.data.contract import Tables
from propensity.explain import explain
from propensity.features import FeatureSpec, build_features
from propensity.model.config import ModelConfig
from propensity.spine import build_spine, data_end

if TYPE_CHECKING:
    from propensity.runs.account import TrainResult

# share of the validation window in each tier, best first
FIT_TIERS = (("A", 0.10), ("B", 0.20), ("C", 0.30), ("D", 0.40))
CONVERSION_TIERS = (("hot", 0.05), ("warm", 0.15), ("cold", 0.80))
QUANTILES = np.linspace(0, 1, 1001)


@dataclass(frozen=True)
class HeadCalibration:
    """What scoring needs besides the model: reference distribution and tier cut-offs."""

    probability_quantiles: list[float]  # validation-window probabilities at QUANTILES
    tier_names: list[str]  # best first
    tier_thresholds: list[float]  # lower probability bound of each tier but the last


def head_calibration(probabilities: np.ndarray, tiers) -> HeadCalibration:
    quantiles = np.quantile(probabilities, QUANTILES)
    thresholds, cumulative = [], 0.0
    for _, share in tiers[:-1]:
        cumulative += share
        thresholds.append(float(np.quantile(probabilities, 1 - cumulative)))
    return HeadCalibration([float(q) for q in quantiles], [name for name, _ in tiers], thresholds)


def calibrate_scoring(result: TrainResult) -> dict[str, HeadCalibration]:
    """Reference distributions and tier cut-offs from the validation window of a training run."""
    valid = result.data.loc[result.split.valid]
    out = {}
    for head, fitted in result.heads.items():
        probabilities = fitted.model.predict_proba(valid)[:, 1]
        out[head] = head_calibration(
            probabilities, FIT_TIERS if head == "fit" else CONVERSION_TIERS
        )
    return out


def to_score(probability: np.ndarray, calibration: HeadCalibration) -> np.ndarray:
    """0-100: the probability's percentile among validation-window probabilities."""
    position = np.searchsorted(
        np.asarray(calibration.probability_quantiles), probability, side="right"
    )
    return np.clip(
        np.round(100 * position / len(calibration.probability_quantiles)), 0, 100
    ).astype(int)


def to_tier(probability: np.ndarray, calibration: HeadCalibration) -> np.ndarray:
    tiers = np.full(len(probability), calibration.tier_names[-1], dtype=object)
    for name, threshold in reversed(
        list(zip(calibration.tier_names, calibration.tier_thresholds, strict=False))
    ):
        tiers[probability >= threshold] = name
    return tiers


@dataclass
class ScoringModel:
    """A trained run as scoring uses it."""

    heads: dict  # head -> HeadResult
    calibration: dict[str, HeadCalibration]
    specs: tuple[FeatureSpec, ...]
    config: ModelConfig
    version: str

    def save(self, folder: Path) -> Path:
        path = folder / "scoring_model.joblib"
        joblib.dump(self, path)
        return path


def model_version(result: TrainResult) -> str:
    """Content hash of both boosters: the same model always has the same version."""
    digest = hashlib.sha256()
    for head in sorted(result.heads):
        digest.update(result.heads[head].model.booster_.model_to_string().encode())
    return f"sha-{digest.hexdigest()[:12]}"


def scoring_model(result: TrainResult) -> ScoringModel:
    return ScoringModel(
        heads=result.heads,
        calibration=calibrate_scoring(result),
        specs=result.feature_set.specs,
        config=result.config,
        version=model_version(result),
    )


def load_scoring_model(run_dir: Path | str) -> ScoringModel:
    path = Path(run_dir) / "scoring_model.joblib"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: is {run_dir} a run folder written by `propensity train`?"
        )
    return joblib.load(path)


def score_snapshot(
    tables: Tables,
    model: ScoringModel,
    as_of: pd.Timestamp | str | None = None,
    *,
    accounts: list[str] | None = None,
    top_positive: int = 3,
    top_negative: int = 2,
) -> pd.DataFrame:
    """Score the prospects at ``as_of`` (default: the end of the data) with both heads and reasons."""
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else data_end(tables)
    spine = build_spine(tables, model.config.spine, as_of=as_of)
    if accounts is not None:
        spine = spine[spine["account_id"].isin(accounts)].reset_index(drop=True)
    features = build_features(tables, spine, model.config.features)
    matrix = features.matrix
    scored = matrix[["account_id", "as_of"]].copy()
    for head, fitted in model.heads.items():
        probability = fitted.model.predict_proba(matrix)[:, 1] if len(matrix) else np.array([])
        calibration = model.calibration[head]
        scored[f"{head}_probability"] = probability
        scored[f"{head}_score"] = to_score(probability, calibration)
        scored[f"{head}_tier"] = to_tier(probability, calibration)
        specs = [s for s in model.specs if s.name in fitted.features or s.kind == "context"]
        if len(matrix):
            reasons = explain(
                fitted.model, matrix, specs, top_positive=top_positive, top_negative=top_negative
            )
            scored[f"{head}_reasons"] = reasons["reasons"].to_numpy()
            scored[f"{head}_reasons_json"] = reasons["reasons_json"].to_numpy()
        else:
            scored[f"{head}_reasons"] = scored[f"{head}_reasons_json"] = []
    scored["model_version"] = model.version
    return scored


def account_card(
    tables: Tables, model: ScoringModel, account_id: str, as_of: pd.Timestamp | str | None = None
) -> dict:
    """One account's card: scores, tiers, reasons now, and what changed since the previous snapshot."""
    as_of = pd.Timestamp(as_of).normalize() if as_of is not None else data_end(tables)
    previous = as_of - (
        pd.DateOffset(months=1) if model.config.spine.cadence == "monthly" else pd.Timedelta(days=7)
    )
    if account_id not in set(tables.accounts["account_id"]):
        raise KeyError(f"account {account_id!r} is not in table 'accounts'")
    now = score_snapshot(tables, model, as_of, accounts=[account_id])
    if now.empty:
        raise KeyError(
            f"account {account_id!r} is not a prospect at {as_of.date()} (a customer or with an open "
            "new-business opportunity), so it is not scored"
        )
    before = score_snapshot(tables, model, previous, accounts=[account_id])
    row = now.iloc[0]
    card = {
        "account_id": account_id,
        "as_of": str(as_of.date()),
        "model_version": model.version,
        "heads": {},
    }
    for head in model.heads:
        entry = {
            "score": int(row[f"{head}_score"]),
            "probability": float(row[f"{head}_probability"]),
            "tier": row[f"{head}_tier"],
            "reasons": json.loads(row[f"{head}_reasons_json"]),
        }
        if not before.empty:
            old = before.iloc[0]
            entry["previous_as_of"] = str(previous.date())
            entry["score_delta"] = int(row[f"{head}_score"] - old[f"{head}_score"])
            entry["moved"] = _moved(model, head, tables, as_of, previous, account_id)
        card["heads"][head] = entry
    return card


def _moved(
    model: ScoringModel, head: str, tables: Tables, as_of, previous, account_id: str
) -> list[dict]:
    """Business fields whose contribution changed most between two snapshots."""
    from propensity.explain import contributions, field_contributions

    fitted = model.heads[head]
    frames = []
    for date in (previous, as_of):
        spine = pd.DataFrame({"account_id": [account_id], "as_of": [pd.Timestamp(date)]})
        frames.append(build_features(tables, spine, model.config.features).matrix)
    specs = [s for s in model.specs if s.name in fitted.features]
    fields = [field_contributions(contributions(fitted.model, f), specs).iloc[0] for f in frames]
    delta = (fields[1] - fields[0]).sort_values(key=np.abs, ascending=False)
    return [
        {"field": f, "change": round(float(v), 4)}
        for f, v in delta.head(3).items()
        if abs(v) > 1e-9
    ]
