"""Test and control on a target list: sample sizes, a seeded stratified assignment, and a
readout that recovers an effect planted in the synthetic world."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from conftest import cli
from propensity.data.contract import load_tables
from propensity.experiment import (
    SCORECARD_ONLY,
    CampaignPlan,
    accounts_needed,
    design_experiment,
    read_out,
    simulate_campaign,
)
from propensity.spine import SpineConfig, build_labels


def _listing(n: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(1)
    ids = [f"A{i:04d}" for i in range(n)]
    listing = pd.DataFrame(
        {
            "account_id": ids,
            "priority": rng.choice(["priority 1", "priority 2", "nurture"], n, p=[0.2, 0.3, 0.5]),
            "conversion_probability": rng.uniform(0.01, 0.2, n),
        }
    )
    points = pd.Series(rng.uniform(0, 150, n), index=ids)
    return listing, points


def test_every_stratum_holds_out_the_same_share_and_the_seed_fixes_the_arms():
    listing, points = _listing()
    plan = CampaignPlan(holdout_share=0.3, seed=4)
    assignment, strata = design_experiment(listing, points, plan)
    for _, part in assignment.groupby("stratum"):
        assert (part["arm"] == "holdout").sum() == round(0.3 * len(part))
    again, _ = design_experiment(listing, points, plan)
    pd.testing.assert_frame_equal(assignment, again)
    other, _ = design_experiment(listing, points, plan.model_copy(update={"seed": 5}))
    assert not other["arm"].equals(assignment["arm"])
    model_picks = listing["priority"].isin(plan.values).sum()
    assert (assignment["picked_by"] != "scorecard").sum() == model_picks
    assert (assignment["picked_by"] != "model").sum() == model_picks  # as many by points
    assert set(strata["stratum"]) == {"priority 1", "priority 2", SCORECARD_ONLY}


def test_sample_size_is_statsmodels_power_for_two_proportions():
    treat, holdout = accounts_needed(0.05, CampaignPlan(minimal_uplift=0.02, holdout_share=0.5))
    expected = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(0.07, 0.05), alpha=0.05, power=0.8, alternative="larger"
    )
    assert treat == holdout == int(np.ceil(expected))


def test_a_priority_the_list_does_not_have_is_refused_by_name():
    listing, points = _listing()
    with pytest.raises(ValueError, match="no account with priority in \\['priority 9'\\]"):
        design_experiment(listing, points, CampaignPlan(values=("priority 9",)))


def test_a_campaign_on_conversion_tiers_stratifies_by_tier():
    listing, points = _listing()
    listing["conversion_tier"] = np.where(listing["conversion_probability"] > 0.15, "hot", "cold")
    assignment, strata = design_experiment(
        listing, points, CampaignPlan(column="conversion_tier", values=("hot",))
    )
    assert set(strata["stratum"]) == {"hot", SCORECARD_ONLY}
    picked = assignment[assignment["picked_by"] != "scorecard"]["account_id"]
    assert set(picked) == set(listing.loc[listing["conversion_tier"] == "hot", "account_id"])


def test_readout_compares_treat_and_holdout_within_each_list():
    assignment = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(8)],
            "stratum": ["priority 1"] * 4 + [SCORECARD_ONLY] * 4,
            "picked_by": ["model", "both", "model", "both", "scorecard"] + ["scorecard"] * 3,
            "arm": ["treat", "treat", "holdout", "holdout"] * 2,
        }
    )
    converted = pd.Series(
        [True, True, False, True, False, False, False, False], index=assignment["account_id"]
    )
    result = read_out(assignment, converted).set_index("group")
    assert result.loc["model list", "treat_rate"] == 1.0
    assert result.loc["model list", "holdout_rate"] == 0.5
    assert (
        result.loc["scorecard list", "treat"] == 3 and result.loc["scorecard list", "holdout"] == 3
    )


@pytest.mark.slow(seconds=60)
def test_a_planted_campaign_effect_is_recovered_within_its_interval(trained, tmp_path):
    as_of = "2025-06-02"
    history, target = tmp_path / "history.duckdb", tmp_path / "list.csv"
    exported = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir), "--out",
        str(target), "--as-of", as_of, "--history", str(history), cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    design = tmp_path / "design.json"
    designed = cli(
        "experiment", "design", "--list", str(target), "--out", str(design), "--history",
        str(history), "--seed", "3", *sum((["--priority", f"priority {p}"] for p in range(1, 5)), []),
        cwd=tmp_path,
    )  # fmt: skip
    assert designed.returncode == 0, designed.stderr
    assignment = pd.read_csv(tmp_path / "design.assignment.csv", dtype={"account_id": str})
    assert set(assignment["picked_by"]) == {"model", "both", "scorecard"}
    assert {"account_name", "priority", "arm", "model_version"} <= set(assignment.columns)

    # what the accounts did on their own, then a campaign that converts 30 % of the rest
    tables = load_tables(trained.world)
    spine = pd.DataFrame({"account_id": assignment["account_id"], "as_of": pd.Timestamp(as_of)})
    labels = build_labels(tables, spine, SpineConfig())
    natural = pd.Series(
        labels["conversion_label"].astype(bool).to_numpy(), index=labels["account_id"]
    )
    converted, planted = simulate_campaign(assignment, natural, effect=0.3, seed=11)
    outcomes = tmp_path / "outcomes.csv"
    converted.rename("converted").rename_axis("account_id").reset_index().to_csv(
        outcomes, index=False
    )

    result_file = tmp_path / "readout.csv"
    read = cli(
        "experiment", "readout", "--design", str(design), "--outcomes", str(outcomes),
        "--out", str(result_file),
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    model_list = pd.read_csv(result_file).set_index("group").loc["model list"]
    assert model_list["uplift_lo"] <= planted <= model_list["uplift_hi"]
    assert model_list["p_value"] < 0.05
    print(f"planted {planted:.3f}, recovered {model_list['uplift']:.3f} "
          f"[{model_list['uplift_lo']:.3f}, {model_list['uplift_hi']:.3f}]")  # fmt: skip

    # without a campaign (the data's own outcomes) there is nothing to find
    natural_read = cli("experiment", "readout", "--design", str(design), "--data", str(trained.world), "--out", str(tmp_path / "natural.csv"))  # fmt: skip
    assert natural_read.returncode == 0, natural_read.stderr
    assert (
        pd.read_csv(tmp_path / "natural.csv").set_index("group").loc["model list", "p_value"] > 0.01
    )
    assert json.loads(design.read_text())["model_version"] == trained.result.scoring_model.version
