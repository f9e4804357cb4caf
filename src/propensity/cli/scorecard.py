"""`propensity scorecard ...`: the learned heads as point rules for a marketing-automation tool."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from propensity.cli.common import RunFolder, TrackingUri, console, fail, user_errors

scorecard_app = typer.Typer(
    help="Points scorecards: a trained head as integer points per field, for tools that only "
    "run point rules.",
    no_args_is_help=True,
)


class CardHead(StrEnum):
    fit = "fit"
    conversion = "conversion"


@scorecard_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="YAML file to write (.yaml or .yml).")],
    head: Annotated[
        CardHead, typer.Option("--head", help="Which head's card.")
    ] = CardHead.conversion,
    run_dir: RunFolder = None,
    uri: TrackingUri = None,
) -> None:
    """Write the champion's (or a run's) learned points scorecard for one head, in the shape of
    scorecard.yaml: points per industry, size band, country, flag and binned field, and a
    hand-over threshold."""
    from propensity.runs.workflows import export_learned_scorecard, load_account_model

    if out.suffix.lower() not in (".yaml", ".yml"):
        raise fail(f"--out {out}: a scorecard is YAML; name it .yaml or .yml")
    with user_errors():
        model = load_account_model(run_dir, None, uri)
        card = export_learned_scorecard(model, head.value, out)
    size = len(card.fields) + sum(1 for points in card.fit.model_dump().values() if points)
    console.print(
        f"wrote [bold]{out}[/] ({card.name}: {size} fields, hand-over at "
        f"{card.handover_threshold:g} points)",
        highlight=False,
    )
