"""Spark as the feature and scoring engine (local mode): the same checks and messages, feature
matrix, labels, scores, tiers and reasons as the local path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import cli
from propensity import spark
from propensity.data.contract import open_tables
from propensity.data.problems import ContractError
from propensity.duck import connect
from propensity.features.matrix import build_features
from propensity.history import merge_freshness, read_history
from propensity.model.config import ModelConfig
from propensity.runs.workflows import load_account_model
from propensity.scoring import snapshot_features
from propensity.spark_features import SparkInputError, feature_matrix_on_spark
from propensity.spine import build_labels, build_spine


@pytest.fixture(scope="module")
def session():
    with spark.spark_session("local[2]") as started:
        yield started


def test_spark_scores_and_reasons_equal_the_local_ones(trained, session):
    model = load_account_model(trained.run_dir)
    matrix = snapshot_features(trained.tables, model)
    local = model.score_features(matrix)
    parts = list(spark.score_parts(session, model, matrix, partitions=3, part_rows=700))
    on_spark = pd.concat(parts, ignore_index=True)
    assert [len(p) for p in parts[:-1]] == [700] * (len(parts) - 1)
    assert list(on_spark.columns) == list(local.columns)
    assert on_spark["account_id"].tolist() == local["account_id"].tolist()  # the matrix's order
    for column in local.columns:
        if pd.api.types.is_float_dtype(local[column]):
            pd.testing.assert_series_equal(on_spark[column], local[column], rtol=0, atol=1e-12)
        else:
            assert on_spark[column].astype(str).tolist() == local[column].astype(str).tolist()


def test_an_empty_matrix_scores_to_no_rows(trained, session):
    model = load_account_model(trained.run_dir)
    empty = snapshot_features(trained.tables, model).head(0)
    (part,) = spark.score_parts(session, model, empty)
    assert part.empty and "conversion_reasons" in part


def test_score_with_the_spark_engine_through_the_cli_writes_what_the_local_engine_writes(
    trained, tmp_path
):
    # on Spark the snapshot's features are built there too, and the score history records
    # the same batch (the tables' freshness merged from the partitions)
    paths = {}
    for engine in ("duckdb", "spark"):
        paths[engine] = tmp_path / f"{engine}.parquet"
        done = cli(
            "score", "--data", str(trained.world), "--run", str(trained.run_dir),
            "--out", str(paths[engine]), "--engine", engine,
            "--history", str(tmp_path / f"{engine}.duckdb"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    local, on_spark = (pd.read_parquet(paths[e]) for e in ("duckdb", "spark"))
    pd.testing.assert_frame_equal(on_spark, local, check_exact=False, rtol=0, atol=1e-12)
    local, on_spark = (read_history(tmp_path / f"{e}.duckdb") for e in ("duckdb", "spark"))
    same = ["batch_id", "as_of", "model_version", "rows", "freshness_json"]
    assert on_spark.batches[same].to_dict("records") == local.batches[same].to_dict("records")
    pd.testing.assert_frame_equal(on_spark.scores, local.scores, check_exact=False, atol=1e-12)


# ---- features


def _local(folder: Path, config: ModelConfig, as_of=None):
    """The feature matrix and labels as the DuckDB engine builds them from the files."""
    with connect() as con:
        tables = open_tables(folder, con)
        spine = build_spine(tables, config.spine, as_of=as_of)
        feature_set = build_features(tables, spine, config.features)
        labels = None if as_of is not None else build_labels(tables, spine, config.spine)
    return feature_set, labels


def _contract_error(build) -> str:
    with pytest.raises(ContractError) as caught:
        build()
    return str(caught.value)


def _as_parquet(raw: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir()
    for name, frame in raw.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.mark.slow(seconds=40)
def test_spark_feature_matrix_and_labels_equal_duckdbs(world, session):
    # every optional feature group on: each is computed inside Spark's tasks too
    config = ModelConfig.model_validate(
        {
            "features": {
                "short_windows_days": [14, 21, 28],
                "momentum_weeks": [[1, 3], [3, 12]],
                "new_contacts_days": 28,
            }
        }
    )
    local, local_labels = _local(world, config)
    built = feature_matrix_on_spark(session, world, config.spine, config.features, partitions=5)
    on_spark, labels = built.feature_set, built.labels
    assert len(on_spark.matrix) == len(local.matrix) > 10_000
    # same rows in the same order, floats within 1e-9, the same feature definitions
    pd.testing.assert_frame_equal(on_spark.matrix, local.matrix, check_exact=False, atol=1e-9)
    pd.testing.assert_frame_equal(labels, local_labels)
    assert on_spark.specs == local.specs and on_spark.families == local.families


def test_accounts_without_events_or_intent_in_their_bucket_get_the_local_features(
    raw, tmp_path, session
):
    # an id padded in one table is the same account (the one parser trims it): its rows meet
    raw["events"].loc[0, "account_id"] = " A1 "
    folder = _as_parquet(raw, tmp_path / "tables")  # text columns, parsed by the one parser
    config = ModelConfig.model_validate({"spine": {"start": "2023-03-01", "cadence": "weekly"}})
    as_of = pd.Timestamp("2023-07-03")
    local, _ = _local(folder, config, as_of)
    # eight partitions for three accounts: most hold no rows of some tables
    built = feature_matrix_on_spark(
        session, folder, config.spine, config.features, as_of, partitions=8
    )
    on_spark = built.feature_set
    assert built.labels is None and built.as_of == as_of
    pd.testing.assert_frame_equal(on_spark.matrix, local.matrix, check_exact=False, atol=1e-9)


def test_spark_checks_report_what_the_local_checks_report(world, tmp_path, session):
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in Path(world).glob("*.parquet"):
        (bad / path.name).write_bytes(path.read_bytes())
    accounts = pd.read_parquet(bad / "accounts.parquet")
    accounts = pd.concat([accounts, accounts.iloc[[3, 40, 41]]], ignore_index=True)
    accounts.loc[7, "employees"] = -5
    accounts.to_parquet(bad / "accounts.parquet", index=False)
    events = pd.read_parquet(bad / "events.parquet")
    events["ts"] = events["ts"].astype(str)
    events.loc[[5, 900, 1800, 2500, 3300, 4000, 4100], "ts"] = "yesterday"
    # unknown accounts (their contacts are unknown too: see spark_features' docstring)
    events.loc[[17, len(events) - 3], ["account_id", "contact_id"]] = ["nobody", None]
    events.to_parquet(bad / "events.parquet", index=False)

    def local():
        with connect() as con:
            open_tables(bad, con)

    expected = _contract_error(local)
    assert expected.count("\n") == 3 and "rows share a duplicate key" in expected
    # problems found in several partitions: counts added, the first example rows, in check order
    config = ModelConfig()
    on_spark = _contract_error(
        lambda: feature_matrix_on_spark(session, bad, config.spine, config.features, partitions=7)
    )
    assert on_spark == expected


def test_the_spark_engine_names_csv_tables_it_cannot_read(raw, tmp_path, session):
    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in raw.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    with pytest.raises(SparkInputError, match="reads Parquet tables; these are CSV: accounts"):
        feature_matrix_on_spark(session, folder, ModelConfig().spine, ModelConfig().features)


def test_parts_of_a_table_with_different_types_are_named(raw, tmp_path, session):
    folder = _as_parquet({k: v for k, v in raw.items() if k != "events"}, tmp_path / "tables")
    (folder / "events").mkdir()
    events = raw["events"].assign(minutes=pd.to_numeric(raw["events"]["minutes"]))
    events.iloc[:2].assign(minutes=[1, 2]).to_parquet(folder / "events" / "a.parquet")
    events.iloc[2:].to_parquet(folder / "events" / "b.parquet")
    config = ModelConfig()
    with pytest.raises(SparkInputError, match=r"different types for minutes \(minutes: int64"):
        feature_matrix_on_spark(session, folder, config.spine, config.features)


@pytest.mark.slow(seconds=60)
def test_features_with_the_spark_engine_through_the_cli_writes_what_duckdb_writes(world, tmp_path):
    for engine in ("duckdb", "spark"):
        done = cli(
            "features", "--data", str(world), "--out", str(tmp_path / f"{engine}.parquet"),
            "--engine", engine, "--spark-master", "local[2]",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    for suffix in (".parquet", ".labels.parquet"):
        local, on_spark = (pd.read_parquet(tmp_path / f"{e}{suffix}") for e in ("duckdb", "spark"))
        pd.testing.assert_frame_equal(on_spark, local, check_exact=False, atol=1e-9)
    settings = [(tmp_path / f"{e}.settings.json").read_text() for e in ("duckdb", "spark")]
    assert settings[0] == settings[1]


def test_the_freshness_of_tables_held_in_parts_is_the_freshest_parts():
    parts = [{"events": 3, "intent": None}, {"events": 1, "intent": 9}, {"events": None}]
    assert merge_freshness(parts) == {"events": 1, "intent": 9}
    assert merge_freshness([{"events": None}, {}]) == {"events": None}
