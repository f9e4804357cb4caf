"""The `propensity` command. Each command parses its options, makes one call into a library
function (:mod:`propensity.runs.workflows`, :mod:`propensity.runs.demo`, :mod:`propensity.registry`)
and prints what it returned; user mistakes end as one ``error: ...`` line with exit code 2, and
anything else as one line with exit code 1 (``--verbose`` shows the traceback)."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from propensity import __version__
from propensity.cli.common import (
    AsOf,
    Cadence,
    ConfigName,
    DataDir,
    Encoding,
    Engine,
    ForceRegister,
    Head,
    HistoryPath,
    MemoryLimit,
    ModelConfigPath,
    NoHistory,
    Overwrite,
    Reason,
    Sep,
    SparkMaster,
    TempDir,
    Track,
    TrackingUri,
    TruthDates,
    UnknownAccounts,
    console,
    err_console,
    fail,
    force_reason,
    load_model_config,
    opened_tables,
    parse_date,
    print_registration,
    set_verbose,
    spark_read_errors,
    steps,
    user_errors,
    verbose,
    world_settings,
)
from propensity.cli.experiment import experiment_app
from propensity.cli.printing import (
    print_card,
    print_coverage,
    print_decisions,
    print_evaluation,
    print_monitoring,
    print_recorded,
    print_screen,
    print_stability,
)
from propensity.cli.scorecard import scorecard_app
from propensity.cli.table import table_app


class _App(typer.Typer):
    """The command; an error nobody foresaw (a bug) is one line and exit code 1, not a
    traceback, unless ``--verbose``."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            if verbose():
                raise
            err_console.print(
                f"[bold red]error:[/] unexpected {type(exc).__name__}: {escape(str(exc))} (rerun with "
                "--verbose for the traceback, and report it)",
                highlight=False,
            )
            sys.exit(1)


app = _App(
    name="propensity",
    help="Account-level ICP fit and conversion propensity for B2B account-based marketing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(table_app, name="table")
app.add_typer(experiment_app, name="experiment")
app.add_typer(scorecard_app, name="scorecard")
config_app = typer.Typer(help="The packaged default configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Registered model name (repeatable), e.g. propensity-table-deals; overrides --head.",
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"propensity {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    verbose_option: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Show tracebacks and MLflow's own warnings (sets PROPENSITY_VERBOSE=1).",
        ),
    ] = False,
) -> None:
    """Account-level ICP fit and conversion propensity for B2B account-based marketing."""
    set_verbose(verbose_option)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="World folder (five tables + truth/).")] = Path(
        "data/demo_world"
    ),
    accounts: Annotated[int, typer.Option("--accounts", min=50, help="Accounts.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Same seed -> same files.")] = 7,
    weeks: Annotated[int, typer.Option("--weeks", min=30, help="Weeks of history.")] = 104,
    engagement_scale: Annotated[
        float, typer.Option("--engagement-scale", help="Multiplies every engagement rate.")
    ] = 1.0,
    truth: Annotated[
        TruthDates, typer.Option("--truth", help="Dates of the truth tables.")
    ] = TruthDates.weekly_and_monthly,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the folder.")] = False,
    change_at: Annotated[
        str | None,
        typer.Option("--change-at", help="A regime change from this date (YYYY-MM-DD) on."),
    ] = None,
    intent_stop_share: Annotated[
        float,
        typer.Option(
            "--intent-stop-share",
            min=0,
            max=1,
            help="With --change-at: share of intent-covered accounts whose intent stops.",
        ),
    ] = 0.0,
    events_stop_share: Annotated[
        float,
        typer.Option(
            "--events-stop-share",
            min=0,
            max=1,
            help="With --change-at: share of accounts whose engagement events stop.",
        ),
    ] = 0.0,
    knobs: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Another world setting, KEY=VALUE (repeatable), e.g. research_weeks_scale=2, "
            "engagement_lag_weeks=4, intent_lead_weeks=4, intent_coverage=0.2, "
            "anonymous_traffic_scale=2, win_rate_shift=-0.7, sales_cycle_days=120.",
        ),
    ] = None,
) -> None:
    """Generate a synthetic B2B world with ground truth (optionally with a regime change)."""
    from propensity.data.world.config import RegimeChange, WorldConfig
    from propensity.data.world.generate import generate_world

    change = parse_date("--change-at", change_at)
    settings = world_settings(knobs or [])
    with user_errors():
        config = WorldConfig(
            **settings,
            n_accounts=accounts,
            seed=seed,
            weeks=weeks,
            engagement_scale=engagement_scale,
            truth_dates=truth.value,
            regime_change=RegimeChange(
                at=change.date(),
                intent_stop_share=intent_stop_share,
                events_stop_share=events_stop_share,
            )
            if change is not None
            else None,
        )
        with steps("generate world (chunks)") as _:
            generate_world(config, out, overwrite=overwrite)
    console.print(f"wrote world of {accounts:,} accounts to [bold]{out}[/]")


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="Folder with the contract tables.")],
    unknown_accounts: Annotated[
        UnknownAccounts,
        typer.Option("--unknown-accounts", help="Rows pointing to unknown accounts."),
    ] = UnknownAccounts.error,
    memory_limit: MemoryLimit = None,
    temp_dir: TempDir = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """Check a data folder against the contract and print a summary (writes nothing); rows
    dated after the newest plausible date are warnings. The files are read and checked by
    DuckDB where they lie (tables larger than memory)."""
    from propensity.data.contract import summarize
    from propensity.features.registry import FeatureConfig

    with (
        opened_tables(
            data, FeatureConfig(), memory_limit, temp_dir, encoding, sep, unknown_accounts.value
        ) as tables,
        user_errors(),
    ):
        report = summarize(tables)
    for line in report.to_lines():
        console.print(line, highlight=False)


@app.command()
def features(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Parquet file for the feature matrix.")],
    as_of: AsOf = None,
    config: ModelConfigPath = None,
    cadence: Annotated[
        Cadence | None, typer.Option("--cadence", help="Override the config's cadence.")
    ] = None,
    horizon_days: Annotated[
        int | None, typer.Option("--horizon-days", min=1, help="Override the label window.")
    ] = None,
    memory_limit: MemoryLimit = None,
    temp_dir: TempDir = None,
    encoding: Encoding = None,
    sep: Sep = None,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="Where the tables are checked and the features built."),
    ] = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    """The point-in-time feature matrix (account_id, as_of first) with the model config's spine
    and feature settings; for a spine also its labels. The tables are read and checked by DuckDB
    where they lie (files or folders of part files larger than memory), or with --engine spark
    by Spark, split by account across its executors (Parquet tables), with the same checks and
    features (two checks across accounts differ: see the README)."""
    from propensity.duck import check_size
    from propensity.runs.workflows import write_features

    snapshot = parse_date("--as-of", as_of)
    model_config = load_model_config(config)
    update = {"cadence": cadence.value if cadence else None, "horizon_days": horizon_days}
    spine = model_config.spine.model_copy(update={k: v for k, v in update.items() if v})
    model_config = model_config.model_copy(update={"spine": spine})
    if engine is Engine.spark:
        with user_errors():  # the DuckDB settings of each Spark task
            update = {"duckdb_memory_limit": check_size(memory_limit, "--memory-limit")}
            update["duckdb_temp_directory"] = str(temp_dir) if temp_dir else None
            features = model_config.features.model_copy(
                update={k: v for k, v in update.items() if v}
            )
            model_config = model_config.model_copy(update={"features": features})
        with spark_read_errors(data):
            files = write_features(
                data, out, model_config, snapshot, engine="spark", spark_master=spark_master
            )
    else:
        with (
            opened_tables(
                data, model_config.features, memory_limit, temp_dir, encoding, sep
            ) as tables,
            user_errors(),
        ):
            files = write_features(data, out, model_config, snapshot, tables=tables)
    console.print(
        f"{files.rows:,} rows x {len(files.feature_set.model_columns)} features; families: "
        f"{', '.join(files.feature_set.families)}"
    )
    print_coverage(files.feature_set)
    for path in files.written:
        console.print(f"wrote {path}")


@app.command()
def train(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")],
    config: ModelConfigPath = None,
    scorecard: Annotated[
        Path | None, typer.Option("--scorecard", help="Scorecard YAML to compare against.")
    ] = None,
    track: Track = True,
    uri: TrackingUri = None,
    overwrite: Overwrite = False,
    encoding: Encoding = None,
    sep: Sep = None,
    force: ForceRegister = False,
    reason: Reason = None,
) -> None:
    """Train both heads out of time; compare with the scorecard, a logistic baseline, the base
    rate and (on a generated world) the oracle; register both heads as challenger (not when a
    head's shipped scorer is degenerate, unless --force)."""
    from propensity.model.scorecard import Scorecard
    from propensity.runs.folder import check_run_target
    from propensity.runs.workflows import train_accounts

    forced = force_reason(force, reason)
    with user_errors():
        check_run_target(out, overwrite)  # before the data is read
    model_config = load_model_config(config)
    with user_errors():
        card = Scorecard.from_yaml(scorecard)
    with (
        opened_tables(data, model_config.features, None, None, encoding, sep) as tables,
        user_errors(),
        steps("train", total=6) as advance,
    ):
        trained = train_accounts(
            data, out, model_config, card, track=track, uri=uri, progress=advance,
            tables=tables, overwrite=overwrite, force_reason=forced,
        )  # fmt: skip
    print_screen(trained.result.screen, model_config.keep_suspects)
    print_evaluation(trained.result)
    console.print(f"run folder: [bold]{out}[/]; report: [bold]{trained.report}[/]")
    print_registration(trained)


@app.command()
def tune(
    data: DataDir,
    config: ModelConfigPath = None,
    head: Annotated[Head, typer.Option("--head", help="Which head(s) to tune.")] = Head.conversion,
    trials: Annotated[int | None, typer.Option("--trials", min=1, help="Trial budget.")] = None,
    write_config: Annotated[
        Path | None,
        typer.Option("--write-config", help="Where the tuned config goes (default: ./configs)."),
    ] = None,
    track: Track = True,
    uri: TrackingUri = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """Optuna over LightGBM's main parameters on time-ordered folds of the screened features
    `train` uses; the best parameters land in the model config."""
    from propensity.runs.workflows import tune as tune_heads

    model_config = load_model_config(config)
    if trials:
        tuning = model_config.tuning.model_copy(update={"n_trials": trials})
        model_config = model_config.model_copy(update={"tuning": tuning})
    heads = ("conversion", "fit") if head is Head.both else head.heads
    with (
        opened_tables(data, model_config.features, None, None, encoding, sep) as tables,
        user_errors(),
    ):
        session = tune_heads(
            data,
            model_config,
            heads,
            write_config=write_config or config,
            track=track,
            uri=uri,
            tables=tables,
            on_head=lambda name: console.print(
                f"tuning head {name}: {model_config.tuning.n_trials} trials, "
                f"{model_config.tuning.n_splits} time folds"
            ),
        )
    for result in session.results:
        pruned = int((result.trials["state"] == "PRUNED").sum()) if len(result.trials) else 0
        console.print(
            f"  {result.head}: fold log-loss {result.baseline_log_loss:.5f} -> best "
            f"{result.best_log_loss:.5f} ({len(result.trials)} trials, {pruned} pruned)"
        )
        console.print(f"  best: {result.best_params.model_dump()}")
    console.print(f"wrote tuned config to [bold]{session.written}[/]")
    if session.run_id:
        console.print(f"MLflow tuning run {session.run_id} (one nested run per trial)")


@app.command()
def explain(
    account: Annotated[str, typer.Option("--account", help="account_id to explain.")],
    data: DataDir,
    run: Annotated[Path, typer.Option("--run", help="Run folder of a training.")] = Path(
        "models/demo_run"
    ),
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """One account's card: scores, tiers, reasons, and what changed since the previous snapshot."""
    from propensity.runs.workflows import load_account_model
    from propensity.scoring import account_card
    from propensity.spine import check_as_of

    snapshot = parse_date("--as-of", as_of)
    with user_errors():
        model = load_account_model(run)
    with opened_tables(data, model.features, None, None, encoding, sep) as tables, user_errors():
        if snapshot is not None:
            snapshot = check_as_of(tables, snapshot, model.spine.horizon_days)
        card = account_card(tables, model, account, snapshot)
    if as_json:
        console.print_json(json.dumps(card))
        return
    print_card(card, tables.accounts.set_index("account_id").loc[account, "name"])


def _model_names(head: Head, models: list[str] | None) -> list[str]:
    from propensity.store import REGISTERED

    return list(models) if models else [REGISTERED[h] for h in head.heads]


@app.command()
def promote(
    head: Annotated[Head, typer.Option("--head", help="Account head(s).")] = Head.both,
    model: Models = None,
    force: Annotated[
        bool, typer.Option("--force", help="Override the gate (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (logged).")] = None,
    uri: TrackingUri = None,
) -> None:
    """Move the champion alias to the challenger if it beats the champion on the challenger's
    untouched test rows (account heads, or any registered model with --model)."""
    if force and not reason:
        raise fail("--force needs --reason: say why the gate is overridden")
    from propensity.registry import promote as promote_models

    with user_errors():
        decisions = promote_models(_model_names(head, model), force=force, reason=reason, uri=uri)
    if print_decisions(decisions):
        raise typer.Exit(code=1)


@app.command()
def rollback(
    head: Annotated[Head, typer.Option("--head", help="Account head(s).")] = Head.both,
    model: Models = None,
    uri: TrackingUri = None,
) -> None:
    """Move the champion alias back to the previous champion version."""
    from propensity.registry import rollback as rollback_models

    with user_errors():
        moved = rollback_models(_model_names(head, model), uri=uri)
    for name, (current, previous) in moved.items():
        console.print(f"{name}: champion v{current} -> v{previous}")


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent runs.")] = 10,
    table_runs: Annotated[bool, typer.Option("--table", help="Table-mode runs instead.")] = False,
    uri: TrackingUri = None,
) -> None:
    """Recent training runs with their key metrics."""
    from propensity.tracking import recent_runs

    kind, other = ("table", "account") if table_runs else ("account", "table")
    with user_errors():
        table = recent_runs(limit, uri, kind=kind)
        others = recent_runs(1, uri, kind=other) if table.empty else None
    if table.empty:
        if others is not None and not others.empty:
            flag = "" if table_runs else " --table"
            console.print(
                f"no {kind} runs in this store, but it holds {other} runs: `propensity runs{flag}`"
            )
        else:
            console.print("no runs yet: `propensity train` logs one")
        return
    numeric = table.select_dtypes("number").columns
    table[numeric] = table[numeric].round(4)
    console.print(table.to_string(index=False), highlight=False)


@app.command()
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
    run_dir: Annotated[Path | None, typer.Option("--run", help="A run folder instead.")] = None,
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


@app.command()
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
    run_dir: Annotated[Path | None, typer.Option("--run", help="A run folder instead.")] = None,
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


@app.command()
def explorer(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("accounts.html"),
    as_of: AsOf = None,
    run_dir: Annotated[Path | None, typer.Option("--run", help="A run folder instead.")] = None,
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


@app.command()
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


@app.command()
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


@app.command()
def demo(
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="World and target list (default ./data).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option("--run-dir", help="Run folder (default ./models/demo_run).")
    ] = None,
    accounts: Annotated[int, typer.Option("--accounts", min=50, help="Accounts.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
    uri: TrackingUri = None,
) -> None:
    """The whole path on a generated world: generate, validate, features, train, evaluate,
    register, promote, score, export, report."""
    from propensity.data.contract import summarize
    from propensity.runs.demo import run_demo
    from propensity.scoring import account_card

    with user_errors(), steps("demo", total=6) as advance:
        result = run_demo(workdir, run_dir, accounts, seed, uri, progress=advance)
    for line in summarize(result.tables).to_lines():
        console.print(f"  {line}", highlight=False)
    trained = result.trained
    print_evaluation(trained.result)
    for d in result.decisions:
        state = "promoted to champion" if d.promoted else "kept as challenger"
        if not d.promoted and d.champion is None:
            state += " (no champion yet: the demo scores this head with it)"
        console.print(f"  registry: {d.name} v{d.challenger} {state} ({d.reason})", highlight=False)
    listing = result.target_list.listing
    top = listing.iloc[0]
    console.print(
        f"\nwhy the top account ranks high (`propensity explain --account {top.account_id}`):"
    )
    card = account_card(result.tables, trained.result.scoring_model, top.account_id)
    print_card(card, top.account_name)
    console.print(f"\ndemo finished in {result.seconds:.1f} s")
    console.print(
        f"  target list ({result.target_list.stability['rows']:,} prospects, ranked): "
        f"[bold]{result.target_list.out}[/]"
    )
    console.print(f"  report: [bold]{trained.report}[/]")
    console.print(
        f"  run folder: {trained.run_dir}; MLflow run {trained.run_id} in {trained.tracking_uri}"
    )


@config_app.command("show")
def config_show(name: Annotated[ConfigName, typer.Argument(help="Which config.")]) -> None:
    """Print a packaged default config (copy it to ./configs/NAME.yaml to change it)."""
    from propensity.settings import packaged_config_text

    console.print(packaged_config_text(name.value), highlight=False, markup=False)


if __name__ == "__main__":
    app()
