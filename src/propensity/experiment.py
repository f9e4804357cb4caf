"""Test and control: prove with a randomised holdout that working the learned list converts
more than not working it, and compare with the accounts the old scorecard would have picked.

* :func:`design_experiment` takes the target list (the export), the scorecard's points on the
  same prospects at the same as_of (from the score history) and a :class:`CampaignPlan`. The
  campaign works the list's accounts in the planned priorities (or conversion or fit tiers);
  the scorecard's pick is as many prospects, highest points first. Every account picked by
  either is assigned at random to ``treat`` or ``holdout``, stratified by stratum (each planned
  priority or tier; "scorecard only" for the scorecard's picks outside them), the same holdout share in every stratum, with a seeded
  generator (same seed and list -> same assignment). Per stratum: the expected conversion rate
  (the calibrated probability's mean), the accounts per arm needed to detect the planned
  uplift at ``alpha`` and ``power`` (statsmodels' normal power for two proportions, one-sided),
  the accounts available, and the uplift they can detect.
* :func:`read_out` takes the assignment and what happened (converted: a new-business
  opportunity within the horizon after the campaign start) and reports, per stratum and for
  each list (the model's; the scorecard's), conversion in treat vs holdout, the uplift with its
  confidence interval and the p-value (statsmodels: Newcombe's interval and the score test for
  two proportions). Because every
  stratum has the same holdout share, a list's pooled comparison is unbiased.
* :func:`simulate_campaign` (for the synthetic world): each treated account that did not convert
  on its own converts with probability ``effect``, so the planted uplift on the treated is
  known and a readout can be checked against it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    test_proportions_2indep,
)

SCORECARD_ONLY = "scorecard only"
ASSIGNMENT_COLUMNS = ("account_id", "stratum", "picked_by", "arm", "expected_rate")


STRATA_DEFAULTS = {
    "priority": ("priority 1", "priority 2"),
    "conversion_tier": ("hot",),
    "fit_tier": ("A",),
}


class CampaignPlan(BaseModel):
    """A planned campaign on a target list: the accounts it works are those whose ``column``
    (priority, conversion tier or fit tier) is one of ``values``; each value is a stratum."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    column: Literal["priority", "conversion_tier", "fit_tier"] = Field(
        "priority", description="the list column that says which accounts the campaign works"
    )
    values: tuple[str, ...] | None = Field(
        None, description="its values the campaign works (default: priority 1 and 2, hot, A)"
    )
    minimal_uplift: float = Field(
        0.02, gt=0, lt=1, description="smallest absolute uplift in conversion worth detecting"
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="significance level (one-sided design)")
    power: float = Field(0.8, gt=0.5, lt=1, description="chance to detect the minimal uplift")
    holdout_share: float = Field(0.5, gt=0, lt=1, description="share of each stratum held out")
    seed: int = Field(0, ge=0, description="random seed of the assignment")
    compare_scorecard: bool = Field(True, description="also randomise the scorecard's pick")

    @model_validator(mode="after")
    def _values(self) -> CampaignPlan:
        values = self.values or STRATA_DEFAULTS[self.column]
        if len(set(values)) != len(values):
            raise ValueError(f"values are repeated: {list(values)}")
        object.__setattr__(self, "values", tuple(values))
        return self


def detectable_uplift(rate: float, treat: int, holdout: int, alpha: float, power: float) -> float:
    """The smallest absolute uplift over ``rate`` these arms detect (nan without accounts)."""
    if treat < 2 or holdout < 2:
        return float("nan")
    effect = NormalIndPower().solve_power(
        nobs1=treat, ratio=holdout / treat, alpha=alpha, power=power, alternative="larger"
    )
    # invert Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p0))
    angle = min(math.asin(math.sqrt(rate)) + effect / 2, math.pi / 2)
    return float(math.sin(angle) ** 2 - rate)


def accounts_needed(rate: float, plan: CampaignPlan) -> tuple[int, int]:
    """Treated and held-out accounts needed to detect ``plan.minimal_uplift`` over ``rate``."""
    target = min(rate + plan.minimal_uplift, 0.999)
    ratio = plan.holdout_share / (1 - plan.holdout_share)
    treat = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(target, max(rate, 1e-6)),
        alpha=plan.alpha,
        power=plan.power,
        ratio=ratio,
        alternative="larger",
    )
    return math.ceil(treat), math.ceil(treat * ratio)


def design_experiment(
    listing: pd.DataFrame, scorecard_points: pd.Series | None, plan: CampaignPlan
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(assignment, strata) for a campaign on ``listing`` (see the module docstring).

    ``listing``: the export's rows (account_id, the plan's column, conversion_probability);
    ``scorecard_points``: the scorecard's points per prospect (index account_id), or None to
    leave the scorecard out.
    """
    rows = listing[listing["change"] != "dropped"] if "change" in listing else listing
    rows = rows.drop_duplicates("account_id").set_index("account_id")
    unknown = sorted(set(plan.values) - set(rows[plan.column].astype(str)))
    if unknown:
        raise ValueError(
            f"the list has no account with {plan.column} in {unknown}; its values are "
            f"{sorted(rows[plan.column].astype(str).unique())}"
        )
    picked = rows[rows[plan.column].astype(str).isin(plan.values)]
    stratum = picked[plan.column].astype(str)
    picked_by = pd.Series("model", index=picked.index)
    if plan.compare_scorecard and scorecard_points is not None:
        points = scorecard_points[scorecard_points.index.isin(rows.index)]
        card = points.sort_values(ascending=False, kind="stable").index[: len(picked)]
        picked_by[picked_by.index.isin(card)] = "both"
        only = [a for a in card if a not in picked.index]
        stratum = pd.concat([stratum, pd.Series(SCORECARD_ONLY, index=only)])
        picked_by = pd.concat([picked_by, pd.Series("scorecard", index=only)])
    assignment = pd.DataFrame({"stratum": stratum, "picked_by": picked_by})
    assignment.index.name = "account_id"
    assignment = assignment.reset_index().sort_values(["stratum", "account_id"], ignore_index=True)
    assignment["expected_rate"] = (
        assignment["account_id"].map(rows["conversion_probability"]).astype(float).to_numpy()
    )
    rng = np.random.default_rng(plan.seed)
    arms = np.empty(len(assignment), dtype=object)
    for _, index in assignment.groupby("stratum", sort=True).groups.items():
        index = np.asarray(index)
        held = round(plan.holdout_share * len(index))
        order = rng.permutation(len(index))
        arms[index[order[:held]]] = "holdout"
        arms[index[order[held:]]] = "treat"
    assignment["arm"] = arms
    strata = []
    for name, part in assignment.groupby("stratum", sort=True):
        rate = float(part["expected_rate"].mean())
        treat, holdout = int((part["arm"] == "treat").sum()), int((part["arm"] == "holdout").sum())
        need_treat, need_holdout = accounts_needed(rate, plan)
        strata.append(
            {
                "stratum": name,
                "accounts": len(part),
                "expected_rate": round(rate, 4),
                "treat": treat,
                "holdout": holdout,
                "needed_treat": need_treat,
                "needed_holdout": need_holdout,
                "powered": treat >= need_treat and holdout >= need_holdout,
                "detectable_uplift": round(
                    detectable_uplift(rate, treat, holdout, plan.alpha, plan.power), 4
                ),
            }
        )
    return assignment[list(ASSIGNMENT_COLUMNS)], pd.DataFrame(strata)


def compare_arms(converted: pd.Series, arm: pd.Series, alpha: float = 0.05) -> dict:
    """Conversion in treat vs holdout: rates, uplift (treat - holdout), its confidence interval
    (Newcombe) and two-sided p-value (score test)."""
    treat, holdout = converted[arm == "treat"], converted[arm == "holdout"]
    out = {
        "treat": len(treat),
        "treat_converted": int(treat.sum()),
        "holdout": len(holdout),
        "holdout_converted": int(holdout.sum()),
        "treat_rate": float(treat.mean()) if len(treat) else float("nan"),
        "holdout_rate": float(holdout.mean()) if len(holdout) else float("nan"),
    }
    out["uplift"] = out["treat_rate"] - out["holdout_rate"]
    if len(treat) < 2 or len(holdout) < 2:
        return {
            **out,
            "uplift_lo": float("nan"),
            "uplift_hi": float("nan"),
            "p_value": float("nan"),
        }
    counts = (out["treat_converted"], len(treat), out["holdout_converted"], len(holdout))
    # Newcombe's interval and the score test stay sound at 0 % or 100 % conversion, where the
    # Wald versions have no variance; both arms all-0 or all-1 means no difference (p = 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = confint_proportions_2indep(
            *counts, method="newcomb", compare="diff", alpha=alpha
        )
        test = test_proportions_2indep(*counts, method="score", compare="diff")
    p_value = float(test.pvalue) if np.isfinite(test.pvalue) else 1.0
    return {**out, "uplift_lo": float(low), "uplift_hi": float(high), "p_value": p_value}


def read_out(assignment: pd.DataFrame, converted: pd.Series, alpha: float = 0.05) -> pd.DataFrame:
    """Per stratum and per list (``model list``, ``scorecard list``): treat vs holdout conversion,
    uplift with its (1 - alpha) interval and p-value. ``converted``: bool per account_id;
    accounts it does not name count as not converted."""
    done = assignment.assign(
        converted=assignment["account_id"].map(converted).fillna(False).astype(bool)
    )
    rows = []
    for name, part in done.groupby("stratum", sort=True):
        rows.append(
            {"group": f"stratum: {name}", **compare_arms(part["converted"], part["arm"], alpha)}
        )
    for name, picked in (
        ("model list", ("model", "both")),
        ("scorecard list", ("scorecard", "both")),
    ):
        part = done[done["picked_by"].isin(picked)]
        if len(part):
            rows.append({"group": name, **compare_arms(part["converted"], part["arm"], alpha)})
    return pd.DataFrame(rows)


def simulate_campaign(
    assignment: pd.DataFrame, natural: pd.Series, effect: float, seed: int = 0
) -> tuple[pd.Series, float]:
    """What a campaign that converts ``effect`` of the treated accounts that would not have
    converted on their own does to ``natural`` (bool per account_id): (converted per account,
    the uplift it planted on the treated = added conversions / treated accounts)."""
    rng = np.random.default_rng(seed)
    converted = natural.reindex(assignment["account_id"]).fillna(False).astype(bool).to_numpy()
    treated = (assignment["arm"] == "treat").to_numpy()
    added = treated & ~converted & (rng.random(len(converted)) < effect)
    planted = float(added.sum() / max(treated.sum(), 1))
    return pd.Series(converted | added, index=assignment["account_id"].to_numpy()), planted
