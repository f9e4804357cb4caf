"""Spark as the feature engine: the tables split by account across Spark's tasks, each task
checking and building its accounts' features with the one DuckDB definition of every check and
feature, so Spark and DuckDB cannot drift apart.

Every feature of an account reads that account's rows only, given three facts about the whole
data: its time span (the snapshot dates and the end of the labels), the event types counted
(the most frequent ones) and which tables exist. So the job runs in two passes over the tables,
partitioned by ``account_id`` (Spark shuffles every table once, into one frame whose partitions
hold whole accounts, and keeps it for the second pass):

1. each task checks its rows with :func:`propensity.data.checks.check_tables` (rows numbered as
   in the files, so example rows are the same) and returns its problems, its time span and its
   event counts; the driver merges them (:func:`propensity.data.problems.merge_problems`) and
   raises the same :class:`ContractError` a check of the files raises;
2. each task builds the spine, the features and the labels of its accounts
   (:func:`propensity.spine.build_spine` with the whole data's :class:`DataSpan`,
   :func:`propensity.features.matrix.build_features` with the event types fixed); the driver
   puts the rows in the spine's order (as_of, account_id).

Tables are Parquet (a file or a folder of parts): the format a cluster reads from object
storage. Two checks look across accounts and hold within an account's rows here: a
``contact_id`` or ``opportunity_id`` given to two accounts is not reported as a duplicate, and
an event must name a contact of its own account.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from propensity.data.checks import EMPTY_TABLE, ROW, UnknownAccounts, check_tables
from propensity.data.contract import checked_tables
from propensity.data.problems import (
    ContractError,
    ContractWarning,
    Problem,
    merge_notes,
    merge_problems,
)
from propensity.data.sources import arrow_raw_table, find_table_files, raw_table
from propensity.data.specs import TABLE_NAMES
from propensity.duck import connect, machine_memory_share
from propensity.features.engagement_engine import event_type_counts, rank_event_types
from propensity.features.matrix import FeatureSet, build_features
from propensity.features.registry import FeatureConfig
from propensity.io import InputFileError
from propensity.spine import (
    DataSpan,
    SpineConfig,
    build_labels,
    build_spine,
    check_as_of,
    data_end,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLE = "__table"  # which table a row of the shuffled frame belongs to
ACCOUNT = "__account"  # its account_id as text: what the rows are partitioned by
PAYLOAD = "meta binary, matrix binary, labels binary"  # what a task returns


class SparkInputError(ValueError):
    """Tables the Spark engine cannot read (it reads Parquet)."""


class SparkTaskError(ValueError):
    """A task's check or build failed with an error a user can act on (its message)."""


@dataclass(frozen=True)
class Layout:
    """How a table travels through the shuffled frame: its columns as read, the column of the
    frame that carries each (``account_id`` in ``ACCOUNT``; the others in slots shared by the
    tables, one per Spark type and position, so the frame is as wide as the widest table, not
    as all tables together) and the Arrow schema of its files (restored in the task)."""

    columns: tuple[str, ...]
    slots: tuple[str, ...]
    schema: pa.Schema

    def part(self, rows: pa.Table) -> pa.Table:
        """The table's own columns of ``rows`` (its rows of some accounts), as in its files."""
        arrays = [rows.column(slot) for slot in self.slots]
        part = pa.table(arrays, names=list(self.columns)).cast(self.schema)
        return part.append_column(ROW, rows.column(ROW).cast(pa.int64()))


@dataclass(frozen=True)
class SplitTables:
    """The tables in Spark, one frame partitioned by account (``partitions``)."""

    frame: DataFrame
    layouts: dict[str, Layout]
    rows: dict[str, int]
    partitions: int


def split_tables(spark: SparkSession, folder: Path | str, partitions: int) -> SplitTables:
    """Read the tables of ``folder`` into one Spark frame, partitioned by ``account_id`` (all
    rows of an account in one partition) and kept (memory, then disk) for the passes over it.
    The files are found and opened as :func:`propensity.data.contract.open_tables` does (same
    problems)."""
    from pyspark import StorageLevel

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"table folder {folder} does not exist or is not a folder")
    found, problems = find_table_files(folder)
    csv = [f"{files.name} ({files.paths[0]})" for files in found.values() if files.kind == "csv"]
    if csv:
        raise SparkInputError(
            f"the Spark engine reads Parquet tables; these are CSV: {', '.join(csv)}. "
            "write them as Parquet (DuckDB: COPY (FROM 'x.csv') TO 'x.parquet') or use --engine duckdb"
        )
    with connect(threads=1) as con:  # the files' footers: unreadable parts fail here, named
        for name, files in found.items():
            try:
                raw_table(con, files)
            except InputFileError as exc:
                problems.append(Problem(name, None, str(exc), 1))
    if problems:
        raise ContractError(problems)
    frames, layouts, rows = [], {}, {}
    for name, files in found.items():
        frame, layouts[name], rows[name] = _read(spark, name, files.paths)
        frames.append(frame)
    union = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    frame = union.repartition(partitions, ACCOUNT).persist(StorageLevel.MEMORY_AND_DISK)
    return SplitTables(frame, layouts, rows, partitions)


def _read(spark: SparkSession, name: str, paths: tuple[Path, ...]):
    """One table's files as a Spark frame (columns in their slots, rows numbered as in the
    files)."""
    import pyspark.sql.functions as F

    schema = pq.read_schema(paths[0])
    columns = tuple(c for c in schema.names if not c.startswith("__index_level_"))
    for path in paths[1:]:  # DuckDB unions differing types; here each part keeps its own
        other = pq.read_schema(path)
        differ = [c for c in columns if other.field(c).type != schema.field(c).type]
        if differ:
            c = differ[0]
            raise SparkInputError(
                f"the parts of table {name} have different types for {', '.join(differ)} "
                f"({c}: {schema.field(c).type} in {paths[0].name}, {other.field(c).type} in "
                f"{path.name}); write them with one type, or use --engine duckdb"
            )
    parts, offset = [], 0
    for path in paths:
        read = spark.read.parquet(str(path))
        types = {f.name: f.dataType for f in read.schema.fields}
        slots = _slots(columns, {c: t.simpleString() for c, t in types.items()})
        parts.append(
            read.select(
                *(
                    _account_key(F.col(_spark_name(c)), types[c]).alias(slot)
                    if slot == ACCOUNT
                    else F.col(_spark_name(c)).alias(slot)
                    for c, slot in zip(columns, slots, strict=True)
                ),
                (F.col("_metadata.row_index") + F.lit(offset)).alias(ROW),
                F.lit(name).alias(TABLE),
            )
        )
        offset += pq.read_metadata(path).num_rows
    frame = reduce(lambda a, b: a.unionByName(b), parts)
    if "account_id" not in columns:  # reported as a missing column by the task that gets it
        frame = frame.withColumn(ACCOUNT, F.lit(None).cast("string"))
    types = pa.schema([schema.field(c) for c in columns])
    return frame, Layout(columns, tuple(slots), types), offset


def _account_key(column, kind):
    """What the rows are partitioned by: ``account_id`` as the one parser cleans it (trimmed,
    empty as missing, a whole number without its ``.0``), so rows of one account meet in one
    task whatever the type or padding of the id in each table."""
    import pyspark.sql.functions as F
    from pyspark.sql.types import DecimalType, DoubleType, FloatType

    if isinstance(kind, (FloatType, DoubleType, DecimalType)):
        whole = column == F.floor(column)
        text = F.when(whole, column.cast("bigint").cast("string")).otherwise(column.cast("string"))
    else:
        text = F.trim(column.cast("string"))
    return F.when(text == "", F.lit(None)).otherwise(text)


def _slots(columns: tuple[str, ...], types: dict[str, str]) -> list[str]:
    """The frame's column for each of a table's columns: ``ACCOUNT`` for account_id, else the
    n-th slot of its Spark type."""
    seen: dict[str, int] = {}
    slots = []
    for column in columns:
        if column == "account_id":
            slots.append(ACCOUNT)
            continue
        kind = re.sub(r"\W+", "_", types[column])
        slots.append(f"__{kind}_{seen.get(kind, 0)}")
        seen[kind] = seen.get(kind, 0) + 1
    return slots


def _spark_name(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def _partition_tables(layouts: dict[str, Layout], rows: pa.Table) -> dict[str, pa.Table]:
    """Every table's rows of one partition (a table with none: no rows, same columns)."""
    tags = rows.column(TABLE)
    return {
        name: layout.part(rows.filter(pc.equal(tags, name))) for name, layout in layouts.items()
    }


@dataclass(frozen=True)
class Checked:
    """What the check pass found: the whole data's span, events per type, notes on dropped
    rows."""

    span: DataSpan
    event_types: dict[str, int]
    notes: tuple[str, ...]


def check_on_spark(split: SplitTables, unknown_accounts: UnknownAccounts = "error") -> Checked:
    """Check every partition's rows with the one set of checks; raise the merged
    ContractError."""
    layouts = split.layouts  # what the tasks need (the frame stays on the driver)

    def check(rows: pa.Table) -> pa.Table:
        with connect(threads=1) as con:
            raw = {
                n: arrow_raw_table(con, n, t) for n, t in _partition_tables(layouts, rows).items()
            }
            try:
                validated = check_tables(con, raw, unknown_accounts=unknown_accounts, empty_ok=True)
            except ContractError as exc:
                return _payload({"problems": exc.problems})
            tables = checked_tables(con, raw, validated)
            counts = event_type_counts(con) if tables.events is not None else {}
            return _payload(
                {"span": DataSpan.of(tables), "event_types": counts, "notes": validated.notes}
            )

    metas = [meta for meta, _, _ in _run(split, check)]
    # an empty table is reported as such, as the local check reports it (nothing else of it)
    empty = {name for name, count in split.rows.items() if not count}
    problems = [
        Problem(name, None, EMPTY_TABLE, 0, [], (TABLE_NAMES.index(name), 0, -1))
        for name in sorted(empty, key=TABLE_NAMES.index)
    ]
    found = [[p for p in m.get("problems", []) if p.table not in empty] for m in metas]
    problems = sorted(problems + merge_problems(found), key=lambda p: p.order)
    if problems:
        raise ContractError(problems)
    event_types: dict[str, int] = {}
    for meta in metas:
        for event_type, count in meta["event_types"].items():
            event_types[event_type] = event_types.get(event_type, 0) + count
    return Checked(
        DataSpan.merge(m["span"] for m in metas),
        event_types,
        tuple(merge_notes([list(m["notes"]) for m in metas])),
    )


@dataclass(frozen=True)
class SparkFeatures:
    """What Spark built: the feature matrix, the labels (for a spine), the whole data's span,
    the snapshot date (for one snapshot) and the tables' freshness at it
    (:func:`propensity.history.freshness`)."""

    feature_set: FeatureSet
    labels: pd.DataFrame | None
    span: DataSpan
    as_of: pd.Timestamp | None = None
    freshness: dict[str, int | None] | None = None


def build_on_spark(
    split: SplitTables,
    checked: Checked,
    spine_config: SpineConfig,
    features: FeatureConfig,
    as_of: pd.Timestamp | None = None,
    unknown_accounts: UnknownAccounts = "error",
) -> SparkFeatures:
    """The feature matrix (and, without ``as_of``, the labels) of every partition, in the
    spine's order: what :func:`propensity.runs.workflows.write_features` builds with DuckDB."""
    from propensity.history import freshness, merge_freshness

    if not features.event_types:  # the whole data's most frequent types, everywhere
        features = features.model_copy(
            update={"event_types": rank_event_types(checked.event_types, features)}
        )
    span, layouts = checked.span, split.layouts
    # a task's DuckDB: the config's limit, else its core's share of half of the machine (the
    # executor's other cores run tasks too)
    memory_limit = features.duckdb_memory_limit

    def build(rows: pa.Table) -> pa.Table:
        with connect(
            threads=1,
            memory_limit=memory_limit or machine_memory_share(0.5 / (os.cpu_count() or 1)),
            temp_directory=features.duckdb_temp_directory,
        ) as con:
            raw = {
                n: arrow_raw_table(con, n, t) for n, t in _partition_tables(layouts, rows).items()
            }
            validated = check_tables(con, raw, unknown_accounts=unknown_accounts, empty_ok=True)
            tables = checked_tables(con, raw, validated)
            spine = build_spine(tables, spine_config, as_of=as_of, span=span)
            feature_set = build_features(tables, spine, features)
            labels = None if as_of is not None else build_labels(tables, spine, spine_config, span)
            fresh = None if as_of is None else freshness(tables, as_of)
        meta = {
            "specs": feature_set.specs,
            "families": feature_set.families,
            "skipped": feature_set.skipped,
            "dtypes": (feature_set.matrix.dtypes, None if labels is None else labels.dtypes),
            "freshness": fresh,
        }
        return _payload(meta, feature_set.matrix, labels)

    results = _run(split, build)
    # the types as the largest part has them (a column missing in every row of a part
    # travels as nulls)
    meta = max(results, key=lambda r: r[1].num_rows)[0]
    matrix = _in_spine_order(_concat([r[1] for r in results]), meta["dtypes"][0])
    labels = None
    if as_of is None:
        labels = _in_spine_order(_concat([r[2] for r in results]), meta["dtypes"][1])
    feature_set = FeatureSet(matrix, meta["specs"], meta["families"], meta["skipped"])
    fresh = None if as_of is None else merge_freshness([r[0]["freshness"] for r in results])
    return SparkFeatures(feature_set, labels, span, as_of, fresh)


def _in_spine_order(table: pa.Table, dtypes: pd.Series) -> pd.DataFrame:
    """The rows of every partition in the spine's order (as_of, account_id), with the dtypes the
    local path gives them."""
    frame = table.to_pandas().astype(dtypes.to_dict())
    return frame.sort_values(["as_of", "account_id"]).reset_index(drop=True)


def feature_matrix_on_spark(
    spark: SparkSession,
    folder: Path | str,
    spine_config: SpineConfig,
    features: FeatureConfig,
    as_of: pd.Timestamp | None = None,
    *,
    snapshot: bool = False,
    partitions: int | None = None,
    unknown_accounts: UnknownAccounts = "error",
) -> SparkFeatures:
    """Read, check and build on Spark (``partitions`` of the accounts: default two per core of
    the session): the spine's rows and labels, or with ``as_of`` (or ``snapshot``: at the end of
    the data) the prospects at one date, as scoring builds them. An ``as_of`` the data cannot
    describe is refused as by the local path."""
    split = split_tables(spark, folder, partitions or 2 * spark.sparkContext.defaultParallelism)
    try:
        checked = check_on_spark(split, unknown_accounts)
        for note in checked.notes:
            warnings.warn(note, ContractWarning, stacklevel=2)
        if as_of is not None:
            as_of = check_as_of(checked.span, as_of, spine_config.horizon_days)
        elif snapshot:
            as_of = data_end(checked.span)
        return build_on_spark(split, checked, spine_config, features, as_of, unknown_accounts)
    finally:
        split.frame.unpersist()


# ---- the tasks' results: one row per partition, travelling as bytes


def _payload(meta: dict[str, Any], matrix=None, labels=None) -> pa.Table:
    return pa.table(
        {
            "meta": pa.array([pickle.dumps(meta)], pa.binary()),
            "matrix": pa.array([_ipc(matrix)], pa.binary()),
            "labels": pa.array([_ipc(labels)], pa.binary()),
        }
    )


def _ipc(frame: pd.DataFrame | None) -> bytes | None:
    if frame is None:
        return None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _run(split: SplitTables, task) -> list[tuple[dict[str, Any], pa.Table, pa.Table]]:
    """``task`` on the rows of every partition (an empty one: not run); on the driver, per
    partition: its meta, matrix and labels."""

    def each(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        batches = list(batches)
        if not batches:
            return
        try:
            result = task(pa.Table.from_batches(batches))
        except (ValueError, duckdb.Error, pa.ArrowException) as exc:
            # the error a user can act on travels to the driver (a task that raised would be
            # retried, then reported as a JVM traceback)
            result = _payload({"error": f"{type(exc).__name__}: {exc}"})
        yield from result.to_batches()

    results = split.frame.mapInArrow(each, PAYLOAD).toArrow()
    unpacked = [
        (pickle.loads(meta), _table(matrix), _table(labels))
        for meta, matrix, labels in zip(
            results.column("meta").to_pylist(),
            results.column("matrix").to_pylist(),
            results.column("labels").to_pylist(),
            strict=True,
        )
    ]
    failed = [meta["error"] for meta, _, _ in unpacked if "error" in meta]
    if failed:
        raise SparkTaskError(f"a Spark task failed: {failed[0]}")
    return unpacked


def _table(data: bytes | None) -> pa.Table | None:
    return None if data is None else pa.ipc.open_stream(data).read_all()


def _concat(tables: list[pa.Table]) -> pa.Table:
    return pa.concat_tables(tables, promote_options="permissive")
