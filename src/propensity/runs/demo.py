"""The whole path as one library call, on a generated world: generate -> validate -> features ->
train -> evaluate -> register and promote in MLflow -> score with the champions (a head the gate
refused on its first promotion: its challenger, and the demo says so) -> export the
target list -> report. ``propensity demo`` and the quickstart notebook call :func:`run_demo`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from propensity import settings
from propensity.data.contract import Tables, load_tables
from propensity.data.world.config import WorldConfig
from propensity.data.world.generate import generate_world
from propensity.model.config import ModelConfig
from propensity.model.scorecard import Scorecard
from propensity.registry import PromotionDecision, promote, serving_aliases
from propensity.runs.workflows import TargetList, TrainedRun, export_target_list, train_accounts
from propensity.tracking import load_registered_scoring_model


@dataclass
class DemoResult:
    world: Path
    tables: Tables
    trained: TrainedRun
    decisions: list[PromotionDecision]
    target_list: TargetList
    seconds: float


def run_demo(
    workdir: Path | str | None = None,
    run_dir: Path | str | None = None,
    accounts: int = 20_000,
    seed: int = 7,
    uri: str | None = None,
    progress=None,
) -> DemoResult:
    """Run the demo; the world and the target list go to ``workdir`` (default ``<workdir>/data``),
    the run folder to ``run_dir`` (default ``<workdir>/models/demo_run``), the MLflow store to
    :func:`propensity.settings.tracking_uri`."""
    started = time.perf_counter()
    workdir = Path(workdir) if workdir else settings.workdir() / "data"
    run_dir = Path(run_dir) if run_dir else settings.workdir() / "models" / "demo_run"

    def step(name: str) -> None:
        if progress:
            progress(name)

    step("generate world")
    world = generate_world(
        WorldConfig(n_accounts=accounts, seed=seed), workdir / "demo_world", overwrite=True
    )
    step("validate contract")
    tables = load_tables(world)
    step("features, train, evaluate, register")
    trained = train_accounts(
        world,
        run_dir,
        ModelConfig.from_yaml(),
        Scorecard.from_yaml(),
        uri=uri,
        tables=tables,
        overwrite=True,  # the demo's own run folder, rewritten by every demo
    )
    if trained.blocked:
        problems = "; ".join(f"{h}: {', '.join(p)}" for h, p in trained.blocked.items())
        raise ValueError(
            f"the demo's model is not fit to register ({problems}): try more --accounts"
        )
    step("promote")
    decisions = promote(uri=uri)
    step("score and export with the champions")
    champions = load_registered_scoring_model(serving_aliases(decisions), uri)
    target_list = export_target_list(world, workdir / "target_list.csv", champions, tables=tables)
    return DemoResult(world, tables, trained, decisions, target_list, time.perf_counter() - started)
