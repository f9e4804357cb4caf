"""What every command shares: consoles, options defined once, choices, and one place that turns
a user's mistake (bad data, a bad option, a missing model, a full disk) into a one-line message
and exit code 2 instead of a traceback (:func:`user_errors`); ``--verbose`` shows the traceback
too. Notes on how input files were read (a detected encoding or separator, dropped rows) are
printed as ``warning:`` lines (:func:`input_notes`)."""

from __future__ import annotations

import errno
import os
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from propensity.settings import VERBOSE_ENV, verbose

if TYPE_CHECKING:  # imported where used: a command starts fast
    from propensity.data.specs import Tables
    from propensity.features.registry import FeatureConfig

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


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


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
    monitor = "monitor"


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else models/mlflow.db in the working "
        "folder).",
    ),
]
HistoryPath = Annotated[
    Path | None,
    typer.Option(
        "--history",
        help="Score history file (default: $PROPENSITY_HISTORY, else models/history.duckdb in "
        "the working folder).",
    ),
]
NoHistory = Annotated[
    bool, typer.Option("--no-history", help="Do not append this scoring to the score history.")
]
Track = Annotated[
    bool, typer.Option("--track/--no-track", help="Log to MLflow and register the model(s).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace the run folder at --out if it exists.")
]
ForceRegister = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Register as challenger even if a head's shipped scorer is degenerate (needs --reason).",
    ),
]
Reason = Annotated[str | None, typer.Option("--reason", help="Why --force (logged in MLflow).")]
DataDir = Annotated[Path, typer.Option("--data", help="Contract data folder.")]
RunFolder = Annotated[Path | None, typer.Option("--run", help="A run folder instead.")]
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
Encoding = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="Text encoding of the CSV files, e.g. utf-8, cp1252, latin-1 (default: detected: "
        "UTF-8, else cp1252, else latin-1).",
    ),
]
SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="With --engine spark: the Spark master, e.g. local[4], spark://host:7077 or yarn "
        "(default: the one spark-submit gives, else local[*]).",
    ),
]
MemoryLimit = Annotated[
    str | None,
    typer.Option(
        "--memory-limit",
        help="Memory DuckDB may use before it spills to --temp-dir, e.g. 4GB (default: the "
        "config's duckdb_memory_limit, else half of the machine's memory).",
    ),
]
TempDir = Annotated[
    Path | None,
    typer.Option(
        "--temp-dir",
        help="Folder where DuckDB spills what does not fit (default: the config's "
        "duckdb_temp_directory, else a new folder in the system's temporary directory, removed "
        "afterwards).",
    ),
]
Sep = Annotated[
    str | None,
    typer.Option(
        "--sep",
        help="Field separator of the CSV files: ',' ';' '|' or tab (default: sniffed).",
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


def set_verbose(on: bool) -> None:
    """Set by ``--verbose``: tracebacks are shown, and other modules (MLflow's warnings) read
    ``PROPENSITY_VERBOSE=1``."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


def fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code=2)


def pydantic_message(exc) -> str:
    """One line per problem, ``key.path: message``; a rule over several keys has no path."""

    def line(error: dict) -> str:
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {message}" if where else message

    return "; ".join(line(e) for e in exc.errors())


# the toolkit's own errors: caught only when their module is loaded (an exception can only come
# from a loaded module, and importing run folders or models just to catch theirs costs a second)
_DOMAIN_ERRORS = (
    ("pydantic", "ValidationError"),
    ("propensity.data.validate", "ContractError"),
    ("propensity.data.table", "TableError"),
    ("propensity.io", "OutputError"),
    ("propensity.model.head", "InsufficientDataError"),
    ("propensity.model.splits", "SplitError"),
    ("propensity.runs.folder", "RunFolderError"),
    ("mlflow.exceptions", "MlflowException"),
    ("pyarrow.lib", "ArrowException"),
    ("propensity.spark", "JavaMissingError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    loaded = [
        getattr(sys.modules[module], name)
        for module, name in _DOMAIN_ERRORS
        if module in sys.modules and hasattr(sys.modules[module], name)
    ]
    return (
        *loaded,
        LookupError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        ValueError,  # includes InputFileError, UnicodeDecodeError and pyarrow's ArrowInvalid
        OSError,  # only the kinds in _OS_ADVICE: others are re-raised
    )


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write to another disk",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EFBIG: "the file is larger than this system allows: write elsewhere",
    errno.EACCES: "no permission: choose another path or fix the permissions",
    errno.EPERM: "no permission: choose another path or fix the permissions",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "the name is too long",
}


def _os_message(exc: OSError) -> str | None:
    """One line for an OSError a user can act on (named file, reason, what to do), else None."""
    if exc.errno not in _OS_ADVICE:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or os.strerror(exc.errno)} ({_OS_ADVICE[exc.errno]})"


def _message(exc: BaseException) -> str | None:
    from propensity.io import OutputError

    pydantic = sys.modules.get("pydantic")
    if pydantic and isinstance(exc, pydantic.ValidationError):
        return pydantic_message(exc)
    mlflow = sys.modules.get("mlflow.exceptions")
    if mlflow and isinstance(exc, mlflow.MlflowException):
        return exc.message
    if isinstance(exc, KeyError):
        return str(exc.args[0])
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"a file is not {exc.encoding} text (byte {exc.object[exc.start : exc.start + 1]!r}):"
            " pass its encoding with --encoding, e.g. cp1252"
        )
    if isinstance(exc, OSError) and not isinstance(exc, OutputError) and exc.errno is not None:
        return _os_message(exc)  # raised by the system: one line when a user can act on it
    return str(exc)


@contextmanager
def user_errors(context: str = "") -> Iterator[None]:
    """Known mistakes become ``error: <context>: <message>`` and exit code 2 (no traceback,
    unless ``--verbose``). A message of several lines (a data contract's problems) starts on
    the next line."""
    try:
        yield
    except typer.Exit:
        raise
    except _user_errors() as exc:
        message = _message(exc)
        if message is None:  # an OSError nobody can act on: a bug, shown as one
            raise
        if verbose():
            traceback.print_exception(exc, file=sys.stderr)
        if context:
            separator = "\n" if "\n" in message else " "
            message = f"{context}{separator}{message}"
        raise fail(message) from None


@contextmanager
def spark_read_errors(data: Path) -> Iterator[None]:
    """The errors of a command whose tables Spark reads and checks, worded as
    :func:`opened_tables` words the local engine's."""
    from pyspark.errors import PySparkException

    from propensity.data.problems import ContractError

    with user_errors(), input_notes():
        try:
            yield
        except ContractError as exc:
            raise fail(f"{data} does not meet the data contract:\n{exc}") from None
        except PySparkException as exc:  # Spark's own failure: its first line, and what to do
            if verbose():
                traceback.print_exception(exc, file=sys.stderr)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise fail(f"Spark failed: {first} (--verbose shows Spark's traceback)") from None


@contextmanager
def input_notes() -> Iterator[None]:
    """Warnings about how the input was read (a detected encoding or separator, rows dropped)
    as ``warning:`` lines on stderr; other warnings pass through unchanged."""
    from propensity.data.contract import ContractWarning
    from propensity.io import CsvFormatWarning
    from propensity.scoring import UnseenValueWarning

    notes = (CsvFormatWarning, ContractWarning, UnseenValueWarning)
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            for category in notes:
                warnings.simplefilter("always", category)
            yield
    finally:  # printed after the block (and before an error it ends with)
        for w in caught:
            if issubclass(w.category, notes):
                err_console.print(
                    f"[bold yellow]warning:[/] {escape(str(w.message))}", highlight=False
                )
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)


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

    with user_errors("config:"):
        _, source = settings.config_text("model", path)
    with user_errors(f"config {source}:"):
        return ModelConfig.from_yaml(path)


def force_reason(force: bool, reason: str | None) -> str | None:
    """The logged reason for ``--force`` (refused without ``--reason``)."""
    if force and not (reason and reason.strip()):
        raise fail("--force needs --reason: say why a blocked model should be challenger")
    return reason.strip() if force and reason else None


def print_registration(trained) -> None:
    """What MLflow holds after a train: the versions, and whether they are challenger (a
    blocked run says so loudly, with each head's problems)."""
    if not trained.run_id:
        return
    versions = ", ".join(f"{name} v{v}" for name, v in trained.versions.items())
    where = f"MLflow run {trained.run_id} in {trained.tracking_uri}"
    if trained.blocked and not trained.forced:
        err_console.print(
            f"[bold red]not registered as challenger[/]: {escape(versions)} are kept in "
            f"{escape(where)} for the record, tagged blocked"
        )
        for head, problems in trained.blocked.items():
            err_console.print(f"  {head}: {escape('; '.join(problems))}")
        err_console.print(
            "  more history (accounts, won deals) usually fixes this; to use it anyway: train "
            "again with --force --reason TEXT"
        )
        return
    state = (
        "registered as challenger"
        if trained.challenger
        else ("registered (a later run is already challenger)")
    )
    console.print(f"{escape(where)}; {state}: {escape(versions)}")
    if trained.forced:
        err_console.print(
            f"[yellow]forced[/] despite {', '.join(trained.blocked)}: {escape(trained.forced)}"
        )


@contextmanager
def opened_tables(
    data: Path,
    features: FeatureConfig,
    memory_limit: str | None,
    temp_dir: Path | None,
    encoding: str | None = None,
    sep: str | None = None,
    unknown_accounts: str = "error",
) -> Iterator[Tables]:
    """The contract tables of ``data`` read and validated by DuckDB where they lie (files larger
    than memory), with the DuckDB settings of ``features`` unless the options override them, or
    one ``error:`` naming the folder (a line per problem when there are several); how files
    were read is printed as ``warning:`` lines. The tables are usable inside the ``with`` only."""
    from propensity.data.contract import open_tables
    from propensity.duck import check_size, connect
    from propensity.io import check_encoding, check_separator

    with user_errors():
        encoding, sep = check_encoding(encoding), check_separator(sep)
        memory_limit = check_size(memory_limit, "--memory-limit")
    with connect(
        memory_limit=memory_limit or features.duckdb_memory_limit,
        temp_directory=str(temp_dir) if temp_dir else features.duckdb_temp_directory,
        threads=features.duckdb_threads,
    ) as con:
        with user_errors(f"{data} does not meet the data contract:"), input_notes():
            tables = open_tables(
                data, con, unknown_accounts=unknown_accounts, encoding=encoding, sep=sep
            )
        yield tables


# `generate --set` may not set what the command's own options set
_GENERATE_OPTIONS = (
    "n_accounts", "seed", "weeks", "engagement_scale", "truth_dates", "regime_change",
)  # fmt: skip


def world_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` items of ``generate --set`` as world settings (a VALUE read as YAML: a
    number, true/false or text); an unknown key is named with the keys there are."""
    import yaml

    from propensity.data.world.config import WorldConfig

    known = [k for k in WorldConfig.model_fields if k not in _GENERATE_OPTIONS]
    settings = {}
    for item in items:
        key, separator, value = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise fail(f"--set {item!r}: write KEY=VALUE, e.g. --set research_weeks_scale=2")
        if key in _GENERATE_OPTIONS:
            raise fail(f"--set {key}: set it with the command's own option (see --help)")
        if key not in known:
            raise fail(f"--set {key}: not a world setting; one of {', '.join(known)}")
        settings[key] = yaml.safe_load(value)
    return settings
