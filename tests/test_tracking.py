"""MLflow tracking and registry against a real store and a real `mlflow server` on loopback."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from conftest import cli
from propensity.registry import promote
from propensity.runs.account import data_fingerprint
from propensity.tracking import log_run

WORSE = "n_bootstrap: 20\nconversion: {n_estimators: 3, num_leaves: 2}\nfit: {n_estimators: 3, num_leaves: 2}\n"


def _train(world: Path, tmp: Path, name: str, config_text: str, uri: str):
    config = tmp / f"{name}.yaml"
    config.write_text(config_text)
    return cli(
        "train", "--data", str(world), "--out", str(tmp / name), "--config", str(config),
        "--tracking-uri", uri,
    )  # fmt: skip


def _log(trained, uri: str):
    data = {"source": str(trained.world), **data_fingerprint(trained.tables)}
    return log_run(trained.result, trained.run_dir, data, uri)


def _first_promotion(uri: str) -> None:
    """The first promotion is gated like every later one: a head is promoted exactly when its
    challenger's ROC-AUC on its test rows is within the tolerance of every baseline of its run,
    and a refused one says which baseline beat it. A refused head is then forced (logged), as
    what follows tests the registry, not the fixture world's models."""
    for decision in promote(uri=uri):
        table = decision.comparison.set_index("role")
        challenger = table.loc["challenger", "roc_auc"]
        baselines = table.loc[[r for r in table.index if r in ("logistic", "scorecard")], "roc_auc"]
        assert len(baselines) == 2, decision.reason
        assert decision.promoted == bool(challenger >= baselines.max() - 0.01 - 1e-9), (
            decision.reason
        )
        if not decision.promoted:
            assert "worse by more than 0.01" in decision.reason and "no champion yet" in (
                decision.reason
            )
            (forced,) = promote([decision.name], force=True, reason="fixture world")
            assert forced.promoted


@pytest.mark.slow(seconds=50)
def test_train_promote_refuse_force_and_rollback_against_a_real_server(
    trained, mlflow_server, tmp_path
):
    uri = mlflow_server
    first = _log(trained, uri)
    assert first.versions == {"propensity-fit": "1", "propensity-conversion": "1"}
    _first_promotion(uri)

    worse = _train(trained.world, tmp_path, "worse", WORSE, uri)
    assert worse.returncode == 0, worse.stderr[-3000:]
    assert "registered as challenger: propensity-fit v2, propensity-conversion v2" in worse.stdout
    refused = cli("promote", "--head", "conversion", "--tracking-uri", uri)
    assert refused.returncode == 1, refused.stdout
    assert "kept the champion" in refused.stdout and "pr_auc" in refused.stdout

    client = mlflow.MlflowClient(uri, uri)
    assert client.get_model_version_by_alias("propensity-conversion", "champion").version == "1"
    assert client.get_model_version_by_alias("propensity-conversion", "challenger").version == "2"

    no_reason = cli("promote", "--head", "conversion", "--force", "--tracking-uri", uri)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    forced = cli(
        "promote", "--head", "conversion", "--force", "--reason", "test override",
        "--tracking-uri", uri,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert client.get_model_version_by_alias("propensity-conversion", "champion").version == "2"
    assert (
        "forced: test override"
        in client.get_model_version("propensity-conversion", "2").tags["promotion_reason"]
    )

    back = cli("rollback", "--head", "conversion", "--tracking-uri", uri)
    assert back.returncode == 0 and "v2 -> v1" in back.stdout
    assert client.get_model_version_by_alias("propensity-conversion", "champion").version == "1"
    runs = client.search_runs([client.get_experiment_by_name("propensity").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.slow(seconds=30)
def test_score_and_serve_the_registered_champions_or_a_pinned_version(trained, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _log(trained, uri)
    _first_promotion(uri)
    second = _log(trained, uri)  # conversion v2 is the challenger; v1 stays champion
    assert second.versions["propensity-conversion"] == "2"

    # the fit head's champion (v1), the conversion head pinned to v2
    out = tmp_path / "scored.parquet"
    pinned = cli(
        "score", "--data", str(trained.world), "--out", str(out),
        "--conversion-version", "2", "--tracking-uri", uri,
    )  # fmt: skip
    assert pinned.returncode == 0, pinned.stderr[-3000:]
    rows = pd.read_parquet(out)
    (label,) = set(rows["model_version"])
    assert re.fullmatch(
        r"fit:v1:(logistic-|scorecard-)?sha-[0-9a-f]{12},conversion:v2:(logistic-|stacked-)?sha-[0-9a-f]{12}",
        label,
    ), label
    assert rows["conversion_reasons_json"].str.startswith("[").all()

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/propensity-conversion@champion")
    window = pd.read_parquet(trained.run_dir / "test_window.parquet").head(20)
    predicted = model.predict(window, params={"reasons": True})
    assert {"probability", "score", "tier", "reasons", "model_version"} <= set(predicted.columns)

    listing = cli("runs", "--tracking-uri", uri)
    assert listing.returncode == 0 and second.run_id in listing.stdout

    # the champion's learned points card, named after the head's registered version
    card = tmp_path / "card.yaml"
    exported = cli("scorecard", "export", "--out", str(card), "--tracking-uri", uri)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert re.search(r"^name: learned-conversion-conversion:v1:", card.read_text(), re.M)


def _with_problems(result, head: str, problems: list[str]):
    run = result.heads[head]
    shipped = dataclasses.replace(run.shipped, problems=problems)
    heads = {**result.heads, head: dataclasses.replace(run, shipped=shipped)}
    return dataclasses.replace(result, heads=heads)


@pytest.mark.slow(seconds=25)
def test_a_degenerate_shipped_scorer_is_registered_blocked_never_challenger(trained, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    problem = "near-constant probabilities: 1 distinct values on 900 reference rows"
    degenerate = dataclasses.replace(
        trained, result=_with_problems(trained.result, "fit", [problem])
    )
    blocked = _log(degenerate, uri)
    assert not blocked.challenger and blocked.blocked == {"fit": [problem]}

    client = mlflow.MlflowClient(uri, uri)
    for name in ("propensity-fit", "propensity-conversion"):  # neither head: one run's pair
        assert client.get_registered_model(name).aliases == {}
    fit_version = client.get_model_version("propensity-fit", blocked.versions["propensity-fit"])
    assert fit_version.tags["blocked"] == problem
    assert fit_version.tags["shipped"] in {"lightgbm", "logistic", "scorecard"}
    run = client.get_run(blocked.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["propensity.registration"] == "blocked"
    assert json.loads(run.data.tags["blocked"]) == {"fit": [problem]}
    with pytest.raises(LookupError, match="no 'challenger' version"):
        promote(uri=uri)

    data = {"source": str(trained.world), **data_fingerprint(trained.tables)}
    forced = log_run(degenerate.result, trained.run_dir, data, uri, force_reason="pilot, 3 weeks")
    assert forced.challenger and forced.forced == "pilot, 3 weeks"
    assert str(client.get_model_version_by_alias("propensity-fit", "challenger").version) == "2"
    assert client.get_model_version("propensity-fit", "2").tags["forced"] == "pilot, 3 weeks"
    assert client.get_run(forced.run_id).data.tags["forced"] == "pilot, 3 weeks"


def test_train_force_without_a_reason_is_refused_before_reading_data(tmp_path):
    refused = cli("train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"),
                  "--force")  # fmt: skip
    assert refused.returncode == 2 and "--force needs --reason" in refused.stderr
    assert not (tmp_path / "run").exists()


def test_fingerprint_changes_with_any_table_and_ignores_row_order(trained):
    tables = trained.tables
    reference = data_fingerprint(tables)["sha256"]
    shuffled = dataclasses.replace(tables, events=tables.events.sample(frac=1.0, random_state=1))
    assert data_fingerprint(shuffled)["sha256"] == reference
    for name in ("accounts", "contacts", "events", "intent", "opportunities"):
        frame = tables.get(name).iloc[1:]
        assert (
            data_fingerprint(dataclasses.replace(tables, **{name: frame}))["sha256"] != reference
        ), name


def test_a_run_that_fails_is_marked_failed_not_running(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained.run_dir, run_dir)
    shutil.rmtree(run_dir / "models")  # the booster file is gone: logging the model fails
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    broken = dataclasses.replace(trained, run_dir=run_dir)
    with pytest.raises(Exception):  # noqa: B017 - whatever MLflow raises, the run must end FAILED
        _log(broken, uri)
    client = mlflow.MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("propensity").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.slow(seconds=18)
def test_tuning_is_one_run_with_a_nested_run_per_trial(trained, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "model.yaml"
    config.write_text(
        "n_bootstrap: 20\nconversion: {n_estimators: 60, early_stopping_rounds: 20}\n"
        "tuning: {n_trials: 2, n_splits: 2}\n"
    )
    result = cli(
        "tune", "--data", str(trained.world), "--config", str(config), "--tracking-uri", uri
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = mlflow.MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("propensity").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert all("learning_rate" in r.data.params for r in children)
    assert "num_leaves" in config.read_text()  # the best parameters landed in the config file


@pytest.mark.slow(seconds=45)
def test_table_mode_trains_registers_and_scores_through_the_cli_and_a_real_server(
    mlflow_server, tmp_path
):
    """`propensity table train` on a CSV export: screen, out-of-time evaluation, a registered
    model on the server, then `propensity table score` from the registry."""
    import numpy as np

    rng = np.random.default_rng(3)
    n = 1200
    minutes = rng.gamma(2.0, 10.0, n)
    won = rng.random(n) < 1 / (1 + np.exp(-(3.0 * (np.log1p(minutes) - 2.7))))
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    stage = np.where(won, "Won", "Lost")
    stage[-60:] = "Negotiation"  # open deals: scored, never trained on
    export = pd.DataFrame(
        {
            "deal_id": [f"D{i}" for i in range(n)],
            "created": created.strftime("%Y-%m-%d"),
            "minutes_on_site": minutes.round(1),
            "pages_viewed": np.round(minutes / 4 + rng.gamma(1.0, 2.0, n)),
            "source": rng.choice(["ads", "organic", "=HYPERLINK(1)"], n),
            "close_date": (created + pd.to_timedelta(rng.integers(5, 90, n), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "stage": stage,
        }
    )
    table = tmp_path / "deals.csv"
    export.to_csv(table, index=False)
    run_dir = tmp_path / "run"
    trained = cli(
        "table", "train", str(table), "--id", "deal_id", "--label", "stage",
        "--positive", "Won", "--negative", "Lost", "--time", "created",
        "--out", str(run_dir), "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "close_date" in trained.stdout and "date_after_row_time" in trained.stdout
    assert "excluded: close_date" in trained.stdout
    assert "beats the base rate" in trained.stdout
    assert "registered as challenger: propensity-table-deals v1" in trained.stdout
    for name in (
        "summary.md", "summary.json", "evaluation.csv", "screen.csv", "scores.csv",
        "scoring_model.joblib", "test_window.parquet", "report.html", "models/table.lgb.txt",
    ):  # fmt: skip
        assert (run_dir / name).is_file(), name
    scores = pd.read_csv(run_dir / "scores.csv")
    assert len(scores) == n and (scores["outcome"] == "open").sum() == 60
    assert scores["model_version"].nunique() == 1
    assert not scores["reasons"].str.startswith("=").any()  # formula cells neutralised

    client = mlflow.MlflowClient(mlflow_server, mlflow_server)
    version = client.get_model_version_by_alias("propensity-table-deals", "challenger")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["table.beats_base_rate"] == 1.0
    assert run.data.tags["screen.suspects"] == "close_date"
    artifacts = {a.path for a in client.list_artifacts(version.run_id)}
    assert "screen.json" in artifacts

    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    served = mlflow.pyfunc.load_model(f"models:/propensity-table-deals/{version.version}")
    predicted = served.predict(export.head(20))
    assert len(predicted) == 20 and predicted["probability"].between(0, 1).all()

    out = tmp_path / "open.csv"
    scored = cli(
        "table", "score", str(table), "--registered", "propensity-table-deals@challenger",
        "--open-only", "--out", str(out), "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    open_rows = pd.read_csv(out)
    assert (
        len(open_rows) == 60
        and open_rows["model_version"].str.startswith("propensity-table-deals:v1:").all()
    )
    assert open_rows["probability"].is_monotonic_decreasing
    assert open_rows["rank"].tolist() == list(range(1, 61))  # the open rows' own ranks

    # the same registry life as the account heads: a second version, the gate, rollback
    again = cli(
        "table", "train", str(table), "--id", "deal_id", "--label", "stage",
        "--positive", "Won", "--negative", "Lost", "--time", "created", "--folds", "2",
        "--out", str(tmp_path / "run2"), "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    # a run on the leaky columns, for comparison: registered for the record, not challenger
    leaky = cli(
        "table", "train", str(table), "--id", "deal_id", "--label", "stage",
        "--positive", "Won", "--negative", "Lost", "--time", "created", "--keep-suspects",
        "--out", str(tmp_path / "run_leaky"), "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert leaky.returncode == 0, leaky.stderr[-3000:]
    assert "not registered as challenger" in leaky.stderr and "keep_suspects" in leaky.stderr
    still = client.get_model_version_by_alias("propensity-table-deals", "challenger")
    assert still.version == "2"
    first = cli("promote", "--model", "propensity-table-deals", "--tracking-uri", mlflow_server)
    assert first.returncode in (0, 1), first.stderr[-3000:]
    assert "challenger's test window" in first.stdout or "no champion yet" in first.stdout
    forced = cli(
        "promote", "--model", "propensity-table-deals", "--force", "--reason", "test",
        "--tracking-uri", mlflow_server,
    )  # fmt: skip
    assert forced.returncode == 0, forced.stderr[-3000:]


def test_table_train_with_a_missing_column_fails_clearly_and_writes_nothing(tmp_path):
    table = tmp_path / "leads.csv"
    pd.DataFrame({"lead": ["a", "b"], "won": [1, 0]}).to_csv(table, index=False)
    result = cli(
        "table", "train", str(table), "--id", "lead_id", "--label", "won", "--positive", "1",
        "--out", str(tmp_path / "run"), "--no-track",
    )  # fmt: skip
    assert result.returncode == 2
    assert "no column 'lead_id'; columns are: lead, won" in result.stderr
    assert not (tmp_path / "run").exists()
