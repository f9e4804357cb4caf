"""The MLflow store at the edge: which store, its names, its lock, MLflow kept quiet, aliases.

What :mod:`propensity.tracking` and :mod:`propensity.recovery` share: the experiment and
registered-model names, the run tags that make a run all-or-nothing, the lock a local SQLite
store is changed under, and the registry's aliases. Nothing here connects to a store
(:func:`propensity.tracking.connect` does, after :func:`propensity.settings.check_store`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import mlflow
from mlflow import MlflowClient

from propensity import settings

EXPERIMENTS = {"account": "propensity", "table": "propensity-table"}
EXPERIMENT = EXPERIMENTS["account"]
TABLE_EXPERIMENT = EXPERIMENTS["table"]
REGISTERED = {"fit": "propensity-fit", "conversion": "propensity-conversion"}
CHAMPION, CHALLENGER = "champion", "challenger"

OWNER_TAG = "propensity.owner"  # JSON {host, pid, start}: the process that started the run
REGISTRATION_TAG = "propensity.registration"  # pending -> done | superseded; or blocked
RECOVERY_TAG = "propensity.recovery"  # what a later command did about a killed run
STALE_RUN = timedelta(hours=24)
STALE_REGISTRATION = timedelta(minutes=10)
HTTP_DEFAULTS = {  # MLflow's defaults retry a dead server for about 4 minutes
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
StoreError = settings.StoreError  # raised by connect: see propensity.settings.check_store


def tracking_uri(explicit: str | None = None) -> str:
    """The store to use: explicit > $MLFLOW_TRACKING_URI > SQLite in <workdir>/models/mlflow.db."""
    return settings.tracking_uri(explicit)


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Exclusive among processes on this host for a local SQLite store (a lock on its folder),
    around creating the store and moving aliases; nothing for other stores."""
    path = settings.sqlite_path(uri)
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if path is None or fcntl is None or not path.parent.is_dir():
        yield
        return
    handle = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def quiet_mlflow() -> None:
    """MLflow's log lines, notices and progress bars off unless verbose (process-wide)."""
    from mlflow.utils import logging_utils

    if settings.verbose():
        logging_utils.enable_logging()
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    logging_utils.disable_logging()


@contextmanager
def mlflow_warnings_hidden() -> Iterator[None]:
    """Python warnings raised inside MLflow (the integer-schema hint and the like) hidden unless
    verbose, for the calls inside the block."""
    if settings.verbose():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
        warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer")
        yield


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def resolve_version(client: MlflowClient, name: str, version_or_alias: str) -> str:
    """A version number, or the version an alias points to (a clear LookupError otherwise)."""
    if version_or_alias.isdigit():
        return version_or_alias
    version = alias_version(client, name, version_or_alias)
    if version is None:
        raise LookupError(
            f"registered model {name} has no '{version_or_alias}' version"
            + (": run `propensity promote` first" if version_or_alias == CHAMPION else "")
        )
    return version
