"""`propensity table ...`: table mode on the command line (train, score, adapt real exports).
Promotion and rollback of a table model: `propensity promote --model NAME` / `rollback --model NAME`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from propensity.cli.common import (
    Encoding,
    ForceRegister,
    Overwrite,
    RealDir,
    Reason,
    Sep,
    Source,
    Track,
    TrackingUri,
    console,
    err_console,
    fail,
    force_reason,
    input_notes,
    print_registration,
    steps,
    user_errors,
)
from propensity.cli.printing import print_evaluation, print_screen

table_app = typer.Typer(
    help="Table mode: a won/lost CSV/Parquet export (accounts, leads or deals) to a calibrated, "
    "explained, tracked model, with a leakage screen.",
    no_args_is_help=True,
)
SourceOption = Annotated[
    Source | None, typer.Option("--source", help="A built-in adapter for a real export.")
]
JoinClosedDeals = Annotated[
    bool,
    typer.Option("--join-closed-deals", help="Olist: join the closed-deal fields (screen demo)."),
]


def _adapted(source: Source, real_dir: Path | None, join_closed_deals: bool):
    from propensity.data import adapters

    if join_closed_deals and source is not Source.olist:
        raise fail("--join-closed-deals applies to --source olist only")
    options = {"join_closed_deals": True} if join_closed_deals else {}
    with user_errors():
        return adapters.SOURCES[source.value](real_dir, **options)


TableFile = Annotated[Path | None, typer.Argument(help="CSV or Parquet file, one row per record.")]
RunOut = Annotated[Path, typer.Option("--out", help="Run folder to write.")]
IdColumn = Annotated[
    str | None,
    typer.Option("--id", help="Id column (none: rows are named by their number in the file)."),
]
LabelColumn = Annotated[str | None, typer.Option("--label", help="Outcome column.")]
Positive = Annotated[
    list[str] | None, typer.Option("--positive", help="Value meaning won (repeatable).")
]
Negative = Annotated[
    list[str] | None,
    typer.Option(
        "--negative",
        help="Value meaning lost (repeatable); other values are open rows: scored, never trained "
        "on. Default: every other value is lost.",
    ),
]
TimeColumn = Annotated[
    str | None, typer.Option("--time", help="When each row was known: evaluate out of time.")
]
TimeOrdered = Annotated[
    bool, typer.Option("--time-ordered", help="No time column, but rows are in time order.")
]
Exclude = Annotated[
    list[str] | None, typer.Option("--exclude", help="Column to leave out (repeatable).")
]
KeepSuspects = Annotated[
    bool, typer.Option("--keep-suspects", help="Train on columns the leakage screen flags.")
]
Folds = Annotated[int | None, typer.Option("--folds", help="K for K-fold (default 5).")]
Repeats = Annotated[int | None, typer.Option("--repeats", help="K-fold repeats (default 2).")]
TableConfigPath = Annotated[
    Path | None, typer.Option("--config", help="TableConfig YAML (options here override it).")
]
ModelName = Annotated[
    str | None,
    typer.Option("--model-name", help="Registered name (default propensity-table-<name>)."),
]


@table_app.command("train")
def train(
    table: TableFile = None,
    out: RunOut = Path("models/table_run"),
    id_column: IdColumn = None,
    label: LabelColumn = None,
    positive: Positive = None,
    negative: Negative = None,
    time_column: TimeColumn = None,
    time_ordered: TimeOrdered = False,
    exclude: Exclude = None,
    keep_suspects: KeepSuspects = False,
    folds: Folds = None,
    repeats: Repeats = None,
    config: TableConfigPath = None,
    source: SourceOption = None,
    real_dir: RealDir = None,
    join_closed_deals: JoinClosedDeals = False,
    model_name: ModelName = None,
    track: Track = True,
    uri: TrackingUri = None,
    overwrite: Overwrite = False,
    encoding: Encoding = None,
    sep: Sep = None,
    force: ForceRegister = False,
    reason: Reason = None,
) -> None:
    """Train and evaluate a model on a won/lost table: screen, protocol, model vs logistic vs
    base rate, verdict, reasons, scores; registered as challenger."""
    from propensity.runs.folder import check_run_target
    from propensity.runs.workflows import train_table

    if (table is None) == (source is None):
        raise fail("give either a TABLE file or --source")
    forced = force_reason(force, reason)
    with user_errors():
        check_run_target(out, overwrite)  # before the table is read
    frame, name, origin, schema = _input(table, source, real_dir, join_closed_deals, encoding, sep)
    overrides = {
        "id_column": id_column,
        "label_column": label,
        "positive": positive or None,
        "negative": negative or None,
        "time_column": time_column,
        "rows_in_time_order": time_ordered or None,
        "exclude": exclude or None,
        "keep_suspects": keep_suspects or None,
        "folds": folds,
        "repeats": repeats,
        "model_name": model_name,
    }
    with user_errors("table settings:"):
        table_config = table_settings(config, schema, overrides)
    with user_errors(), steps("table", total=5) as advance:
        trained = train_table(
            frame, table_config, out, name=name, source=origin, track=track, uri=uri,
            progress=advance, overwrite=overwrite, force_reason=forced,
        )  # fmt: skip
    _print_table_run(trained.result)
    console.print(f"run folder: [bold]{out}[/] (summary.md, report.html, scores.csv, screen.csv)")
    print_registration(trained)


# the settings a user gives as flags: errors name the flag they typed (and the key, for --config)
FLAGS = {
    "id_column": "--id",
    "label_column": "--label",
    "positive": "--positive",
    "negative": "--negative",
    "time_column": "--time",
    "rows_in_time_order": "--time-ordered",
    "exclude": "--exclude",
    "keep_suspects": "--keep-suspects",
    "folds": "--folds",
    "repeats": "--repeats",
    "model_name": "--model-name",
}


def table_settings(config: Path | None, schema: dict, overrides: dict):
    """The validated :class:`TableConfig`; a mistake is one line naming the flag (and the
    config key) that is wrong and what is allowed."""
    import re

    from pydantic import ValidationError

    from propensity.model.config import TableConfig

    try:
        return TableConfig.layered(config, schema, overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            where = f"{FLAGS[key]} ({key})" if key in FLAGS else key
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "required"
            # a check across keys names them: say the flags too
            message = re.sub(
                r"\b(" + "|".join(FLAGS) + r")\b",
                lambda m: f"{FLAGS[m.group(1)]} ({m.group(1)})",
                message,
            )
            problems.append(f"{where}: {message}" if where else message)
        raise fail("table settings: " + "; ".join(problems)) from None


_SCHEMA_KEYS = ("id_column", "label_column", "positive", "negative", "time_column", "exclude")


def _input(
    table: Path | None,
    source: Source | None,
    real_dir,
    join_closed_deals: bool,
    encoding: str | None = None,
    sep: str | None = None,
):
    """(frame, name, origin, schema settings) from a table file or a built-in adapter."""
    from propensity.data.table import read_table

    if source is None:
        with user_errors(), input_notes():
            return read_table(table, encoding=encoding, sep=sep), table.stem, str(table), {}
    adapted = _adapted(source, real_dir, join_closed_deals)
    console.print(f"[bold]{adapted.name}[/]: {adapted.description}")
    for note in adapted.notes:
        console.print(f"  note: {note}")
    schema = adapted.table_config().model_dump(include=set(_SCHEMA_KEYS))
    return adapted.frame, adapted.name, f"source {source.value}", schema


def _print_table_run(result) -> None:
    from propensity.runs.table import fold_spread_lines, without_indicators_text

    facts = result.summary
    console.print(
        f"{facts['table']}: {facts['rows']:,} rows, {facts['labelled_rows']:,} labelled "
        f"({facts['positives']:,} positive, base rate {facts['base_rate']:.3f}), "
        f"{facts['open_rows']:,} open"
    )
    duplicates = facts["duplicates"]
    console.print(
        f"duplicates: {duplicates['exact_duplicate_rows_in_file']:,} exact duplicate rows in the "
        f"file; on the model's columns {duplicates['exact_duplicate_rows']:,} exact duplicates and "
        f"{duplicates['conflicting_vectors']:,} feature vectors with both outcomes "
        f"({duplicates['conflicting_rows']:,} rows)"
    )
    for note in result.scoring_model.notes:
        console.print(f"  {note}")
    print_screen(result.screen, result.config.keep_suspects)
    if facts.get("period_auc") is not None:
        console.print(
            f"the columns together tell later rows from earlier ones with ROC-AUC "
            f"{facts['period_auc']:.3f} ({without_indicators_text(facts)} without "
            "the period indicators; 0.5: the periods look alike)"
        )
    print_evaluation(result)
    for line in fold_spread_lines(result):
        console.print(line, highlight=False)
    rates = facts["base_rates"]
    if result.config.out_of_time:
        console.print(
            f"base rate: training {rates['train']:.3f}, validation {rates['validation']:.3f}, "
            f"test {rates['test']:.3f} ({rates['test_over_train']:.2f}x training); "
            f"calibration: {facts['heads']['table']['calibration_rows']}",
            highlight=False,
        )
    said = {w for run in result.heads.values() for w in run.shipped.warnings}
    for warning in result.scoring_model.warnings:
        if warning not in said:
            err_console.print(f"[bold yellow]warning:[/] {escape(warning)}")


@table_app.command("score")
def score(
    table: Annotated[Path, typer.Argument(help="CSV or Parquet file with the model's columns.")],
    out: Annotated[Path, typer.Option("--out", help="Scored rows, .csv or .parquet.")],
    run_dir: Annotated[Path | None, typer.Option("--run", help="A table run folder.")] = None,
    registered: Annotated[
        str | None,
        typer.Option("--registered", help="Registered model NAME, NAME@alias or NAME:version."),
    ] = None,
    open_only: Annotated[
        bool, typer.Option("--open-only", help="Only rows without an outcome.")
    ] = False,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Keep the best N rows.")] = None,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons")] = True,
    uri: TrackingUri = None,
    encoding: Encoding = None,
    sep: Sep = None,
) -> None:
    """Score a table with a table model: rank, probability, score, tier, reasons, model version."""
    from propensity.runs.workflows import load_table_model, score_table

    if (run_dir is None) == (registered is None):
        raise fail("give either --run or --registered")
    with user_errors():
        model = load_table_model(run_dir, registered, uri)
    with user_errors(), input_notes():
        scored = score_table(
            table, out, model, open_only=open_only, top=top, reasons=reasons, encoding=encoding,
            sep=sep,
        )  # fmt: skip
    for warning in getattr(model, "warnings", None) or []:
        err_console.print(f"[bold yellow]warning (from training):[/] {escape(warning)}")
    if not model.beats_base_rate:
        err_console.print(
            f"[bold yellow]warning:[/] this model did not beat the base rate when it was trained: "
            f"{model.verdict}",
            highlight=False,
        )
    console.print(f"scored {len(scored.scored):,} rows with {model.version}: {out}")


@table_app.command("adapt")
def adapt(
    source: Annotated[Source, typer.Argument(help="A built-in adapter for a real export.")],
    out: Annotated[Path, typer.Option("--out", help="Table to write (.parquet or .csv).")],
    real_dir: RealDir = None,
    join_closed_deals: JoinClosedDeals = False,
    contract: Annotated[
        bool,
        typer.Option(
            "--contract",
            help="Maven only: write its accounts + opportunities as contract tables into the "
            "folder --out (for `propensity validate` / `train`) instead of one deal table.",
        ),
    ] = False,
) -> None:
    """Write a real export as one won/lost table and print the `table train` command for it."""
    from propensity.data.adapters import maven_tables
    from propensity.data.contract import write_tables
    from propensity.io import write_frame

    if contract:
        if source is not Source.maven:
            raise fail("--contract applies to maven only")
        with user_errors():
            tables = maven_tables(real_dir)
            write_tables(tables, out)
        rows = ", ".join(f"{name} {len(tables.get(name)):,}" for name in tables.present())
        console.print(f"contract tables ({rows}) -> {out}; check with: propensity validate {out}")
        return
    adapted = _adapted(source, real_dir, join_closed_deals)
    with user_errors():
        write_frame(adapted.frame, out)
    command = ["propensity", "table", "train", str(out), "--id", adapted.id_column]
    command += ["--label", adapted.label_column]
    for value in adapted.positive:
        command += ["--positive", value]
    for value in adapted.negative or ():
        command += ["--negative", value]
    if adapted.time_column:
        command += ["--time", adapted.time_column]
    for column in adapted.identifiers:
        command += ["--exclude", column]
    console.print(f"{adapted.name}: {len(adapted.frame):,} rows -> {out}")
    console.print(adapted.description)
    console.print("train it with:\n  " + shlex.join(command), highlight=False, markup=False)
