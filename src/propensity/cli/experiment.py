"""`propensity experiment ...`: a randomised test/control design on a target list, and its
readout once the outcomes are in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from propensity.cli.common import HistoryPath, console, parse_date, user_errors

experiment_app = typer.Typer(
    help="Prove the list works: a stratified treat/holdout design, then the readout of what "
    "happened (also for the accounts the old scorecard would have picked).",
    no_args_is_help=True,
)


def _print(frame, title: str, percent: tuple[str, ...] = ()) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="left" if frame[column].dtype == object else "right")
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if column in percent and isinstance(value, float):
                cells.append(f"{value:+.2%}" if column.startswith("uplift") else f"{value:.2%}")
            elif isinstance(value, float):
                cells.append(f"{value:.4g}")
            else:
                cells.append(str(value))
        table.add_row(*cells)
    console.print(table)


@experiment_app.command("design")
def design(
    target_list: Annotated[
        Path, typer.Option("--list", help="A target list written by `propensity export`.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Design JSON; the assignment CSV is written next to it.")
    ] = Path("design.json"),
    priority: Annotated[
        list[str] | None,
        typer.Option("--priority", help="Priorities the campaign works (default 1 and 2)."),
    ] = None,
    conversion_tier: Annotated[
        list[str] | None,
        typer.Option("--conversion-tier", help="Or: conversion tiers it works."),
    ] = None,
    fit_tier: Annotated[
        list[str] | None, typer.Option("--fit-tier", help="Or: fit tiers it works.")
    ] = None,
    uplift: Annotated[
        float, typer.Option("--uplift", help="Smallest absolute conversion uplift to detect.")
    ] = 0.02,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power at the minimal uplift.")] = 0.8,
    holdout_share: Annotated[
        float, typer.Option("--holdout-share", help="Share of each stratum held out.")
    ] = 0.5,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the assignment.")] = 0,
    no_scorecard: Annotated[
        bool, typer.Option("--no-scorecard", help="Do not randomise the scorecard's pick.")
    ] = False,
    history: HistoryPath = None,
) -> None:
    """Sample size per stratum and a seeded, stratified treat/holdout assignment (written with
    the list's columns, ready for the CRM)."""
    from propensity.experiment import CampaignPlan
    from propensity.runs.follow_up import design_campaign

    chosen = {
        k: v
        for k, v in (("priority", priority), ("conversion_tier", conversion_tier),
                     ("fit_tier", fit_tier))
        if v
    }  # fmt: skip
    with user_errors():
        if len(chosen) > 1:
            raise ValueError("give one of --priority, --conversion-tier or --fit-tier")
        column, values = next(iter(chosen.items()), ("priority", None))
        plan = CampaignPlan(
            column=column,
            values=tuple(values) if values else None,
            minimal_uplift=uplift,
            alpha=alpha,
            power=power,
            holdout_share=holdout_share,
            seed=seed,
            compare_scorecard=not no_scorecard,
        )
        made = design_campaign(target_list, out, plan, history=history)
    _print(made.strata, "strata", percent=("expected_rate", "detectable_uplift"))
    short = made.strata[~made.strata["powered"]]["stratum"].tolist()
    if short:
        console.print(
            f"[bold yellow]not enough accounts to detect +{uplift:.1%} in: {', '.join(short)}[/] "
            "(see detectable_uplift)",
            highlight=False,
        )
    console.print(f"wrote [bold]{made.written[0]}[/] and {made.written[1]}")


@experiment_app.command("readout")
def readout(
    design_path: Annotated[Path, typer.Option("--design", help="The design JSON.")],
    data: Annotated[
        Path | None, typer.Option("--data", help="Data folder: outcomes from its opportunities.")
    ] = None,
    outcomes: Annotated[
        Path | None,
        typer.Option("--outcomes", help="Or a file with account_id and converted (true/false)."),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Campaign start (default: the list's as_of).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Readout, .csv or .parquet.")] = None,
) -> None:
    """Treat vs holdout per stratum and per list (model, scorecard): uplift, interval, p-value."""
    from propensity.runs.follow_up import read_out_campaign

    if (data is None) == (outcomes is None):
        with user_errors():
            raise ValueError("give either --data (outcomes from its opportunities) or --outcomes")
    begin = parse_date("--start", start)
    with user_errors():
        result = read_out_campaign(
            design_path, data_dir=data, outcomes=outcomes, start=begin, out=out
        )
    shown = result.readout[
        ["group", "treat", "holdout", "treat_rate", "holdout_rate", "uplift", "uplift_lo",
         "uplift_hi", "p_value"]
    ]  # fmt: skip
    _print(
        shown,
        "readout",
        percent=("treat_rate", "holdout_rate", "uplift", "uplift_lo", "uplift_hi"),
    )
    if out is not None:
        console.print(f"wrote [bold]{out}[/]")
