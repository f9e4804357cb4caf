"""The README's figures are the ones in the saved benchmark files, and its commands exist."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_model_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    figures = json.loads((ROOT / "benchmarks" / "model.json").read_text())
    for key in (
        "conversion_model_roc_auc",
        "conversion_scorecard_roc_auc",
        "conversion_logistic_roc_auc",
        "conversion_oracle_roc_auc",
        "top_decile_lift_model",
        "top_decile_lift_scorecard",
        "conversion_model_ece",
    ):
        assert f"**{figures[key]}**" in readme, key


def test_benchmark_meets_the_model_targets():
    figures = json.loads((ROOT / "benchmarks" / "model.json").read_text())
    assert figures["gap_to_oracle"] <= 0.05
    assert figures["gain_over_scorecard"] >= 0.08
    assert figures["top_decile_lift_ratio"] >= 1.5
    assert figures["conversion_model_ece"] < 0.02


def test_readme_learned_scorecard_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    figures = json.loads((ROOT / "benchmarks" / "model.json").read_text())
    for head in ("fit", "conversion"):
        assert f"**{figures[f'{head}_learned_scorecard_roc_auc']:.3f}**" in readme, head


def test_the_learned_scorecard_is_close_to_the_model_and_above_the_hand_made_card():
    figures = json.loads((ROOT / "benchmarks" / "model.json").read_text())
    for head in ("fit", "conversion"):
        learned = figures[f"{head}_learned_scorecard_roc_auc"]
        assert figures[f"{head}_model_roc_auc"] - learned <= 0.03, head
        assert learned > figures[f"{head}_scorecard_roc_auc"], head


def test_readme_robustness_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    results = json.loads((ROOT / "benchmarks" / "robustness.json").read_text())["results"]
    shares = [r["heads"]["conversion"]["model_share_of_oracle_lift"] for r in results]
    eces = [r["heads"]["conversion"]["model_ece"] for r in results]
    assert len(results) >= 6 and not any("failed" in r for r in results)
    assert f"**{min(shares):.3f}**" in readme and f"**{max(shares):.3f}**" in readme
    assert f"**{max(eces):.3f}**" in readme
    fit = {r["setting"]: r["heads"]["fit"] for r in results}
    model = [f["model_spearman_true_fit"] for f in fit.values()]
    logistic = [f["logistic_spearman_true_fit"] for f in fit.values()]
    assert all(a > b for a, b in zip(model, logistic, strict=True))
    assert f"**{min(model):.3f}** to **{max(model):.3f}**" in readme
    assert f"**{min(logistic):.3f}** to **{max(logistic):.3f}**" in readme
    hard = fit["hard_sales"]
    low, high = hard["model_minus_logistic_interval_95"]
    assert f"**{hard['model_roc_auc'] - hard['logistic_roc_auc']:+.3f}**" in readme
    assert f"**[{low:+.3f}, {high:+.3f}]**" in readme


def test_readme_real_data_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    results = json.loads((ROOT / "benchmarks" / "real_data.json").read_text())["results"]
    for run in ("x_education", "olist", "maven"):
        assert f"**{results[run]['evaluation']['model']['roc_auc']:.3f}**" in readme, run
    assert f"**{results['olist']['evaluation']['model']['lift_10']:.2f}**" in readme


def test_readme_shows_the_two_commands_and_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    for link in (
        "benchmarks/model.md",
        "benchmarks/features.md",
        "benchmarks/real_data.md",
        "src/propensity/data/contract.py",
    ):
        assert link in readme and (ROOT / link).exists(), link


WEEKLY_RHYTHM_GROUPS = ("short_windows", "weekly_momentum", "episodes", "buying_group_growth")


def test_the_packaged_feature_groups_follow_the_committed_ablation():
    # the rule the defaults were chosen by: a group is on where it helped the model by a
    # measurable amount on some world (its 95 % interval's lower bound >= 0.001 ROC-AUC, as
    # every group costs feature-build time) and hurt it on none (no interval below 0)
    import sys

    from propensity.features import FeatureConfig

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import feature_ablation

    report = json.loads((ROOT / "benchmarks" / "feature_ablation.json").read_text())
    results = [r for r in report["results"] if "failed" not in r]
    assert len(results) >= 5
    packaged = FeatureConfig()
    for group in WEEKLY_RHYTHM_GROUPS:
        intervals = [r["groups"][group]["model_value_95"] for r in results]
        helps = any(low >= 0.001 for low, _ in intervals) and not any(
            high < 0 for _, high in intervals
        )
        changes = feature_ablation.GROUPS[group][1]
        on = any(getattr(packaged, key) != value for key, value in changes.items())
        assert on == helps, group


def test_readme_ablation_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    report = json.loads((ROOT / "benchmarks" / "feature_ablation.json").read_text())
    by_setting = {r["setting"]: r for r in report["results"]}
    episodes = by_setting["intent_leads"]["groups"]["episodes"]
    assert f"**{episodes['model_value']:+.3f}**" in readme
    robustness = json.loads((ROOT / "benchmarks" / "robustness.json").read_text())["results"]
    weekly = next(r for r in robustness if r["setting"] == "weekly")["heads"]["conversion"]
    assert f"**{weekly['model_roc_auc']:.3f}**" in readme
    assert f"**{weekly['logistic_roc_auc']:.3f}**" in readme


def test_readme_ceiling_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    report = json.loads((ROOT / "benchmarks" / "ceiling.json").read_text())
    by_setting = {r["setting"]: r for r in report["results"] if "failed" not in r}
    intent_leads, sparse = by_setting["intent_leads"], by_setting["sparse_intent"]
    assert f"**{intent_leads['bayes']['share']:.3f}** on `intent_leads`" in readme
    assert f"the model **{intent_leads['model_share']:.3f}**" in readme
    assert f"**{sparse['bayes']['share']:.3f}** on `sparse_intent`" in readme
    on_time = [
        r
        for r in by_setting.values()
        if r["engagement_lag_weeks"] == 0 and r["intent_lag_weeks"] == 0
    ]
    assert len(on_time) >= 6
    bounds = [r["bayes"]["share"] for r in on_time]
    models = [r["model_share"] for r in on_time]
    assert f"**{min(bounds):.3f}** to\n**{max(bounds):.3f}**" in readme
    assert f"**{min(models):.3f}** to **{max(models):.3f}**" in readme
    default = by_setting["default"]
    assert f"**{default['model_with_true_fit']['share']:.3f}**" in readme
    assert f"**{default['model_with_filtered_state']['share']:.3f}**" in readme
    assert f"**{default['model_with_plain_filter_state']['share']:.3f}**" in readme
    sweep = {(r["engagement_lag_weeks"], r["intent_lag_weeks"]): r for r in report["lag_sweep"]}
    intent_on_time = [r["bayes_share"] for (lag, intent), r in sweep.items() if intent == 0]
    assert f"**{min(intent_on_time):.3f}** or above" in readme
    assert f"**{sweep[2, 2]['bayes_share']:.3f}** when every signal is 2 weeks late" in readme
    assert f"**{sweep[4, 4]['bayes_share']:.3f}** at 4 weeks" in readme
    assert "benchmarks/ceiling.md" in readme


def test_readme_journey_figures_match_the_benchmark_file():
    readme = (ROOT / "README.md").read_text()
    report = json.loads((ROOT / "benchmarks" / "journey.json").read_text())
    results = [r for r in report["results"] if "failed" not in r]
    assert len(results) == len(report["results"]) >= 6
    right = sum(r["true_lags"] == r["chosen_lags"] for r in results)
    assert f"**{right}** of {len(results)} worlds" in readme

    def gain(r: dict, scorer: str) -> float:
        return r[f"{scorer}_with_journey"]["roc_auc"] - r[scorer]["roc_auc"]

    model_gains = [gain(r, "model") for r in results]
    logistic_gains = [gain(r, "logistic") for r in results]
    assert f"**{min(model_gains):+.3f}** to **{max(model_gains):+.3f}**" in readme
    assert f"**{min(logistic_gains):+.3f}** to\n**{max(logistic_gains):+.3f}**" in readme
    by_setting = {r["setting"]: r for r in results}
    assert f"`intent_leads` **{gain(by_setting['intent_leads'], 'model'):+.3f}**" in readme
    best = max(results, key=lambda r: r["model_with_journey"]["share"])
    assert f"**{best['model_with_journey']['share']:.3f}** on `{best['setting']}`" in readme
