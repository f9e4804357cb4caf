"""`propensity table ...`: table mode on the command line (train, score, adapt real exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from propensity.cli import (
    TRACKING_URI_OPTION,
    _fail,
    _print_screen,
    _progress,
    _pydantic_message,
    console,
    err_console,
)

table_app = typer.Typer(
    help="Table mode: a won/lost CSV/Parquet export (accounts, leads or deals) to a calibrated, "
    "explained, tracked model, with a leakage screen.",
    no_args_is_help=True,
)

SOURCE_HELP = "A built-in adapter for a real export instead of TABLE: maven, olist or x_education."


def _source(name: str, real_dir: Path | None, join_closed_deals: bool):
    from propensity.data import adapters

    loaders = adapters.SOURCES
    if name not in loaders:
        raise _fail(f"--source must be one of {', '.join(loaders)}, got {name!r}")
    kwargs = {"real_dir": real_dir} if real_dir else {}
    if name == "olist":
        kwargs["join_closed_deals"] = join_closed_deals
    elif join_closed_deals:
        raise _fail("--join-closed-deals applies to --source olist only")
    try:
        return loaders[name](**kwargs)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None


def _print_table_evaluation(run) -> None:
    from rich.table import Table

    title = "held-out rows: " + (
        f"out of time, test {run.protocol['test_start'][:10]}..{run.protocol['test_end'][:10]}"
        if run.config.out_of_time
        else f"{run.config.folds}-fold (first of {run.config.repeats} repeats)"
    )
    table = Table(title=title)
    metrics = ("roc_auc", "pr_auc", "brier", "brier_skill", "ece", "lift_10")
    for column in ("scorer", *metrics):
        table.add_column(column)
    for row in run.evaluation.to_dict("records"):
        cells = [row["scorer"]]
        for metric in metrics:
            value, lo, hi = row[metric], row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
            cells.append(
                ""
                if value != value
                else f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo == lo and hi == hi else "")
            )
        table.add_row(*cells)
    console.print(table)
    if not run.config.out_of_time:
        spread = run.folds[run.folds["scorer"] == "model"]["roc_auc"]
        console.print(
            f"model ROC-AUC over {len(spread)} folds: {spread.mean():.3f} ± {spread.std():.3f} (sd)"
        )


@table_app.command("train")
def train(
    table: Annotated[
        Path | None, typer.Argument(help="CSV or Parquet file, one row per record.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Run folder to write.")] = Path(
        "models/table_run"
    ),
    id_column: Annotated[str | None, typer.Option("--id", help="Id column.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Outcome column.")] = None,
    positive: Annotated[
        list[str] | None,
        typer.Option("--positive", help="Outcome value meaning won/converted (repeatable)."),
    ] = None,
    negative: Annotated[
        list[str] | None,
        typer.Option(
            "--negative",
            help="Outcome value meaning lost (repeatable); rows with other values are open: "
            "scored, never trained on. Default: every other value is lost.",
        ),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option("--time", help="When each row was known: evaluate out of time."),
    ] = None,
    time_ordered: Annotated[
        bool,
        typer.Option("--time-ordered", help="No time column, but the rows are in time order."),
    ] = False,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Column to leave out (repeatable).")
    ] = None,
    keep_suspects: Annotated[
        bool,
        typer.Option("--keep-suspects", help="Train on columns the leakage screen flags."),
    ] = False,
    folds: Annotated[int | None, typer.Option("--folds", help="K for K-fold (default 5).")] = None,
    repeats: Annotated[
        int | None, typer.Option("--repeats", help="K-fold repeats (default 2).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TableConfig YAML (options given here override it)."),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help=SOURCE_HELP)] = None,
    real_dir: Annotated[
        Path | None,
        typer.Option(
            "--real-dir", help="Folder of the real exports (default ../shared/data/real)."
        ),
    ] = None,
    join_closed_deals: Annotated[
        bool,
        typer.Option(
            "--join-closed-deals",
            help="Olist: join the closed-deal fields (to see the screen catch them).",
        ),
    ] = False,
    model_name: Annotated[
        str | None,
        typer.Option(
            "--model-name", help="Registered model name (default propensity-table-<name>)."
        ),
    ] = None,
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="Log to MLflow and register the model.")
    ] = True,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Train and evaluate a model on a won/lost table: screen, protocol, model vs logistic vs base rate, reasons, scores."""
    import yaml
    from pydantic import ValidationError

    from propensity.data.table import TableError, read_table
    from propensity.model.config import TableConfig
    from propensity.runs.table import run_table, write_table_run

    if (table is None) == (source is None):
        raise _fail("give either a TABLE file or --source")
    settings: dict = {}
    if config:
        try:
            settings = yaml.safe_load(config.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise _fail(f"config {config}: {exc}") from None
    if source:
        adapted = _source(source, real_dir, join_closed_deals)
        frame, name, table_path = adapted.frame, adapted.name, None
        settings.update(
            id_column=adapted.id_column,
            label_column=adapted.label_column,
            positive=list(adapted.positive),
            negative=list(adapted.negative) if adapted.negative else None,
            time_column=adapted.time_column,
            exclude=[*adapted.identifiers, *(settings.get("exclude") or [])],
        )
        console.print(f"[bold]{name}[/]: {adapted.description}")
        for note in adapted.notes:
            console.print(f"  note: {note}")
    else:
        try:
            frame = read_table(table)
        except TableError as exc:
            raise _fail(str(exc)) from None
        name, table_path = table.stem, table
    overrides = {
        "id_column": id_column,
        "label_column": label,
        "positive": positive or None,
        "negative": negative or None,
        "time_column": time_column,
        "rows_in_time_order": time_ordered or None,
        "keep_suspects": keep_suspects or None,
        "folds": folds,
        "repeats": repeats,
        "model_name": model_name,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if exclude:
        settings["exclude"] = [*(settings.get("exclude") or []), *exclude]
    try:
        table_config = TableConfig.model_validate(settings)
    except ValidationError as exc:
        raise _fail(f"table settings: {_pydantic_message(exc)}") from None
    with _progress() as progress:
        task = progress.add_task("table", total=5)
        try:
            run = run_table(
                frame,
                table_config,
                name,
                progress=lambda step: progress.update(task, advance=1, description=step),
            )
        except TableError as exc:
            raise _fail(str(exc)) from None
    label_series = run.prepared.label
    console.print(
        f"{name}: {len(label_series):,} rows, {int(label_series.notna().sum()):,} labelled "
        f"({int((label_series == 1).sum()):,} positive, base rate {label_series.mean():.3f}), "
        f"{int(label_series.isna().sum()):,} open"
    )
    duplicates = run.duplicates
    console.print(
        f"duplicates: {duplicates['exact_duplicate_rows']:,} exact duplicate rows; "
        f"{duplicates['conflicting_vectors']:,} feature vectors with both outcomes "
        f"({duplicates['conflicting_rows']:,} rows)"
    )
    for note in run.notes:
        console.print(f"  {note}")
    _print_screen(run.screen, table_config.keep_suspects)
    _print_table_evaluation(run)
    style = "green" if run.beats_base_rate else "yellow"
    console.print(f"[bold {style}]{run.verdict}[/]")
    write_table_run(run, out, frame)
    console.print(
        f"run folder: [bold]{out}[/] (summary.md, evaluation.csv, screen.csv, scores.csv, table_model.joblib)"
    )
    if track:
        from propensity.tracking import log_table_run, tracking_uri

        logged = log_table_run(run, out, frame, table_path, uri)
        ((registered, version),) = logged.versions.items()
        console.print(
            f"MLflow run {logged.run_id} in {tracking_uri(uri)}; registered {registered} v{version} as challenger"
        )


@table_app.command("score")
def score(
    table: Annotated[Path, typer.Argument(help="CSV or Parquet file with the model's columns.")],
    out: Annotated[Path, typer.Option("--out", help="Scored rows, .csv or .parquet.")],
    run_dir: Annotated[
        Path | None, typer.Option("--run", help="A table run folder (its table_model.joblib).")
    ] = None,
    registered: Annotated[
        str | None,
        typer.Option(
            "--registered", help="Registered model NAME, NAME@alias or NAME:version (MLflow)."
        ),
    ] = None,
    open_only: Annotated[
        bool, typer.Option("--open-only", help="Only rows without a known outcome.")
    ] = False,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Keep the best N rows.")] = None,
    reasons: Annotated[bool, typer.Option("--reasons/--no-reasons")] = True,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Score a table with a trained table model: rank, probability, score, tier, reasons, model version."""
    import joblib

    from propensity.data.table import TableError, read_table
    from propensity.io import write_atomic
    from propensity.outputs.export import neutralise_formulas

    if (run_dir is None) == (registered is None):
        raise _fail("give either --run or --registered")
    if out.suffix not in (".csv", ".parquet"):
        raise _fail(f"--out must end in .csv or .parquet, got {out.name}")
    if run_dir:
        path = run_dir / "table_model.joblib"
        if not path.is_file():
            raise _fail(
                f"{run_dir} has no table_model.joblib (train with `propensity table train`)"
            )
        model = joblib.load(path)
    else:
        from mlflow.exceptions import MlflowException

        from propensity.tracking import load_registered_table_model

        name, _, pin = registered.replace(":", "@").partition("@")
        try:
            model = load_registered_table_model(name, pin or "challenger", uri)
        except MlflowException as exc:
            raise _fail(f"registered model {registered}: {exc.message}") from None
    try:
        scored = model.score(read_table(table), table.stem, reasons=reasons)
    except TableError as exc:
        raise _fail(str(exc)) from None
    if not getattr(model, "beats_base_rate", True):
        err_console.print(
            f"[bold yellow]warning:[/] this model did not beat the base rate when it was trained: "
            f"{model.verdict}",
            highlight=False,
        )
    if open_only and "outcome" in scored:
        scored = scored[scored["outcome"] == "open"].reset_index(drop=True)
    if top:
        scored = scored.head(top)
    safe = neutralise_formulas(scored)
    if out.suffix == ".csv":
        write_atomic(out, lambda p: safe.to_csv(p, index=False))
    else:
        write_atomic(out, lambda p: safe.to_parquet(p, index=False))
    console.print(f"scored {len(scored):,} rows with {model.version}: {out}")


@table_app.command("adapt")
def adapt(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    out: Annotated[Path, typer.Option("--out", help="Table to write (.parquet or .csv).")],
    real_dir: Annotated[
        Path | None,
        typer.Option(
            "--real-dir", help="Folder of the real exports (default ../shared/data/real)."
        ),
    ] = None,
    join_closed_deals: Annotated[bool, typer.Option("--join-closed-deals")] = False,
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
    import shlex

    from propensity.io import write_atomic

    if contract:
        from propensity.data.adapters import maven_tables
        from propensity.data.contract import write_tables

        if source != "maven":
            raise _fail("--contract applies to maven only")
        try:
            tables = maven_tables(real_dir) if real_dir else maven_tables()
            write_tables(tables, out)
        except (FileNotFoundError, FileExistsError) as exc:
            raise _fail(str(exc)) from None
        rows = ", ".join(f"{name} {len(tables.get(name)):,}" for name in tables.present())
        console.print(f"contract tables ({rows}) -> {out}; check with: propensity validate {out}")
        return
    adapted = _source(source, real_dir, join_closed_deals)
    if out.suffix == ".csv":
        write_atomic(out, lambda p: adapted.frame.to_csv(p, index=False))
    elif out.suffix == ".parquet":
        write_atomic(out, lambda p: adapted.frame.to_parquet(p, index=False))
    else:
        raise _fail(f"--out must end in .csv or .parquet, got {out.name}")
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
