"""The `propensity` command. Each command parses its options, makes one call into a library
function (:mod:`propensity.runs.workflows`, :mod:`propensity.runs.demo`, :mod:`propensity.registry`)
and prints what it returned; user mistakes end as one ``error: ...`` line with exit code 2, and
anything else as one line with exit code 1 (``--verbose`` shows the traceback)."""

from __future__ import annotations

import json
import sys
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
    MemoryLimit,
    ModelConfigPath,
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
from propensity.cli.lists import explorer, export, monitor, report, score
from propensity.cli.printing import (
    print_card,
    print_coverage,
    print_evaluation,
    print_screen,
)
from propensity.cli.registry import promote, rollback, runs
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


app.command()(promote)
app.command()(rollback)
app.command()(runs)
app.command()(score)
app.command()(export)
app.command()(explorer)
app.command()(monitor)
app.command()(report)


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
