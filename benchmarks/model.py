"""Model benchmark (part of ``make bench``): the default synthetic world trained with the packaged
default configs, written to ``benchmarks/model.md`` and ``benchmarks/model.json``.

The configs are always the ones shipped with the package (``propensity/configs/model.yaml`` and
``scorecard.yaml``), never a project copy in ``./configs`` or ``$PROPENSITY_CONFIG_DIR``: the
figures describe the defaults.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from propensity import settings
from propensity.data.contract import load_tables
from propensity.data.world import WorldConfig, generate_world, read_truth
from propensity.evaluate import to_markdown
from propensity.io import write_text
from propensity.model.config import ModelConfig
from propensity.model.scorecard import Scorecard
from propensity.runs.account import reason_checks, train_account_model
from propensity.runs.folder import RunResult, write_run


def packaged_model_config() -> ModelConfig:
    return ModelConfig.model_validate(yaml.safe_load(settings.packaged_config_text("model")) or {})


def packaged_scorecard() -> Scorecard:
    return Scorecard.model_validate(
        yaml.safe_load(settings.packaged_config_text("scorecard")) or {}
    )


def model_benchmark(workdir: Path, out_dir: Path, accounts: int | None = None) -> dict:
    """Train on the default world (seed 7; ``accounts`` overrides its size for a smoke test) with
    the packaged configs; write benchmarks/model.md + .json."""
    world_config = WorldConfig() if accounts is None else WorldConfig(n_accounts=accounts)
    world = workdir / "world_default"
    generate_world(world_config, world, overwrite=True)
    config = packaged_model_config()
    started = time.perf_counter()  # as before: loading the tables and the truth is timed too
    truth = read_truth(world)
    result = train_account_model(
        load_tables(world), config, packaged_scorecard(), truth, name=world.name
    )
    seconds = time.perf_counter() - started
    write_run(result, workdir / "run_default", overwrite=True)
    figures = model_figures(result, truth, seconds)
    write_text(model_markdown(result, figures, world_config, config), out_dir / "model.md")
    write_text(json.dumps(figures, indent=2) + "\n", out_dir / "model.json")
    print(json.dumps(figures, indent=2))
    return figures


def model_figures(result: RunResult, truth, seconds: float) -> dict:
    """The acceptance figures of the conversion head, the fit head against the true fit, reasons."""
    conversion = result.evaluation.set_index(["head", "scorer"]).loc["conversion"]

    def metric(scorer: str, name: str) -> float:
        return float(conversion.loc[scorer, name])

    fit_truth = result.summary["fit_against_truth"]
    figures = {
        "conversion_model_roc_auc": round(metric("model", "roc_auc"), 3),
        "conversion_oracle_roc_auc": round(metric("oracle", "roc_auc"), 3),
        "conversion_scorecard_roc_auc": round(metric("scorecard", "roc_auc"), 3),
        "conversion_logistic_roc_auc": round(metric("logistic", "roc_auc"), 3),
        "gap_to_oracle": round(metric("oracle", "roc_auc") - metric("model", "roc_auc"), 3),
        "gain_over_scorecard": round(
            metric("model", "roc_auc") - metric("scorecard", "roc_auc"), 3
        ),
        "top_decile_lift_model": round(metric("model", "lift_10"), 2),
        "top_decile_lift_scorecard": round(metric("scorecard", "lift_10"), 2),
        "top_decile_lift_ratio": round(
            metric("model", "lift_10") / metric("scorecard", "lift_10"), 2
        ),
        "conversion_model_ece": round(metric("model", "ece"), 4),
        "fit_model_auc_true_fit_above_median": round(
            fit_truth["model_auc_true_fit_above_median"], 3
        ),
        "fit_model_spearman_true_fit": round(fit_truth["model_spearman_true_fit"], 3),
        "train_evaluate_seconds": round(seconds, 1),
    }
    for head in ("fit", "conversion"):
        table = result.evaluation.set_index(["head", "scorer"]).loc[head]
        card = result.scoring_model.scorers[head].learned_scorecard
        figures[f"{head}_learned_scorecard_roc_auc"] = round(
            float(table.loc["learned_scorecard", "roc_auc"]), 3
        )
        figures[f"{head}_model_roc_auc"] = round(float(table.loc["model", "roc_auc"]), 3)
        figures[f"{head}_scorecard_roc_auc"] = round(float(table.loc["scorecard", "roc_auc"]), 3)
        figures[f"{head}_learned_scorecard_fields"] = len(card.fields) + sum(
            1 for points in card.fit.model_dump().values() if points
        )
    checks = reason_checks(result, truth)
    figures["reasons_as_of"] = checks["as_of"]
    figures["buying_accounts"] = checks["buying_accounts"]
    figures["buying_top_reason_engagement_or_intent_share"] = round(
        checks["buying_top_reason_engagement_or_intent_share"], 3
    )
    figures["engaged_trap_accounts"] = checks["engaged_trap_accounts"]
    figures["trap_fit_reason_among_negatives_share"] = round(
        checks["trap_fit_reason_among_negatives_share"], 3
    )
    return figures


def model_markdown(
    result: RunResult, figures: dict, world_config: WorldConfig, config: ModelConfig
) -> str:
    split = result.summary["split"]
    lines = [
        "# Model benchmark: learned heads vs the hand-tuned scorecard",
        "",
        f"Written by `make bench` (`benchmarks/{Path(__file__).name}`) on {time.strftime('%Y-%m-%d')}: "
        f"default synthetic world (`propensity generate`, {world_config.n_accounts:,} accounts, "
        f"seed {world_config.seed}), the packaged default `model.yaml` and `scorecard.yaml` "
        "(`propensity/configs/`).",
        f"Out of time: train < {split['valid_start']} <= validation (early stopping, calibration) < "
        f"gap < test {split['test_start']}..{split['test_end']} (monthly snapshots, labels complete).",
        "Metrics on the test window with 95 % account-clustered bootstrap intervals; precision/recall at "
        f"k = {config.capacity_k} accounts per snapshot date; the oracle is the world's true probability;",
        "the base rate is the training share of positives. "
        "Brier skill = 1 - Brier / Brier of the base rate.",
        "",
        "## Acceptance figures (conversion head)",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| ROC-AUC model / oracle / scorecard / logistic | {figures['conversion_model_roc_auc']} / "
        f"{figures['conversion_oracle_roc_auc']} / {figures['conversion_scorecard_roc_auc']} / "
        f"{figures['conversion_logistic_roc_auc']} | |",
        f"| gap to the oracle | {figures['gap_to_oracle']} | <= 0.05 |",
        f"| gain over the scorecard | {figures['gain_over_scorecard']} | >= 0.08 |",
        f"| top-decile lift model / scorecard (ratio) | {figures['top_decile_lift_model']} / "
        f"{figures['top_decile_lift_scorecard']} ({figures['top_decile_lift_ratio']}x) | >= 1.5x |",
        f"| expected calibration error | {figures['conversion_model_ece']} | < 0.02 |",
        f"| fit head vs true fit: AUC on 'true fit above median' / Spearman | "
        f"{figures['fit_model_auc_true_fit_above_median']} / {figures['fit_model_spearman_true_fit']} | reported |",
        "",
        "## Learned points scorecard",
        "",
        "Each head as integer points per binned field (`propensity scorecard export`), learned on "
        "the rows the head learns from and scored on the same test window; targets: within 0.03 "
        "ROC-AUC of the model, above the hand-made card.",
        "",
        "| head | learned card | LightGBM model | hand-made card | model - learned | "
        "learned - hand-made | fields on the card |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {head} | {figures[f'{head}_learned_scorecard_roc_auc']:.3f} | "
            f"{figures[f'{head}_model_roc_auc']:.3f} | {figures[f'{head}_scorecard_roc_auc']:.3f} | "
            f"{figures[f'{head}_model_roc_auc'] - figures[f'{head}_learned_scorecard_roc_auc']:+.3f} | "
            f"{figures[f'{head}_learned_scorecard_roc_auc'] - figures[f'{head}_scorecard_roc_auc']:+.3f} | "
            f"{figures[f'{head}_learned_scorecard_fields']} |"
            for head in ("fit", "conversion")
        ),
        "",
        "## Verdicts (as the toolkit prints them)",
        "",
        *(f"- **{head}**: {sentence}" for head, sentence in result.verdicts.items()),
        "",
        f"## Reasons (conversion head, last test date {figures['reasons_as_of']})",
        "",
        f"- accounts in the true buying state whose top reason is an engagement or intent reason: "
        f"{figures['buying_top_reason_engagement_or_intent_share']:.1%} of {figures['buying_accounts']}",
        f"- no-fit trap accounts with engagement (students, competitors, vendors' staff) with a fit "
        f"reason among their negatives: {figures['trap_fit_reason_among_negatives_share']:.1%} of "
        f"{figures['engaged_trap_accounts']}",
        "",
        "## Comparison table",
        "",
        to_markdown(result.evaluation),
        "| head | scorer | Brier skill over the base rate |",
        "|---|---|---|",
        *brier_skill_rows(result),
        "",
    ]
    return "\n".join(lines)


def brier_skill_rows(result: RunResult) -> list[str]:
    """One row per probability scorer (the scorecard's points are not probabilities)."""
    return [
        f"| {r.head} | {r.scorer} | {r.brier_skill:+.3f} [{r.brier_skill_lo:+.3f}, "
        f"{r.brier_skill_hi:+.3f}] |"
        for r in result.evaluation.itertuples()
        if r.brier_skill == r.brier_skill  # NaN for scorers that are not probabilities
    ]
