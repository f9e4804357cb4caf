"""Fit-label ablation (issue 15, item 3): which label teaches the fit head what a good account is.

On generated worlds trained with the packaged configs, the fit head is fitted on one label design
at a time and judged the same way every time, out of time: ROC-AUC on the test window's rows
against "won new business" (the head's evaluation label), and per account against the world's
hidden ICP fit (Spearman, and ROC-AUC on "true fit above its median"). Designs:

* ``won``: first new-business win before the test window (censored there), customer base in
  (the default);
* ``won_no_base``: the same without the customer base (accounts that were customers before the
  first snapshot);
* ``opened_or_won``: a new-business opportunity opened before the test window, or a win (as
  6sense labels fit), customer base in;
* ``opened_or_won_no_base``: the same without the customer base;
* ``won_12m``: a win within 365 days of the row's snapshot (a shorter horizon), customer base in.

Positive-unlabelled learning is not a separate design: under the usual assumption (labelled
positives a random share of all positives) the PU classifier is the won-vs-rest classifier
divided by a constant, so its ranking, and every figure here, is that of ``won``.

Usage: ``python benchmarks/fit_labels.py [--out-dir benchmarks] [--worlds 20000:7,10000:3]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

DESIGNS = ("won", "won_no_base", "opened_or_won", "opened_or_won_no_base", "won_12m")
WORLDS = ((20_000, 7), (10_000, 3), (10_000, 5))


def opened_at(tables, rows: pd.DataFrame) -> pd.Series:
    """The first new-business opportunity opened strictly after each row's snapshot."""
    from propensity.spine import NEW_BUSINESS, _next_time

    opportunities = tables.opportunities
    new_business = opportunities[opportunities["type"].fillna(NEW_BUSINESS) == NEW_BUSINESS]
    return _next_time(rows, new_business, "created_at")


def design_label(design: str, rows: pd.DataFrame, opened: pd.Series, learn_only, t2) -> np.ndarray:
    won = rows["won_at"].notna() & (rows["won_at"] < t2)
    if design.startswith("opened_or_won"):
        label = won | (opened.notna() & (opened < t2))
    elif design == "won_12m":
        label = won & (rows["won_at"] <= rows["as_of"] + pd.Timedelta(days=365))
    else:
        label = won
    label = label.to_numpy(dtype=bool).copy()
    label[learn_only] = True  # the customer base: customers before the first snapshot
    return label.astype(int)


def measure_world(accounts: int, seed: int, workdir: Path) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model import packaged_model_config, packaged_scorecard

    from propensity.data.contract import load_tables
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.model.splits import SnapshotOutOfTime
    from propensity.runs.account import fit_against_truth, fit_settings, head_task
    from propensity.runs.labelled import account_rows, customer_base, labelled_features
    from propensity.runs.protocol import run_head

    folder = workdir / f"world_{accounts}_{seed}"
    generate_world(WorldConfig(n_accounts=accounts, seed=seed), folder, overwrite=True)
    tables, truth = load_tables(folder), read_truth(folder)
    config, scorecard = packaged_model_config(), packaged_scorecard()
    prepared = labelled_features(tables, config)
    data = prepared.data
    splitter = SnapshotOutOfTime(config.split, config.spine.horizon_days)
    windows = splitter.windows(data)
    base = customer_base(tables, prepared.feature_set, config, data["as_of"].min())
    results = []
    for design in DESIGNS:
        started = time.perf_counter()
        rows, learn_only = account_rows(
            data, windows, base if "no_base" not in design else base[:0]
        )
        head_windows = splitter.windows(rows)
        task = head_task(
            "fit", rows, head_windows, prepared.feature_set, scorecard, truth, learn_only
        )
        opened = opened_at(tables, rows)
        label = design_label(design, rows, opened, learn_only, head_windows.t2)
        task = type(task)(**{**task.__dict__, "fit_label": label})
        run = run_head(task, splitter, fit_settings(config, "fit"))
        table = run.evaluation.set_index("scorer")
        against = fit_against_truth(run.predictions, truth[0])
        development = head_windows.train | head_windows.valid
        results.append(
            {
                "accounts": accounts,
                "seed": seed,
                "design": design,
                "positives": int(label[development].sum()),
                "model_roc_auc": round(float(table.loc["model", "roc_auc"]), 4),
                "logistic_roc_auc": round(float(table.loc["logistic", "roc_auc"]), 4),
                "scorecard_roc_auc": round(float(table.loc["scorecard", "roc_auc"]), 4),
                "oracle_roc_auc": round(float(table.loc["oracle", "roc_auc"]), 4),
                "spearman_true_fit": round(against["model_spearman_true_fit"], 3),
                "auc_true_fit_above_median": round(against["model_auc_true_fit_above_median"], 3),
                "ships": run.shipped.kind,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return results


def markdown(results: list[dict], seconds: float) -> str:
    frame = pd.DataFrame(results)
    lines = [
        "# Fit-label ablation: which label teaches the fit head",
        "",
        f"Written by `benchmarks/fit_labels.py` on {time.strftime('%Y-%m-%d')}; "
        f"{platform.machine()}, Python {platform.python_version()}; {seconds:.0f} s. "
        "Packaged configs; the fit head trained on one label design at a time and judged on "
        "the same out-of-time test rows (ROC-AUC against 'won new business') and, per account, "
        "against the hidden ICP fit. See the script's docstring for the designs.",
        "",
        "| accounts | seed | design | positives | model | logistic | scorecard | oracle "
        "| Spearman with true fit | AUC on true fit > median | ships |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        *(
            f"| {r.accounts:,} | {r.seed} | {r.design} | {r.positives:,} | {r.model_roc_auc:.3f} "
            f"| {r.logistic_roc_auc:.3f} | {r.scorecard_roc_auc:.3f} | {r.oracle_roc_auc:.3f} "
            f"| {r.spearman_true_fit:.3f} | {r.auc_true_fit_above_median:.3f} | {r.ships} |"
            for r in frame.itertuples()
        ),
        "",
        "Mean over the worlds:",
        "",
        "| design | model | Spearman with true fit | AUC on true fit > median |",
        "|---|---:|---:|---:|",
    ]
    means = frame.groupby("design", sort=False)[
        ["model_roc_auc", "spearman_true_fit", "auc_true_fit_above_median"]
    ].mean()
    lines += [
        f"| {design} | {m.model_roc_auc:.3f} | {m.spearman_true_fit:.3f} "
        f"| {m.auc_true_fit_above_median:.3f} |"
        for design, m in means.iterrows()
    ]
    return "\n".join([*lines, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    parser.add_argument("--worlds", default=",".join(f"{a}:{s}" for a, s in WORLDS))
    args = parser.parse_args(argv)
    worlds = [tuple(int(x) for x in item.split(":")) for item in args.worlds.split(",")]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="fit-labels-"))
    results = []
    try:
        for accounts, seed in worlds:
            results += measure_world(accounts, seed, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "fit_labels.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out_dir / "fit_labels.md").write_text(markdown(results, seconds))
    print(f"wrote {args.out_dir / 'fit_labels.md'} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
