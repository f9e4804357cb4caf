"""The one text -> type parser: ids, text, ISO 8601 timestamps, numbers, booleans, label values.

The rule for each type is written once, in DuckDB SQL (:func:`column_rule`): the contract's
validator applies it to files and frames alike inside DuckDB, and every ``parse_*`` function
runs it on a pandas Series (text as read from a CSV, or values that are already typed),
returning a :class:`Parsed`: the parsed values (same index and length) and a mask of the rows
whose value was present but could not be parsed, so that callers can name example rows. Missing
values stay missing and are never failures; empty or blank text (and a float NaN) is missing.

* text: whitespace stripped, pandas' string dtype ``str``.
* ids: text; whole-number floats (a numeric id column with gaps) are written ``"1"``, not ``"1.0"``.
* timestamps: ISO 8601 text (date-only allowed) or datetimes, as naive ``datetime64[us]`` in
  UTC: tz-aware values are converted to UTC and the zone dropped, naive values are taken as UTC.
  Numbers are failures (an epoch's unit is unknown).
* numbers: ``float64``; non-finite values (``inf``) are failures.
* whole numbers: nullable ``Int64``; fractions are failures.
* booleans: nullable ``boolean``; text true/false, t/f, yes/no, y/n, 1/0 (any case), or 0/1.
* label values: text to match configured values: ``"1"`` for 1, 1.0 and "1"; True is ``"true"``.
* :func:`infer_kind` (table mode): numeric, categorical or date, by dtype or by what 98 % of
  the present text parses as.
"""

from __future__ import annotations

import threading
from typing import Any, Literal, NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from propensity.duck import scalar

__all__ = [
    "KIND_SHARE",
    "Kind",
    "Parsed",
    "infer_kind",
    "label_text",
    "parse_booleans",
    "parse_ids",
    "parse_labels",
    "parse_numbers",
    "parse_text",
    "parse_timestamps",
    "parse_whole_numbers",
]

Kind = Literal["numeric", "categorical", "date"]
# share of a text column's present values that must parse for it to count as numbers / dates
KIND_SHARE = 0.98
# beyond 2**53 a float no longer holds every whole number: such values are not written as ints
_EXACT = 2**53

TIMESTAMP_PROBLEM = (
    "not parseable timestamps (ISO 8601 text, e.g. 2024-01-31 or 2024-01-31T09:30:00Z)"
)
NUMBER_PROBLEM = "not parseable numbers"
WHOLE_NUMBER_PROBLEM = "not whole numbers"
BOOLEAN_PROBLEM = "not booleans (true/false, yes/no, 1/0)"

_TRUE_TEXT = ("true", "t", "yes", "y", "1", "1.0")
_FALSE_TEXT = ("false", "f", "no", "n", "0", "0.0")


class Parsed(NamedTuple):
    """Parsed values, the rows that failed (a boolean mask), and what the failed values are not.

    ``problem`` completes "N values are ..." in an error message; it is empty for the parsers
    that cannot fail (text, ids, labels).
    """

    values: pd.Series
    failed: np.ndarray
    problem: str = ""


class Rule(NamedTuple):
    """How one column is parsed, in DuckDB SQL: the parsed value, whether a present value failed
    to parse (both expressions over the raw column), and what the failed values are not."""

    value: str
    failed: str
    problem: str = ""


# what stripping removes: every character Python's str.strip removes (Unicode whitespace)
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_DATETIME_TYPES = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
_ZONED_TYPES = {"TIMESTAMP WITH TIME ZONE"}
# canonical dtype -> pandas dtype of the parsed values
PANDAS_DTYPES = {
    "id": "str",
    "string": "str",
    "category": "str",
    "timestamp": "datetime64[us]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
}


def is_float_type(sql_type: str) -> bool:
    return sql_type in ("FLOAT", "DOUBLE") or sql_type.startswith("DECIMAL")


def _is_numeric_type(sql_type: str) -> bool:
    return sql_type in _INTEGER_TYPES or is_float_type(sql_type)


def _present(column: str, sql_type: str) -> str:
    """SQL: the raw value is present (NaN and blank text count as missing, as in pandas)."""
    if is_float_type(sql_type):
        return f"({column} IS NOT NULL AND NOT isnan({column}))"
    if _is_numeric_type(sql_type) or sql_type == "BOOLEAN":
        return f"({column} IS NOT NULL)"
    return f"({_text(column, sql_type)} IS NOT NULL)"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _text(column: str, sql_type: str) -> str:
    if sql_type == '"NULL"':
        return "CAST(NULL AS VARCHAR)"
    if is_float_type(sql_type):
        column = f"CASE WHEN NOT isnan({column}) THEN {column} END"
    value = column if sql_type == "VARCHAR" else f"CAST({column} AS VARCHAR)"
    return f"nullif(trim({value}, {_sql_literal(_WHITESPACE)}), '')"


def _number(column: str, sql_type: str) -> tuple[str, str]:
    """(value, failed): numbers as DOUBLE, non-finite values fail."""
    if _is_numeric_type(sql_type) or sql_type == "BOOLEAN":
        number = f"CAST({column} AS DOUBLE)"
        present = _present(column, sql_type)
    else:
        text = _text(column, sql_type)
        number = f"TRY_CAST({text} AS DOUBLE)"
        present = f"({text} IS NOT NULL)"
    value = f"CASE WHEN isfinite({number}) THEN {number} END"
    return value, f"({present} AND {value} IS NULL)"


def column_rule(
    column: str,
    sql_type: str,
    dtype: str,
    allowed: tuple[str, ...] | None = None,
    whole_number_ids: bool = False,
) -> Rule:
    """The parse of one column of DuckDB type ``sql_type`` to the canonical ``dtype``.

    ``column`` is the (quoted) column in SQL. ``whole_number_ids``: a float id column whose
    present values are all whole numbers (:func:`whole_number_query` says), written ``"1"``.
    Values of a closed set (``allowed``) are lower-cased with spaces and hyphens as ``_``.
    The session's time zone must be UTC (:func:`propensity.duck.connect`), so that naive
    timestamp text is taken as UTC.
    """
    never = "false"
    if dtype in ("string", "category"):
        text = _text(column, sql_type)
        if allowed is not None:
            text = f"regexp_replace(lower({text}), '[\\s\\-]+', '_', 'g')"
        return Rule(text, never)
    if dtype == "id":
        if sql_type in _INTEGER_TYPES:
            return Rule(f"CAST({column} AS VARCHAR)", never)
        if whole_number_ids and is_float_type(sql_type):
            whole = f"CAST(CAST({column} AS BIGINT) AS VARCHAR)"
            return Rule(f"CASE WHEN {_present(column, sql_type)} THEN {whole} END", never)
        return Rule(_text(column, sql_type), never)
    if dtype == "timestamp":
        if sql_type in _DATETIME_TYPES:
            return Rule(f"CAST({column} AS TIMESTAMP)", never, TIMESTAMP_PROBLEM)
        if sql_type in _ZONED_TYPES:
            return Rule(f"timezone('UTC', {column})", never, TIMESTAMP_PROBLEM)
        if _is_numeric_type(sql_type) or sql_type == "BOOLEAN":
            return Rule("CAST(NULL AS TIMESTAMP)", _present(column, sql_type), TIMESTAMP_PROBLEM)
        text = _text(column, sql_type)
        value = f"timezone('UTC', TRY_CAST({_iso_text(text)} AS TIMESTAMPTZ))"
        value = f"CASE WHEN isfinite({value}) THEN {value} END"
        return Rule(value, f"({text} IS NOT NULL AND {value} IS NULL)", TIMESTAMP_PROBLEM)
    if dtype == "float":
        return Rule(*_number(column, sql_type), NUMBER_PROBLEM)
    if dtype == "int":
        if sql_type in _INTEGER_TYPES:
            return Rule(f"CAST({column} AS BIGINT)", never, WHOLE_NUMBER_PROBLEM)
        number, failed = _number(column, sql_type)
        whole = f"({number} = round({number}) AND abs({number}) < {_EXACT})"
        value = f"CASE WHEN {whole} THEN CAST({number} AS BIGINT) END"
        return Rule(
            value, f"({failed} OR ({number} IS NOT NULL AND NOT {whole}))", WHOLE_NUMBER_PROBLEM
        )
    if dtype == "bool":
        if sql_type == "BOOLEAN":
            return Rule(column, never, BOOLEAN_PROBLEM)
        if _is_numeric_type(sql_type):
            number = f"CAST({column} AS DOUBLE)"
            value = f"CASE WHEN {number} IN (0, 1) THEN {number} = 1 END"
        else:
            word = f"lower({_text(column, sql_type)})"
            true = ", ".join(map(_sql_literal, _TRUE_TEXT))
            false = ", ".join(map(_sql_literal, _FALSE_TEXT))
            value = (
                f"CASE WHEN {word} IN ({true}) THEN true WHEN {word} IN ({false}) THEN false END"
            )
        return Rule(value, f"({_present(column, sql_type)} AND {value} IS NULL)", BOOLEAN_PROBLEM)
    raise ValueError(f"unknown dtype {dtype!r}; dtypes are: {', '.join(PANDAS_DTYPES)}")


# ISO 8601 as DuckDB reads it directly, and the other ISO forms, rewritten into that one
_ISO_DIRECT = (
    r"\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?"
)
_ISO_OTHER = (
    r"\d{4}(-\d{1,2}(-\d{1,2})?|\d{4})?"  # 2024, 2024-01, 2024-01-31, 20240131
    r"([T ]\d{1,2}(:\d{2}(:\d{2}([.,]\d+)?)?)?)?"  # T10, T10:30, T10:30:00, T10:30:00.5
    r"\s*([Zz]|[+-]\d{2}(:?\d{2})?)?"  # Z, +02, +0200, +02:00 (a space before allowed)
)
_ISO_REWRITES = (
    (r"^(\d{4})(\d{2})(\d{2})", r"\1-\2-\3"),  # basic date
    (r"^(\d{4})$", r"\1-01-01"),
    (r"^(\d{4})-(\d{1,2})$", r"\1-\2-01"),
    (r"([T ]\d{1,2})([Zz+-]|\s|$)", r"\1:00\2"),  # an hour without minutes
    (r",(\d)", r".\1"),  # a decimal comma in the seconds
    (r"(\d)\s+([Zz+-])", r"\1\2"),  # a space before the zone
)


def _iso_text(text: str) -> str:
    """SQL: ``text`` if it is ISO 8601 (anything else becomes NULL: DuckDB would also read
    'epoch', 'infinity' or zone names), in the form DuckDB's timestamp cast reads."""
    rewritten = text
    for pattern, replacement in _ISO_REWRITES:
        rewritten = (
            f"regexp_replace({rewritten}, {_sql_literal(pattern)}, {_sql_literal(replacement)})"
        )
    return (
        f"CASE WHEN regexp_full_match({text}, {_sql_literal(_ISO_DIRECT)}) THEN {text} "
        f"WHEN regexp_full_match({text}, {_sql_literal(_ISO_OTHER)}) THEN {rewritten} END"
    )


def whole_number_query(column: str, source: str) -> str:
    """SQL answering whether every present value of a float ``column`` is a whole number (then
    ids are written without ``.0``)."""
    return (
        f"SELECT coalesce(bool_and({column} = round({column}) AND abs({column}) < {_EXACT}), true) "
        f"FROM {source} WHERE {column} IS NOT NULL AND NOT isnan({column})"
    )


def to_pandas_columns(table: pa.Table, dtypes: dict[str, str]) -> pd.DataFrame:
    """An Arrow result of parsed columns as pandas with the canonical dtypes (``dtypes``: column
    -> canonical dtype, see :data:`PANDAS_DTYPES`)."""
    frame = table.to_pandas(
        types_mapper={pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}.get,
        split_blocks=True,
    )
    for name, dtype in dtypes.items():
        if name in frame:
            frame[name] = frame[name].astype(PANDAS_DTYPES[dtype])
    return frame


def registrable(values: pd.Series) -> pd.Series:
    """Values DuckDB can scan: mixed Python objects as the text pandas writes for them."""
    if values.dtype == object:
        return values.astype("str")
    return values


_SESSION = threading.local()


def _session() -> duckdb.DuckDBPyConnection:
    """This thread's small DuckDB connection for parsing Series (opened once: a connection costs
    tens of milliseconds, and table mode parses every column several times)."""
    if getattr(_SESSION, "con", None) is None:
        con = duckdb.connect(config={"threads": 1})
        con.execute("SET TimeZone = 'UTC'")
        _SESSION.con = con
    return _SESSION.con


def _parse(values: pd.Series, dtype: str, allowed: tuple[str, ...] | None = None) -> Parsed:
    """One Series through :func:`column_rule` in DuckDB (the one rule for files and frames)."""
    frame = pd.DataFrame({"raw": registrable(values).reset_index(drop=True)})
    con = _session()
    con.register("input", frame)
    try:
        sql_type = str(con.sql("SELECT raw FROM input").types[0])
        whole = (
            dtype == "id"
            and is_float_type(sql_type)
            and scalar(con, whole_number_query("raw", "input"))
        )
        rule = column_rule("raw", sql_type, dtype, allowed, whole)
        result = con.sql(
            f"SELECT {rule.value} AS value, coalesce({rule.failed}, false) AS failed FROM input"
        ).to_arrow_table()
    finally:
        con.unregister("input")
    parsed = to_pandas_columns(result.select(["value"]), {"value": dtype})["value"]
    failed = result.column("failed").to_numpy(zero_copy_only=False).astype(bool)
    return Parsed(parsed.set_axis(values.index), failed, rule.problem)


def parse_text(values: pd.Series) -> Parsed:
    """Text with whitespace stripped; empty text is missing."""
    return _parse(values, "string")


def parse_ids(values: pd.Series) -> Parsed:
    """Ids as text; a float column of whole numbers is written without ``.0``."""
    return _parse(values, "id")


def parse_timestamps(values: pd.Series) -> Parsed:
    """ISO 8601 text or datetimes as naive UTC ``datetime64[us]``; numbers fail (unknown unit)."""
    return _parse(values, "timestamp")


def parse_numbers(values: pd.Series) -> Parsed:
    """Numbers (text or numeric, booleans as 0/1) as float64; non-finite values fail."""
    return _parse(values, "float")


def parse_whole_numbers(values: pd.Series) -> Parsed:
    """Whole numbers as nullable Int64; unparseable numbers and fractions fail."""
    return _parse(values, "int")


def parse_booleans(values: pd.Series) -> Parsed:
    """Booleans as nullable ``boolean``: true/false, t/f, yes/no, y/n, 1/0 text, or 0/1."""
    return _parse(values, "bool")


def parse_category(values: pd.Series, allowed: tuple[str, ...] | None) -> Parsed:
    """Category text; values of a closed set spelled lower_case ("Decision Maker")."""
    return _parse(values, "category", allowed)


def label_text(value: Any) -> str | None:
    """One label value as text: "1" for 1 and 1.0, "true" for True, text stripped; None if missing."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if value is None or (np.ndim(value) == 0 and not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        whole = float(value).is_integer() and abs(value) < _EXACT
        return str(int(value)) if whole else str(float(value))
    text = str(value).strip()
    return text or None


def parse_labels(values: pd.Series) -> Parsed:
    """Label values as text, by :func:`label_text`, so that 1, 1.0 and "1" all read "1"."""
    none = np.zeros(len(values), dtype=bool)
    if pd.api.types.is_bool_dtype(values.dtype):
        return Parsed(values.map({True: "true", False: "false"}).astype("str"), none)
    if pd.api.types.is_integer_dtype(values.dtype):
        return Parsed(values.astype("str"), none)
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        whole = (numbers == np.round(numbers)) & (np.abs(numbers) < _EXACT)
        text = pd.Series(numbers, index=values.index).astype("str")
        text[whole] = pd.Series(numbers[whole].astype("int64")).astype("str").to_numpy()
        return Parsed(text, none)
    if values.dtype == object:  # mixed Python values, e.g. True/False with gaps
        return Parsed(values.map(label_text).astype("str"), none)
    return parse_text(values)


def infer_kind(values: pd.Series) -> Kind:
    """How a column enters a model: ``numeric``, ``categorical`` or ``date``.

    Datetimes are dates, numbers and booleans numeric; text is numeric when at least
    :data:`KIND_SHARE` of its present values are numbers, else a date when that share parses
    as ISO 8601 timestamps (numbers come first: a column of years stays numeric), else
    categorical.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "date"
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    text = parse_text(values).values.dropna()
    if len(text) == 0:
        return "categorical"
    if 1 - parse_numbers(text).failed.mean() >= KIND_SHARE:
        return "numeric"
    if 1 - parse_timestamps(text).failed.mean() >= KIND_SHARE:
        return "date"
    return "categorical"
