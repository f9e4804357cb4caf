"""Feature-build benchmark: throughput and peak memory on generated worlds (``make bench``).

Each size is measured in a fresh subprocess so its peak resident memory is its own. Timings
cover the whole path from files to the feature matrix (load + validate, spine, features), on a
monthly spine over the two years of the world with the full feature set. Results are written to
``benchmarks/features.md`` (linked from the README) and ``benchmarks/features.json``.

Also the model benchmark (``--model``): the default world trained with ``configs/model.yaml``,
written to ``benchmarks/model.md`` and ``benchmarks/model.json``.

And the real-data benchmark (``--real``, ``make bench-real``): table mode on the three public
exports in ``../shared/data/real`` (X Education 5-fold, Olist and Maven out of time), written to
``benchmarks/real_data.md`` and ``benchmarks/real_data.json``.

Usage: ``python benchmarks/bench.py [--sizes 1M,10M,20M,100M] [--workdir data/bench] [--model|--features|--real]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

# name -> (accounts, engagement scale); about 33 events per account at scale 1 over two years
SIZES = {
    "1M": (10_000, 3.0),
    "10M": (100_000, 3.0),
    "20M": (100_000, 6.0),
    "100M": (500_000, 6.0),
}
DEFAULT_SIZES = ("1M", "10M", "20M", "100M")
MEMORY_GUARD_GB = 20.0  # skip a size whose projected peak would not fit this machine


def measure(folder: Path) -> dict:
    """Load, spine and features for one world folder, in this process."""
    from propensity.data.contract import load_tables
    from propensity.features import FeatureConfig, build_features
    from propensity.spine import SpineConfig, build_spine

    started = time.perf_counter()
    tables = load_tables(folder)
    loaded = time.perf_counter()
    spine = build_spine(tables, SpineConfig(cadence="monthly"))
    spined = time.perf_counter()
    feature_set = build_features(tables, spine, FeatureConfig())
    built = time.perf_counter()
    events = len(tables.events)
    total = built - started
    return {
        "events": events,
        "accounts": len(tables.accounts),
        "spine_rows": len(spine),
        "features": len(feature_set.model_columns),
        "load_validate_s": round(loaded - started, 2),
        "spine_s": round(spined - loaded, 2),
        "features_s": round(built - spined, 2),
        "total_s": round(total, 2),
        "events_per_s_end_to_end": round(events / total),
        "events_per_s_features": round(events / (built - spined)),
        "spine_rows_per_s_end_to_end": round(len(spine) / total),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
    }


def ensure_world(name: str, workdir: Path) -> Path:
    from propensity.data.world import WorldConfig, generate_world

    accounts, scale = SIZES[name]
    folder = workdir / f"world_{name}"
    if not (folder / "events.parquet").exists():
        config = WorldConfig(
            n_accounts=accounts, seed=1, engagement_scale=scale, truth_dates="monthly"
        )
        print(
            f"generating bench world {name}: {accounts:,} accounts, engagement scale {scale}",
            flush=True,
        )
        generate_world(config, folder, overwrite=True)
    return folder


def run(sizes: list[str], workdir: Path, out_dir: Path) -> list[dict]:
    results = []
    for name in sizes:
        if results and results[-1].get("peak_rss_gb"):
            last = results[-1]
            projected = (
                last["peak_rss_gb"]
                * SIZES[name][0]
                * SIZES[name][1]
                / (SIZES[last["size"]][0] * SIZES[last["size"]][1])
            )
            if projected > MEMORY_GUARD_GB:
                results.append(
                    {
                        "size": name,
                        "skipped": f"projected peak {projected:.1f} GB > {MEMORY_GUARD_GB} GB",
                    }
                )
                continue
        folder = ensure_world(name, workdir)
        print(f"measuring {name} ...", flush=True)
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--measure", str(folder)],
            capture_output=True,
            text=True,
        )
        if child.returncode != 0:
            results.append({"size": name, "failed": child.stderr.strip().splitlines()[-1:]})
            continue
        result = {"size": name, **json.loads(child.stdout.strip().splitlines()[-1])}
        print(json.dumps(result), flush=True)
        results.append(result)
    write_report(results, out_dir)
    return results


def write_report(results: list[dict], out_dir: Path) -> None:
    from propensity.io import write_text

    machine = f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}"
    lines = [
        "# Feature-build benchmark",
        "",
        f"Written by `make bench` ({Path(__file__).name}) on {time.strftime('%Y-%m-%d')}; machine: {machine}.",
        "Worlds from `propensity generate` (seed 1), monthly spine over two years, full feature set",
        "(firmographic, engagement, intent, history). Each size runs in a fresh process; *end to end*",
        "is files -> validated tables -> spine -> feature matrix; peak RSS is that process's maximum.",
        "",
        "| events | accounts | spine rows | features | load+validate s | spine s | features s | total s "
        "| events/s end to end | events/s features | spine rows/s | peak RSS GB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "events" not in r:
            lines.append(
                f"| {r['size']} | | | | | | | | | | | {r.get('skipped') or r.get('failed')} |"
            )
            continue
        lines.append(
            f"| {r['events']:,} | {r['accounts']:,} | {r['spine_rows']:,} | {r['features']} | {r['load_validate_s']} "
            f"| {r['spine_s']} | {r['features_s']} | {r['total_s']} | {r['events_per_s_end_to_end']:,} "
            f"| {r['events_per_s_features']:,} | {r['spine_rows_per_s_end_to_end']:,} | {r['peak_rss_gb']} |"
        )
    lines += [
        "",
        "Targets (issue 4): >= 1M events/s end to end and < 8 GB peak at about 20M events; 100M events under 16 GB.",
        "",
    ]
    write_text("\n".join(lines), out_dir / "features.md")
    write_text(json.dumps(results, indent=2) + "\n", out_dir / "features.json")
    print(f"wrote {out_dir / 'features.md'}")


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def model_benchmark(workdir: Path, out_dir: Path) -> dict:
    """Train on the default world (seed 7) with configs/model.yaml; write benchmarks/model.md + .json."""
    from propensity.data.contract import load_tables
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.evaluate import to_markdown
    from propensity.io import write_text
    from propensity.model.config import ModelConfig
    from propensity.model.scorecard import Scorecard
    from propensity.runs.account import reason_checks, run_training, write_run

    world = workdir / "world_default"
    generate_world(WorldConfig(), world, overwrite=True)
    config = ModelConfig.from_yaml()
    started = time.perf_counter()
    outputs = run_training(load_tables(world), config, Scorecard.from_yaml(), read_truth(world))
    seconds = time.perf_counter() - started
    write_run(outputs, workdir / "run_default")
    table = outputs.evaluation.set_index(["head", "scorer"])
    conversion = table.loc["conversion"]
    figures = {
        "conversion_model_roc_auc": round(float(conversion.loc["model", "roc_auc"]), 3),
        "conversion_oracle_roc_auc": round(float(conversion.loc["oracle", "roc_auc"]), 3),
        "conversion_scorecard_roc_auc": round(float(conversion.loc["scorecard", "roc_auc"]), 3),
        "conversion_logistic_roc_auc": round(float(conversion.loc["logistic", "roc_auc"]), 3),
        "gap_to_oracle": round(
            float(conversion.loc["oracle", "roc_auc"] - conversion.loc["model", "roc_auc"]), 3
        ),
        "gain_over_scorecard": round(
            float(conversion.loc["model", "roc_auc"] - conversion.loc["scorecard", "roc_auc"]), 3
        ),
        "top_decile_lift_model": round(float(conversion.loc["model", "lift_10"]), 2),
        "top_decile_lift_scorecard": round(float(conversion.loc["scorecard", "lift_10"]), 2),
        "top_decile_lift_ratio": round(
            float(conversion.loc["model", "lift_10"] / conversion.loc["scorecard", "lift_10"]), 2
        ),
        "conversion_model_ece": round(float(conversion.loc["model", "ece"]), 4),
        "fit_model_auc_true_fit_above_median": round(
            outputs.fit_truth["model_auc_true_fit_above_median"], 3
        ),
        "fit_model_spearman_true_fit": round(outputs.fit_truth["model_spearman_true_fit"], 3),
        "train_evaluate_seconds": round(seconds, 1),
    }
    truth_accounts, truth_conversion = read_truth(world)
    checks = reason_checks(outputs.result, truth_conversion, truth_accounts)
    figures["reasons_as_of"] = checks["as_of"]
    figures["buying_accounts"] = checks["buying_accounts"]
    figures["buying_top_reason_engagement_or_intent_share"] = round(
        checks["buying_top_reason_engagement_or_intent_share"], 3
    )
    figures["engaged_trap_accounts"] = checks["engaged_trap_accounts"]
    figures["trap_fit_reason_among_negatives_share"] = round(
        checks["trap_fit_reason_among_negatives_share"], 3
    )
    split = outputs.result.split.describe()
    lines = [
        "# Model benchmark: learned heads vs the hand-tuned scorecard",
        "",
        f"Written by `make bench` ({Path(__file__).name}) on {time.strftime('%Y-%m-%d')}: default synthetic world "
        "(`propensity generate`, 20,000 accounts, seed 7), `configs/model.yaml`, `configs/scorecard.yaml`.",
        f"Out of time: train < {split['valid_start']} <= validation (early stopping, calibration) < "
        f"gap < test {split['test_start']}..{split['test_end']} (monthly snapshots, labels complete).",
        "Metrics on the test window with 95 % account-clustered bootstrap intervals; precision/recall at "
        f"k = {config.capacity_k} accounts per snapshot date; the oracle is the world's true probability.",
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
        to_markdown(outputs.evaluation),
    ]
    write_text("\n".join(lines), out_dir / "model.md")
    write_text(json.dumps(figures, indent=2) + "\n", out_dir / "model.json")
    print(json.dumps(figures, indent=2))
    return figures


REAL_TARGETS = {
    "x_education": {"roc_auc": 0.89},
    "olist": {"roc_auc": 0.69, "lift_10": 2.3},
}


def _table_figures(run, seconds: float) -> dict:
    from propensity.runs.table import summary

    evaluation = run.evaluation.set_index("scorer")
    figures = {
        scorer: {
            metric: round(float(evaluation.loc[scorer, metric]), 4)
            for metric in (
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
        }
        for scorer in evaluation.index
    }
    facts = summary(run)
    return {
        "evaluation": figures,
        "protocol": run.protocol,
        "suspects": list(run.screen.suspects),
        "duplicates": run.duplicates,
        "fold_roc_auc": facts["fold_roc_auc"],
        "rows": facts["rows"],
        "labelled_rows": facts["labelled_rows"],
        "positives": facts["positives"],
        "features": len(run.columns),
        "verdict": run.verdict,
        "beats_base_rate": run.beats_base_rate,
        "seconds": round(seconds, 1),
    }


def real_data_benchmark(out_dir: Path) -> dict:
    """Table mode on the three real exports; figures and targets to benchmarks/real_data.*"""
    from propensity.data.adapters import REAL_DATA, SOURCES, real_data_available
    from propensity.io import write_text
    from propensity.runs.table import run_table

    missing = [name for name in SOURCES if not real_data_available(name)]
    if missing:
        raise SystemExit(f"real data for {missing} not found under {REAL_DATA}")

    def table_run(name: str, **options):
        source = SOURCES[name](
            **({"join_closed_deals": True} if options.pop("join", False) else {})
        )
        config = source.table_config(**options)
        start = time.perf_counter()
        run = run_table(source.frame, config, name)
        return _table_figures(run, time.perf_counter() - start)

    results = {
        "x_education": table_run("x_education"),
        "x_education_suspects_kept": table_run("x_education", keep_suspects=True),
        "olist": table_run("olist"),
        "olist_closed_deals_joined": table_run("olist", join=True),
        "maven": table_run("maven"),
        "maven_suspects_kept": table_run("maven", keep_suspects=True),
    }
    checks = {
        "x_education screen flags Tags, Lead Quality, Last Activity, Last Notable Activity": {
            "Tags",
            "Lead Quality",
            "Last Activity",
            "Last Notable Activity",
        }
        <= set(results["x_education"]["suspects"]),
        "x_education model ROC-AUC >= 0.89 (suspects excluded)": results["x_education"][
            "evaluation"
        ]["model"]["roc_auc"]
        >= 0.89,
        "olist model ROC-AUC >= 0.69": results["olist"]["evaluation"]["model"]["roc_auc"] >= 0.69,
        "olist model top-decile lift >= 2.3": results["olist"]["evaluation"]["model"]["lift_10"]
        >= 2.3,
        "olist model Brier below the base-rate Brier": results["olist"]["evaluation"]["model"][
            "brier"
        ]
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
    report = {
        "machine": {"python": platform.python_version(), "cores": _cores()},
        "results": results,
        "checks": checks,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(json.dumps(report, indent=2, default=str) + "\n", out_dir / "real_data.json")
    write_text(_real_data_markdown(report), out_dir / "real_data.md")
    print(_real_data_markdown(report))
    return report


def _real_data_markdown(report: dict) -> str:
    def cell(figures: dict, metric: str, digits: int = 3) -> str:
        value, lo, hi = (
            figures.get(metric),
            figures.get(f"{metric}_lo"),
            figures.get(f"{metric}_hi"),
        )
        if value is None or value != value:
            return ""
        bounds = f" [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None and lo == lo else ""
        return f"{value:.{digits}f}{bounds}"

    results = report["results"]
    lines = [
        "# Table mode on real public exports",
        "",
        "Written by `make bench-real` (`python benchmarks/bench.py --real`) from the files in",
        "`../shared/data/real` (see each folder's SOURCE.md; the data is not in this repository).",
        "Intervals are 95 % bootstrap intervals over rows. X Education: 5-fold stratified K-fold,",
        "repeated twice, identical feature vectors in one fold; the table shows the first repeat's",
        "pooled held-out rows and the spread over all 10 folds. Olist and Maven: out of time (train",
        "on the earliest 60 %, validate on the next 20 %, test on the latest 20 % by the row's time).",
        "Brier skill = 1 - Brier / Brier of the base rate (the training share of positives).",
        "",
        "| run | protocol | scorer | ROC-AUC | Brier | Brier skill | lift@10 | suspects excluded |",
        "|---|---|---|---|---|---|---|---|",
    ]
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
                f"{cell(row, 'roc_auc')} | {row['brier']:.4f} | {cell(row, 'brier_skill')} | "
                f"{cell(row, 'lift_10', 2)} | {suspects} |"
            )
    lines += ["", "## Verdicts (as the toolkit prints them)", ""]
    for name, figures in results.items():
        lines.append(f"- **{name}**: {figures['verdict']}")
    lines += ["", "## Duplicates among labelled rows", ""]
    lines.append("| run | rows | exact duplicate rows | vectors with both outcomes | their rows |")
    lines.append("|---|---:|---:|---:|---:|")
    for name, figures in results.items():
        d = figures["duplicates"]
        lines.append(
            f"| {name} | {d['rows']:,} | {d['exact_duplicate_rows']:,} | {d['conflicting_vectors']:,} | {d['conflicting_rows']:,} |"
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(DEFAULT_SIZES), help=f"comma list of {list(SIZES)}"
    )
    parser.add_argument("--workdir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--model", action="store_true", help="only the model benchmark (default world)"
    )
    parser.add_argument("--features", action="store_true", help="only the feature-build benchmark")
    parser.add_argument(
        "--real", action="store_true", help="only the real-data table-mode benchmark"
    )
    args = parser.parse_args(argv)
    if args.real:
        real_data_benchmark(args.out)
        return
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown}; allowed: {list(SIZES)}")
    if not args.model:
        run(sizes, args.workdir, args.out)
    if not args.features:
        model_benchmark(args.workdir, args.out)


if __name__ == "__main__":
    main()
