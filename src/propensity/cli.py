"""The `propensity` command: each stage as a typed subcommand; I/O and progress live here."""

from __future__ import annotations

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
console = Console()
err_console = Console(stderr=True)

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

    from propensity.world import WorldConfig, generate_world

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
    from propensity.contract import ContractError, load_tables, summarize

    if unknown_accounts not in ("error", "drop"):
        raise _fail(f"--unknown-accounts must be 'error' or 'drop', got {unknown_accounts!r}")
    try:
        tables = load_tables(data, unknown_accounts=unknown_accounts)
    except (ContractError, FileNotFoundError, ValueError) as exc:
        raise _fail(f"{data} does not meet the data contract:\n{exc}") from None
    for line in summarize(tables).to_lines():
        console.print(line, highlight=False)


@app.command()
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo writes its world and outputs.")
    ] = Path("data"),
    accounts: Annotated[
        int, typer.Option("--accounts", min=50, help="Accounts in the demo world.")
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0)] = 7,
) -> None:
    """Run every pipeline stage that exists on the embedded synthetic world."""
    from propensity.contract import load_tables, summarize
    from propensity.world import WorldConfig, generate_world

    world = workdir / "demo_world"
    config = WorldConfig(n_accounts=accounts, seed=seed)
    started = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("1/2 generate world", total=None)
        generate_world(
            config,
            world,
            overwrite=True,
            on_chunk=lambda d, t: progress.update(task, completed=d, total=t),
        )
        task = progress.add_task("2/2 validate contract", total=1)
        tables = load_tables(world)
        progress.update(task, completed=1)
    for line in summarize(tables).to_lines():
        console.print(f"  {line}", highlight=False)
    console.print(f"demo finished in {time.perf_counter() - started:.1f} s")
    console.print(f"  world (five contract tables + truth/): [bold]{world}[/]")


def _pydantic_message(exc) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


if __name__ == "__main__":
    app()
