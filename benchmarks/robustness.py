"""Robustness benchmark (part of ``make bench``): one default configuration on worlds that differ
the way companies differ, written to ``benchmarks/robustness.md`` and ``robustness.json``.

Every setting changes a few of the generator's documented knobs (``WorldConfig``: research-phase
length, engagement lag, how far intent leads engagement, intent coverage, anonymous traffic,
win rate, sales-cycle length) or the spine's rhythm (weekly snapshots instead of monthly), and
is trained with the packaged ``model.yaml`` and ``scorecard.yaml`` as they are (no per-world
tuning), each in a fresh process. Per setting and head, on the out-of-time test window: ROC-AUC
of the LightGBM model, the shipped scorer, the logistic baseline, the hand-made and the learned
scorecard and the oracle; the model's share of the oracle's lift over chance
((AUC - 0.5) / (oracle - 0.5)); top-decile lift; expected calibration error; for the fit head,
Spearman of the model with the true fit.

Usage: ``python benchmarks/robustness.py [--out-dir benchmarks] [--accounts 10000]
[--settings default,long_research,...]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ACCOUNTS = 10_000
SEED = 7
# name -> (what differs, WorldConfig overrides, spine overrides)
SETTINGS: dict[str, tuple[str, dict, dict]] = {
    "default": ("the documented defaults", {}, {}),
    "long_research": ("research phase twice as long", {"research_weeks_scale": 2.0}, {}),
    "short_research": ("research phase half as long", {"research_weeks_scale": 0.5}, {}),
    "intent_leads": (
        "engagement 4 weeks late, intent on time (intent leads by 4 weeks)",
        {"engagement_lag_weeks": 4, "intent_lead_weeks": 4},
        {},
    ),
    "sparse_intent": (
        "intent for 20 % of accounts, engagement 2 weeks late",
        {"intent_coverage": 0.2, "engagement_lag_weeks": 2},
        {},
    ),
    "no_intent": ("no third-party intent at all", {"intent_coverage": 0.0}, {}),
    "anonymous": ("twice the anonymous web traffic", {"anonymous_traffic_scale": 2.0}, {}),
    "hard_sales": (
        "win odds halved, sales cycles of 120 days",
        {"win_rate_shift": -0.7, "sales_cycle_days": 120},
        {},
    ),
    "weekly": ("weekly snapshots (the spine's rhythm)", {}, {"cadence": "weekly"}),
}
HEADS = ("fit", "conversion")
SCORERS = ("model", "stacked", "logistic", "scorecard", "learned_scorecard", "oracle")
TARGETS = {"share": 0.90, "default_share": 0.92, "over_logistic": 0.02, "ece": 0.02}


def measure_setting(name: str, accounts: int, workdir: Path) -> dict:
    """Generate one setting's world, train it with the packaged configs, read the figures."""
    from model import packaged_model_config, packaged_scorecard

    from propensity.data.contract import load_tables
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.runs.account import train_account_model

    _, world_changes, spine_changes = SETTINGS[name]
    folder = workdir / f"world_{name}"
    started = time.perf_counter()
    generate_world(
        WorldConfig(n_accounts=accounts, seed=SEED, **world_changes), folder, overwrite=True
    )
    generated = time.perf_counter()
    config = packaged_model_config()
    if spine_changes:
        config = config.model_copy(update={"spine": config.spine.model_copy(update=spine_changes)})
    tables, truth = load_tables(folder), read_truth(folder)
    result = train_account_model(tables, config, packaged_scorecard(), truth, name=folder.name)
    trained = time.perf_counter()
    out = {
        "setting": name,
        "accounts": accounts,
        "generate_s": round(generated - started, 1),
        "train_evaluate_s": round(trained - generated, 1),
        "heads": {},
    }
    for head in HEADS:
        table = result.evaluation[result.evaluation["head"] == head].set_index("scorer")
        figures = {
            f"{s}_roc_auc": round(float(table.loc[s, "roc_auc"]), 4)
            for s in SCORERS
            if s in table.index
        }
        shipped = result.heads[head].shipped
        row = {"lightgbm": "model"}.get(shipped.kind, shipped.kind)
        figures["ships"] = shipped.kind
        figures["shipped_roc_auc"] = figures.get(f"{row}_roc_auc")
        figures["model_lift_10"] = round(float(table.loc["model", "lift_10"]), 2)
        if "ece" in table and table.loc["model", "ece"] == table.loc["model", "ece"]:
            figures["model_ece"] = round(float(table.loc["model", "ece"]), 4)
        oracle = figures.get("oracle_roc_auc")
        if oracle is not None and oracle > 0.5:
            figures["model_share_of_oracle_lift"] = round(
                (figures["model_roc_auc"] - 0.5) / (oracle - 0.5), 3
            )
        out["heads"][head] = figures
        figures["model_minus_logistic_interval_95"] = paired_auc_interval(
            result.heads[head].predictions,
            result.test_window,
            result.test_window[f"label_{head}"].to_numpy(dtype=int),
            "model",
            "logistic",
        )
    truth_fit = result.summary.get("fit_against_truth", {})
    for scorer in ("model", "logistic", "scorecard"):
        out["heads"]["fit"][f"{scorer}_spearman_true_fit"] = round(
            truth_fit.get(f"{scorer}_spearman_true_fit", float("nan")), 3
        )
    shutil.rmtree(folder, ignore_errors=True)
    return out


def paired_auc_interval(predictions, test, label, first, second: str) -> list[float] | None:
    """The 95 % paired-bootstrap interval (over accounts, 400 draws) of ``first``'s ROC-AUC
    minus that of the ``second`` column of ``predictions`` on the test rows (``test``'s keys,
    ``label``): how large a difference the test window can tell from noise. ``first``: a column
    of ``predictions`` or probabilities on the test rows."""
    import numpy as np

    from propensity.evaluate import auc_difference_bound

    if "repeat" in predictions:
        predictions = predictions[predictions["repeat"] == 0]
    keys = test[["account_id", "as_of"]].reset_index(drop=True)
    columns = [c for c in (first, second) if isinstance(c, str)]
    rows = keys.merge(
        predictions[["account_id", "as_of", *columns]], on=["account_id", "as_of"], how="left"
    )
    a = rows[first].to_numpy(dtype=float) if isinstance(first, str) else np.asarray(first, float)
    b = rows[second].to_numpy(dtype=float)
    if np.isnan(a).any() or np.isnan(b).any() or label.min() == label.max():
        return None
    group = keys["account_id"].to_numpy()
    options = dict(level=0.975, n_bootstrap=400, seed=0)
    _, low = auc_difference_bound(label, a, b, group, **options)
    _, high = auc_difference_bound(label, b, a, group, **options)
    return [round(low, 4), round(-high, 4)]


def measure_in_subprocess(
    name: str, accounts: int, workdir: Path, script: Path | None = None, extra: tuple = ()
) -> dict:
    """Run ``script`` (this one by default) for one setting in a fresh process (``extra``: more
    arguments); its result, or the tail of its error as ``failed``."""
    target = workdir / f"result_{name}.json"
    command = [
        sys.executable,
        str(script or Path(__file__).resolve()),
        "--setting",
        name,
        "--accounts",
        str(accounts),
        "--workdir",
        str(workdir),
        "--result",
        str(target),
        *extra,
    ]
    started = time.perf_counter()
    child = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    if child.returncode != 0 or not target.exists():
        tail = [line for line in child.stderr.strip().splitlines() if line.strip()][-3:]
        return {"setting": name, "failed": tail, "process_s": seconds}
    return {**json.loads(target.read_text()), "process_s": seconds}


def checks(result: dict) -> dict:
    """Issue 15's targets for one setting (None where a figure is missing)."""
    conversion, fit = result["heads"]["conversion"], result["heads"]["fit"]
    share_target = TARGETS["default_share"] if result["setting"] == "default" else TARGETS["share"]
    share = conversion.get("model_share_of_oracle_lift")
    ece = conversion.get("model_ece")
    return {
        "conversion_share": None if share is None else share >= share_target,
        "conversion_over_logistic": conversion["model_roc_auc"]
        >= conversion["logistic_roc_auc"] + TARGETS["over_logistic"],
        "conversion_ece": None if ece is None else ece < TARGETS["ece"],
        "fit_over_logistic_and_scorecard": fit["model_roc_auc"]
        > max(fit["logistic_roc_auc"], fit["scorecard_roc_auc"]),
    }


def _mark(value: float | None, ok: bool | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (" **!**" if ok is False else "")


def _difference(head: dict) -> str:
    difference = head["model_roc_auc"] - head["logistic_roc_auc"]
    interval = head.get("model_minus_logistic_interval_95")
    noise = f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else ""
    return f"{difference:+.3f}{noise}"


def robustness_markdown(report: dict) -> str:
    lines = [
        "# Robustness benchmark: one configuration on worlds that differ",
        "",
        f"Written by `make bench` (`benchmarks/robustness.py`) on {report['date']}; machine: "
        f"{report['machine']}; {report['seconds']:.0f} s in all.",
        f"Protocol: worlds of {report['accounts']:,} accounts (seed {SEED}) from `propensity "
        "generate` with the knobs below changed, each trained in a fresh process with the "
        "packaged `model.yaml` and `scorecard.yaml` (no per-world tuning); ROC-AUC on the "
        "out-of-time test window. *Share* = the LightGBM model's share of the oracle's lift "
        "over chance, (AUC - 0.5) / (oracle - 0.5). **!** marks a figure below issue 15's "
        "target: share >= 0.90 (0.92 on the default world), model >= logistic + 0.02, "
        "ECE < 0.02, fit model above logistic and hand-made scorecard.",
        "",
        "| setting | what differs |",
        "|---|---|",
        *(f"| {name} | {what} |" for name, (what, _, _) in SETTINGS.items()),
        "",
        "## Conversion head",
        "",
        "| setting | model | shipped (kind) | logistic | model - logistic [95 % interval] "
        "| scorecard | learned card | oracle | share | top-decile lift | ECE |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in report["results"]:
        if "failed" in result:
            lines.append(f"| {result['setting']} | failed: {' / '.join(result['failed'])} |")
            continue
        c, ok = result["heads"]["conversion"], checks(result)
        lines.append(
            f"| {result['setting']} | {_mark(c['model_roc_auc'], ok['conversion_over_logistic'])} "
            f"| {c['shipped_roc_auc']:.3f} ({c['ships']}) | {c['logistic_roc_auc']:.3f} "
            f"| {_difference(c)} "
            f"| {c['scorecard_roc_auc']:.3f} | {_mark(c.get('learned_scorecard_roc_auc'), None)} "
            f"| {c['oracle_roc_auc']:.3f} "
            f"| {_mark(c.get('model_share_of_oracle_lift'), ok['conversion_share'])} "
            f"| {c['model_lift_10']:.2f} | {_mark(c.get('model_ece'), ok['conversion_ece'])} |"
        )
    lines += [
        "",
        "## Fit head",
        "",
        "| setting | model | shipped (kind) | logistic | model - logistic [95 % interval] "
        "| scorecard | learned card | oracle | share "
        "| Spearman with the true fit: model / logistic / scorecard |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for result in report["results"]:
        if "failed" in result:
            continue
        f, ok = result["heads"]["fit"], checks(result)
        lines.append(
            f"| {result['setting']} "
            f"| {_mark(f['model_roc_auc'], ok['fit_over_logistic_and_scorecard'])} "
            f"| {f['shipped_roc_auc']:.3f} ({f['ships']}) | {f['logistic_roc_auc']:.3f} "
            f"| {_difference(f)} "
            f"| {f['scorecard_roc_auc']:.3f} | {_mark(f.get('learned_scorecard_roc_auc'), None)} "
            f"| {f['oracle_roc_auc']:.3f} | {_mark(f.get('model_share_of_oracle_lift'), None)} "
            f"| {f['model_spearman_true_fit']:.3f} / {_mark(f.get('logistic_spearman_true_fit'), None)}"
            f" / {_mark(f.get('scorecard_spearman_true_fit'), None)} |"
        )
    met = [r for r in report["results"] if "failed" not in r]
    failing = {
        key: [r["setting"] for r in met if checks(r)[key] is False]
        for key in ("conversion_share", "conversion_over_logistic", "conversion_ece")
    }
    failing["fit_over_logistic_and_scorecard"] = [
        r["setting"] for r in met if not checks(r)["fit_over_logistic_and_scorecard"]
    ]
    lines += [
        "",
        "## Against issue 15's targets",
        "",
        *(
            f"- {key.replace('_', ' ')}: "
            + (f"missed on {', '.join(names)}" if names else "met on every setting")
            for key, names in failing.items()
        ),
        *(
            f"- fit head on {r['setting']}: model - logistic {_difference(r['heads']['fit'])} on "
            "the test window's won deals; Spearman with the true fit "
            f"{r['heads']['fit']['model_spearman_true_fit']:.3f} (model) against "
            f"{_mark(r['heads']['fit'].get('logistic_spearman_true_fit'), None)} (logistic)"
            for r in met
            if r["setting"] in failing["fit_over_logistic_and_scorecard"]
        ),
        "",
    ]
    return "\n".join(lines)


def run_settings(
    kind: str,
    names: list[str],
    accounts: int,
    workdir: Path | None,
    script: Path | None = None,
    extra: tuple = (),
) -> dict:
    """Each setting through ``script`` (this one by default) in a fresh process
    (:func:`measure_in_subprocess`), in ``workdir`` (None: a temporary folder, removed after);
    the report's common part: date, machine, accounts, seconds and the results."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-")) if own else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for name in names:
        print(f"{kind} on {name} ...", flush=True)
        results.append(measure_in_subprocess(name, accounts, workdir, script, extra))
        print(f"  {json.dumps(results[-1])[:400]}", flush=True)
    if own:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "accounts": accounts,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }


def write_report(out_dir: Path, stem: str, report: dict, markdown: str) -> None:
    """``STEM.json`` (the report) and ``STEM.md`` (``markdown``) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown)
    print(f"wrote {out_dir / stem}.md and .json ({report['seconds']} s)")


def settings_arguments(parser: argparse.ArgumentParser, default_settings) -> None:
    """The arguments of a benchmark over settings: the public ones, and those of the process
    that measures one setting (:func:`measure_in_subprocess`)."""
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--settings", default=",".join(default_settings))
    parser.add_argument("--setting", help=argparse.SUPPRESS)  # one world, in this process
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)


def settings_main(argv, description: str, default_settings, measure_setting, benchmark) -> None:
    """The command line of a benchmark over settings: with ``--setting``, measure that one
    world in this process (``measure_setting(name, accounts, workdir)``) and write its result;
    else ``benchmark(out_dir, None, accounts, names)`` over the chosen settings."""
    parser = argparse.ArgumentParser(description=description)
    settings_arguments(parser, default_settings)
    args = parser.parse_args(argv)
    if args.setting:
        result = measure_setting(args.setting, args.accounts, args.workdir)
        args.result.write_text(json.dumps(result))
        return
    benchmark(args.out_dir, None, args.accounts, chosen_settings(parser, args))


def chosen_settings(parser: argparse.ArgumentParser, args) -> list[str]:
    """The settings named by ``--settings``, each known (else a usage error)."""
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; allowed: {list(SETTINGS)}")
    return names


def robustness_benchmark(
    out_dir: Path, workdir: Path | None = None, accounts: int = ACCOUNTS, names=None
) -> dict:
    report = run_settings("robustness", list(names or SETTINGS), accounts, workdir)
    report["checks"] = {r["setting"]: checks(r) for r in report["results"] if "failed" not in r}
    write_report(out_dir, "robustness", report, robustness_markdown(report))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--settings", help=f"comma list of {list(SETTINGS)}")
    parser.add_argument("--setting", help=argparse.SUPPRESS)  # one setting, in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.setting:
        result = measure_setting(args.setting, args.accounts, args.workdir)
        args.result.write_text(json.dumps(result))
        return
    names = args.settings.split(",") if args.settings else None
    unknown = [n for n in names or [] if n not in SETTINGS]
    if unknown:
        parser.error(f"--settings: unknown {unknown}; known: {list(SETTINGS)}")
    robustness_benchmark(args.out_dir, args.workdir, args.accounts, names)


if __name__ == "__main__":
    main()
