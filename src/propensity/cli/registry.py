"""`propensity promote`, `rollback` and `runs`: the registry's aliases and the recent runs, one
call each into :mod:`propensity.registry` or :mod:`propensity.tracking`."""

from __future__ import annotations

from typing import Annotated

import typer

from propensity.cli.common import Head, TrackingUri, console, fail, user_errors
from propensity.cli.printing import print_decisions

Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        help="Registered model name (repeatable), e.g. propensity-table-deals; overrides --head.",
    ),
]


def _model_names(head: Head, models: list[str] | None) -> list[str]:
    from propensity.store import REGISTERED

    return list(models) if models else [REGISTERED[h] for h in head.heads]


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
