"""Where things are when the package runs anywhere: configs, the MLflow store, the real data.

Nothing here is computed from the package's location on disk, so ``pip install propensity``
into any folder works:

* configs (``model``, ``scorecard``, ``scoring``): an explicit path wins; else
  ``$PROPENSITY_CONFIG_DIR/NAME.yaml``; else ``./configs/NAME.yaml`` in the working directory
  (a project's own copy, e.g. written by ``propensity tune``); else the default shipped as
  package data (``propensity/configs/NAME.yaml``, read with :mod:`importlib.resources`).
* the MLflow store: an explicit URI, else ``$MLFLOW_TRACKING_URI``, else SQLite in
  ``<workdir>/models/mlflow.db`` with artifacts in ``<workdir>/models/mlartifacts``.
* the work folder: ``$PROPENSITY_WORKDIR``, else the working directory.
* the real public exports: an explicit folder, else ``$PROPENSITY_REAL_DATA``, else
  ``../shared/data/real`` from the working directory.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

ConfigName = Literal["model", "scorecard", "scoring"]
CONFIG_NAMES: tuple[str, ...] = ("model", "scorecard", "scoring")
CONFIG_DIR_ENV = "PROPENSITY_CONFIG_DIR"
WORKDIR_ENV = "PROPENSITY_WORKDIR"
REAL_DATA_ENV = "PROPENSITY_REAL_DATA"
TRACKING_ENV = "MLFLOW_TRACKING_URI"


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


def tracking_uri(explicit: str | None = None) -> str:
    """The MLflow store: explicit > $MLFLOW_TRACKING_URI > SQLite in <workdir>/models/mlflow.db."""
    if explicit:
        return explicit
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    models = workdir() / "models"
    models.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(models / 'mlflow.db').resolve()}"


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
