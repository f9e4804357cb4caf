"""Feature ablation (part of ``make bench``): which feature groups the conversion head uses, on
the robustness worlds, written to ``benchmarks/feature_ablation.md`` and ``.json``.

Per world (the settings of :mod:`robustness`: the same knobs, accounts and seed), the features
are built once with the packaged configuration and every weekly-rhythm group on (:data:`ALL_ON`);
then the conversion head's LightGBM model (the packaged parameters, early stopping and
calibration on the validation window; the mean probability of its fits with three seeds, as one
fit's AUC moves with the seed by about as much as a small group is worth) and its logistic
baseline are fitted on every column set below, on the same out-of-time split, and judged by
ROC-AUC on the test window. A group's *value* is the AUC of all features minus the
AUC without the group, with its 95 % paired-bootstrap interval over accounts: a group whose
interval lies above 0 helps on that world, one whose interval straddles 0 is not told apart
from noise. The groups are the feature families and, inside engagement and intent, the
weekly-rhythm features of issue 15 (short windows, weekly momentum, episodes, buying-group
growth), each dropped by the ``FeatureConfig`` key that turns it off.

The ablation fits the model alone (no shipped-scorer selection, stacking or learned card), so a
row is the value of the columns to the model, not to the shipped scorer.

Usage: ``python benchmarks/feature_ablation.py [--out-dir benchmarks] [--accounts 10000]
[--settings default,intent_leads,...]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from robustness import (
    ACCOUNTS,
    SEED,
    SETTINGS,
    chosen_settings,
    run_settings,
    settings_arguments,
    write_report,
)

# the weekly-rhythm groups all on: the ablation's base, whatever the packaged defaults turn on
ALL_ON = {
    "short_windows_days": (14, 21, 28),
    "momentum_weeks": ((1, 3), (3, 12)),
    "episode_gap_days": 28,
    "new_contacts_days": 28,
}
# group -> (what it is, FeatureConfig changes that drop it)
GROUPS: dict[str, tuple[str, dict]] = {
    "short_windows": (
        "all-events counts over 14, 21 and 28 days",
        {"short_windows_days": ()},
    ),
    "weekly_momentum": (
        "engagement and intent of the last 1 (3) weeks against the 3 (12) weeks before",
        {"momentum_weeks": ()},
    ),
    "episodes": (
        "days since the current engagement episode and intent surge began",
        {"episode_gap_days": None},
    ),
    "buying_group_growth": (
        "contacts engaged for the first time in the last 28 days",
        {"new_contacts_days": None},
    ),
    "weekly_rhythm": (
        "the four groups above together (the features before issue 15)",
        {
            "short_windows_days": (),
            "momentum_weeks": (),
            "episode_gap_days": None,
            "new_contacts_days": None,
        },
    ),
    "intent": ("the intent family", {"families": ("firmographic", "engagement", "history")}),
    "engagement": ("the engagement family", {"families": ("firmographic", "intent", "history")}),
    "history": ("the history family", {"families": ("firmographic", "engagement", "intent")}),
    "firmographic": ("the firmographic family", {"families": ("engagement", "intent", "history")}),
}
DEFAULT_SETTINGS = ("default", "short_research", "intent_leads", "sparse_intent", "weekly")
# the families whose value is plain (engagement, firmographics) cost a fit each: not by default
DEFAULT_GROUPS = (
    "short_windows",
    "weekly_momentum",
    "episodes",
    "buying_group_growth",
    "weekly_rhythm",
    "intent",
    "history",
)
HEAD = "conversion"
SEEDS = (7, 8, 9)


def fit_and_score(task, columns: list[str], fold, settings) -> tuple:
    """Test-window probabilities on ``columns`` of the LightGBM model (the mean of its fits
    with :data:`SEEDS` seeds: rows and columns are sampled per tree, so one fit's AUC moves
    with the seed by about as much as a small group is worth) and of the logistic baseline."""
    import numpy as np

    from propensity.model.head import HeadModel, logistic_baseline

    categorical = [c for c in task.categorical if c in columns]
    y = task.training_label.astype(int)
    test = task.matrix.iloc[fold.test]
    probabilities = []
    for seed in SEEDS:
        model = HeadModel(
            features=columns,
            categorical=categorical,
            params=settings.params,
            calibration_methods=settings.calibration_methods,
            negative_sample_rate=settings.negative_sample_rate,
            seed=seed,
            n_jobs=settings.n_jobs,
            min_calibration_positives=settings.min_calibration_positives,
        )
        model.fit(
            task.matrix.iloc[fold.train],
            y[fold.train],
            eval_set=(task.matrix.iloc[fold.valid], y[fold.valid]),
        )
        probabilities.append(model.predict_proba(test)[:, 1])
    numeric = [c for c in columns if c not in categorical]
    logistic = logistic_baseline(numeric, categorical, settings.seed)
    development = np.concatenate([fold.train, fold.valid])
    logistic.fit(task.matrix.iloc[development][columns], y[development])
    return np.mean(probabilities, axis=0), logistic.predict_proba(test[columns])[:, 1]


def measure_setting(name: str, accounts: int, workdir: Path, groups: list[str]) -> dict:
    """One world: the features once, then the model and logistic on every column set."""
    import numpy as np
    from model import packaged_model_config, packaged_scorecard
    from sklearn.metrics import roc_auc_score

    from propensity.data.contract import load_tables
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.evaluate import auc_difference_bound
    from propensity.features import build_features
    from propensity.model.splits import SnapshotOutOfTime
    from propensity.runs.account import fit_settings, head_task
    from propensity.runs.labelled import conversion_censoring, labelled_features

    _, world_changes, spine_changes = SETTINGS[name]
    folder = workdir / f"world_{name}"
    started = time.perf_counter()
    generate_world(
        WorldConfig(n_accounts=accounts, seed=SEED, **world_changes), folder, overwrite=True
    )
    config = packaged_model_config()
    config = config.model_copy(update={"features": config.features.model_copy(update=ALL_ON)})
    if spine_changes:
        config = config.model_copy(update={"spine": config.spine.model_copy(update=spine_changes)})
    tables, truth = load_tables(folder), read_truth(folder)
    prepared = labelled_features(tables, config)
    data = prepared.data
    splitter = SnapshotOutOfTime(config.split, config.spine.horizon_days)
    windows = splitter.windows(data)
    task = head_task(
        HEAD,
        data,
        windows,
        prepared.feature_set,
        packaged_scorecard(),
        truth,
        censor_conversion=conversion_censoring(config),
    )
    settings = fit_settings(config, HEAD)
    fold = splitter.folds(data, task.training_label, task.groups)[0]
    label = task.label[fold.test].astype(int)
    accounts_of = data["account_id"].to_numpy()[fold.test]
    sample = data[["account_id", "as_of"]].iloc[:200].reset_index(drop=True)
    model_all, logistic_all = fit_and_score(task, task.columns, fold, settings)
    oracle = task.references(fold, fold.test)["oracle"] if task.references else None
    if oracle is not None and np.isnan(oracle).any():
        oracle = None
    out = {
        "setting": name,
        "accounts": accounts,
        "features": len(task.columns),
        "test_positives": int(label.sum()),
        "all": {
            "model_roc_auc": round(float(roc_auc_score(label, model_all)), 4),
            "logistic_roc_auc": round(float(roc_auc_score(label, logistic_all)), 4),
            "oracle_roc_auc": None
            if oracle is None
            else round(float(roc_auc_score(label, np.asarray(oracle, dtype=float))), 4),
        },
        "groups": {},
    }
    options = dict(level=0.975, n_bootstrap=400, seed=0)
    for group in groups:
        changes = GROUPS[group][1]
        families = changes.get("families")
        if families is not None and not set(prepared.feature_set.families) - set(families):
            out["groups"][group] = {"absent": True}
            continue
        kept = build_features(
            tables, sample, config.features.model_copy(update=changes)
        ).model_columns
        columns = [c for c in task.columns if c in set(kept)]
        dropped = [c for c in task.columns if c not in set(kept)]
        if not dropped:
            out["groups"][group] = {"absent": True}
            continue
        model_without, logistic_without = fit_and_score(task, columns, fold, settings)
        value, low = auc_difference_bound(label, model_all, model_without, accounts_of, **options)
        reverse, high = auc_difference_bound(
            label, model_without, model_all, accounts_of, **options
        )
        out["groups"][group] = {
            "dropped_columns": dropped,
            "model_roc_auc_without": round(float(roc_auc_score(label, model_without)), 4),
            "logistic_roc_auc_without": round(float(roc_auc_score(label, logistic_without)), 4),
            "model_value": round(float(value), 4),
            "model_value_95": [round(float(low), 4), round(float(-high), 4)],
            "logistic_value": round(
                out["all"]["logistic_roc_auc"] - float(roc_auc_score(label, logistic_without)), 4
            ),
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    shutil.rmtree(folder, ignore_errors=True)
    return out


def _cell(figures: dict) -> str:
    if figures.get("absent"):
        return "-"
    low, high = figures["model_value_95"]
    mark = " **+**" if low > 0 else (" **-**" if high < 0 else "")
    return f"{figures['model_value']:+.3f} [{low:+.3f}, {high:+.3f}]{mark}"


def ablation_markdown(report: dict) -> str:
    groups = report["groups"]
    lines = [
        "# Feature ablation: what the conversion head's columns are worth, world by world",
        "",
        f"Written by `make bench` (`benchmarks/feature_ablation.py`) on {report['date']}; "
        f"machine: {report['machine']}; {report['seconds']:.0f} s in all.",
        f"Protocol: the robustness worlds ({report['accounts']:,} accounts, seed {SEED}), features "
        "built once with the packaged configuration and every weekly-rhythm group on; the "
        "conversion head's LightGBM model "
        f"(packaged parameters, early stopping and calibration on the validation window; the "
        f"mean probability of its fits with seeds {', '.join(map(str, SEEDS))}) refitted "
        "without each group on the same out-of-time split. A cell is ROC-AUC on the test window "
        "with every feature minus ROC-AUC without the group, then its 95 % paired-bootstrap "
        "interval over accounts; **+** marks a group that helps (interval above 0), **-** one "
        "that hurts (below 0). The model alone is fitted (no selection, stacking or learned "
        "card).",
        "",
        "| group | what it is | in the packaged default |",
        "|---|---|---|",
        *(
            f"| {g} | {GROUPS[g][0]} | {'yes' if report['on_by_default'][g] else 'no'} |"
            for g in groups
        ),
        "",
        "## ROC-AUC with every feature",
        "",
        "| setting | features | test positives | model | logistic | model - logistic | oracle |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if "failed" in r:
            lines.append(f"| {r['setting']} | failed: {' / '.join(r['failed'])} |")
            continue
        a = r["all"]
        oracle = "-" if a["oracle_roc_auc"] is None else f"{a['oracle_roc_auc']:.3f}"
        lines.append(
            f"| {r['setting']} | {r['features']} | {r['test_positives']:,} "
            f"| {a['model_roc_auc']:.3f} | {a['logistic_roc_auc']:.3f} "
            f"| {a['model_roc_auc'] - a['logistic_roc_auc']:+.3f} | {oracle} |"
        )

    def logistic_cell(figures: dict) -> str:
        return "-" if figures.get("absent") else f"{figures['logistic_value']:+.3f}"

    for title, cell in (
        ("Value of each group to the model (ROC-AUC with it minus without it)", _cell),
        ("Value of each group to the logistic baseline", logistic_cell),
    ):
        lines += [
            "",
            f"## {title}",
            "",
            "| setting | " + " | ".join(groups) + " |",
            "|---|" + "---:|" * len(groups),
        ]
        for r in report["results"]:
            if "failed" not in r:
                cells = " | ".join(cell(r["groups"][g]) for g in groups)
                lines.append(f"| {r['setting']} | {cells} |")
    lines.append("")
    return "\n".join(lines)


def ablation_benchmark(
    out_dir: Path,
    workdir: Path | None = None,
    accounts: int = ACCOUNTS,
    names=None,
    groups=None,
) -> dict:
    names = list(names or DEFAULT_SETTINGS)
    groups = list(groups or DEFAULT_GROUPS)
    report = run_settings(
        "ablation",
        names,
        accounts,
        workdir,
        Path(__file__).resolve(),
        ("--groups", ",".join(groups)),
    )
    from propensity.features import FeatureConfig

    packaged = FeatureConfig()
    report["on_by_default"] = {
        g: any(getattr(packaged, key) != value for key, value in GROUPS[g][1].items())
        for g in groups
    }
    report["groups"] = groups
    write_report(out_dir, "feature_ablation", report, ablation_markdown(report))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings_arguments(parser, DEFAULT_SETTINGS)
    parser.add_argument("--groups", default=",".join(DEFAULT_GROUPS))
    args = parser.parse_args(argv)
    groups = [g for g in args.groups.split(",") if g]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        parser.error(f"unknown groups {unknown}; allowed: {list(GROUPS)}")
    if args.setting:
        result = measure_setting(args.setting, args.accounts, args.workdir, groups)
        args.result.write_text(json.dumps(result))
        return
    ablation_benchmark(args.out_dir, None, args.accounts, chosen_settings(parser, args), groups)


if __name__ == "__main__":
    main()
