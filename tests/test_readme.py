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
