"""Benchmarks of propensity (not part of the package): ``make bench`` and ``make bench-real``.

* ``features.py``: feature-build throughput and peak memory on generated worlds, one process per
  size -> ``benchmarks/features.md`` / ``.json``;
* ``model.py``: the default world trained with the packaged default configs, learned heads vs the
  scorecard, the logistic baseline, the base rate and the oracle -> ``benchmarks/model.md`` /
  ``.json``;
* ``sizes.py`` (``--account-sizes``): the packaged default configs on generated worlds of 1,000 to
  20,000 accounts (two seeds each), per head the model, baselines, oracle and the scorer it ships
  -> ``benchmarks/sizes.md`` / ``.json``;
* ``robustness.py`` (``--robustness``): the packaged default configs on worlds whose knobs
  differ as companies do (research phase, engagement lag, intent lead and coverage, anonymous
  traffic, win rate, sales cycle, weekly snapshots), per head model, shipped, baselines, learned
  card, oracle, share of the oracle's lift -> ``benchmarks/robustness.md`` / ``.json``;
* ``feature_ablation.py`` (``--ablation``): on five of the robustness worlds, the conversion
  model refitted without each feature group (the weekly-rhythm groups, intent, history) ->
  ``benchmarks/feature_ablation.md`` / ``.json``;
* ``ceiling.py`` (``--ceiling``): on every robustness world, the Bayes bound (the exact
  posterior of the world's own hidden chain) and the conversion model given also the true fit
  or the filtered journey state, and the bound as the signals fall behind the journey: how
  much of the oracle's lift any model can reach -> ``benchmarks/ceiling.md`` / ``.json``;
* ``journey.py`` (``--journey``): on every robustness world, a journey-stage chain learned from
  the observable tables by EM (lags chosen by likelihood) and what its state probabilities add
  to the conversion model and the logistic baseline -> ``benchmarks/journey.md`` / ``.json``;
* ``faults.py`` (``--faults``): what a user reads and what is left when a job meets a fault
  (dead or mistyped store, dates out of range, an existing run folder, a partial run, a full
  disk, bad files), through the real CLI -> ``benchmarks/faults.md`` / ``.json``;
* ``monitor.py`` (``--monitor``): the default world one year longer, scored monthly over its
  last year by a model trained on its first two, with and without a regime change, and
  monitored -> ``benchmarks/monitor.md`` / ``.json``;
* ``explorer.py`` (``--explorer``): the account explorer for a 100,000-account world: file size,
  build time, load and search time in headless Chromium, screenshots -> ``benchmarks/explorer.md``;
* ``table_drift.py`` (``--table-drift``): table mode on the planted-drift campaign export, with
  the measurements its defaults rest on -> ``benchmarks/table_drift.md`` / ``.json``;
* ``scoring.py`` (``--scoring``): scoring with reasons at scale: the conversion head's trees
  against its ROC-AUC and reasons speed, and 100,000 and 1,000,000 accounts scored with and
  without reasons by the code of ``score`` and ``export`` -> ``benchmarks/scoring.md`` /
  ``.json``;
* ``spark.py`` (``--spark``): DuckDB against Spark local[1] and local[2] on one world: the
  feature build and scoring with reasons -> ``benchmarks/spark.md`` / ``.json``;
* ``real_data.py`` (``--real``): table mode on the three public exports in the real-data folder
  (``$PROPENSITY_REAL_DATA``, else ``../shared/data/real``) -> ``benchmarks/real_data.md`` /
  ``.json``.

Usage: ``python benchmarks/bench.py [--sizes 1M,10M,20M,100M] [--workdir data/bench]
[--out benchmarks] [--features|--model|--account-sizes|--robustness|--ablation|--ceiling|--journey|--faults|--monitor|--explorer|--table-drift|--scoring|--spark|--real]``;
with none of them, features, model, sizes, robustness, the feature ablation, the observable ceiling, the learned journey stage, the fault table, monitoring, the explorer, table mode under drift,
scoring at scale, then Spark (``--sizes`` is the feature
benchmark's list of sizes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# features.py imports only the standard library at the top; each benchmark's propensity imports
# load when it runs, so the --measure subprocess holds nothing but the feature build
from features import DEFAULT_SIZES, SIZES


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default=",".join(DEFAULT_SIZES), help=f"comma list of {list(SIZES)}"
    )
    parser.add_argument("--workdir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--accounts", type=int, help=argparse.SUPPRESS)  # smoke test of --model
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--model", action="store_true", help="only the model benchmark (default world)"
    )
    only.add_argument("--features", action="store_true", help="only the feature-build benchmark")
    only.add_argument(
        "--account-sizes",
        action="store_true",
        help="only the size benchmark (worlds of 1,000 to 20,000 accounts)",
    )
    only.add_argument(
        "--robustness",
        action="store_true",
        help="only the robustness benchmark (worlds that differ as companies do)",
    )
    only.add_argument(
        "--ablation",
        action="store_true",
        help="only the feature ablation (what each feature group is worth, world by world)",
    )
    only.add_argument(
        "--ceiling",
        action="store_true",
        help="only the observable ceiling (how much of the oracle's lift the data allow)",
    )
    only.add_argument(
        "--journey",
        action="store_true",
        help="only the learned journey stage (what a journey chain learned from the data adds)",
    )
    only.add_argument(
        "--faults", action="store_true", help="only the fault table (through the real CLI)"
    )
    only.add_argument("--monitor", action="store_true", help="only the monitoring benchmark")
    only.add_argument("--explorer", action="store_true", help="only the explorer benchmark")
    only.add_argument("--real", action="store_true", help="only the real-data table-mode benchmark")
    only.add_argument(
        "--table-drift", action="store_true", help="only table mode on the planted-drift export"
    )
    only.add_argument("--scoring", action="store_true", help="only scoring with reasons at scale")
    only.add_argument("--spark", action="store_true", help="only DuckDB against Spark local mode")
    return parser


def main(argv: list[str] | None = None) -> None:
    cli = parser()
    args = cli.parse_args(argv)
    if args.real:
        from real_data import real_data_benchmark

        real_data_benchmark(args.out)
        return
    if args.table_drift:
        from table_drift import table_drift_benchmark

        table_drift_benchmark(args.out)
        return
    if args.scoring:
        from scoring import scoring_benchmark

        scoring_benchmark(args.out, args.workdir / "scoring")
        return
    if args.spark:
        from spark import spark_benchmark

        spark_benchmark(args.out, args.workdir / "scoring")
        return
    if args.account_sizes:
        from sizes import sizes_benchmark

        sizes_benchmark(args.out, args.workdir / "sizes")
        return
    if args.robustness:
        from robustness import robustness_benchmark

        robustness_benchmark(args.out, args.workdir / "robustness")
        return
    if args.ablation:
        from feature_ablation import ablation_benchmark

        ablation_benchmark(args.out, args.workdir / "ablation")
        return
    if args.ceiling:
        from ceiling import ceiling_benchmark

        ceiling_benchmark(args.out, args.workdir / "ceiling")
        return
    if args.journey:
        from journey import journey_benchmark

        journey_benchmark(args.out, args.workdir / "journey")
        return
    if args.faults:
        from faults import faults_benchmark

        faults_benchmark(args.out)
        return
    if args.monitor:
        from monitor import monitor_benchmark

        monitor_benchmark(args.workdir, args.out, accounts=args.accounts)
        return
    if args.explorer:
        from explorer import explorer_benchmark

        explorer_benchmark(
            args.workdir, args.out, **({"accounts": args.accounts} if args.accounts else {})
        )
        return
    if args.measure:
        from features import measure

        print(json.dumps(measure(args.measure)))
        return
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        cli.error(f"unknown sizes {unknown}; allowed: {list(SIZES)}")
    if not args.model:
        from features import features_benchmark

        features_benchmark(sizes, args.workdir, args.out)
    if not args.features:
        from model import model_benchmark

        model_benchmark(args.workdir, args.out, accounts=args.accounts)
    if not (args.model or args.features):
        from sizes import sizes_benchmark

        sizes_benchmark(args.out, args.workdir / "sizes")
        from robustness import robustness_benchmark

        robustness_benchmark(args.out, args.workdir / "robustness")
        from feature_ablation import ablation_benchmark

        ablation_benchmark(args.out, args.workdir / "ablation")
        from ceiling import ceiling_benchmark

        ceiling_benchmark(args.out, args.workdir / "ceiling")
        from journey import journey_benchmark

        journey_benchmark(args.out, args.workdir / "journey")
        from faults import faults_benchmark

        faults_benchmark(args.out)
        from monitor import monitor_benchmark

        monitor_benchmark(args.workdir, args.out)
        from explorer import explorer_benchmark

        explorer_benchmark(args.workdir, args.out)
        from table_drift import table_drift_benchmark

        table_drift_benchmark(args.out)
        from scoring import scoring_benchmark

        scoring_benchmark(args.out, args.workdir / "scoring")
        from spark import spark_benchmark

        spark_benchmark(args.out, args.workdir / "scoring")


if __name__ == "__main__":
    main()
