"""What every command shares: consoles, options defined once, choices, and one place that turns
a user's mistake (bad data, a bad option, a missing model) into a clear message and exit code 2
instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


class Head(StrEnum):
    fit = "fit"
    conversion = "conversion"
    both = "both"

    @property
    def heads(self) -> tuple[str, ...]:
        return ("fit", "conversion") if self is Head.both else (self.value,)


class Cadence(StrEnum):
    monthly = "monthly"
    weekly = "weekly"


class TruthDates(StrEnum):
    weekly_and_monthly = "weekly_and_monthly"
    monthly = "monthly"


class UnknownAccounts(StrEnum):
    error = "error"
    drop = "drop"


class Source(StrEnum):
    maven = "maven"
    olist = "olist"
    x_education = "x_education"


class ConfigName(StrEnum):
    model = "model"
    scorecard = "scorecard"
    scoring = "scoring"


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else models/mlflow.db in the working "
        "folder).",
    ),
]
Track = Annotated[
    bool, typer.Option("--track/--no-track", help="Log to MLflow and register the model(s).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace the run folder at --out if it exists.")
]
DataDir = Annotated[Path, typer.Option("--data", help="Contract data folder.")]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Snapshot date YYYY-MM-DD (default: the end of the data)."),
]
ModelConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Model config YAML (default: ./configs/model.yaml, else the packaged default).",
    ),
]
RealDir = Annotated[
    Path | None,
    typer.Option(
        "--real-dir",
        help="Folder of the real exports (default: $PROPENSITY_REAL_DATA, else ../shared/data/real).",
    ),
]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@contextmanager
def steps(description: str, total: int | None = None) -> Iterator:
    """A progress bar whose ``advance(step_name)`` callback a library function can call."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        yield lambda name: bar.update(task, advance=1, description=name)


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code=2)


def pydantic_message(exc) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _user_errors() -> tuple[type[BaseException], ...]:
    from pydantic import ValidationError

    from propensity.data.contract import ContractError
    from propensity.data.table import TableError
    from propensity.model.head import InsufficientDataError
    from propensity.model.splits import SplitError
    from propensity.runs.folder import RunFolderError

    return (
        ContractError,
        TableError,
        SplitError,
        InsufficientDataError,
        RunFolderError,
        ValidationError,
        *_mlflow_errors(),
        LookupError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        ValueError,
    )


def _mlflow_errors() -> tuple[type[BaseException], ...]:
    """MLflow's error, when MLflow is loaded (importing it only to catch it costs seconds)."""
    module = sys.modules.get("mlflow.exceptions")
    return (module.MlflowException,) if module else ()


@contextmanager
def user_errors(context: str = "") -> Iterator[None]:
    """Known mistakes become ``error: <message>`` and exit code 2 (no traceback)."""
    try:
        yield
    except typer.Exit:
        raise
    except _user_errors() as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            message = pydantic_message(exc)
        elif isinstance(exc, _mlflow_errors()):
            message = exc.message
        elif isinstance(exc, KeyError):
            message = str(exc.args[0])
        else:
            message = str(exc)
        raise fail(f"{context}{message}") from None


def parse_date(option: str, value: str | None):
    import pandas as pd

    if value is None:
        return None
    try:
        return pd.Timestamp(value).normalize()
    except ValueError:
        raise fail(f"{option} must be a date like 2025-06-01, got {value!r}") from None


def load_model_config(path: Path | None):
    """The model config (explicit file > ./configs/model.yaml > packaged); errors name the file."""
    from propensity import settings
    from propensity.model.config import ModelConfig

    with user_errors("config: "):
        _, source = settings.config_text("model", path)
    with user_errors(f"config {source}: "):
        return ModelConfig.from_yaml(path)
