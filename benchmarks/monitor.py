"""Monitoring benchmark (part of ``make bench``): the default world, one year longer, scored
monthly over its last year by a model trained on its first two, with and without a regime change;
``propensity monitor`` on both -> ``benchmarks/monitor.md`` / ``.json``.

The default world (20,000 accounts, seed 7) runs 156 weeks here instead of 104, so that a model
trained on the data known on 2026-01-05 (two years, as the default world holds) can be followed
through the third. The changed twin is the same world (same seed) where, from 2026-05-04, the
intent feed stops and half the accounts' engagement events are lost (a broken marketing-automation
sync); the market itself is unchanged. Packaged configs only.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
from model import packaged_model_config, packaged_scorecard

from propensity.data.contract import load_tables
from propensity.data.world import RegimeChange, WorldConfig, generate_world
from propensity.history import read_history
from propensity.io import write_text
from propensity.monitor import MonitorConfig, monitor
from propensity.outputs.monitor_page import write_monitor_page
from propensity.runs.account import train_account_model
from propensity.runs.workflows import score_accounts


def markdown(frame: pd.DataFrame) -> str:
    """Any frame as a Markdown table (floats to 3 decimals)."""

    def cell(value) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


TRAINED_AT = "2026-01-05"
CHANGE_AT = "2026-05-04"
SCORED = pd.date_range("2026-01-01", "2026-12-01", freq="MS")


def monitor_benchmark(workdir: Path, out_dir: Path, accounts: int | None = None) -> dict:
    """See the module docstring; ``accounts`` overrides the world's size for a smoke test."""
    base = WorldConfig(weeks=156, **({"n_accounts": accounts} if accounts else {}))
    change = RegimeChange(at=CHANGE_AT, intent_stop_share=1.0, events_stop_share=0.5)
    worlds = {
        "unchanged": generate_world(base, workdir / "monitor_unchanged", overwrite=True),
        "changed": generate_world(
            base.model_copy(update={"regime_change": change}),
            workdir / "monitor_changed",
            overwrite=True,
        ),
    }
    tables = {name: load_tables(path) for name, path in worlds.items()}
    started = time.perf_counter()
    result = train_account_model(
        tables["unchanged"].known_before(TRAINED_AT), packaged_model_config(), packaged_scorecard()
    )
    train_seconds = time.perf_counter() - started
    config = MonitorConfig()
    figures: dict = {
        "world": base.model_dump(mode="json"),
        "regime_change": change.model_dump(mode="json"),
        "trained_on_data_before": TRAINED_AT,
        "model_version": result.scoring_model.version,
        "train_seconds": round(train_seconds, 1),
        "worlds": {},
    }
    sections = []
    for name, path in worlds.items():
        history = workdir / f"monitor_{name}.duckdb"
        history.unlink(missing_ok=True)
        started = time.perf_counter()
        for as_of in SCORED:
            score_accounts(
                path,
                workdir / f"monitor_{name}_scores.parquet",
                result.scoring_model,
                as_of,
                tables=tables[name],
                history=history,
            )
        score_seconds = time.perf_counter() - started
        started = time.perf_counter()
        monitored = monitor(read_history(history), tables[name], config)
        monitor_seconds = time.perf_counter() - started
        written = write_monitor_page(monitored, workdir / f"monitor_{name}.html")
        for png in written[1:]:  # the plots, next to the figures
            shutil.copyfile(png, out_dir / png.name)
        periods = monitored.periods.drop(columns=["batch_id", "model_version"])
        figures["worlds"][name] = {
            "scorings": len(SCORED),
            "score_seconds_per_scoring_with_reasons": round(score_seconds / len(SCORED), 1),
            "monitor_seconds": round(monitor_seconds, 1),
            "history_mb": round(history.stat().st_size / 1e6, 1),
            "periods": json.loads(periods.to_json(orient="records", date_format="iso")),
            "alarms": json.loads(monitored.alarm_table().to_json(orient="records")),
            "current_alarms": [a.name for a in monitored.current],
            "recommendation": monitored.recommendation,
        }
        latest = monitored.field_drift[
            monitored.field_drift["as_of"] == monitored.field_drift["as_of"].max()
        ].head(8)
        sections += [
            f"## The {name} world",
            "",
            f"{len(SCORED)} monthly scorings with reasons, "
            f"{score_seconds / len(SCORED):.1f} s each; `monitor` {monitor_seconds:.1f} s; "
            f"history {history.stat().st_size / 1e6:.1f} MB.",
            "",
            "Scorings whose 90-day horizon has passed (outcomes known):",
            "",
            markdown(periods.assign(as_of=periods["as_of"].dt.date).round(3)),
            "",
            "Fields that moved most on the latest scoring (PSI against the training rows, and "
            "the field's normal snapshot-to-snapshot PSI there):",
            "",
            markdown(latest[["family", "field", "feature", "psi", "normal_psi"]].round(3)),
            "",
            "Alarms:",
            "",
            markdown(monitored.alarm_table())
            if monitored.alarms
            else "none (`propensity monitor` exits 0)",
            "",
            f"Recommendation: {monitored.recommendation or 'none'}",
            "",
            f"![realised vs predicted](monitor_{name}_calibration_over_time.png)",
            f"![ranking and lift](monitor_{name}_ranking_over_time.png)",
            "",
        ]
    header = [
        "# Monitoring after the model ships",
        "",
        f"Default world (20,000 accounts unless stated: {base.n_accounts:,}, seed {base.seed}) "
        f"run for {base.weeks} weeks; the model (packaged configs, version "
        f"{result.scoring_model.version}) was trained on the data known on {TRAINED_AT} in "
        f"{train_seconds:.0f} s, then each world was scored on the first of every month of "
        f"2026 and monitored with the packaged thresholds (`configs/monitor.yaml`). The changed "
        f"world loses its intent feed and half its accounts' engagement events from {CHANGE_AT}. "
        "Written by `benchmarks/monitor.py` (`make bench`).",
        "",
    ]
    write_text("\n".join(header + sections), out_dir / "monitor.md")
    write_text(json.dumps(figures, indent=2, default=str) + "\n", out_dir / "monitor.json")
    return figures
