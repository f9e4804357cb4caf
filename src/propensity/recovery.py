"""Runs left behind by killed processes, put right by the next command that opens the store.

A run is all-or-nothing (:func:`propensity.tracking.log_run`): its owner (host, pid, process
start) is tagged at start (:func:`owned_run`); artifacts, models and metrics are logged, both
heads registered as new versions with no alias and the run ended FINISHED (the commit point);
only then do both ``challenger`` aliases move, together, under the store's lock
(:func:`move_challengers`). A process killed at any point leaves a state :func:`recover`
(called by :func:`propensity.tracking.connect`) puts right:

==========================================  ===========================================
killed                                      the next command
==========================================  ===========================================
before or while logging (run RUNNING)       marks the run KILLED (half-logged models FAILED)
after registering, before the run ended     marks it KILLED and deletes its (alias-free)
                                            model versions
after the run ended, before/while aliases   moves both challengers to the run's versions
moved (tag ``propensity.registration``      (unless a later run's versions are already
= ``pending``)                              challenger: then ``superseded``)
==========================================  ===========================================

A RUNNING run is only touched when its owner is on this host and gone (a live training
elsewhere is never killed); a run owned by another host, or by nobody known, only once it is
older than :data:`propensity.store.STALE_RUN` (``STALE_REGISTRATION`` for a pending
registration).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta

import mlflow
from mlflow import MlflowClient

from propensity import faults
from propensity.store import (
    CHALLENGER,
    EXPERIMENTS,
    OWNER_TAG,
    RECOVERY_TAG,
    REGISTRATION_TAG,
    STALE_REGISTRATION,
    STALE_RUN,
    alias_version,
    store_lock,
)

_log = logging.getLogger(__name__)


def owned_run(run_name: str, nested: bool = False):
    """An MLflow run tagged with its owner (this process), so a later command can tell a live
    run from one whose process was killed."""
    return mlflow.start_run(
        run_name=run_name, nested=nested, tags={OWNER_TAG: json.dumps(faults.owner())}
    )


def _abandoned(run, stale: timedelta, since_ms: int | None = None) -> bool:
    """Whether the process of an unfinished run is gone: on this host, its owner is not
    running; elsewhere (or unknown owner), the run is older than ``stale``."""
    try:
        owner = json.loads(run.data.tags.get(OWNER_TAG) or "{}")
    except ValueError:
        owner = {}
    if owner.get("host") == faults.host():
        return faults.owner_gone(owner)
    age_ms = time.time() * 1000 - (since_ms or run.info.start_time)
    return age_ms > stale.total_seconds() * 1000


def _remove_versions(client: MlflowClient, run_id: str) -> list[str]:
    """Delete the model versions a run registered, unless an alias points at one (never, when
    the run did not commit); what was removed."""
    removed = []
    for found in client.search_model_versions(f"run_id = '{run_id}'"):
        version = client.get_model_version(found.name, found.version)  # search omits aliases
        if version.aliases:
            continue
        client.delete_model_version(version.name, version.version)
        removed.append(f"{version.name} v{version.version}")
    return removed


def _fail_logged_models(client: MlflowClient, run) -> None:
    """Logged models of a killed run still PENDING (killed mid-upload) are marked FAILED."""
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    for model in models:
        if str(model.status) in ("PENDING", "LoggedModelStatus.PENDING"):
            client.finalize_logged_model(model.model_id, "FAILED")


def _kill(client: MlflowClient, run) -> None:
    run_id = run.info.run_id
    removed = _remove_versions(client, run_id)
    _fail_logged_models(client, run)
    if "registered_versions" in run.data.tags:
        client.delete_tag(run_id, "registered_versions")
        client.set_tag(run_id, REGISTRATION_TAG, "rolled back")
    owner = run.data.tags.get(OWNER_TAG, "owner unknown")
    client.set_tag(
        run_id,
        RECOVERY_TAG,
        f"marked KILLED by a later command: its process ({owner}) was gone; model versions "
        f"removed: {', '.join(removed) or 'none'}",
    )
    client.set_terminated(run_id, "KILLED")


def move_challengers(client: MlflowClient, uri: str, versions: dict[str, str]) -> bool:
    """Both heads' ``challenger`` to one run's versions, together, unless a later run's
    versions already hold it (concurrent or recovered runs never regress or mix heads)."""
    with store_lock(uri):
        for name, version in versions.items():
            current = alias_version(client, name, CHALLENGER)
            if current is not None and int(current) > int(version):
                return False
        for name, version in versions.items():
            client.set_registered_model_alias(name, CHALLENGER, version)
    return True


def _finish_registration(client: MlflowClient, uri: str, run) -> None:
    run_id = run.info.run_id
    versions = json.loads(run.data.tags.get("registered_versions") or "{}")
    moved = move_challengers(client, uri, versions)
    client.set_tag(
        run_id,
        RECOVERY_TAG,
        "registration completed by a later command (its process was gone after the run ended): "
        + ("challenger moved to its versions" if moved else "a later run is already challenger"),
    )
    client.set_tag(run_id, REGISTRATION_TAG, "done" if moved else "superseded")


def recover(client: MlflowClient, uri: str) -> None:
    """Put right what killed processes left in the store (see the module docstring): RUNNING
    runs whose owner is gone -> KILLED (model versions removed), pending registrations -> done.
    Best effort: a store this user cannot write to is left as it is."""
    pending = f"tags.`{REGISTRATION_TAG}` = 'pending' and attributes.status = 'FINISHED'"
    for name in EXPERIMENTS.values():
        try:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                continue
            ids = [experiment.experiment_id]
            running = client.search_runs(ids, "attributes.status = 'RUNNING'", max_results=500)
            unfinished = client.search_runs(ids, pending, max_results=500)
        except mlflow.exceptions.MlflowException as exc:
            _log.debug("recovery skipped for %s: %s", name, exc)
            continue
        for run in running:
            _recover_run(_kill, client, run, _abandoned(run, STALE_RUN))
        for run in unfinished:
            stale = _abandoned(run, STALE_REGISTRATION, run.info.end_time)
            _recover_run(lambda c, r: _finish_registration(c, uri, r), client, run, stale)


def _recover_run(action, client: MlflowClient, run, abandoned: bool) -> None:
    if not abandoned:
        return
    try:
        action(client, run)
    except mlflow.exceptions.MlflowException as exc:  # e.g. another command got there first
        _log.debug("could not recover run %s: %s", run.info.run_id, exc)


def roll_back_quietly(client: MlflowClient, run_id: str) -> None:
    """A run that raised: its new versions removed (best effort: the store may be what failed)."""
    try:
        if _remove_versions(client, run_id):
            client.set_tag(run_id, REGISTRATION_TAG, "rolled back")
    except mlflow.exceptions.MlflowException as exc:
        _log.debug("could not remove the model versions of run %s: %s", run_id, exc)
