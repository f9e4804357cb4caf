"""The one text -> type parser: each type, failures named by row, the edge cases, time zones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from propensity.data.parse import (
    infer_kind,
    label_text,
    parse_booleans,
    parse_ids,
    parse_labels,
    parse_numbers,
    parse_text,
    parse_timestamps,
    parse_whole_numbers,
)


def failed_rows(parsed) -> list[int]:
    return np.flatnonzero(parsed.failed).tolist()


# --------------------------------------------------------------------------------------------
# text and ids


def test_text_is_stripped_and_empty_text_is_missing():
    parsed = parse_text(pd.Series([" Acme ", "", "   ", None, "Globex"]))
    assert parsed.values.dtype == "str"
    assert parsed.values.tolist()[:1] == ["Acme"] and parsed.values[4] == "Globex"
    assert parsed.values.isna().tolist() == [False, True, True, True, False]
    assert not parsed.failed.any()


def test_whole_number_float_ids_are_written_without_the_decimal():
    parsed = parse_ids(pd.Series([1.0, 20.0, np.nan]))
    assert parsed.values.tolist()[:2] == ["1", "20"] and pd.isna(parsed.values[2])
    # a fraction keeps the column as written; text ids are only stripped
    assert parse_ids(pd.Series([1.0, 2.5])).values.tolist() == ["1.0", "2.5"]
    assert parse_ids(pd.Series([" A1 ", "007"])).values.tolist() == ["A1", "007"]
    assert parse_ids(pd.Series([3, 4])).values.tolist() == ["3", "4"]


# --------------------------------------------------------------------------------------------
# timestamps


def test_iso_timestamps_with_or_without_time_become_naive_datetimes():
    parsed = parse_timestamps(pd.Series(["2024-01-31", "2024-01-31T09:30:00", "2024-01-31 09:30"]))
    assert parsed.values.dtype == "datetime64[us]"
    assert parsed.values.tolist() == [
        pd.Timestamp("2024-01-31"),
        pd.Timestamp("2024-01-31 09:30"),
        pd.Timestamp("2024-01-31 09:30"),
    ]
    assert not parsed.failed.any()


def test_offsets_in_text_are_converted_to_utc_and_naive_text_is_taken_as_utc():
    text = [
        "2024-03-01T12:00:00+02:00",
        "2024-03-01T12:00:00Z",
        "2024-03-01T12:00:00-05:00",
        "2024-03-01T12:00",
    ]
    assert parse_timestamps(pd.Series(text)).values.tolist() == [
        pd.Timestamp(t)
        for t in ("2024-03-01 10:00", "2024-03-01 12:00", "2024-03-01 17:00", "2024-03-01 12:00")
    ]


def test_tz_aware_datetimes_are_converted_to_utc_and_the_zone_dropped():
    berlin = pd.Series(pd.to_datetime(["2024-03-01 12:00", "2024-07-01 12:00"])).dt.tz_localize(
        "Europe/Berlin"
    )
    parsed = parse_timestamps(berlin)
    assert parsed.values.dtype == "datetime64[us]"
    assert parsed.values.tolist() == [
        pd.Timestamp("2024-03-01 11:00"),
        pd.Timestamp("2024-07-01 10:00"),
    ]
    naive = pd.Series(pd.to_datetime(["2024-03-01 12:00"]))
    assert parse_timestamps(naive).values.tolist() == [pd.Timestamp("2024-03-01 12:00")]


def test_text_that_is_not_iso_8601_fails_and_names_its_rows():
    parsed = parse_timestamps(pd.Series(["2024-01-31", "yesterday", None, "31/12/2023", ""]))
    assert failed_rows(parsed) == [1, 3]
    assert parsed.values.isna().tolist() == [False, True, True, True, True]
    assert "ISO 8601" in parsed.problem


def test_numbers_are_not_timestamps_because_their_unit_is_unknown():
    parsed = parse_timestamps(pd.Series([1_700_000_000, None]))
    assert failed_rows(parsed) == [0]
    assert parsed.values.isna().all()


# --------------------------------------------------------------------------------------------
# numbers and whole numbers


def test_numbers_from_text_and_from_numbers():
    parsed = parse_numbers(pd.Series(["1.5e3", " 2 ", "", None, "-0.5"]))
    assert parsed.values.dtype == "float64"
    assert parsed.values.tolist()[:2] == [1500.0, 2.0] and parsed.values[4] == -0.5
    assert parsed.values.isna().tolist() == [False, False, True, True, False]
    assert not parsed.failed.any()
    assert parse_numbers(pd.Series([1, None], dtype="Int64")).values.tolist()[0] == 1.0
    assert parse_numbers(pd.Series([True, False])).values.tolist() == [1.0, 0.0]


def test_text_and_infinity_are_not_numbers():
    parsed = parse_numbers(pd.Series(["1,000", "5", "inf", "abc"]))
    assert failed_rows(parsed) == [0, 2, 3]
    assert parsed.values.isna().tolist() == [True, False, True, True]
    assert failed_rows(parse_numbers(pd.Series([1.0, np.inf]))) == [1]


def test_whole_numbers_refuse_fractions():
    parsed = parse_whole_numbers(pd.Series(["12", "12.0", "12.5", None, "x"]))
    assert parsed.values.dtype == "Int64"
    assert parsed.values.tolist()[:2] == [12, 12]
    assert failed_rows(parsed) == [2, 4]
    assert parsed.problem == "not whole numbers"


# --------------------------------------------------------------------------------------------
# booleans


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("T", True),
        ("Yes", True),
        ("y", True),
        ("1", True),
        ("false", False),
        ("f", False),
        ("NO", False),
        ("n", False),
        ("0", False),
    ],
)
def test_boolean_words(text, value):
    parsed = parse_booleans(pd.Series([text]))
    assert parsed.values.tolist() == [value] and not parsed.failed.any()


def test_booleans_keep_gaps_and_name_what_is_not_a_boolean():
    parsed = parse_booleans(pd.Series(["yes", None, "maybe", ""]))
    assert parsed.values.dtype == "boolean"
    assert parsed.values.isna().tolist() == [False, True, True, True]
    assert failed_rows(parsed) == [2]
    numbers = parse_booleans(pd.Series([1.0, 0.0, np.nan, 2.0]))
    assert numbers.values.tolist()[:2] == [True, False]
    assert failed_rows(numbers) == [3]


# --------------------------------------------------------------------------------------------
# label values


def test_one_as_number_float_or_text_is_the_label_value_one():
    for values in ([1, 0], [1.0, 0.0], ["1", "0"]):
        assert parse_labels(pd.Series(values)).values.tolist() == ["1", "0"]
    assert [label_text(v) for v in (1, 1.0, "1", np.int64(1), np.float64(1.0))] == ["1"] * 5


def test_booleans_as_labels_read_true_and_false_with_or_without_gaps():
    assert parse_labels(pd.Series([True, False])).values.tolist() == ["true", "false"]
    with_gap = parse_labels(pd.Series([True, None, False], dtype=object)).values
    assert with_gap[0] == "true" and with_gap[2] == "false" and pd.isna(with_gap[1])
    assert label_text(True) == "true"


def test_text_labels_are_stripped_fractions_kept_and_empty_labels_missing():
    parsed = parse_labels(pd.Series([" Won ", "Lost", "", None])).values
    assert parsed.tolist()[:2] == ["Won", "Lost"] and parsed[2:].isna().all()
    assert parse_labels(pd.Series([0.5, 1.0])).values.tolist() == ["0.5", "1"]
    assert label_text(" ") is None and label_text(None) is None and label_text(2.5) == "2.5"


# --------------------------------------------------------------------------------------------
# kinds (table mode)


def test_kind_follows_the_dtype():
    assert infer_kind(pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01"]))) == "date"
    assert infer_kind(pd.Series([1.5, 2.0])) == "numeric"
    assert infer_kind(pd.Series([True, False])) == "numeric"


def test_text_kind_is_what_98_percent_of_present_values_parse_as():
    numbers = pd.Series([str(i) for i in range(98)] + ["n/a", "?", None, ""])
    assert infer_kind(numbers) == "numeric"  # 98 of 100 present values
    assert infer_kind(pd.Series([str(i) for i in range(97)] + ["n/a"] * 3)) == "categorical"
    dates = pd.Series(["2024-01-31"] * 99 + ["soon"])
    assert infer_kind(dates) == "date"
    assert infer_kind(pd.Series(["ads", "organic", "2024-01-31"])) == "categorical"


def test_years_as_text_are_numbers_not_dates():
    assert infer_kind(pd.Series(["1999", "2005", "2010"])) == "numeric"


def test_an_empty_text_column_is_categorical():
    assert infer_kind(pd.Series(["", None, "  "], dtype=object)) == "categorical"
