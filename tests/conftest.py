"""Fixtures shared by the whole suite: one generated world and one trained, written run (made
once per session, and once for all pytest-xdist workers: the first worker to need them makes
them under a file lock, the others read them), and a real `mlflow server` on loopback for the
tests that need one."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from filelock import FileLock

from propensity import faults
from propensity.data.contract import Tables, load_tables
from propensity.data.world import WorldConfig, generate_world, read_truth
from propensity.model.config import ModelConfig
from propensity.model.scorecard import Scorecard
from propensity.runs.account import train_account_model
from propensity.runs.folder import RunResult, write_run

BIN = Path(sys.executable).parent
FAST = {"n_bootstrap": 20, "conversion": {"n_estimators": 300}, "fit": {"n_estimators": 200}}
FAST_YAML = "n_bootstrap: 20\nconversion: {n_estimators: 300}\nfit: {n_estimators: 200}\n"
# account names a spreadsheet or a browser would execute: they must come out inert everywhere
HOSTILE = {
    "A0000000": '=HYPERLINK("http://evil.example","click")',
    "A0000001": "<script>alert('x')</script>",
    "A0000002": 'Ünïcödé Straße, "Quoted", GmbH\nsecond line',
    "A0000003": "+49 Telecom",
    "A0000004": "@mention Ltd",
    "A0000005": "-minus & <b>bold</b>",
    "A0000006": '<img src=x onerror="window.__pwned=1">',
}


@dataclass(frozen=True)
class TrainedWorld:
    world: Path
    tables: Tables
    result: RunResult
    run_dir: Path


def pytest_collection_modifyitems(items) -> None:
    """Long tests first, longest first (their ``slow(seconds=...)`` estimate): with tests handed
    out one at a time (``--dist load --maxschedchunk 1``) the two workers then finish together."""

    def expected_seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return mark.kwargs.get("seconds", 10) if mark else 0

    items.sort(key=expected_seconds, reverse=True)  # stable: the rest keep their order


def cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """The real installed `propensity` entry point."""
    return subprocess.run(
        [str(BIN / "propensity"), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def browser_missing(reason: str) -> None:
    """A browser test without Chromium: skipped on a developer's machine, a failure in CI, where
    `make test` installs it first (a CI run must never pass without the browser tests)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must run the browser tests (`make browser` installs it)")
    pytest.skip(reason)


def kill_at(
    stage: str, args: list[str], cwd: Path, tmpdir: Path, timeout: float = 600, **env: str
) -> str:
    """Run ``args`` until it prints the pause marker of ``stage``, then SIGKILL it; its stderr."""
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, faults.PAUSE_ENV: stage, "TMPDIR": str(tmpdir), **env}
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    seen = []
    try:
        for line in process.stderr:
            seen.append(line)
            if line.strip() == f"{faults.PAUSE_MARKER} {stage}":
                os.kill(process.pid, signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        process.stderr.close()
    stderr = "".join(seen)
    assert process.returncode == -signal.SIGKILL, f"{stage} never reached:\n{stderr[-3000:]}"
    return stderr


def _made_once(tmp_path_factory, worker_id: str, name: str, make: Callable[[Path], Any]) -> Any:
    """``make(folder)`` run once for the whole test session, whichever worker asks first; the
    others wait for it and read the pickled value. The folder is shared: treat it as read-only."""
    if worker_id == "master":  # not under xdist
        return make(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / f"shared-{name}"
    done = shared.with_suffix(".pickle")
    with FileLock(f"{shared}.lock"):
        if done.is_file():
            return pickle.loads(done.read_bytes())
        shared.mkdir()
        value = make(shared)
        done.write_bytes(pickle.dumps(value))
        return value


def _hostile_world(folder: Path) -> Path:
    folder = generate_world(WorldConfig(n_accounts=3000, seed=5), folder / "world")
    accounts = pd.read_parquet(folder / "accounts.parquet")
    accounts["name"] = accounts["account_id"].map(HOSTILE).fillna(accounts["name"])
    accounts.to_parquet(folder / "accounts.parquet", index=False)
    return folder


@pytest.fixture(scope="session")
def world(tmp_path_factory, worker_id) -> Path:
    """A generated world (3,000 accounts, seed 5) whose first accounts have hostile names."""
    return _made_once(tmp_path_factory, worker_id, "world", _hostile_world)


@pytest.fixture(scope="session")
def trained(world, tmp_path_factory, worker_id) -> TrainedWorld:
    """One account run on the shared world (FAST settings), trained and written once."""

    def train(folder: Path) -> TrainedWorld:
        tables = load_tables(world)
        result = train_account_model(
            tables, ModelConfig.model_validate(FAST), Scorecard.from_yaml(), read_truth(world)
        )
        write_run(result, folder / "run")
        return TrainedWorld(world, tables, result, folder / "run")

    return _made_once(tmp_path_factory, worker_id, "trained", train)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` with its own SQLite backend and artifact folder, on a free
    loopback port."""
    folder = tmp_path_factory.mktemp("server")
    port = _free_port()
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],  # fmt: skip
        stdout=(folder / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}"
            )
        time.sleep(0.5)
    yield uri
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def raw() -> dict[str, pd.DataFrame]:
    """A valid minimal set of the five tables (3 accounts), as text like a CSV import."""
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["A1", "A2", "A3"],
                "name": ["Acme", "Globex", "Initech"],
                "industry": ["software", "retail", None],
                "employees": ["120", None, "15"],
                "annual_revenue": ["1.5e7", "2000000", None],
                "country": ["us", "de", "gb"],
                "founded_year": ["1999", "2010", None],
                "tech_crm": ["true", "no", None],
                "lifecycle_stage": ["customer", "subscriber", "unknown"],
            }
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": ["C1", "C2", "C3"],
                "account_id": ["A1", "A1", "A2"],
                "role": ["Decision Maker", "user", "IT"],
                "seniority": ["vp", "manager", None],
                "created_at": ["2023-01-02", "2023-02-01", "2023-03-01"],
            }
        ),
        "events": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A2", "A2"],
                "contact_id": ["C1", None, "C3", ""],
                "ts": ["2023-03-01T10:00:00", "2023-03-02", "2023-04-01 08:30:00", "2023-04-02"],
                "event_type": ["email_click", "web_visit", "webinar", "web_visit"],
                "channel": ["email", "web", "event", "web"],
                "minutes": [None, "2.5", "45", None],
            }
        ),
        "intent": pd.DataFrame(
            {
                "account_id": ["A1", "A1", "A3"],
                "week": ["2023-03-06", "2023-03-06", "2023-03-13"],
                "topic": ["crm", "erp", "crm"],
                "score": ["80", "55.5", "100"],
            }
        ),
        "opportunities": pd.DataFrame(
            {
                "opportunity_id": ["O1", "O2", "O3"],
                "account_id": ["A1", "A2", "A1"],
                "created_at": ["2023-04-01", "2023-05-01", "2023-06-01"],
                "closed_at": ["2023-05-15", "2023-06-10", None],
                "outcome": ["Won", "lost ", "open"],
                "amount": ["50000", None, "12000.5"],
                "type": ["new business", "new_business", "expansion"],
            }
        ),
    }
