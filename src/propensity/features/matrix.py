"""The feature matrix: every family's features for the rows of a spine, in one DuckDB query.

``build_features(tables, spine, config)`` returns one row per spine row (same order), with
``account_id`` and ``as_of`` first, then every feature of every family whose table is present.
A feature for ``as_of`` uses only data known strictly before ``as_of`` (each family's docstring
states its availability rule). Families whose table is absent are skipped with a logged note.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from propensity.data.specs import FAMILY_TABLES, Tables, TableView
from propensity.duck import connect, scalar
from propensity.features.families import FAMILY_MODULES
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureSet:
    """A feature matrix with the definitions of its columns."""

    matrix: pd.DataFrame
    specs: tuple[FeatureSpec, ...]
    families: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def model_columns(self) -> list[str]:
        """Columns a model may use (context columns are for reason wording only)."""
        return [s.name for s in self.specs if s.kind != "context"]

    @property
    def categorical_columns(self) -> list[str]:
        return [s.name for s in self.specs if s.kind == "categorical"]

    def family_columns(self, family: str) -> list[str]:
        return [s.name for s in self.specs if s.family == family and s.kind != "context"]

    def coverage(self) -> pd.DataFrame:
        """Per family: share of rows with any non-missing value, and with any non-empty value
        (a value other than the feature's ``empty_value``, e.g. a count above zero)."""
        rows = []
        for family in self.families:
            block = self.matrix[self.family_columns(family)]
            observed = block.notna()
            signal = observed.copy()
            for spec in self.specs:
                if spec.name in block and spec.empty_value is not None:
                    signal[spec.name] &= block[spec.name] != spec.empty_value
            rows.append(
                {
                    "family": family,
                    "features": block.shape[1],
                    "non_missing_share": float(observed.any(axis=1).mean()) if len(block) else 0.0,
                    "non_empty_share": float(signal.any(axis=1).mean()) if len(block) else 0.0,
                }
            )
        return pd.DataFrame(
            rows, columns=["family", "features", "non_missing_share", "non_empty_share"]
        )

    def definitions(self) -> pd.DataFrame:
        """The registry as a table: name, family, field, label, definition, availability, kind."""
        return pd.DataFrame([s.__dict__ for s in self.specs])


def build_features(
    tables: Tables, spine: pd.DataFrame, config: FeatureConfig | None = None
) -> FeatureSet:
    """Feature matrix for ``spine`` (account_id, as_of at midnight), rows in spine order."""
    config = config or FeatureConfig()
    _check_spine(spine)
    if tables.connection is not None:  # tables kept in DuckDB: build where they are
        con = tables.connection
        order = scalar(con, "SELECT current_setting('preserve_insertion_order')")
        try:
            return _build(con, tables, spine, config)
        finally:  # the connection is the caller's: leave it as it was
            con.execute(f"SET preserve_insertion_order = {bool(order)}")
    with duckdb_connection(config) as con:
        return _build(con, tables, spine, config)


@contextmanager
def duckdb_connection(config: FeatureConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection (:func:`propensity.duck.connect`) with the config's threads, memory
    limit and spill folder."""
    # getattr: a model pickled before these settings existed carries a config without them
    with connect(
        memory_limit=getattr(config, "duckdb_memory_limit", None),
        temp_directory=getattr(config, "duckdb_temp_directory", None),
        threads=config.duckdb_threads,
    ) as con:
        yield con


def _build(
    con: duckdb.DuckDBPyConnection, tables: Tables, spine: pd.DataFrame, config: FeatureConfig
) -> FeatureSet:
    con.execute("SET preserve_insertion_order = false")
    keyed = spine[["account_id", "as_of"]].reset_index(drop=True)
    con.register("spine_input", keyed.assign(_row=range(len(keyed))))
    # integer keys: every family groups and joins on (akey, as_of) or _row, not on strings
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE spine_accounts AS
        SELECT account_id, CAST(row_number() OVER (ORDER BY account_id) AS INTEGER) AS akey
        FROM (SELECT DISTINCT CAST(account_id AS VARCHAR) AS account_id FROM spine_input)
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE spine AS
        SELECT CAST(i.account_id AS VARCHAR) AS account_id, CAST(i.as_of AS TIMESTAMP) AS as_of,
               a.akey, CAST(i._row AS INTEGER) AS _row
        FROM spine_input i JOIN spine_accounts a ON a.account_id = CAST(i.account_id AS VARCHAR)
        """
    )
    duplicates = "SELECT akey, as_of FROM spine GROUP BY akey, as_of HAVING count(*) > 1"
    if scalar(con, f"SELECT count(*) FROM ({duplicates})"):
        raise ValueError("spine has duplicate (account_id, as_of) rows")
    con.execute("CREATE OR REPLACE TEMP TABLE snapshot_dates AS SELECT DISTINCT as_of FROM spine")
    for name in tables.present():
        if not isinstance(tables.get(name), TableView):
            con.register(name, tables.get(name))

    specs: list[FeatureSpec] = []
    computing: list[dict[str, np.ndarray] | Future[dict[str, np.ndarray]]] = []
    built: list[str] = []
    skipped: dict[str, str] = {}
    for family in config.families:
        module = FAMILY_MODULES[family]
        table = FAMILY_TABLES[family]
        if tables.get(table) is None:
            skipped[family] = f"table {table} absent"
            log.info("feature family %s skipped: %s", family, skipped[family])
            continue
        family_build = module.build(con, tables, config)
        specs += family_build.specs
        computing.append(family_build.computed)
        built.append(family)
    # each family's view is fetched on its own, sorted by _row: cheaper than one query joining
    # the views on _row and sorting the wide result; a family is converted to pandas (one core,
    # memory-bound) while DuckDB computes the next
    queries = ["SELECT _row, account_id, as_of FROM spine ORDER BY _row"]
    for family in built:
        # a family's view has the features it did not compute outside SQL
        view = set(con.sql(f"SELECT * FROM features_{family} LIMIT 0").columns)
        in_view = [s.name for s in specs if s.family == family and s.name in view]
        if in_view:
            names = ", ".join(quote_identifier(name) for name in in_view)
            queries.append(f"SELECT _row, {names} FROM features_{family} ORDER BY _row")
    with ThreadPoolExecutor(max_workers=1) as pool:
        converted = [pool.submit(_to_pandas, con.sql(q).to_arrow_table()) for q in queries]
        parts = [part.result() for part in converted]
    computed: dict[str, np.ndarray] = {}
    for columns in computing:  # a future: computed while the views were read
        computed.update(columns.result() if isinstance(columns, Future) else columns)
    if computed:
        parts.append(pd.DataFrame(computed, copy=False))
        computed.clear()
    # in spec order (a family's computed columns sit among its others); no copy of the columns
    matrix = pd.concat(parts, axis=1)[["account_id", "as_of", *(s.name for s in specs)]]
    parts.clear()
    matrix["as_of"] = matrix["as_of"].astype("datetime64[us]")
    # counts as floats: a model's input signature then accepts a missing value in any feature,
    # and training and scoring see the same dtypes
    counts = [c for c in matrix.columns if pd.api.types.is_integer_dtype(matrix[c])]
    matrix[counts] = matrix[counts].astype("float64")
    return FeatureSet(matrix=matrix, specs=tuple(specs), families=tuple(built), skipped=skipped)


def _to_pandas(part: pa.Table) -> pd.DataFrame:
    """A family's columns (``part`` sorted by ``_row``) as a frame indexed 0..n-1."""
    rows = part.column("_row").to_numpy()
    if not np.array_equal(rows, np.arange(len(rows))):
        raise RuntimeError(f"a feature family returned rows {rows[:5]} ...")
    # one block per column: no copy into consolidated blocks
    return part.drop_columns("_row").to_pandas(split_blocks=True, self_destruct=True)


def _check_spine(spine: pd.DataFrame) -> None:
    missing = [c for c in ("account_id", "as_of") if c not in spine]
    if missing:
        raise ValueError(f"spine is missing column(s) {missing}; it needs account_id and as_of")
    as_of = pd.to_datetime(spine["as_of"])
    not_midnight = as_of != as_of.dt.normalize()
    if not_midnight.any():
        examples = spine.loc[not_midnight, ["account_id", "as_of"]].head(3).to_dict("records")
        raise ValueError(
            f"spine column 'as_of' must hold dates (midnight): {int(not_midnight.sum())} rows have a time "
            f"of day, e.g. {examples}"
        )
