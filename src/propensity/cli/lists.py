"""`propensity score`, `export`, `explorer`, `monitor` and `report`: what the shipped models
produce for marketing ops and sales, one call each into :mod:`propensity.runs.workflows`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from propensity.cli.common import (
    AsOf,
    DataDir,
    Encoding,
    Engine,
    HistoryPath,
    NoHistory,
    RunFolder,
    Sep,
    SparkMaster,
    TrackingUri,
    console,
    opened_tables,
    parse_date,
    spark_read_errors,
    steps,
    user_errors,
)
from propensity.cli.printing import print_monitoring, print_recorded, print_stability


def score(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Scored rows, .parquet or .csv.")],
    as_of: AsOf = None,
    fit_version: Annotated[
        str | None, typer.Option("--fit-version", help="Registered version.")
    ] = None,
    conversion_version: Annotated[
        str | None, typer.Option("--conversion-version", help="Registered version.")
    ] = None,
    run_dir: RunFolder = None,
    uri: TrackingUri = None,
    encoding: Encoding = None,
    sep: Sep = None,
    history: HistoryPath = None,
    no_history: NoHistory = False,
    engine: Annotated[
        Engine, typer.Option("--engine", help="Where the scores and reasons are computed.")
    ] = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    """Score the prospects at a date with the champions (or explicit versions, or a run folder);
    the scoring is appended to the score history (`propensity monitor` reads it)."""
    from propensity.io import check_frame_suffix
    from propensity.outputs.export import ScoringConfig
    from propensity.runs.workflows import load_account_model, score_accounts

    snapshot = parse_date("--as-of", as_of)
    versions = {k: v for k, v in (("fit", fit_version), ("conversion", conversion_version)) if v}
    with user_errors():
        check_frame_suffix(out, "--out")  # before the model and the data are loaded
        model = load_account_model(run_dir, versions, uri)
    options = {"history": history, "keep_history": not no_history}
    if engine is Engine.spark:  # Spark reads and checks the tables
        with spark_read_errors(data):
            scored = score_accounts(
                data, out, model, snapshot, engine="spark", spark_master=spark_master, **options
            )
    else:
        with (
            opened_tables(data, model.features, None, None, encoding, sep) as tables,
            user_errors(),
        ):
            scored = score_accounts(data, out, model, snapshot, tables=tables, **options)
    print_stability(scored.stability, ScoringConfig.from_yaml().stability_alarm_share)
    console.print(f"scored {len(scored.scored):,} prospects with {model.version}: {out}")
    print_recorded(scored.recorded)


def export(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Target list, .csv or .parquet.")],
    as_of: AsOf = None,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Keep the top K.")] = None,
    priority: Annotated[list[str] | None, typer.Option("--priority", help="Keep these.")] = None,
    conversion_tier: Annotated[
        list[str] | None, typer.Option("--conversion-tier", help="Keep these.")
    ] = None,
    fit_tier: Annotated[list[str] | None, typer.Option("--fit-tier", help="Keep these.")] = None,
    country: Annotated[list[str] | None, typer.Option("--country", help="Keep these.")] = None,
    industry: Annotated[list[str] | None, typer.Option("--industry", help="Keep these.")] = None,
    batch_tiers: Annotated[
        bool, typer.Option("--batch-tiers", help="Tiers from this batch's quantiles.")
    ] = False,
    run_dir: RunFolder = None,
    uri: TrackingUri = None,
    encoding: Encoding = None,
    sep: Sep = None,
    history: HistoryPath = None,
    no_history: NoHistory = False,
) -> None:
    """Ranked, CRM-ready target list scored with the champion models (one row per account); the
    scoring is appended to the score history (`propensity monitor` reads it)."""
    from propensity.io import check_frame_suffix
    from propensity.runs.workflows import export_target_list, load_account_model
    from propensity.spine import check_as_of

    filters = {
        "priority": priority,
        "conversion_tier": conversion_tier,
        "fit_tier": fit_tier,
        "country": country,
        "industry": industry,
    }
    snapshot = parse_date("--as-of", as_of)
    with user_errors():
        check_frame_suffix(out, "--out")  # before the model and the data are loaded
        model = load_account_model(run_dir, None, uri)
    with opened_tables(data, model.features, None, None, encoding, sep) as tables:
        with user_errors():  # before the progress bar
            if snapshot is not None:
                snapshot = check_as_of(tables, snapshot, model.spine.horizon_days)
        with user_errors(), steps("score prospects") as _:
            target = export_target_list(
                data,
                out,
                model,
                as_of=snapshot,
                top=top,
                filters=filters,
                batch_tiers=batch_tiers,
                tables=tables,
                history=history,
                keep_history=not no_history,
            )
    listing = target.listing
    counts = listing[listing["change"] != "dropped"]["priority"].value_counts().to_dict()
    console.print(
        f"wrote {target.stability['rows']:,} accounts to [bold]{out}[/] ({model.version}); "
        f"priorities {counts}"
    )
    print_stability(target.stability, target.stability["alarm_share"])
    print_recorded(target.recorded)


def explorer(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("accounts.html"),
    as_of: AsOf = None,
    run_dir: RunFolder = None,
    uri: TrackingUri = None,
    history: HistoryPath = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """One self-contained HTML page for sales: every scored prospect, searchable and filterable,
    with a card per account (reasons, trend, buying group, intent, what changed)."""
    from propensity.runs.follow_up import write_account_explorer
    from propensity.runs.workflows import load_account_model

    snapshot = parse_date("--as-of", as_of)
    with user_errors():
        model = load_account_model(run_dir, None, uri)
    with (
        opened_tables(data, model.features, None, None, encoding, sep) as tables,
        user_errors(),
        steps("score prospects and build the explorer") as _,
    ):
        path = write_account_explorer(
            data, out, model, as_of=snapshot, history=history, tables=tables
        )
    size = path.stat().st_size / 1e6
    console.print(f"wrote [bold]{path}[/] ({size:.1f} MB, {model.version})")


ALARM_EXIT_CODE = 3


def monitor(
    data: DataDir,
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML page to write (PNGs next to it).")
    ] = None,
    history: HistoryPath = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Alarm thresholds (default: monitor config).")
    ] = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """What became of the scored accounts, and whether the data still looks like the training
    data: calibration, ranking and lift per scoring (with the scorecard), score and feature
    drift, freshness. Exits with code 3 when an alarm fires on the latest scoring."""
    from propensity.features.registry import FeatureConfig
    from propensity.runs.follow_up import monitor_scores

    with opened_tables(data, FeatureConfig(), None, None, encoding, sep) as tables, user_errors():
        monitored = monitor_scores(
            data, history=history, out=out, config_path=config, tables=tables
        )
    print_monitoring(monitored.result)
    if monitored.page is not None:
        console.print(f"wrote [bold]{monitored.page}[/]")
    if monitored.result.current:
        raise typer.Exit(ALARM_EXIT_CODE)


def report(
    run: Annotated[Path, typer.Option("--run", help="Run folder of a training.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Data folder: adds the top accounts scored now.")
    ] = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """Self-contained HTML report of a run (plots embedded, every value escaped)."""
    from propensity.runs.workflows import load_account_model, read_run_folder, write_report

    with user_errors():
        folder = read_run_folder(run)
        model = load_account_model(run) if data and folder.summary.get("kind") != "table" else None
    from propensity.features.registry import FeatureConfig

    features = model.features if model is not None else FeatureConfig()
    opened = opened_tables(data, features, None, None, encoding, sep) if data else nullcontext()
    with opened as tables, user_errors():
        path = write_report(folder, out, tables, model, run_dir=run)
    console.print(f"wrote [bold]{path}[/]")
