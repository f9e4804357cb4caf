"""After the model ships: what became of the scored accounts, and whether the data still looks
like the data the model learned from.

Input: the score history (:mod:`propensity.history`) and the current tables (for outcomes that
have arrived since). Output: a :class:`Monitoring` of plain frames and the alarms.

* **Outcomes**: for every recorded scoring whose label window has closed (as_of + horizon before
  the end of the data) the label is built exactly as in training
  (:func:`propensity.spine.build_labels` with the spine settings stored with the scoring).
* **Per period** (one row per scoring): accounts, positives, predicted vs realised conversion
  (calibration in the large: their ratio, and ``z`` = (realised - predicted) / sqrt(sum p(1-p))
  over the accounts, so a gap that chance explains does not alarm), ROC-AUC and top-tier lift of
  the model, and the hand-made scorecard on the same accounts and dates (its top by points, the
  same share as the model's top tier).
* **Per tier and decile**: predicted vs realised in each conversion tier per period, and in each
  decile of the conversion probability pooled over the periods.
* **Score drift** between consecutive scorings: PSI of each head's 0-100 score and the share of
  accounts scored both times whose tier changed.
* **Feature drift**: PSI of every feature against the rows its head learned from (the bins the
  model keeps, :mod:`propensity.drift`), rolled up per business field and family (the largest
  PSI of their features). A field alarms when its PSI is above ``feature_psi`` and above
  ``normal_factor`` times its normal snapshot-to-snapshot PSI in the training rows: a weekly
  e-mail rhythm or a recency that grows with the history moves a feature every month, and
  that is not news.
* **Freshness**: per table, days between each as_of and the newest row known before it.
* **Alarms** (thresholds in :class:`MonitorConfig`, ``configs/monitor.yaml``) for every period;
  the current ones are those of the latest scoring (drift, freshness) and of the latest scoring
  with outcomes (calibration, ranking, lift), and a retraining recommendation follows when
  calibration or ranking moved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import roc_auc_score

from propensity import settings
from propensity.data.specs import Tables
from propensity.drift import psi, score_bins
from propensity.history import History
from propensity.spine import SpineConfig, build_labels, data_end

PERIOD_COLUMNS = (
    "batch_id", "as_of", "model_version", "accounts", "positives", "predicted", "realised",
    "realised_to_predicted", "z", "roc_auc", "scorecard_roc_auc", "top_tier_lift",
    "scorecard_top_lift", "priority_1_rate",
)  # fmt: skip
PERFORMANCE_ALARMS = ("calibration", "ranking", "top_tier_lift")
DRIFT_ALARMS = ("score_drift", "tier_changes", "feature_drift", "freshness")


class MonitorConfig(BaseModel):
    """Alarm thresholds; see configs/monitor.yaml for the annotated default."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    calibration_ratio: tuple[float, float] = Field(
        (0.75, 1.33), description="realised / predicted conversion allowed in this band"
    )
    calibration_z: float = Field(3.0, gt=0, description="and only when |z| exceeds this")
    min_positives: int = Field(
        20, ge=1, description="periods with fewer positives are shown, never alarmed on"
    )
    auc_drop: float = Field(
        0.05, gt=0, lt=0.5, description="ROC-AUC fall below the model's first periods' median"
    )
    baseline_periods: int = Field(
        3, ge=1, description="first periods of a model version that set its AUC baseline"
    )
    min_top_tier_lift: float = Field(2.0, ge=1, description="top tier's rate / overall rate")
    score_psi: float = Field(0.25, gt=0, description="PSI of a score between two scorings")
    tier_change_share: float = Field(
        0.30, gt=0, le=1, description="share of accounts changing tier between two scorings"
    )
    feature_psi: float = Field(0.25, gt=0, description="PSI of a feature vs its training rows")
    normal_factor: float = Field(
        2.0, ge=1, description="and above this multiple of its snapshot-to-snapshot PSI"
    )
    freshness_days: dict[str, int] = Field(
        default_factory=lambda: {"events": 14, "intent": 21, "opportunities": 60},
        description="newest row of a table at most this many days before as_of",
    )

    @classmethod
    def from_yaml(cls, path=None) -> MonitorConfig:
        """An explicit file, else the project's configs/monitor.yaml, else the packaged default."""
        text, _ = settings.config_text("monitor", path)
        return cls.model_validate(yaml.safe_load(text) or {})


@dataclass
class Alarm:
    as_of: pd.Timestamp
    name: str  # one of PERFORMANCE_ALARMS + DRIFT_ALARMS
    figure: float
    threshold: str
    message: str


@dataclass
class Monitoring:
    """Everything ``propensity monitor`` reports (see the module docstring)."""

    periods: pd.DataFrame
    tiers: pd.DataFrame
    deciles: pd.DataFrame
    score_drift: pd.DataFrame
    feature_drift: pd.DataFrame  # batch x feature
    field_drift: pd.DataFrame  # batch x business field
    freshness: pd.DataFrame
    alarms: list[Alarm] = field(default_factory=list)  # every period
    current: list[Alarm] = field(default_factory=list)  # the ones that page
    recommendation: str | None = None
    data_end: pd.Timestamp | None = None

    def alarm_table(self, alarms: list[Alarm] | None = None) -> pd.DataFrame:
        rows = [
            {
                "as_of": a.as_of.date(),
                "alarm": a.name,
                "figure": a.figure,
                "threshold": a.threshold,
                "message": a.message,
            }
            for a in (self.alarms if alarms is None else alarms)
        ]
        return pd.DataFrame(rows, columns=["as_of", "alarm", "figure", "threshold", "message"])


def outcomes(history: History, tables: Tables) -> pd.DataFrame:
    """The history's scored rows whose label window has closed, with ``converted`` (bool)."""
    scores = history.scores.merge(
        history.batches[["batch_id", "spine_json"]], on="batch_id", how="left"
    )
    parts = []
    for spine_json, rows in scores.groupby("spine_json", sort=False):
        # every scored row is judged, also after an account's first conversion
        spine = SpineConfig.model_validate(
            {**json.loads(spine_json), "stop_after_first_positive": False}
        )
        keys = rows[["account_id", "as_of"]].drop_duplicates().reset_index(drop=True)
        labels = build_labels(tables, keys, spine)
        labels = labels[labels["label_complete"]][["account_id", "as_of", "conversion_label"]]
        parts.append(rows.merge(labels, on=["account_id", "as_of"], how="inner"))
    if not parts:
        return scores.assign(converted=pd.Series(dtype=bool)).iloc[0:0]
    out = pd.concat(parts, ignore_index=True).drop(columns="spine_json")
    out["converted"] = out.pop("conversion_label").astype(bool)
    return out


def _auc(label: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(label, score)) if 0 < label.sum() < len(label) else float("nan")


def _top_lift(label: np.ndarray, selected: np.ndarray) -> float:
    overall = label.mean()
    if not selected.any() or overall == 0:
        return float("nan")
    return float(label[selected].mean() / overall)


def period_table(scored: pd.DataFrame, batches: pd.DataFrame) -> pd.DataFrame:
    """One row per scoring with outcomes: calibration in the large, ranking and lift of the model
    and of the scorecard on the same accounts."""
    rows, batch_ids = [], []
    for batch_id, rows_of in scored.groupby("batch_id", sort=False):
        batch_ids.append(batch_id)
        y = rows_of["converted"].to_numpy(dtype=float)
        p = rows_of["conversion_probability"].to_numpy(dtype=float)
        points = rows_of["scorecard_points"].to_numpy(dtype=float)
        top = rows_of["conversion_tier"].to_numpy() == "hot"
        # the scorecard's top: as many accounts as the model's top tier, by points
        order = np.argsort(-points, kind="stable")
        card_top = np.zeros(len(y), dtype=bool)
        card_top[order[: max(int(top.sum()), 1)]] = True
        variance = float(np.sum(p * (1 - p)))
        rows.append(
            {
                "accounts": len(y),
                "positives": int(y.sum()),
                "predicted": float(p.mean()),
                "realised": float(y.mean()),
                "realised_to_predicted": float(y.mean() / p.mean()) if p.mean() > 0 else np.nan,
                "z": float((y.sum() - p.sum()) / np.sqrt(variance)) if variance > 0 else np.nan,
                "roc_auc": _auc(y, p),
                "scorecard_roc_auc": _auc(y, points),
                "top_tier_lift": _top_lift(y, top),
                "scorecard_top_lift": _top_lift(y, card_top),
                "priority_1_rate": float(y[rows_of["priority"].eq("priority 1").to_numpy()].mean())
                if rows_of["priority"].eq("priority 1").any()
                else np.nan,
            }
        )
    periods = pd.DataFrame(rows, columns=PERIOD_COLUMNS[3:])
    periods.insert(0, "batch_id", batch_ids)
    facts = batches[["batch_id", "as_of", "model_version"]]
    return facts.merge(periods, on="batch_id")[list(PERIOD_COLUMNS)].sort_values(
        "as_of", ignore_index=True
    )


def tier_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Predicted vs realised conversion per scoring and conversion tier."""
    return (
        scored.groupby(["as_of", "model_version", "conversion_tier"], sort=True)
        .agg(
            accounts=("converted", "size"),
            predicted=("conversion_probability", "mean"),
            realised=("converted", "mean"),
        )
        .reset_index()
    )


def decile_table(scored: pd.DataFrame) -> pd.DataFrame:
    """Predicted vs realised per decile of the conversion probability (deciles within each
    scoring, pooled over the scorings; decile 1 = the top 10 %)."""
    if scored.empty:
        return pd.DataFrame(columns=["decile", "accounts", "predicted", "realised"])
    rank = scored.groupby("batch_id")["conversion_probability"].rank(
        method="first", ascending=False, pct=True
    )
    decile = np.ceil(rank * 10).clip(1, 10).astype(int)
    return (
        scored.assign(decile=decile)
        .groupby("decile")
        .agg(
            accounts=("converted", "size"),
            predicted=("conversion_probability", "mean"),
            realised=("converted", "mean"),
        )
        .reset_index()
    )


def score_drift_table(history: History) -> pd.DataFrame:
    """Between each scoring and the one before it by the same model version (an earlier as_of):
    PSI of each head's score and the share of the accounts scored both times whose tier
    changed. A new model moves scores on purpose, so scorings of different versions are not
    compared."""
    rows = []
    for version, batches in history.batches.groupby("model_version", sort=False):
        batches = batches.sort_values("as_of").drop_duplicates("as_of", keep="last")
        pairs = zip(batches.itertuples(), batches.iloc[1:].itertuples(), strict=False)
        for previous, current in pairs:
            before = history.scores[history.scores["batch_id"] == previous.batch_id]
            now = history.scores[history.scores["batch_id"] == current.batch_id]
            both = now.merge(before, on="account_id", suffixes=("", "_before"))
            row = {
                "as_of": current.as_of,
                "previous_as_of": previous.as_of,
                "model_version": version,
                "accounts_both": len(both),
            }
            for head in ("conversion", "fit"):
                row[f"{head}_score_psi"] = psi(
                    score_bins(before[f"{head}_score"]), score_bins(now[f"{head}_score"])
                )
                row[f"{head}_tier_changed"] = (
                    float((both[f"{head}_tier"] != both[f"{head}_tier_before"]).mean())
                    if len(both)
                    else np.nan
                )
            rows.append(row)
    columns = ["as_of", "previous_as_of", "model_version", "accounts_both"] + [
        f"{h}_{m}" for h in ("conversion", "fit") for m in ("score_psi", "tier_changed")
    ]
    return pd.DataFrame(rows, columns=columns).sort_values("as_of", ignore_index=True)


def feature_drift_tables(history: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSI per scoring and feature against the head's training rows, and per scoring and business
    field (its largest feature PSI, naming that feature). A feature both heads use is taken from
    the conversion head."""
    shares = history.feature_shares
    if shares.empty:
        empty = pd.DataFrame(columns=["as_of", "family", "field", "feature", "psi", "normal_psi"])
        return empty, empty
    per_feature = (
        shares.groupby(["batch_id", "head", "feature", "family", "field"], sort=False)
        .apply(
            lambda g: pd.Series(
                {"psi": psi(g["reference_share"], g["share"]), "normal_psi": g["normal_psi"].max()}
            ),
            include_groups=False,
        )
        .reset_index()
    )
    per_feature["head_order"] = per_feature["head"].map({"conversion": 0}).fillna(1)
    per_feature = (
        per_feature.sort_values(["batch_id", "feature", "head_order"])
        .drop_duplicates(["batch_id", "feature"])
        .drop(columns="head_order")
    )
    per_feature = history.batches[["batch_id", "as_of"]].merge(per_feature, on="batch_id")
    top = per_feature.sort_values("psi", ascending=False).drop_duplicates(["batch_id", "field"])
    columns = ["batch_id", "as_of", "family", "field", "feature", "psi", "normal_psi"]
    per_field = top[columns].sort_values(
        ["as_of", "batch_id", "psi"], ascending=[True, True, False], ignore_index=True
    )
    return per_feature.sort_values(["as_of", "feature"], ignore_index=True), per_field


def freshness_table(history: History) -> pd.DataFrame:
    """Days between each scoring's as_of and the newest row of each table known before it."""
    rows = [
        {"as_of": b.as_of, **json.loads(b.freshness_json)} for b in history.batches.itertuples()
    ]
    return pd.DataFrame(rows)


def _performance_alarms(periods: pd.DataFrame, config: MonitorConfig) -> list[Alarm]:
    alarms = []
    low, high = config.calibration_ratio
    # only periods with enough positives are judged, or set a model's baseline
    periods = periods[periods["positives"] >= config.min_positives]
    for _, rows in periods.groupby("model_version", sort=False):
        rows = rows.sort_values("as_of")
        for i, p in enumerate(rows.itertuples()):
            ratio = p.realised_to_predicted
            if (ratio < low or ratio > high) and abs(p.z) > config.calibration_z:
                alarms.append(
                    Alarm(
                        p.as_of,
                        "calibration",
                        round(ratio, 3),
                        f"outside {low}-{high} with |z| > {config.calibration_z}",
                        f"{p.realised:.2%} of accounts converted against {p.predicted:.2%} "
                        f"predicted (ratio {ratio:.2f}, z {p.z:+.1f})",
                    )
                )
            earlier = rows.iloc[:i].head(config.baseline_periods)
            if len(earlier) >= config.baseline_periods:
                baseline = float(earlier["roc_auc"].median())
                if baseline - p.roc_auc > config.auc_drop:
                    alarms.append(
                        Alarm(
                            p.as_of,
                            "ranking",
                            round(p.roc_auc, 3),
                            f"more than {config.auc_drop} below {baseline:.3f}",
                            f"ROC-AUC {p.roc_auc:.3f}, down from {baseline:.3f} in this model's "
                            f"first {config.baseline_periods} periods (scorecard "
                            f"{p.scorecard_roc_auc:.3f})",
                        )
                    )
            if p.top_tier_lift < config.min_top_tier_lift:
                alarms.append(
                    Alarm(
                        p.as_of,
                        "top_tier_lift",
                        round(p.top_tier_lift, 2),
                        f"below {config.min_top_tier_lift}",
                        f"the hot tier converted {p.top_tier_lift:.1f}x the average "
                        f"(scorecard's top {p.scorecard_top_lift:.1f}x)",
                    )
                )
    return alarms


def _drift_alarms(
    score_drift: pd.DataFrame,
    feature_drift: pd.DataFrame,
    freshness: pd.DataFrame,
    config: MonitorConfig,
) -> list[Alarm]:
    alarms = []
    for row in score_drift.itertuples():
        for head in ("conversion", "fit"):
            value = getattr(row, f"{head}_score_psi")
            if value > config.score_psi:
                alarms.append(
                    Alarm(
                        row.as_of,
                        "score_drift",
                        round(value, 3),
                        f"PSI > {config.score_psi}",
                        f"the {head} score's distribution moved since {row.previous_as_of.date()} "
                        f"(PSI {value:.2f})",
                    )
                )
            changed = getattr(row, f"{head}_tier_changed")
            if changed > config.tier_change_share:
                alarms.append(
                    Alarm(
                        row.as_of,
                        "tier_changes",
                        round(changed, 3),
                        f"> {config.tier_change_share:.0%}",
                        f"{changed:.0%} of the accounts changed {head} tier since "
                        f"{row.previous_as_of.date()}",
                    )
                )
    # each feature against its own limit; a field alarms through its worst alarming feature
    limit = np.maximum(
        config.feature_psi, config.normal_factor * feature_drift["normal_psi"].fillna(0)
    )
    alarming = feature_drift[feature_drift["psi"] > limit]
    for (_, as_of), rows in alarming.groupby(["batch_id", "as_of"], sort=False):
        moved = rows.sort_values("psi", ascending=False).drop_duplicates("field")
        families = ", ".join(
            f"{family} ({', '.join(f'{r.field} {r.psi:.2f}' for r in part.head(3).itertuples())})"
            for family, part in moved.groupby("family", sort=False)
        )
        alarms.append(
            Alarm(
                as_of,
                "feature_drift",
                round(float(moved["psi"].max()), 3),
                f"PSI > {config.feature_psi} and > {config.normal_factor}x normal",
                f"{len(moved)} business fields moved from the training rows: {families}",
            )
        )
    for row in freshness.to_dict("records"):
        for table, limit in config.freshness_days.items():
            days = row.get(table)
            if days is None or (isinstance(days, float) and np.isnan(days)):
                continue
            if days > limit:
                alarms.append(
                    Alarm(
                        row["as_of"],
                        "freshness",
                        float(days),
                        f"> {limit} days",
                        f"the newest {table} row is {int(days)} days before as_of: "
                        "is the feed still arriving?",
                    )
                )
    return alarms


def _recommendation(current: list[Alarm]) -> str | None:
    reasons = [a for a in current if a.name in ("calibration", "ranking", "top_tier_lift")]
    if not reasons:
        return None
    drift = [a for a in current if a.name in ("feature_drift", "freshness")]
    why = "; ".join(f"{a.name} ({a.message})" for a in reasons)
    advice = (
        "fix the data feed first (see the drift alarms), then retrain"
        if drift
        else "retrain on recent data (`propensity train`) and compare it with the champion"
    )
    return f"retrain recommended: {why}. {advice}."


def monitor(history: History, tables: Tables, config: MonitorConfig) -> Monitoring:
    """The monitoring of a score history against the outcomes in ``tables`` (module docstring)."""
    scored = outcomes(history, tables)
    periods = period_table(scored, history.batches)
    score_drift = score_drift_table(history)
    feature_drift, field_drift = feature_drift_tables(history)
    freshness = freshness_table(history)
    alarms = _performance_alarms(periods, config) + _drift_alarms(
        score_drift, feature_drift, freshness, config
    )
    alarms.sort(key=lambda a: (a.as_of, a.name))
    current = []
    if len(periods):
        latest_outcome = periods["as_of"].max()
        current += [a for a in alarms if a.name in PERFORMANCE_ALARMS and a.as_of == latest_outcome]
    if len(history.batches):
        latest = history.batches["as_of"].max()
        current += [a for a in alarms if a.name in DRIFT_ALARMS and a.as_of == latest]
    return Monitoring(
        periods=periods,
        tiers=tier_table(scored),
        deciles=decile_table(scored),
        score_drift=score_drift,
        feature_drift=feature_drift,
        field_drift=field_drift,
        freshness=freshness,
        alarms=alarms,
        current=current,
        recommendation=_recommendation(current),
        data_end=data_end(tables),
    )
