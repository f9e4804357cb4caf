"""Faults around the MLflow store, with real processes, a real SQLite store and real signals:
``kill -9`` at each stage boundary (the ``PROPENSITY_TEST_PAUSE_AT`` hook of
:mod:`propensity.faults` stops the command there and prints a marker; the test then sends
SIGKILL), two trains on one store at once, a dead tracking server, an unsupported URI and a
mistyped store path. Each checks what is left: no RUNNING run, no alias on a version of a run
that did not finish, both challengers from one run, no temporary folder, and that a rerun
succeeds."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from conftest import BIN, FAST_YAML, cli, kill_at
from propensity import faults
from propensity.data.world import WorldConfig, generate_world
from propensity.io import write_text
from propensity.outputs.report import build_report
from propensity.runs.account import data_fingerprint
from propensity.runs.folder import write_run
from propensity.store import (
    CHALLENGER,
    OWNER_TAG,
    RECOVERY_TAG,
    REGISTERED,
    REGISTRATION_TAG,
)
from propensity.tracking import log_run

TRACKING_STAGES = (
    "tracking.started",
    "tracking.logged",
    "tracking.registered",
    "tracking.committed",
)
LOG_RUN = (
    "import pickle, sys\n"
    "from propensity.tracking import log_run\n"
    "result, run_dir, data, uri = pickle.loads(open(sys.argv[1], 'rb').read())\n"
    "log_run(result, run_dir, data, uri)\n"
)
WRITE_RUN = (
    "import pickle, sys\n"
    "from propensity.runs.folder import write_run\n"
    "result = pickle.loads(open(sys.argv[1], 'rb').read())\n"
    "write_run(result, sys.argv[2])\n"
)
MLFLOW_NOISE = (
    "Downloading artifacts",
    "UserWarning",
    "CloudPickle",
    "INFO mlflow",
    "WARNING mlflow",
)


def _runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("propensity")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def _challengers(client: MlflowClient) -> dict[str, str | None]:
    """Registered model -> the run id its challenger version came from."""
    found = {}
    for name in REGISTERED.values():
        aliases = client.get_registered_model(name).aliases
        version = aliases.get(CHALLENGER)
        found[name] = client.get_model_version(name, version).run_id if version else None
    return found


def _assert_consistent(client: MlflowClient) -> str | None:
    """No RUNNING run, every model version from a FINISHED run, both challengers from one run
    (its id)."""
    status = {run.info.run_id: run.info.status for run in _runs(client)}
    assert "RUNNING" not in status.values(), status
    for name in REGISTERED.values():
        for version in client.search_model_versions(f"name = '{name}'"):
            assert status[version.run_id] == "FINISHED", (name, version.version, status)
    owners = set(_challengers(client).values())
    assert len(owners) == 1, f"challengers from different runs: {owners}"
    return owners.pop()


def _half_written(folder: Path) -> list[Path]:
    """Temporary run folders and files of atomic writes left under ``folder``."""
    return [path for path in folder.rglob("*") if path.name.endswith((".partial", ".tmp"))]


@pytest.mark.slow(seconds=25)
def test_a_dead_server_a_bad_scheme_and_a_mistyped_store_are_one_line_errors(tmp_path):
    missing = tmp_path / "typo" / "mlflow.db"
    silent = socket.socket()  # accepts connections (the kernel does), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
    cases = {
        "dead server": ("runs", "--tracking-uri", "http://127.0.0.1:9"),
        "hung server": ("promote", "--tracking-uri", hung),
        "bad scheme": ("runs", "--tracking-uri", "mlflw://models/mlflow.db"),
        "runs, typo'd sqlite": ("runs", "--tracking-uri", f"sqlite:///{missing}"),
        "promote, typo'd sqlite": ("promote", "--tracking-uri", f"sqlite:///{missing}"),
        "rollback, typo'd sqlite": ("rollback", "--tracking-uri", f"sqlite:///{missing}"),
        "score, typo'd sqlite": (
            "score",
            "--data",
            str(tmp_path / "world"),
            "--out",
            str(tmp_path / "s.csv"),
            "--tracking-uri",
            f"sqlite:///{missing}",
        ),  # fmt: skip
        "export, typo'd sqlite": (
            "export",
            "--data",
            str(tmp_path / "world"),
            "--out",
            str(tmp_path / "t.csv"),
            "--tracking-uri",
            f"sqlite:///{missing}",
        ),  # fmt: skip
    }
    expected = {
        "dead server": "tracking server http://127.0.0.1:9 does not answer",
        "hung server": f"tracking server {hung} does not answer (timed out)",
        "bad scheme": "unsupported tracking URI 'mlflw://models/mlflow.db'",
    }
    for case, args in cases.items():
        started = time.monotonic()
        done = cli(*args, cwd=tmp_path, timeout=60)
        seconds = time.monotonic() - started
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (case, done.stdout, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, done.stderr)
        assert expected.get(case, f"no store at {missing}") in lines[0], (case, lines)
        assert seconds < 15, (case, seconds)
    silent.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a read command created something"

    # the default store (models/mlflow.db in the working folder) is not created by a read either
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "PROPENSITY_WORKDIR")
    }
    done = subprocess.run(
        [str(BIN / "propensity"), "runs"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "no store at" in done.stderr, done.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.slow(seconds=40)
def test_kill_9_at_each_tracking_stage_leaves_what_the_next_command_puts_right(trained, tmp_path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    data = {"source": str(trained.world), **data_fingerprint(trained.tables)}
    first = log_run(trained.result, trained.run_dir, data, uri)
    client = MlflowClient(uri, uri)
    challenger = first.run_id
    job = tmp_path / "job.pickle"
    job.write_bytes(pickle.dumps((trained.result, trained.run_dir, data, uri)))
    for stage in TRACKING_STAGES:
        temp = tmp_path / f"tmp-{stage}"
        verbose = "1" if stage == "tracking.logged" else "0"  # --verbose shows MLflow's notices
        args = [sys.executable, "-c", LOG_RUN, str(job)]
        stderr = kill_at(stage, args, tmp_path, temp, PROPENSITY_VERBOSE=verbose)
        noisy = [noise for noise in MLFLOW_NOISE if noise in stderr]
        assert noisy if verbose == "1" else not noisy, stderr[-3000:]
        killed = _runs(client)[-1]
        assert killed.info.status == ("FINISHED" if stage == "tracking.committed" else "RUNNING")

        listing = cli("runs", "--tracking-uri", uri)  # the next command opens the store
        assert listing.returncode == 0, listing.stderr
        assert "RUNNING" not in listing.stdout and killed.info.run_id in listing.stdout
        after = client.get_run(killed.info.run_id)
        if stage == "tracking.committed":  # committed: the registration is completed
            assert after.info.status == "FINISHED"
            assert after.data.tags[REGISTRATION_TAG] == "done"
            challenger = killed.info.run_id
        else:  # not committed: KILLED, its versions gone, the challengers untouched
            assert after.info.status == "KILLED", after.info
            assert "was gone" in after.data.tags[RECOVERY_TAG]
            assert client.search_model_versions(f"run_id = '{killed.info.run_id}'") == []
        assert _assert_consistent(client) == challenger, stage
        assert list(temp.iterdir()) == [], stage  # the killed process's $TMPDIR

    rerun = log_run(trained.result, trained.run_dir, data, uri)
    assert _assert_consistent(client) == rerun.run_id
    statuses = [run.info.status for run in _runs(client)]
    assert statuses == ["FINISHED", "KILLED", "KILLED", "KILLED", "FINISHED", "FINISHED"]

    # a run whose owner is alive (this test) or on another host is never marked KILLED
    experiment = client.get_experiment_by_name("propensity").experiment_id
    alive = client.create_run(experiment, tags={OWNER_TAG: json.dumps(faults.owner())})
    elsewhere = {"host": "another-host", "pid": "1", "start": ""}
    remote = client.create_run(experiment, tags={OWNER_TAG: json.dumps(elsewhere)})
    assert cli("runs", "--tracking-uri", uri).returncode == 0
    for run in (alive, remote):
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
        client.set_terminated(run.info.run_id)


def test_kill_9_while_writing_the_run_folder_leaves_no_run_and_the_rerun_cleans_up(
    trained, tmp_path
):
    job = tmp_path / "result.pickle"
    job.write_bytes(pickle.dumps(trained.result))
    out = tmp_path / "runs" / "run1"
    args = [sys.executable, "-c", WRITE_RUN, str(job), str(out)]
    kill_at("run_folder.written", args, tmp_path, tmp_path / "tmp")
    assert not out.exists()
    assert len(list(out.parent.glob(".run1.*.partial"))) == 1  # complete, never renamed

    report = lambda run, folder: write_text(build_report(run), folder / "report.html")  # noqa: E731
    write_run(trained.result, out, extra=report)  # the report inside the all-or-nothing
    assert (out / "scoring_model.joblib").is_file() and (out / "report.html").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["run1"]


@pytest.mark.slow(seconds=90)
def test_kill_9_during_train_registration_then_two_trains_on_the_store_at_once(tmp_path):
    world = generate_world(WorldConfig(n_accounts=1000, seed=5), tmp_path / "world")
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_YAML)
    uri = f"sqlite:///{tmp_path / 'models' / 'mlflow.db'}"

    def train(out: str, *extra: str) -> list[str]:
        return [
            str(BIN / "propensity"), "train", "--data", str(world), "--out", str(tmp_path / out),
            "--config", str(config), "--tracking-uri", uri, *extra,
        ]  # fmt: skip

    kill_at("tracking.registered", train("run1"), tmp_path, tmp_path / "tmp")
    client = MlflowClient(uri, uri)
    (killed,) = _runs(client)
    assert killed.info.status == "RUNNING"
    assert len(client.search_model_versions(f"run_id = '{killed.info.run_id}'")) == 2

    listing = cli("runs", "--tracking-uri", uri)
    assert listing.returncode == 0 and "KILLED" in listing.stdout
    assert "RUNNING" not in listing.stdout
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert client.search_model_versions(f"run_id = '{killed.info.run_id}'") == []
    assert all(not client.get_registered_model(n).aliases for n in REGISTERED.values())

    # the rerun (onto the killed run's folder) and a second train, on the one store at once
    processes = [
        subprocess.Popen(
            args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in (train("run1", "--overwrite"), train("run2"))
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
        assert "registered as challenger" in stdout
        assert not any(noise in stderr for noise in MLFLOW_NOISE), stderr[-3000:]
    challenger = _assert_consistent(client)
    assert sorted(run.info.status for run in _runs(client)) == ["FINISHED", "FINISHED", "KILLED"]
    assert challenger in {run.info.run_id for run in _runs(client)}
    assert list((tmp_path / "tmp").iterdir()) == []  # the killed process's $TMPDIR
    assert _half_written(tmp_path) == []
