"""Real-data benchmark (``make bench-real``): table mode on the three public exports in the
real-data folder (``$PROPENSITY_REAL_DATA``, else ``../shared/data/real``): X Education 5-fold,
Olist and Maven out of time. Written to ``benchmarks/real_data.md`` and
``benchmarks/real_data.json``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from propensity import settings
from propensity.data.adapters import SOURCES, real_data_available
from propensity.io import write_text
from propensity.runs.folder import RunResult
from propensity.runs.table import train_table_model

METRICS = (
    "roc_auc",
    "roc_auc_lo",
    "roc_auc_hi",
    "pr_auc",
    "brier",
    "brier_skill",
    "brier_skill_lo",
    "brier_skill_hi",
    "ece",
    "lift_10",
    "lift_10_lo",
    "lift_10_hi",
)

# run name -> (source, options: ``join`` joins Olist's closed deals, the rest go to the TableConfig)
RUNS: dict[str, tuple[str, dict]] = {
    "x_education": ("x_education", {}),
    "x_education_suspects_kept": ("x_education", {"keep_suspects": True}),
    "olist": ("olist", {}),
    "olist_closed_deals_joined": ("olist", {"join": True}),
    "maven": ("maven", {}),
    "maven_suspects_kept": ("maven", {"keep_suspects": True}),
}


def table_figures(result: RunResult, seconds: float) -> dict:
    evaluation = result.evaluation.set_index("scorer")
    facts = result.summary
    return {
        "evaluation": {
            scorer: {metric: round(float(evaluation.loc[scorer, metric]), 4) for metric in METRICS}
            for scorer in evaluation.index
        },
        "protocol": facts["protocol"],
        "suspects": list(facts["suspects"]),
        "duplicates": facts["duplicates"],
        "fold_roc_auc": facts["fold_roc_auc"],
        "rows": facts["rows"],
        "labelled_rows": facts["labelled_rows"],
        "positives": facts["positives"],
        "features": len(facts["features"]),
        "verdict": facts["verdict"],
        "beats_base_rate": facts["beats_base_rate"],
        "shipped": facts["shipped"]["reason"],
        "warnings": facts["warnings"],
        "base_rates": {k: v if v is None else round(v, 4) for k, v in facts["base_rates"].items()},
        "period_auc": facts["period_auc"],
        "period_auc_without_indicators": facts["period_auc_without_indicators"],
        "period_indicators": [
            c
            for c, check, verdict in result.screen.table[["column", "check", "verdict"]].itertuples(
                index=False
            )
            if check == "period_indicator" and verdict == "exclude"
        ],
        "seconds": round(seconds, 1),
    }


def table_run(name: str, real_dir: Path, **options) -> dict:
    joined = {"join_closed_deals": True} if options.pop("join", False) else {}
    source = SOURCES[name](real_dir=real_dir, **joined)
    config = source.table_config(**options)
    start = time.perf_counter()
    result = train_table_model(source.frame, config, name)
    return table_figures(result, time.perf_counter() - start)


def checks_of(results: dict) -> dict[str, bool]:
    def model(run: str) -> dict:
        return results[run]["evaluation"]["model"]

    return {
        "x_education screen flags Tags, Lead Quality, Last Activity, Last Notable Activity": {
            "Tags",
            "Lead Quality",
            "Last Activity",
            "Last Notable Activity",
        }
        <= set(results["x_education"]["suspects"]),
        "x_education model ROC-AUC >= 0.89 (suspects excluded)": model("x_education")["roc_auc"]
        >= 0.89,
        "olist model ROC-AUC >= 0.69": model("olist")["roc_auc"] >= 0.69,
        "olist model top-decile lift >= 2.3": model("olist")["lift_10"] >= 2.3,
        "olist model Brier below the base-rate Brier": model("olist")["brier"]
        < results["olist"]["evaluation"]["base_rate"]["brier"],
        "olist closed-deal fields flagged when joined": len(
            results["olist_closed_deals_joined"]["suspects"]
        )
        >= 12,
        "maven screen flags close_value, close_date, days_to_close": {
            "close_value",
            "close_date",
            "days_to_close",
        }
        <= set(results["maven"]["suspects"]),
    }


def real_data_benchmark(out_dir: Path) -> dict:
    """Table mode on the three real exports; figures and targets to benchmarks/real_data.*"""
    real_dir = settings.real_data_dir()
    missing = [name for name in SOURCES if not real_data_available(name, real_dir)]
    if missing:
        raise SystemExit(
            f"real data for {missing} not found under {real_dir} "
            f"(set {settings.REAL_DATA_ENV} to the folder holding the exports)"
        )
    results = {
        run: table_run(source, real_dir, **options) for run, (source, options) in RUNS.items()
    }
    report = {
        "machine": {"python": platform.python_version(), "cores": os.cpu_count() or 1},
        "results": results,
        "checks": checks_of(results),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = real_data_markdown(report, real_dir)
    write_text(json.dumps(report, indent=2, default=str) + "\n", out_dir / "real_data.json")
    write_text(markdown, out_dir / "real_data.md")
    print(markdown)
    return report


def _figure(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(figures: dict, metric: str, digits: int = 3) -> str:
    value, lo, hi = figures.get(metric), figures.get(f"{metric}_lo"), figures.get(f"{metric}_hi")
    if value is None or value != value:
        return ""
    bounds = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and lo == lo else ""
    return f"{value:.{digits}f}{bounds}"


def _shown(folder: Path) -> str:
    """The folder relative to the working directory when that is shorter (the default reads
    ``../shared/data/real`` as before)."""
    try:
        relative = os.path.relpath(folder)
    except ValueError:  # another drive
        return str(folder)
    return relative if len(relative) <= len(str(folder)) else str(folder)


def _evaluation_rows(results: dict) -> list[str]:
    lines = []
    for name, figures in results.items():
        protocol = figures["protocol"]["protocol"].replace("_", " ")
        kept = name.endswith("suspects_kept")
        for scorer in ("model", "logistic", "base_rate"):
            row = figures["evaluation"][scorer]
            suspects = (
                ("kept: " if kept else "") + (", ".join(figures["suspects"]) or "none")
                if scorer == "model"
                else ""
            )
            lines.append(
                f"| {name if scorer == 'model' else ''} | {protocol if scorer == 'model' else ''} | {scorer} | "
                f"{_cell(row, 'roc_auc')} | {row['brier']:.4f} | {_cell(row, 'brier_skill')} | "
                f"{_cell(row, 'lift_10', 2)} | {suspects} |"
            )
    return lines


def real_data_markdown(report: dict, real_dir: Path) -> str:
    results = report["results"]
    lines = [
        "# Table mode on real public exports",
        "",
        f"Written by `make bench-real` (`benchmarks/{Path(__file__).name}`) from the files in",
        f"`{_shown(real_dir)}` (see each folder's SOURCE.md; the data is not in this repository).",
        "Intervals are 95 % bootstrap intervals over rows. X Education: 5-fold stratified K-fold,",
        "repeated twice, identical feature vectors in one fold; the table shows the first repeat's",
        "pooled held-out rows and the spread over all 10 folds. Olist and Maven: out of time (train",
        "on the earliest 60 %, validate on the next 20 %, test on the latest 20 % by the row's time).",
        "Brier skill = 1 - Brier / Brier of the base rate (the training share of positives).",
        "",
        "| run | protocol | scorer | ROC-AUC | Brier | Brier skill | lift@10 | suspects excluded |",
        "|---|---|---|---|---|---|---|---|",
        *_evaluation_rows(results),
        "",
        "## Verdicts (as the toolkit prints them)",
        "",
        *(f"- **{name}**: {figures['verdict']}" for name, figures in results.items()),
        "",
        "## What ships, drift, warnings",
        "",
        "Period AUC: how well the columns together tell the later rows from the earlier ones (out",
        "of time: validation window vs training window; K-fold: the last 40 % of the file vs the",
        "first), all columns / without the period indicators. Spread: ROC-AUC over the successive",
        "out-of-time folds (rolling origin) or the K-fold folds.",
        "",
        "| run | ships | base rate train / valid / test | period AUC | period indicators | model ROC-AUC spread |",
        "|---|---|---|---|---|---|",
    ]
    for name, figures in results.items():
        r, spread = figures["base_rates"], figures["fold_roc_auc"]["model"]
        lines.append(
            f"| {name} | {figures['shipped']} | {r['train']:.3f} / {r['validation']:.3f} / "
            f"{'-' if r['test'] is None else format(r['test'], '.3f')} | "
            f"{figures['period_auc']:.3f} / "
            f"{_figure(figures['period_auc_without_indicators'])} | "
            f"{', '.join(figures['period_indicators']) or 'none'} | "
            f"{spread['mean']:.3f} ± {spread['sd']:.3f} |"
        )
    lines += ["", "Warnings:", ""]
    lines += [
        f"- **{name}**: {warning}"
        for name, figures in results.items()
        for warning in figures["warnings"]
    ] or ["- none"]
    lines += [
        "",
        "## Duplicates among labelled rows",
        "",
        "| run | rows | exact duplicate rows in the file | on the model's columns | vectors with both outcomes | their rows |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, figures in results.items():
        d = figures["duplicates"]
        lines.append(
            f"| {name} | {d['rows']:,} | {d['exact_duplicate_rows_in_file']:,} | {d['exact_duplicate_rows']:,} | {d['conflicting_vectors']:,} | {d['conflicting_rows']:,} |"
        )
    spread = results["x_education"]["fold_roc_auc"]["model"]
    lines += [
        "",
        f"X Education model ROC-AUC over all folds: {spread['mean']:.3f} ± {spread['sd']:.3f} (sd).",
        "",
        "## Targets (issue 9)",
        "",
        "| target | met |",
        "|---|---|",
        *[f"| {text} | {'yes' if met else '**no**'} |" for text, met in report["checks"].items()],
        "",
    ]
    return "\n".join(lines)
