"""Scoring with reasons at scale: how fast, in how much memory, and what the trees cost.

Two measurements, each in fresh processes (peak RSS is that process's maximum):

1. **Trees, accuracy and reasons speed**: the conversion head (the one with many trees) on
   generated 20,000-account worlds (seeds 3 and 5), trained with the packaged ``model.yaml`` but
   for the learning rate and the number of leaves of the conversion head (each setting early
   stopped as the defaults say); per setting: trees kept, out-of-time test ROC-AUC (with the
   logistic baseline's), TreeSHAP rows/s (``pred_contrib``, both cores) and plain prediction
   rows/s on 20,000 prospects.
2. **Scoring at scale**: the packaged defaults trained on the 20,000-account world (seed 3); the
   prospects' feature matrix at the end of the data tiled to 100,000 and 1,000,000 rows (account
   ids made unique), then scored by the code of ``propensity score`` (both heads part by part,
   :meth:`AccountModel.score_parts`, written to Parquet as the parts come) with and without
   reasons, and by the code of ``propensity export`` (the ranked list with its worded reasons,
   written). The feature build for as many accounts is the feature benchmark's part, not this
   one's.

Writes ``benchmarks/scoring.md`` / ``.json``. Usage: ``python benchmarks/bench.py --scoring``.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

WORLD_ACCOUNTS = 20_000
STUDY_SEEDS = (3, 5)
# (learning_rate, num_leaves) of the conversion head; the first is the packaged default
STUDY_SETTINGS = ((0.03, 15), (0.06, 15), (0.1, 15), (0.03, 7), (0.06, 7), (0.1, 7))
SCALE_ROWS = (100_000, 1_000_000)
TIMING_ROWS = 20_000


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def _world(workdir: Path, seed: int) -> Path:
    from propensity.data.world import WorldConfig, generate_world

    folder = workdir / f"world_{WORLD_ACCOUNTS}_{seed}"
    if not (folder / "accounts.parquet").exists():
        generate_world(WorldConfig(n_accounts=WORLD_ACCOUNTS, seed=seed), folder, overwrite=True)
    return folder


# ---------------------------------------------------------------------------------------------
# the child processes


def study_setting(workdir: Path, seed: int, learning_rate: float, num_leaves: int) -> dict:
    """One conversion-head setting on one world: trees, ROC-AUC, reasons and predict speed."""
    from model import packaged_model_config, packaged_scorecard

    from propensity.data.contract import load_tables
    from propensity.data.world import read_truth
    from propensity.runs.account import train_account_model
    from propensity.scoring import snapshot_features

    folder = _world(workdir, seed)
    tables, truth = load_tables(folder), read_truth(folder)
    data = packaged_model_config().model_dump()
    data["conversion"].update(learning_rate=learning_rate, num_leaves=num_leaves)
    config = type(packaged_model_config()).model_validate(data)
    started = time.perf_counter()
    result = train_account_model(
        tables, config, packaged_scorecard(), truth, name="study", heads=("conversion",)
    )
    trained = time.perf_counter() - started
    evaluation = result.heads["conversion"].evaluation.set_index("scorer")
    model = result.scoring_model.scorers["conversion"].model
    matrix = snapshot_features(tables, result.scoring_model)
    rows = matrix.sample(TIMING_ROWS, replace=len(matrix) < TIMING_ROWS, random_state=0)
    started = time.perf_counter()
    model.contributions(rows)
    reasons_rate = len(rows) / (time.perf_counter() - started)
    started = time.perf_counter()
    model.predict_proba(rows)
    predict_rate = len(rows) / (time.perf_counter() - started)
    return {
        "seed": seed,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "trees": int(model.model_.booster_.num_trees()),
        "roc_auc": round(float(evaluation.loc["model", "roc_auc"]), 4),
        "logistic_roc_auc": round(float(evaluation.loc["logistic", "roc_auc"]), 4),
        "treeshap_rows_s": round(reasons_rate),
        "predict_rows_s": round(predict_rate),
        "train_s": round(trained, 1),
    }


def prepare_scale(workdir: Path) -> dict:
    """Train the packaged defaults on the seed-3 world; keep the model and the prospects."""
    from model import packaged_model_config, packaged_scorecard

    from propensity.data.contract import load_tables
    from propensity.data.world import read_truth
    from propensity.runs.account import train_account_model
    from propensity.scoring import snapshot_features

    folder = _world(workdir, STUDY_SEEDS[0])
    tables, truth = load_tables(folder), read_truth(folder)
    result = train_account_model(
        tables, packaged_model_config(), packaged_scorecard(), truth, name="scale"
    )
    model = result.scoring_model
    (workdir / "model.pkl").write_bytes(pickle.dumps(model))
    prospects = snapshot_features(tables, model)
    prospects.to_parquet(workdir / "prospects.parquet", index=False)
    tables.accounts.to_parquet(workdir / "accounts.parquet", index=False)
    return {
        "trees": {
            head: int(scorer.model.model_.booster_.num_trees())
            for head, scorer in model.scorers.items()
            if hasattr(scorer.model, "model_")
        },
        "shipped": {head: scorer.model.kind for head, scorer in model.scorers.items()},
        "prospects": len(prospects),
    }


def tiled(workdir: Path, rows: int):
    """The prospects repeated to ``rows`` rows, each copy's account ids made unique."""
    import numpy as np
    import pandas as pd

    prospects = pd.read_parquet(workdir / "prospects.parquet")
    copies = -(-rows // len(prospects))
    matrix = pd.concat([prospects] * copies, ignore_index=True).iloc[:rows]
    copy = np.repeat(np.arange(copies), len(prospects))[:rows]
    matrix["account_id"] = matrix["account_id"].astype(str) + "-" + pd.Series(copy).astype(str)
    accounts = pd.read_parquet(workdir / "accounts.parquet")
    accounts = pd.concat(
        [accounts.assign(account_id=accounts["account_id"] + f"-{c}") for c in range(copies)],
        ignore_index=True,
    )
    return matrix, accounts


def scale_run(workdir: Path, rows: int, path: str) -> dict:
    """One scoring of ``rows`` accounts by the code of ``score`` (with or without reasons) or
    of ``export``, in this process."""
    from propensity.io import neutralise_formulas, write_frame
    from propensity.outputs.export import ScoringConfig, ranked_list, with_changes, write_export
    from propensity.runs.workflows import without_reasons_json

    model = pickle.loads((workdir / "model.pkl").read_bytes())
    matrix, accounts = tiled(workdir, rows)
    out = workdir / f"scored_{rows}_{path}.{'csv' if path == 'export' else 'parquet'}"
    started = time.perf_counter()
    if path == "export":
        import pandas as pd

        scored = pd.concat(map(without_reasons_json, model.score_parts(matrix)), ignore_index=True)
        scored_s = time.perf_counter() - started
        listing = ranked_list(scored, accounts, ScoringConfig.from_yaml())
        listing, stability = with_changes(listing, None, None)
        write_export(listing, out, stability)
    else:
        reasons = path == "reasons"
        parts = (neutralise_formulas(p) for p in model.score_parts(matrix, reasons=reasons))
        write_frame(parts, out)
        scored_s = time.perf_counter() - started
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    for extra in workdir.glob(f"{out.name}.meta.json"):
        extra.unlink()
    return {
        "rows": rows,
        "path": path,
        "seconds": round(seconds, 1),
        "scoring_seconds": round(scored_s, 1),
        "rows_s": round(rows / seconds),
        "file_mb": round(size / 1024**2, 1),
        "peak_rss_gb": _peak_gb(),
    }


# ---------------------------------------------------------------------------------------------
# the parent


def _child(workdir: Path, *arguments: str, script: Path | None = None) -> dict:
    """``script`` (default: this file) in a fresh process with ``arguments``: the JSON line it
    prints last, or what failed."""
    script = script or Path(__file__).resolve()
    command = [sys.executable, str(script), "--workdir", str(workdir)]
    child = subprocess.run([*command, *arguments], capture_output=True, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        tail = [line for line in child.stderr.strip().splitlines() if line.strip()][-3:]
        return {"failed": tail, "arguments": list(arguments)}
    return json.loads(lines[-1])


def scoring_benchmark(out_dir: Path, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    study = []
    for seed in STUDY_SEEDS:
        for learning_rate, leaves in STUDY_SETTINGS:
            result = _child(workdir, "--study", f"{seed}:{learning_rate}:{leaves}")
            print(json.dumps(result), flush=True)
            study.append(result)
    prepared = _child(workdir, "--prepare")
    print(json.dumps(prepared), flush=True)
    scale = []
    for rows in SCALE_ROWS:
        for path in ("no_reasons", "reasons", "export"):
            result = _child(workdir, "--scale", f"{rows}:{path}")
            print(json.dumps(result), flush=True)
            scale.append(result)
    report = {
        "written": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count() or 1} cores, "
        f"Python {platform.python_version()}",
        "world_accounts": WORLD_ACCOUNTS,
        "study": study,
        "model": prepared,
        "scale": scale,
        "seconds": round(time.perf_counter() - started),
    }
    (out_dir / "scoring.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "scoring.md").write_text(scoring_markdown(report))
    return report


def scoring_markdown(report: dict) -> str:
    lines = [
        "# Scoring with reasons at scale",
        "",
        f"Written by `benchmarks/scoring.py` (`python benchmarks/bench.py --scoring`) on "
        f"{report['written']}; machine: {report['machine']}; {report['seconds']} s in all. "
        "Every figure is from that one run; each row ran in a fresh process.",
        "",
        "## Trees, accuracy and reasons speed (conversion head)",
        "",
        f"Generated {report['world_accounts']:,}-account worlds, the packaged `model.yaml` but "
        "for the conversion head's learning rate and leaves (early stopping as packaged). "
        "ROC-AUC on the out-of-time test window; TreeSHAP and predict rows/s on "
        f"{TIMING_ROWS:,} prospects, both cores.",
        "",
        "| seed | learning rate | leaves | trees | ROC-AUC | logistic | TreeSHAP rows/s | "
        "predict rows/s | train s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["study"]:
        if "failed" in r:
            lines.append(f"| failed: {' / '.join(r['failed'])} | | | | | | | | |")
            continue
        lines.append(
            f"| {r['seed']} | {r['learning_rate']} | {r['num_leaves']} | {r['trees']} | "
            f"{r['roc_auc']:.4f} | {r['logistic_roc_auc']:.4f} | {r['treeshap_rows_s']:,} | "
            f"{r['predict_rows_s']:,} | {r['train_s']} |"
        )
    model = report["model"]
    lines += [
        "",
        "## Scoring at scale",
        "",
        f"The packaged defaults trained on the seed-3 world (trees: "
        f"{', '.join(f'{h} {t}' for h, t in model.get('trees', {}).items())}; ships: "
        f"{', '.join(f'{h} {k}' for h, k in model.get('shipped', {}).items())}); its "
        f"{model.get('prospects', 0):,} prospects' features tiled to each size. *score*: "
        "both heads part by part to Parquet (every scored column); *export*: the ranked CSV "
        "list with worded reasons and its stability file.",
        "",
        "| accounts | path | seconds | of which scoring | rows/s | file MB | peak RSS GB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        "no_reasons": "score, no reasons",
        "reasons": "score with reasons",
        "export": "export with reasons",
    }
    for r in report["scale"]:
        if "failed" in r:
            lines.append(f"| failed: {' / '.join(r['failed'])} | | | | | | |")
            continue
        lines.append(
            f"| {r['rows']:,} | {names[r['path']]} | {r['seconds']} | {r['scoring_seconds']} | "
            f"{r['rows_s']:,} | {r['file_mb']} | {r['peak_rss_gb']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("data/bench/scoring"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--study")  # seed:learning_rate:leaves, in this process
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--scale")  # rows:path, in this process
    args = parser.parse_args(argv)
    if args.study:
        seed, learning_rate, leaves = args.study.split(":")
        print(json.dumps(study_setting(args.workdir, int(seed), float(learning_rate), int(leaves))))
    elif args.prepare:
        print(json.dumps(prepare_scale(args.workdir)))
    elif args.scale:
        rows, path = args.scale.split(":")
        print(json.dumps(scale_run(args.workdir, int(rows), path)))
    else:
        scoring_benchmark(args.out, args.workdir)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
