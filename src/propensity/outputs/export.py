"""The ranked target list for marketing ops: priority rule, CRM-ready columns, change tracking.

Input: scored rows (``score.score_snapshot``) and the accounts table. Output: one row per
account, ranked by priority then conversion then fit score, with stable column names
(``EXPORT_COLUMNS``), optional top-k and filters, a ``change`` column versus the previous export
of the same path (new / up N / down N / same; accounts that left the list come last as
``dropped``), and stability figures (Spearman rank correlation with the previous export, share
of the top-k that changed). Files are written atomically; text cells a spreadsheet would run as
a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with a
quote.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from propensity import settings
from propensity.io import (
    CsvFormatWarning,
    InputFileError,
    atomic_paths,
    check_frame_suffix,
    frame_writer,
    neutralise_formulas,
    read_frame,
)
from propensity.scoring import CONVERSION_TIERS, FIT_TIERS

EXPORT_COLUMNS = (
    "rank",
    "account_id",
    "account_name",
    "priority",
    "fit_score",
    "fit_tier",
    "conversion_score",
    "conversion_tier",
    "conversion_probability",
    "conversion_percentile",
    "reasons",
    "fit_reasons",
    "change",
    "country",
    "industry",
    "model_version",
    "as_of",
)


class PriorityRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    fit_tiers: tuple[str, ...]
    conversion_tiers: tuple[str, ...]


class ScoringConfig(BaseModel):
    """How scores become a list: the documented priority rule and the stability alarm."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    priority_rules: tuple[PriorityRule, ...] = (
        PriorityRule(name="priority 1", fit_tiers=("A", "B"), conversion_tiers=("hot",)),
        PriorityRule(name="priority 2", fit_tiers=("A", "B"), conversion_tiers=("warm",)),
        PriorityRule(name="priority 3", fit_tiers=("C", "D"), conversion_tiers=("hot",)),
        PriorityRule(name="priority 4", fit_tiers=("A",), conversion_tiers=("cold",)),
    )
    default_priority: str = "nurture"
    tiers: str = Field(
        "model",
        pattern="^(model|batch)$",
        description="model: cut-offs stored with the model; batch: quantiles of this batch",
    )
    stability_alarm_share: float = Field(
        0.5, ge=0, le=1, description="warn when more of the top-k changed"
    )

    @classmethod
    def from_yaml(cls, path: Path | str | None = None) -> ScoringConfig:
        """An explicit file, else the project's configs/scoring.yaml, else the packaged default."""
        text, _ = settings.config_text("scoring", path)
        return cls.model_validate(yaml.safe_load(text) or {})


def batch_tiers(scored: pd.DataFrame) -> pd.DataFrame:
    """Replace model tiers by tiers from this batch's own quantiles (same shares as the model's)."""
    out = scored.copy()
    for head, tiers in (("fit", FIT_TIERS), ("conversion", CONVERSION_TIERS)):
        rank = out[f"{head}_probability"].rank(method="first", ascending=False, pct=True)
        labels = np.full(len(out), tiers[-1][0], dtype=object)
        bound = 0.0
        for name, share in tiers[:-1]:
            labels[(rank > bound) & (rank <= bound + share)] = name
            bound += share
        out[f"{head}_tier"] = labels
    return out


def priority(fit_tier: pd.Series, conversion_tier: pd.Series, config: ScoringConfig) -> pd.Series:
    """The documented rule: the first rule whose fit and conversion tiers match, else the default."""
    result = pd.Series(config.default_priority, index=fit_tier.index, dtype=object)
    assigned = pd.Series(False, index=fit_tier.index)
    for rule in config.priority_rules:
        match = (
            fit_tier.isin(rule.fit_tiers) & conversion_tier.isin(rule.conversion_tiers) & ~assigned
        )
        result[match] = rule.name
        assigned |= match
    return result


def ranked_list(
    scored: pd.DataFrame,
    accounts: pd.DataFrame,
    config: ScoringConfig,
    *,
    top_k: int | None = None,
    filters: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per account with EXPORT_COLUMNS (change is filled by :func:`with_changes`)."""
    if config.tiers == "batch":
        scored = batch_tiers(scored)
    info = accounts.set_index("account_id")
    out = pd.DataFrame(
        {
            "account_id": scored["account_id"].to_numpy(),
            "account_name": scored["account_id"].map(info["name"]).to_numpy(),
            "fit_score": scored["fit_score"].to_numpy(),
            "fit_tier": scored["fit_tier"].to_numpy(),
            "conversion_score": scored["conversion_score"].to_numpy(),
            "conversion_tier": scored["conversion_tier"].to_numpy(),
            "conversion_probability": scored["conversion_probability"].round(4).to_numpy(),
            "conversion_percentile": (scored["conversion_probability"].rank(pct=True) * 100)
            .round(1)
            .to_numpy(),
            "reasons": scored["conversion_reasons"].to_numpy(),
            "fit_reasons": scored["fit_reasons"].to_numpy(),
            "country": scored["account_id"].map(info["country"]).to_numpy()
            if "country" in info
            else None,
            "industry": scored["account_id"].map(info["industry"]).to_numpy()
            if "industry" in info
            else None,
            "model_version": scored["model_version"].to_numpy(),
            "as_of": pd.to_datetime(scored["as_of"]).dt.date.astype(str).to_numpy(),
        }
    )
    out["priority"] = priority(out["fit_tier"], out["conversion_tier"], config).to_numpy()
    order = {rule.name: i for i, rule in enumerate(config.priority_rules)}
    out["_priority_order"] = out["priority"].map(order).fillna(len(order))
    out = out.sort_values(
        ["_priority_order", "conversion_probability", "fit_score", "account_id"],
        ascending=[True, False, False, True],
        kind="stable",
    ).drop(columns="_priority_order")
    for column, allowed in (filters or {}).items():
        if allowed:
            if column not in out:
                raise ValueError(
                    f"cannot filter on {column!r}; filterable columns: fit_tier, conversion_tier, priority, country, industry"
                )
            out = out[out[column].isin(allowed)]
    out = out.reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    if top_k is not None:
        out = out.head(top_k)
    out["change"] = "new"
    return out[list(EXPORT_COLUMNS)]


def read_export(path: Path, columns: Sequence[str] = ("account_id", "rank")) -> pd.DataFrame | None:
    """The previous export at ``path`` (None when there is none).

    A file there that cannot be read, or lacks ``columns``, is an :class:`InputFileError`: it
    may be someone's own file, so it is never replaced.
    """
    path = Path(path)
    if not path.exists():
        return None
    keep = "it is kept: remove it or choose another --out"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CsvFormatWarning)
            frame = read_frame(path, dtype={"account_id": str})
    except InputFileError as exc:
        raise InputFileError(
            f"the file at --out cannot be read as a previous export: {exc}; {keep}"
        ) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputFileError(
            f"{path} exists and is not a previous export (no column {', '.join(missing)}); {keep}"
        )
    return frame


def with_changes(
    current: pd.DataFrame,
    previous: pd.DataFrame | None,
    top_k: int | None,
    columns: Sequence[str] = EXPORT_COLUMNS,
) -> tuple[pd.DataFrame, dict]:
    """Fill ``change`` against the previous export; append dropped accounts (with ``columns``);
    stability figures."""
    if previous is None or previous.empty:
        return current, {"previous_export": False}
    previous = previous[previous["change"] != "dropped"] if "change" in previous else previous
    old_rank = previous.set_index("account_id")["rank"].astype(float)
    now_rank = current.set_index("account_id")["rank"].astype(float)
    moved = now_rank.index.map(old_rank)
    change = []
    for account, rank in now_rank.items():
        before = old_rank.get(account)
        if before is None or np.isnan(before):
            change.append("new")
        elif rank < before:
            change.append(f"up {int(before - rank)}")
        elif rank > before:
            change.append(f"down {int(rank - before)}")
        else:
            change.append("same")
    current = current.copy()
    current["change"] = change
    dropped = previous[~previous["account_id"].isin(current["account_id"])].copy()
    if len(dropped):
        dropped["change"] = "dropped"
        dropped["rank"] = pd.NA
        current = pd.concat([current, dropped[list(columns)]], ignore_index=True)
    common = now_rank.index.intersection(old_rank.index)
    correlation = (
        float(now_rank[common].corr(old_rank[common], method="spearman"))
        if len(common) > 2
        else float("nan")
    )
    k = top_k or len(now_rank)
    top_now = set(now_rank.sort_values().index[:k])
    top_before = set(old_rank.sort_values().index[:k])
    changed_share = 1 - len(top_now & top_before) / max(len(top_now), 1)
    return current, {
        "previous_export": True,
        "rank_correlation_with_previous": round(correlation, 4),
        "top_k_changed_share": round(changed_share, 4),
        "dropped": int(len(dropped)),
        "moved_rows": int(np.isfinite(np.asarray(moved, dtype=float)).sum()),
    }


def write_export(frame: pd.DataFrame, path: Path, stability: dict) -> list[Path]:
    """Write the list (CSV or Parquet) and its stability figures next to it, together: both
    replace the previous pair only when both were written (a failed write changes neither)."""
    path = check_frame_suffix(path)
    meta = path.with_name(path.name + ".meta.json")
    text = json.dumps(stability, indent=2, default=str) + "\n"
    with atomic_paths(path, meta) as (list_tmp, meta_tmp):
        frame_writer(neutralise_formulas(frame), path)(list_tmp)
        meta_tmp.write_text(text, encoding="utf-8")
    return [path, meta]
