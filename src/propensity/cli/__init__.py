"""The `propensity` command: each stage as a typed subcommand; I/O and progress live here."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from propensity import __version__

app = typer.Typer(
    name="propensity",
    help="Account-level ICP fit and conversion propensity for B2B account-based marketing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)

TRACKING_URI_OPTION = typer.Option(
    "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else models/mlflow.db)."
)


DEFAULT_WORLD = Path("data/demo_world")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        console.print(f"propensity {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Account-level ICP fit and conversion propensity for B2B account-based marketing."""


@app.command()
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="World folder to write (five tables + truth/).")
    ] = DEFAULT_WORLD,
    accounts: Annotated[
        int, typer.Option("--accounts", min=50, help="Number of accounts.")
    ] = 20_000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed (same seed -> identical files).")
    ] = 7,
    weeks: Annotated[int, typer.Option("--weeks", min=30, help="Weeks of history.")] = 104,
    engagement_scale: Annotated[
        float, typer.Option("--engagement-scale", help="Multiplies every engagement rate.")
    ] = 1.0,
    truth: Annotated[
        str, typer.Option("--truth", help="Truth dates: weekly_and_monthly or monthly.")
    ] = "weekly_and_monthly",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing world folder.")
    ] = False,
) -> None:
    """Generate a synthetic B2B world with ground truth."""
    from pydantic import ValidationError

    from propensity.data.world import WorldConfig, generate_world

    try:
        config = WorldConfig(
            n_accounts=accounts,
            seed=seed,
            weeks=weeks,
            engagement_scale=engagement_scale,
            truth_dates=truth,
        )
    except ValidationError as exc:
        raise _fail(_pydantic_message(exc)) from None
    started = time.perf_counter()
    try:
        with _progress() as progress:
            task = progress.add_task("generate world (chunks)", total=None)

            def on_chunk(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            generate_world(config, out, overwrite=overwrite, on_chunk=on_chunk)
    except FileExistsError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"wrote world of {accounts:,} accounts to [bold]{out}[/] in {time.perf_counter() - started:.1f} s"
    )


@app.command()
def validate(
    data: Annotated[
        Path,
        typer.Argument(help="Folder with accounts / contacts / events / intent / opportunities."),
    ],
    unknown_accounts: Annotated[
        str,
        typer.Option(
            "--unknown-accounts", help="error (default) or drop rows pointing to unknown accounts."
        ),
    ] = "error",
) -> None:
    """Check a data folder against the contract and print a summary (writes nothing)."""
    from propensity.data.contract import summarize

    if unknown_accounts not in ("error", "drop"):
        raise _fail(f"--unknown-accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    tables = _load(data, unknown_accounts=unknown_accounts)
    for line in summarize(tables).to_lines():
        console.print(line, highlight=False)


@app.command()
def features(
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    out: Annotated[Path, typer.Option("--out", help="Parquet file for the feature matrix.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Build the single snapshot at this date (YYYY-MM-DD), as scoring does."
        ),
    ] = None,
    cadence: Annotated[
        str, typer.Option("--cadence", help="Snapshot cadence: monthly or weekly.")
    ] = "monthly",
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", min=1, help="Label window in days.")
    ] = 90,
) -> None:
    """Build the point-in-time feature matrix (account_id, as_of first); for a spine also its labels."""
    import json

    from pydantic import ValidationError

    from propensity.features import build_features
    from propensity.io import write_parquet, write_text
    from propensity.spine import SpineConfig, build_labels, build_spine

    try:
        spine_config = SpineConfig(cadence=cadence, horizon_days=horizon_days)
    except ValidationError as exc:
        raise _fail(_pydantic_message(exc)) from None
    snapshot = _parse_date("--as-of", as_of) if as_of else None
    tables = _load(data)
    started = time.perf_counter()
    spine = build_spine(tables, spine_config, as_of=snapshot)
    feature_set = build_features(tables, spine)
    elapsed = time.perf_counter() - started
    write_parquet(feature_set.matrix, out)
    written = [out]
    if snapshot is None:
        labels_path = out.with_name(out.stem + ".labels.parquet")
        write_parquet(build_labels(tables, spine, spine_config), labels_path)
        settings = {
            "spine": spine_config.model_dump(mode="json"),
            "families": list(feature_set.families),
        }
        settings_path = out.with_name(out.stem + ".settings.json")
        write_text(json.dumps(settings, indent=2) + "\n", settings_path)
        written += [labels_path, settings_path]
    console.print(
        f"{len(spine):,} rows x {len(feature_set.model_columns)} features in {elapsed:.1f} s; "
        f"families: {', '.join(feature_set.families)}"
    )
    _print_coverage(feature_set)
    for path in written:
        console.print(f"wrote {path}")


def _model_config(path: Path | None):
    from pydantic import ValidationError

    from propensity.model.config import ModelConfig

    source = path
    try:
        return ModelConfig.from_yaml(source)
    except ValidationError as exc:
        raise _fail(f"config {source}: {_pydantic_message(exc)}") from None
    except FileNotFoundError:
        raise _fail(f"config file {source} does not exist") from None


@app.command()
def train(
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    out: Annotated[
        Path, typer.Option("--out", help="Run folder for evaluation, predictions and models.")
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Model config YAML (default configs/model.yaml)."),
    ] = None,
    scorecard: Annotated[
        Path | None,
        typer.Option(
            "--scorecard",
            help="Scorecard YAML to compare against (default configs/scorecard.yaml).",
        ),
    ] = None,
    track: Annotated[
        bool,
        typer.Option("--track/--no-track", help="Log the run to MLflow and register both heads."),
    ] = True,
    tracking_uri_option: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow store (default: $MLFLOW_TRACKING_URI, else models/mlflow.db).",
        ),
    ] = None,
) -> None:
    """Train both heads out of time, compare with the scorecard, a logistic baseline and (on a generated world) the oracle."""
    from propensity.data.world import read_truth
    from propensity.model.head import InsufficientDataError
    from propensity.model.scorecard import Scorecard
    from propensity.model.splits import SplitError
    from propensity.runs.account import run_training, write_report, write_run

    model_config = _model_config(config)
    card = Scorecard.from_yaml(scorecard)
    tables = _load(data)
    with _progress() as progress:
        task = progress.add_task("train", total=6)
        try:
            outputs = run_training(
                tables,
                model_config,
                card,
                read_truth(data),
                progress=lambda step: progress.update(task, advance=1, description=step),
            )
        except (InsufficientDataError, SplitError) as exc:
            raise _fail(str(exc)) from None
    write_run(outputs, out)
    _print_screen(outputs.screen, model_config.keep_suspects)
    _print_evaluation(outputs)
    console.print(
        f"run folder: [bold]{out}[/] (evaluation.csv, evaluation.md, deciles.csv, test_predictions.parquet)"
    )
    report = write_report(out, tables)
    console.print(f"report: [bold]{report}[/]")
    if track:
        from propensity.tracking import log_training_run, tracking_uri

        logged = log_training_run(outputs, out, tables, data, tracking_uri_option)
        versions = ", ".join(f"{h} v{v}" for h, v in logged.versions.items())
        console.print(
            f"MLflow run {logged.run_id} in {tracking_uri(tracking_uri_option)}; registered as challenger: {versions}"
        )


@app.command()
def tune(
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Model config YAML (default configs/model.yaml)."),
    ] = None,
    head: Annotated[str, typer.Option("--head", help="conversion, fit or both.")] = "conversion",
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="Trial budget (default: tuning.n_trials).")
    ] = None,
    write_config: Annotated[
        Path | None,
        typer.Option(
            "--write-config", help="Where the tuned config goes (default: the config file used)."
        ),
    ] = None,
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="Log the session to MLflow.")
    ] = True,
    tracking_uri_option: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Optuna search over LightGBM's main parameters on time-ordered folds; the best land in the model config."""
    from propensity import settings
    from propensity.features import build_features
    from propensity.io import write_text
    from propensity.model.head import InsufficientDataError
    from propensity.model.splits import SplitError
    from propensity.model.tune import tune_head, with_best_params
    from propensity.spine import build_labels, build_spine

    if head not in ("conversion", "fit", "both"):
        raise _fail(f"--head must be conversion, fit or both, got {head!r}")
    model_config = _model_config(config)
    if trials:
        model_config = model_config.model_copy(
            update={"tuning": model_config.tuning.model_copy(update={"n_trials": trials})}
        )
    tables = _load(data)
    spine = build_spine(tables, model_config.spine)
    labels = build_labels(tables, spine, model_config.spine)
    feature_set = build_features(tables, spine, model_config.features)
    results = []
    for name in ("conversion", "fit") if head == "both" else (head,):
        console.print(
            f"tuning head {name}: {model_config.tuning.n_trials} trials, {model_config.tuning.n_splits} time folds"
        )
        try:
            result = tune_head(feature_set, labels, model_config, name)
        except (InsufficientDataError, SplitError) as exc:
            raise _fail(str(exc)) from None
        results.append(result)
        pruned = int((result.trials["state"] == "PRUNED").sum()) if len(result.trials) else 0
        console.print(
            f"  fold log-loss: configured {result.baseline_log_loss:.5f} -> best {result.best_log_loss:.5f} "
            f"({len(result.trials)} trials, {pruned} pruned)"
        )
        console.print(f"  best: {result.best_params.model_dump()}")
        model_config = with_best_params(model_config, result)
    target = write_config or config or settings.writable_config_path("model")
    write_text(model_config.to_yaml(), target)
    console.print(f"wrote tuned config to [bold]{target}[/]")
    if track:
        from propensity.tracking import log_tuning_run

        run_id = log_tuning_run(results, model_config, tables, data, tracking_uri_option)
        console.print(f"MLflow tuning run {run_id} (one nested run per trial)")


@app.command()
def explain(
    account: Annotated[str, typer.Option("--account", help="account_id to explain.")],
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    run: Annotated[
        Path, typer.Option("--run", help="Run folder written by `propensity train`.")
    ] = Path("models/demo_run"),
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Snapshot date (default: end of the data).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
) -> None:
    """One account's card: scores, tiers, reasons, and what changed since the previous snapshot."""
    import json

    from propensity.scoring import account_card, load_scoring_model

    snapshot = _parse_date("--as-of", as_of) if as_of else None
    try:
        model = load_scoring_model(run)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    tables = _load(data)
    try:
        card = account_card(tables, model, account, snapshot)
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None
    if as_json:
        console.print_json(json.dumps(card))
        return
    name = tables.accounts.set_index("account_id").loc[account, "name"]
    console.print(
        f"[bold]{name}[/] ({account}) as of {card['as_of']}  model {card['model_version']}",
        highlight=False,
    )
    for head, entry in card["heads"].items():
        delta = entry.get("score_delta")
        change = "" if delta is None else f"  ({delta:+d} since {entry['previous_as_of']})"
        console.print(
            f"  {head:<10} score {entry['score']:>3}/100  tier {entry['tier']:<5} p={entry['probability']:.3f}{change}",
            highlight=False,
        )
        for reason in entry["reasons"]:
            sign = "+" if reason["contribution"] > 0 else "-"
            console.print(
                f"      {sign} {reason['text']}  ({reason['share']:+.0%})",
                highlight=False,
                markup=False,
            )
        if entry.get("moved"):
            moved = ", ".join(f"{m['field']} {m['change']:+.2f}" for m in entry["moved"])
            console.print(f"      moved most since last snapshot: {moved}", highlight=False)


def _heads(head: str) -> tuple[str, ...]:
    if head not in ("fit", "conversion", "both"):
        raise _fail(f"--head must be fit, conversion or both, got {head!r}")
    return ("fit", "conversion") if head == "both" else (head,)


@app.command()
def promote(
    head: Annotated[str, typer.Option("--head", help="fit, conversion or both.")] = "both",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate fails (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the gate is overridden (logged).")
    ] = None,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Move the champion alias to the challenger if it beats the champion on the challenger's test window."""
    from propensity.tracking import promote as promote_heads

    try:
        decisions = promote_heads(_heads(head), force=force, reason=reason, uri=uri)
    except (LookupError, ValueError) as exc:
        raise _fail(str(exc)) from None
    refused = False
    for d in decisions:
        verdict = "promoted" if d.promoted else "kept the champion"
        console.print(
            f"{d.head}: challenger v{d.challenger} vs champion v{d.champion or '-'}: {verdict} ({d.reason})"
        )
        if not d.comparison.empty:
            console.print(d.comparison.to_string(index=False), highlight=False)
        refused |= not d.promoted and d.champion != d.challenger
    if refused:
        raise typer.Exit(code=1)


@app.command()
def rollback(
    head: Annotated[str, typer.Option("--head", help="fit, conversion or both.")] = "both",
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Move the champion alias back to the previous champion version."""
    from propensity.tracking import rollback as rollback_heads

    try:
        moved = rollback_heads(_heads(head), uri=uri)
    except LookupError as exc:
        raise _fail(str(exc)) from None
    for name, (current, previous) in moved.items():
        console.print(f"{name}: champion v{current} -> v{previous}")


@app.command()
def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent runs.")] = 10,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Recent training runs with their key metrics."""
    from propensity.tracking import recent_runs

    table = recent_runs(limit, uri)
    if table.empty:
        console.print("no runs yet: `propensity train` logs one")
        return
    numeric = table.select_dtypes("number").columns
    table[numeric] = table[numeric].round(4)
    console.print(table.to_string(index=False), highlight=False)


@app.command()
def score(
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    out: Annotated[Path, typer.Option("--out", help="Scored rows, .parquet or .csv.")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Snapshot date (default: end of the data).")
    ] = None,
    fit_version: Annotated[
        str | None,
        typer.Option("--fit-version", help="Registered fit version (default: champion)."),
    ] = None,
    conversion_version: Annotated[
        str | None,
        typer.Option(
            "--conversion-version", help="Registered conversion version (default: champion)."
        ),
    ] = None,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Score the prospects at a date with the registry's champion models (or explicit versions)."""
    from propensity.io import write_atomic
    from propensity.scoring import score_snapshot
    from propensity.tracking import load_registered_scoring_model

    if out.suffix not in (".parquet", ".csv"):
        raise _fail(f"--out must end in .parquet or .csv, got {out.name}")
    snapshot = _parse_date("--as-of", as_of) if as_of else None
    versions = {k: v for k, v in (("fit", fit_version), ("conversion", conversion_version)) if v}
    try:
        model = load_registered_scoring_model(versions, uri)
    except LookupError as exc:
        raise _fail(str(exc)) from None
    tables = _load(data)
    scored = score_snapshot(tables, model, snapshot)
    _warn_if_unstable(scored, out)
    if out.suffix == ".csv":
        write_atomic(out, lambda p: scored.to_csv(p, index=False))
    else:
        write_atomic(out, lambda p: scored.to_parquet(p, index=False))
    console.print(
        f"scored {len(scored):,} prospects as of {scored['as_of'].iloc[0].date() if len(scored) else '-'} "
        f"with {model.version}: {out}"
    )


@app.command()
def export(
    data: Annotated[Path, typer.Option("--data", help="Contract data folder.")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Target list, .csv or .parquet (the previous file there is the baseline for 'change').",
        ),
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Snapshot date (default: end of the data).")
    ] = None,
    top: Annotated[
        int | None, typer.Option("--top", min=1, help="Keep the top K accounts.")
    ] = None,
    priority_filter: Annotated[
        list[str] | None, typer.Option("--priority", help="Keep these priorities (repeatable).")
    ] = None,
    tier: Annotated[
        list[str] | None, typer.Option("--conversion-tier", help="Keep these conversion tiers.")
    ] = None,
    fit_tier: Annotated[
        list[str] | None, typer.Option("--fit-tier", help="Keep these fit tiers.")
    ] = None,
    country: Annotated[
        list[str] | None, typer.Option("--country", help="Keep these countries.")
    ] = None,
    industry: Annotated[
        list[str] | None, typer.Option("--industry", help="Keep these industries.")
    ] = None,
    batch_tiers: Annotated[
        bool,
        typer.Option(
            "--batch-tiers",
            help="Tiers from this batch's quantiles instead of the model's cut-offs.",
        ),
    ] = False,
    run_dir: Annotated[
        Path | None,
        typer.Option("--run", help="Score with a run folder instead of the registry champions."),
    ] = None,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """Ranked, CRM-ready target list scored with the champion models (one row per account)."""
    from propensity.outputs.export import (
        ScoringConfig,
        ranked_list,
        read_export,
        with_changes,
        write_export,
    )
    from propensity.scoring import load_scoring_model, score_snapshot
    from propensity.tracking import load_registered_scoring_model

    if out.suffix not in (".csv", ".parquet"):
        raise _fail(f"--out must end in .csv or .parquet, got {out.name}")
    snapshot = _parse_date("--as-of", as_of) if as_of else None
    try:
        model = load_scoring_model(run_dir) if run_dir else load_registered_scoring_model(None, uri)
    except (LookupError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    config = ScoringConfig.from_yaml()
    if batch_tiers:
        config = config.model_copy(update={"tiers": "batch"})
    tables = _load(data)
    with _progress() as progress:
        task = progress.add_task("score prospects", total=1)
        scored = score_snapshot(tables, model, snapshot)
        progress.update(task, completed=1)
    filters = {
        "priority": priority_filter,
        "conversion_tier": tier,
        "fit_tier": fit_tier,
        "country": country,
        "industry": industry,
    }
    try:
        listing = ranked_list(scored, tables.accounts, config, top_k=top, filters=filters)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    listing, stability = with_changes(listing, read_export(out), top)
    stability.update(
        {
            "rows": int((listing["change"] != "dropped").sum()),
            "model_version": model.version,
            "as_of": listing["as_of"].iloc[0] if len(listing) else None,
        }
    )
    write_export(listing, out, stability)
    counts = listing[listing["change"] != "dropped"]["priority"].value_counts().to_dict()
    console.print(
        f"wrote {stability['rows']:,} accounts to [bold]{out}[/] ({model.version}); priorities {counts}"
    )
    if stability.get("previous_export"):
        console.print(
            f"vs previous export: rank correlation {stability['rank_correlation_with_previous']:.3f}, "
            f"top-k changed {stability['top_k_changed_share']:.0%}, dropped {stability['dropped']}"
        )
        if stability["top_k_changed_share"] > config.stability_alarm_share:
            err_console.print(
                f"[yellow]warning:[/] {stability['top_k_changed_share']:.0%} of the top-k changed since the previous "
                f"export (alarm above {config.stability_alarm_share:.0%}): check the data and the model version"
            )


@app.command()
def report(
    run: Annotated[Path, typer.Option("--run", help="Run folder written by `propensity train`.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Data folder: adds the top accounts scored now.")
    ] = None,
) -> None:
    """Self-contained HTML report of a run (plots embedded, every value escaped)."""
    from propensity.runs.account import write_report

    if not (run / "summary.json").exists():
        raise _fail(f"{run} is not a run folder (no summary.json): run `propensity train` first")
    path = write_report(run, _load(data) if data else None, out)
    console.print(f"wrote [bold]{path}[/]")


def _warn_if_unstable(scored, out: Path, top_k: int = 100) -> None:
    """Compare with the previous scores at the same path: rank correlation and top-k turnover."""
    import pandas as pd

    from propensity.outputs.export import ScoringConfig

    if not out.exists():
        return
    previous = (
        pd.read_parquet(out)
        if out.suffix == ".parquet"
        else pd.read_csv(out, dtype={"account_id": str})
    )
    if "conversion_probability" not in previous:
        return
    now = scored.set_index("account_id")["conversion_probability"]
    before = previous.set_index("account_id")["conversion_probability"]
    common = now.index.intersection(before.index)
    if len(common) < 3:
        return
    correlation = now[common].corr(before[common], method="spearman")
    top_now = set(now.sort_values(ascending=False).index[:top_k])
    top_before = set(before.sort_values(ascending=False).index[:top_k])
    changed = 1 - len(top_now & top_before) / max(len(top_now), 1)
    console.print(
        f"vs previous scores: rank correlation {correlation:.3f}, top-{top_k} changed {changed:.0%}"
    )
    alarm = ScoringConfig.from_yaml().stability_alarm_share
    if changed > alarm:
        err_console.print(
            f"[yellow]warning:[/] {changed:.0%} of the top {top_k} changed since the previous scores "
            f"(alarm above {alarm:.0%}): check the data and the model version"
        )


def _print_screen(result, keep_suspects: bool) -> None:
    """The leakage screen's table: every flagged check, then each kept column's single-column AUC."""
    from rich.table import Table

    if result is None:
        return
    checks = result.table
    if not result.suspects:
        best = checks[checks["check"] == "single_column_auc"]["figure"].str[:5].astype(float).max()
        console.print(
            f"leakage screen: no suspects among {checks['column'].nunique()} columns "
            f"(strongest single column AUC {best:.3f}; all checks in screen.csv)"
        )
        return
    table = Table(title="leakage screen (suspects, then each kept column's single-column AUC)")
    for column in ("column", "check", "figure", "verdict"):
        table.add_column(column)
    for row in checks[checks["verdict"] == "exclude"].itertuples(index=False):
        table.add_row(str(row.column), row.check, row.figure, f"[red]{row.verdict}[/]")
    kept = checks[
        ~checks["column"].isin(result.suspects) & (checks["check"] == "single_column_auc")
    ]
    for row in kept.itertuples(index=False):
        table.add_row(str(row.column), row.check, row.figure, row.verdict)
    console.print(table)
    verb = "kept (keep_suspects)" if keep_suspects else "excluded"
    console.print(f"[bold]{verb}:[/] {', '.join(map(str, result.suspects))}")


def _print_evaluation(outputs) -> None:
    from rich.table import Table

    table = Table(title="test window: model vs scorecard vs logistic vs oracle")
    for column in (
        "head",
        "scorer",
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "lift_10",
        "precision@k",
        "recall@k",
    ):
        table.add_column(column)
    for row in outputs.evaluation.itertuples(index=False):
        cells = [row.head, row.scorer]
        for metric in (
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "lift_10",
            "precision_at_k",
            "recall_at_k",
        ):
            value = getattr(row, metric)
            cells.append("" if value != value else f"{value:.3f}")
        table.add_row(*cells)
    console.print(table)
    split = outputs.result.split.describe()
    console.print(
        f"train < {split['valid_start']} <= validation < test {split['test_start']}..{split['test_end']}; "
        f"families: {', '.join(outputs.result.feature_set.families)}"
    )


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo writes its world and target list.")
    ] = Path("data"),
    run_dir: Annotated[
        Path, typer.Option("--run-dir", help="Run folder of the demo training.")
    ] = Path("models/demo_run"),
    accounts: Annotated[
        int, typer.Option("--accounts", min=50, help="Accounts in the demo world.")
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
    uri: Annotated[str | None, TRACKING_URI_OPTION] = None,
) -> None:
    """The whole path on the embedded synthetic world: generate, validate, features, train, evaluate,
    register, promote, score, export, report."""
    from propensity.data.contract import load_tables, summarize
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.io import write_text
    from propensity.model.scorecard import Scorecard
    from propensity.outputs.export import (
        ScoringConfig,
        ranked_list,
        read_export,
        with_changes,
        write_export,
    )
    from propensity.outputs.report import build_report
    from propensity.runs.account import run_training, write_run
    from propensity.scoring import score_snapshot
    from propensity.tracking import (
        load_registered_scoring_model,
        log_training_run,
        promote,
        tracking_uri,
    )

    world = workdir / "demo_world"
    list_path = workdir / "target_list.csv"
    config = WorldConfig(n_accounts=accounts, seed=seed)
    model_config = _model_config(None)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("1/7 generate world", total=None)
        generate_world(
            config,
            world,
            overwrite=True,
            on_chunk=lambda d, t: progress.update(task, completed=d, total=t),
        )
        task = progress.add_task("2/7 validate contract", total=1)
        tables = load_tables(world)
        progress.update(task, completed=1)
        task = progress.add_task("3/7 features, train, evaluate", total=6)
        outputs = run_training(
            tables,
            model_config,
            Scorecard.from_yaml(),
            read_truth(world),
            progress=lambda step: progress.update(task, advance=1, description=f"3/7 {step}"),
        )
        write_run(outputs, run_dir)
        task = progress.add_task("4/7 register in MLflow", total=1)
        logged = log_training_run(outputs, run_dir, tables, world, uri)
        decisions = promote(uri=uri)
        progress.update(task, completed=1)
        task = progress.add_task("5/7 score prospects (champions)", total=1)
        model = load_registered_scoring_model(None, uri)
        scored = score_snapshot(tables, model)
        progress.update(task, completed=1)
        task = progress.add_task("6/7 export target list", total=1)
        listing = ranked_list(scored, tables.accounts, ScoringConfig.from_yaml())
        listing, stability = with_changes(listing, read_export(list_path), None)
        write_export(listing, list_path, {**stability, "model_version": model.version})
        progress.update(task, completed=1)
        task = progress.add_task("7/7 HTML report", total=1)
        report_path = write_text(build_report(run_dir, listing, scored), run_dir / "report.html")
        progress.update(task, completed=1)
    for line in summarize(tables).to_lines():
        console.print(f"  {line}", highlight=False)
    feature_set = outputs.result.feature_set
    console.print(
        f"  features: {len(feature_set.matrix):,} snapshot rows x {len(feature_set.model_columns)} features"
    )
    _print_coverage(feature_set)
    _print_evaluation(outputs)
    for d in decisions:
        console.print(
            f"  registry: {d.head} v{d.challenger} {'promoted to champion' if d.promoted else 'kept as challenger'} ({d.reason})"
        )
    top = listing.iloc[0]
    console.print(
        f"\nwhy the top account of the list ranks high (`propensity explain --account {top.account_id}`):"
    )
    explain(account=top.account_id, data=world, run=run_dir, as_of=None, as_json=False)
    console.print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    console.print(
        f"  target list ({stability.get('rows', len(listing)):,} prospects, ranked): [bold]{list_path}[/]"
    )
    console.print(f"  report: [bold]{report_path}[/]")
    console.print(f"  run folder: {run_dir}; MLflow run {logged.run_id} in {tracking_uri(uri)}")


def _load(data: Path, unknown_accounts: str = "error"):
    from propensity.data.contract import ContractError, load_tables

    try:
        return load_tables(data, unknown_accounts=unknown_accounts)
    except (ContractError, FileNotFoundError, NotADirectoryError) as exc:
        raise _fail(f"{data} does not meet the data contract:\n{exc}") from None


def _parse_date(option: str, value: str):
    import pandas as pd

    try:
        return pd.Timestamp(value).normalize()
    except ValueError:
        raise _fail(f"{option} must be a date like 2025-06-01, got {value!r}") from None


def _print_coverage(feature_set) -> None:
    for family, reason in feature_set.skipped.items():
        console.print(f"  skipped {family}: {reason}")
    for row in feature_set.coverage().itertuples():
        console.print(
            f"  {row.family:<13} {row.features:>3} features; rows with values {row.non_missing_share:6.1%}, "
            f"non-empty {row.non_empty_share:6.1%}"
        )


def _pydantic_message(exc) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


# table mode lives in its own module; imported last because it uses the helpers above
from propensity.cli.table import table_app  # noqa: E402

app.add_typer(table_app, name="table")

if __name__ == "__main__":
    app()
