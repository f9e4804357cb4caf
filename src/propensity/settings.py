"""Where things are when the package runs anywhere: configs, the MLflow store, the real data.

Nothing here is computed from the package's location on disk, so ``pip install propensity``
into any folder works:

* configs (``model``, ``scorecard``, ``scoring``, ``monitor``): an explicit path wins; else
  ``$PROPENSITY_CONFIG_DIR/NAME.yaml``; else ``./configs/NAME.yaml`` in the working directory
  (a project's own copy, e.g. written by ``propensity tune``); else the default shipped as
  package data (``propensity/configs/NAME.yaml``, read with :mod:`importlib.resources`).
* the MLflow store: an explicit URI, else ``$MLFLOW_TRACKING_URI``, else SQLite in
  ``<workdir>/models/mlflow.db`` with artifacts in ``<workdir>/models/mlartifacts``.
* the work folder: ``$PROPENSITY_WORKDIR``, else the working directory.
* the real public exports: an explicit folder, else ``$PROPENSITY_REAL_DATA``, else
  ``../shared/data/real`` from the working directory.
* whether the store can be used (:func:`check_store`, no MLflow import): a supported scheme, a
  server that answers within :data:`PROBE_SECONDS`, and for a command that only reads an
  existing store ("no store at PATH" otherwise, nothing created).
* verbosity: ``$PROPENSITY_VERBOSE=1`` (what ``--verbose`` sets) shows MLflow's own logs,
  warnings and progress bars, and tracebacks; otherwise they are hidden.
"""

from __future__ import annotations

import os
import sqlite3
import ssl
import urllib.error
import urllib.request
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

ConfigName = Literal["model", "scorecard", "scoring", "monitor"]
CONFIG_NAMES: tuple[str, ...] = ("model", "scorecard", "scoring", "monitor")
CONFIG_DIR_ENV = "PROPENSITY_CONFIG_DIR"
WORKDIR_ENV = "PROPENSITY_WORKDIR"
REAL_DATA_ENV = "PROPENSITY_REAL_DATA"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
VERBOSE_ENV = "PROPENSITY_VERBOSE"


def workdir() -> Path:
    """The folder data/ and models/ default to: ``$PROPENSITY_WORKDIR`` or the working directory."""
    return Path(os.environ.get(WORKDIR_ENV) or Path.cwd())


def packaged_config_text(name: ConfigName) -> str:
    """The default config shipped with the package."""
    _check_name(name)
    return (resources.files("propensity") / "configs" / f"{name}.yaml").read_text("utf-8")


def project_config_path(name: ConfigName) -> Path | None:
    """The project's own copy of a config, if there is one (see the module docstring)."""
    _check_name(name)
    folder = os.environ.get(CONFIG_DIR_ENV)
    for candidate in ([Path(folder)] if folder else []) + [workdir() / "configs"]:
        path = candidate / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def config_text(name: ConfigName, path: Path | str | None = None) -> tuple[str, str]:
    """(YAML text, where it came from) for a config: explicit path > project copy > packaged."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        return path.read_text("utf-8"), str(path)
    own = project_config_path(name)
    if own is not None:
        return own.read_text("utf-8"), str(own)
    return packaged_config_text(name), f"packaged default propensity/configs/{name}.yaml"


def writable_config_path(name: ConfigName) -> Path:
    """Where a tuned config is written by default: the project's copy (created if needed)."""
    return project_config_path(name) or workdir() / "configs" / f"{name}.yaml"


def verbose() -> bool:
    """Whether the user asked to see everything: ``$PROPENSITY_VERBOSE=1`` (what ``--verbose``
    sets)."""
    return os.environ.get(VERBOSE_ENV) == "1"


def tracking_uri(explicit: str | None = None) -> str:
    """The MLflow store: explicit > $MLFLOW_TRACKING_URI > SQLite in <workdir>/models/mlflow.db.

    Only a name: nothing is created here (see :func:`propensity.tracking.connect`)."""
    if explicit:
        return explicit
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    return f"sqlite:///{(workdir() / 'models' / 'mlflow.db').resolve()}"


# ---------------------------------------------------------------------------------------------
# is the store usable? (no MLflow import: a train checks it before spending minutes training)

PROBE_SECONDS = 5
SCHEMES = {"", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https"}
SCHEMES_ELSEWHERE = {"databricks", "databricks-uc", "uc"}  # checked by MLflow itself


class StoreError(ValueError):
    """A tracking store that cannot be used: an unsupported URI, a server that does not answer,
    or (for a command that only reads) a store that does not exist."""


def _scheme(uri: str) -> str:
    scheme = urlparse(uri).scheme.lower()
    return "" if len(scheme) == 1 else scheme.split("+")[0]  # C:\... is a path; dialect+driver


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other URIs and in-memory)."""
    if _scheme(uri) != "sqlite":
        return None
    path = uri.split("://", 1)[1].removeprefix("/").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _local_folder(uri: str) -> Path | None:
    """The folder of a file store (a plain path or ``file://``), None for other URIs."""
    scheme = _scheme(uri)
    if scheme == "file":
        return Path(urlparse(uri).path)
    return Path(uri) if scheme == "" else None


def check_store(uri: str, create: bool = False) -> None:
    """A :class:`StoreError` (one line naming the URI or path) unless the store can be used:
    a supported scheme; a server that answers; an existing MLflow store, or (``create``, for
    the commands that write a run) a path where one may be created. Creates nothing."""
    scheme = _scheme(uri)
    if scheme in SCHEMES_ELSEWHERE:
        return
    if scheme not in SCHEMES:
        raise StoreError(
            f"unsupported tracking URI {uri!r}: use sqlite:///PATH, http(s)://HOST:PORT of an "
            "`mlflow server`, or a postgresql://, mysql:// or mssql:// database URL"
        )
    if scheme in ("http", "https"):
        _probe(uri)
        return
    path = sqlite_path(uri) or _local_folder(uri)
    if path is None:  # an in-memory SQLite store, or a database server (MLflow reports)
        return
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        if create:  # MLflow creates it (connect makes the folder)
            return
        raise StoreError(
            f"no store at {path}: check --tracking-uri or $MLFLOW_TRACKING_URI (only train, "
            "table train, tune and demo create a store)"
        )
    if scheme == "sqlite":
        _check_sqlite(path)


def _check_sqlite(path: Path) -> None:
    """An existing file must be an MLflow SQLite database (MLflow would add its tables to any)."""
    if not path.is_file():
        raise StoreError(f"tracking store {path} is not a file: give the SQLite database file")
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise StoreError(f"tracking store {path} is not a SQLite database: check the path")
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise StoreError(f"tracking store {path} cannot be read: {exc}") from None
    if not tables & {"experiments", "alembic_version"}:
        raise StoreError(
            f"tracking store {path} is a SQLite database but not an MLflow store: check the path"
        )


def _probe(uri: str) -> None:
    """The server answers its health endpoint within :data:`PROBE_SECONDS` (any HTTP answer
    counts; TLS is left to MLflow's own settings)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_SECONDS):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            return
        raise StoreError(
            f"tracking server {uri} does not answer ({reason}): start it, or check "
            "--tracking-uri or $MLFLOW_TRACKING_URI"
        ) from None


def real_data_dir(explicit: Path | str | None = None) -> Path:
    """The folder holding the real exports (one sub-folder per dataset, see its SOURCE.md)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(REAL_DATA_ENV):
        return Path(os.environ[REAL_DATA_ENV])
    return workdir().parent / "shared" / "data" / "real"


def _check_name(name: str) -> None:
    if name not in CONFIG_NAMES:
        raise ValueError(f"unknown config {name!r}; configs are: {', '.join(CONFIG_NAMES)}")
