"""The one text -> type parser: ids, text, ISO 8601 timestamps, numbers, booleans, label values.

Every ``parse_*`` function takes a pandas Series (text as read from a CSV, or values that are
already typed) and returns a :class:`Parsed`: the parsed values (same index and length) and a
mask of the rows whose value was present but could not be parsed, so that callers can name
example rows. Missing values stay missing and are never failures; empty or blank text is missing.

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

from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

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

_BOOLEAN_TEXT = {
    **dict.fromkeys(("true", "t", "yes", "y", "1", "1.0"), True),
    **dict.fromkeys(("false", "f", "no", "n", "0", "0.0"), False),
}


class Parsed(NamedTuple):
    """Parsed values, the rows that failed (a boolean mask), and what the failed values are not.

    ``problem`` completes "N values are ..." in an error message; it is empty for the parsers
    that cannot fail (text, ids, labels).
    """

    values: pd.Series
    failed: np.ndarray
    problem: str = ""


def _none_failed(values: pd.Series) -> np.ndarray:
    return np.zeros(len(values), dtype=bool)


def parse_text(values: pd.Series) -> Parsed:
    """Text with whitespace stripped; empty text is missing."""
    text = values.astype("str").str.strip()
    return Parsed(text.mask(text == ""), _none_failed(values))


def parse_ids(values: pd.Series) -> Parsed:
    """Ids as text; a float column of whole numbers is written without ``.0``."""
    if pd.api.types.is_float_dtype(values.dtype):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        present = numbers[~np.isnan(numbers)]
        if np.all(present == np.round(present)) and np.all(np.abs(present) < _EXACT):
            values = values.astype("Int64")
    return parse_text(values)


def parse_timestamps(values: pd.Series) -> Parsed:
    """ISO 8601 text or datetimes as naive UTC ``datetime64[us]``; numbers fail (unknown unit)."""
    none = _none_failed(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        naive = values.dt.tz_convert("UTC").dt.tz_localize(None)
        return Parsed(naive.astype("datetime64[us]"), none, TIMESTAMP_PROBLEM)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return Parsed(values.astype("datetime64[us]"), none, TIMESTAMP_PROBLEM)
    if pd.api.types.is_numeric_dtype(values.dtype):
        missing = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
        return Parsed(missing, values.notna().to_numpy(), TIMESTAMP_PROBLEM)
    text = parse_text(values).values
    # the one ISO 8601 rule: mixed offsets are fine with utc=True, naive text is taken as UTC
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    failed = (text.notna() & parsed.isna()).to_numpy()
    return Parsed(parsed.dt.tz_localize(None).astype("datetime64[us]"), failed, TIMESTAMP_PROBLEM)


def parse_numbers(values: pd.Series) -> Parsed:
    """Numbers (text or numeric, booleans as 0/1) as float64; non-finite values fail."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        present = values.notna().to_numpy()
        numbers = pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=values.index)
    else:
        text = parse_text(values).values
        present = text.notna().to_numpy()
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    finite = np.isfinite(numbers.to_numpy())
    return Parsed(numbers.where(finite), present & ~finite, NUMBER_PROBLEM)


def parse_whole_numbers(values: pd.Series) -> Parsed:
    """Whole numbers as nullable Int64; unparseable numbers and fractions fail."""
    numbers, failed, _ = parse_numbers(values)
    array = numbers.to_numpy()
    whole = np.isnan(array) | ((array == np.round(array)) & (np.abs(array) < _EXACT))
    return Parsed(numbers.where(whole).astype("Int64"), failed | ~whole, WHOLE_NUMBER_PROBLEM)


def parse_booleans(values: pd.Series) -> Parsed:
    """Booleans as nullable ``boolean``: true/false, t/f, yes/no, y/n, 1/0 text, or 0/1."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return Parsed(values.astype("boolean"), _none_failed(values), BOOLEAN_PROBLEM)
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = parse_numbers(values).values
        ok = numbers.isna() | numbers.isin([0.0, 1.0])
        return Parsed(numbers.where(ok).astype("boolean"), (~ok).to_numpy(), BOOLEAN_PROBLEM)
    text = parse_text(values).values.str.lower()
    flags = text.map(_BOOLEAN_TEXT).astype("boolean")
    return Parsed(flags, (text.notna() & flags.isna()).to_numpy(), BOOLEAN_PROBLEM)


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
    none = _none_failed(values)
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
