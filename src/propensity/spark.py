"""Spark as a scoring engine: the one scorer (:meth:`AccountModel.score_features`) run in
parallel across Spark's executors, with the same columns, scores, tiers and reasons as the local
path.

A Spark session here runs in UTC, without its web UI, with Arrow between the JVM and Python, its
Python workers on this interpreter, and is stopped when its ``with`` block ends. Spark needs a
Java 17 or 21 runtime: ``JAVA_HOME``, else the ``java`` on the PATH (``make java`` installs
Debian's OpenJDK 17).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from propensity.scoring import PART_ROWS, AccountModel

if TYPE_CHECKING:  # pyspark is imported when a session starts
    from pyspark.sql import DataFrame, SparkSession

ROW = "__propensity_row"  # the matrix's row order, carried through Spark


class JavaMissingError(RuntimeError):
    """No Java runtime for Spark."""


def java_home() -> str:
    """``JAVA_HOME``, else the home of the ``java`` on the PATH."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise JavaMissingError(
            "Spark needs a Java 17 or 21 runtime: set JAVA_HOME, or install one "
            "(`make java` installs Debian's openjdk-17-jre-headless)"
        )
    return str(Path(java).resolve().parent.parent)


@contextmanager
def spark_session(
    master: str | None = None, driver_memory: str | None = None
) -> Iterator[SparkSession]:
    """A Spark session on ``master`` (``local[N]``, or a cluster's URL such as
    ``spark://host:7077`` or ``yarn``; None: the one spark-submit gives, else ``local[*]``).
    ``driver_memory`` sizes the driver's JVM when this starts it (it holds the tasks' results
    on their way; default 4g for a local master, else the cluster's spark-defaults); under
    spark-submit, its ``--driver-memory`` does."""
    os.environ["JAVA_HOME"] = java_home()
    # the Python workers must import what this interpreter imports
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master is None and "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
        master = "local[*]"
    local = master is not None and master.startswith("local")
    if local:  # one machine: no network lookups
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # PySpark 4 warns that pandas 3 is not fully supported; the tests compare every value
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    warnings.filterwarnings("ignore", "The copy keyword is deprecated", module="pyspark")
    from pyspark.sql import SparkSession

    log_config = files("propensity") / "configs" / "spark-log4j2.properties"

    builder = SparkSession.builder if master is None else SparkSession.builder.master(master)
    if driver_memory or local:
        builder = builder.config("spark.driver.memory", driver_memory or "4g")
    if local:  # a cluster's log settings are its own
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={log_config}"
        )
    spark = (
        builder.appName("propensity")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Parquet's nanosecond timestamps (pandas' default) come as numbers, made timestamps
        # again in the task
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def matrix_frame(
    spark: SparkSession, matrix: pd.DataFrame, partitions: int | None = None
) -> DataFrame:
    """The feature matrix in Spark, each row with its position (``ROW``), split into
    ``partitions`` (default: Spark's parallelism)."""
    frame = spark.createDataFrame(matrix.reset_index(drop=True).assign(**{ROW: range(len(matrix))}))
    return frame.repartition(partitions or spark.sparkContext.defaultParallelism)


def scored_frame(
    model: AccountModel,
    frame: DataFrame,
    *,
    reasons: bool = True,
    sample: pd.DataFrame | None = None,
) -> DataFrame:
    """The rows of ``frame`` (:func:`matrix_frame`) scored by the one scorer on the executors
    (the model travels with the tasks), with ``ROW``: lazy, so a job on a cluster can also write
    it where the executors write. ``sample``: a row of the matrix, when the driver has one
    (else one is read from ``frame``)."""
    spark = frame.sparkSession
    # the output schema: the local scorer on one row (its columns and types)
    first = sample.head(1) if sample is not None else frame.drop(ROW).limit(1).toPandas()
    schema = spark.createDataFrame(
        model.score_features(first, reasons=reasons).assign(**{ROW: 0})
    ).schema
    # Spark runs a task per core: a task's TreeSHAP on one thread, so cores are not shared
    model = model.with_threads(1)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            rows = batch.pop(ROW).to_numpy()
            yield model.score_features(batch, reasons=reasons).assign(**{ROW: rows})

    return frame.mapInPandas(score, schema)


def score_parts(
    spark: SparkSession,
    model: AccountModel,
    matrix: pd.DataFrame,
    *,
    reasons: bool = True,
    partitions: int | None = None,
    part_rows: int = PART_ROWS,
) -> Iterator[pd.DataFrame]:
    """:meth:`AccountModel.score_parts` with the scoring done by Spark (:func:`scored_frame`
    over ``partitions``): the scored rows come back in the matrix's order, in parts of
    ``part_rows``."""
    if matrix.empty:
        yield model.score_features(matrix, reasons=reasons)
        return
    frame = matrix_frame(spark, matrix, partitions)
    scored = scored_frame(model, frame, reasons=reasons, sample=matrix).toPandas()
    scored = scored.sort_values(ROW, kind="stable").drop(columns=ROW).reset_index(drop=True)
    for start in range(0, len(scored), part_rows):
        yield scored.iloc[start : start + part_rows].reset_index(drop=True)
