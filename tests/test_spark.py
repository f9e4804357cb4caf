"""Spark as the scoring engine: the same scores, tiers and reasons as the local path (local mode)."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import cli
from propensity import spark
from propensity.runs.workflows import load_account_model
from propensity.scoring import snapshot_features


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
    paths = {}
    for engine in ("duckdb", "spark"):
        paths[engine] = tmp_path / f"{engine}.parquet"
        done = cli(
            "score", "--data", str(trained.world), "--run", str(trained.run_dir),
            "--out", str(paths[engine]), "--engine", engine, "--no-history",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    local, on_spark = (pd.read_parquet(paths[e]) for e in ("duckdb", "spark"))
    pd.testing.assert_frame_equal(on_spark, local, check_exact=False, rtol=0, atol=1e-12)
