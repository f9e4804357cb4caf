"""Learned journey stage (part of ``make bench``): what a hidden-Markov journey filter learned from
the observable tables adds to the conversion model, on every robustness world; written to
``benchmarks/journey.md`` and ``.json``.

Per world (the robustness protocol: 10,000 accounts, seed 7, packaged configuration, the
out-of-time test window) the chain of :mod:`journey_hmm` is fitted by EM on the weeks before
the training window ends, its lags chosen by likelihood, and its state probabilities and
13-week opening chance are given to the conversion model and to the logistic baseline (each
fitted as in ``ceiling.py``). The lags it chose stand next to the world's true ones.

Usage: ``python benchmarks/journey.py [--out-dir benchmarks] [--settings default,...]``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from ceiling import conversion_setup
from feature_ablation import SEEDS, fit_and_score
from journey_hmm import (
    FEATURES,
    choose_lags,
    fit_journey,
    journey_features,
    weekly_history,
)
from robustness import (
    ACCOUNTS,
    SEED,
    SETTINGS,
    run_settings,
    settings_main,
    write_report,
)

DEFAULT_SETTINGS = tuple(SETTINGS)


def measure_setting(name: str, accounts: int, workdir: Path) -> dict:
    """One world: the model and the logistic baseline without and with the journey features."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    setup = conversion_setup(name, accounts, workdir)
    world, data, task, fold = setup.world, setup.data, setup.task, setup.fold
    start = pd.Timestamp(world.start)
    # the chain learns from the weeks before the validation window, as the model does
    cutoff_week = int((data["as_of"].iloc[fold.valid].min() - start).days // 7)
    history = weekly_history(setup.folder, start, world.weeks)
    learning = time.perf_counter()
    lags, scores = choose_lags(history, cutoff_week)
    journey = fit_journey(history, cutoff_week, lags)
    learned_s = time.perf_counter() - learning
    features = journey_features(
        history,
        journey,
        history.accounts.get_indexer(data["account_id"]),
        ((data["as_of"] - start).dt.days // 7).to_numpy(),
    )
    columns = pd.DataFrame(features, columns=list(FEATURES), index=data.index)
    label = setup.label

    def auc(probability) -> dict:
        value = float(roc_auc_score(label, probability))
        return {"roc_auc": round(value, 4), "share": setup.share(value)}

    model, logistic = fit_and_score(task, task.columns, fold, setup.settings)
    with_journey = dataclasses.replace(task, matrix=pd.concat([task.matrix, columns], axis=1))
    model_j, logistic_j = fit_and_score(
        with_journey, [*task.columns, *columns.columns], fold, setup.settings
    )
    alone = np.nan_to_num(columns["journey_open_13w"].to_numpy()[fold.test])
    out = {
        "setting": name,
        "accounts": accounts,
        "true_lags": [world.engagement_lag_weeks, world.intent_lag_weeks],
        "chosen_lags": list(lags),
        "lag_log_likelihoods": {k: round(v, 1) for k, v in scores.items()},
        "cutoff_week": cutoff_week,
        "test_positives": int(label.sum()),
        "oracle_roc_auc": round(setup.oracle, 4),
        "model": auc(model),
        "model_with_journey": auc(model_j),
        "logistic": auc(logistic),
        "logistic_with_journey": auc(logistic_j),
        "journey_alone": auc(alone),
        "open_chance": [round(float(x), 4) for x in journey.open_chance],
        "learn_s": round(learned_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    shutil.rmtree(setup.folder, ignore_errors=True)
    return out


def journey_markdown(report: dict) -> str:
    def cell(result: dict) -> str:
        return f"{result['roc_auc']:.3f} ({result['share']:.3f})"

    lines = [
        "# Learned journey stage: what a journey filter learned from the data adds",
        "",
        f"Written by `make bench` (`benchmarks/journey.py`) on {report['date']}; machine: "
        f"{report['machine']}; {report['seconds']:.0f} s in all.",
        f"Protocol: robustness worlds ({report['accounts']:,} accounts, seed {SEED}), packaged "
        "configuration and out-of-time split; ROC-AUC (share of the oracle's lift) on the test "
        "window. The journey chain (`benchmarks/journey_hmm.py`: out of market, researching, "
        "buying, in a deal, customer; contacts' events, anonymous visits and intent topics "
        "Poisson per state, the buying state opening the opportunities) is fitted by EM on the "
        "weeks before the validation window, with the engagement and intent lags that "
        "explain the same observations best (engagement 0-6 weeks behind the journey, intent on "
        "time or as late). *+ journey*: the model (mean probability of its fits with seeds "
        f"{', '.join(map(str, SEEDS))}) or the logistic baseline given also the chain's "
        "probabilities of out of market / researching / buying this week, from the signal weeks "
        "before as_of, and its chance that an opportunity opens within 13 weeks; *alone*: that "
        "chance's own ROC-AUC.",
        "",
        "| setting | lags true / chosen | model | + journey | gain | logistic | + journey "
        "| gain | journey alone | learning (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if "failed" in r:
            lines.append(f"| {r['setting']} | failed: {' / '.join(r['failed'])} |")
            continue
        true, chosen = "/".join(map(str, r["true_lags"])), "/".join(map(str, r["chosen_lags"]))
        gain = r["model_with_journey"]["roc_auc"] - r["model"]["roc_auc"]
        gain_l = r["logistic_with_journey"]["roc_auc"] - r["logistic"]["roc_auc"]
        lines.append(
            f"| {r['setting']} | {true} / {chosen} | {cell(r['model'])} "
            f"| {cell(r['model_with_journey'])} | {gain:+.4f} | {cell(r['logistic'])} "
            f"| {cell(r['logistic_with_journey'])} | {gain_l:+.4f} "
            f"| {r['journey_alone']['roc_auc']:.3f} | {r['learn_s']:.0f} |"
        )
    lines.append("")
    return "\n".join(lines)


def journey_benchmark(
    out_dir: Path, workdir: Path | None = None, accounts: int = ACCOUNTS, names=None
) -> dict:
    names = list(names or DEFAULT_SETTINGS)
    report = run_settings("journey", names, accounts, workdir, Path(__file__).resolve())
    write_report(out_dir, "journey", report, journey_markdown(report))
    return report


def main(argv: list[str] | None = None) -> None:
    settings_main(
        argv, __doc__.splitlines()[0], DEFAULT_SETTINGS, measure_setting, journey_benchmark
    )


if __name__ == "__main__":
    main()
