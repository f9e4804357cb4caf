"""Tests of the canonical-table contract: coercion, every check, files, summary."""

from __future__ import annotations

import pickle
import warnings

import pandas as pd
import pytest

from propensity.data.contract import (
    SPECS,
    STATIC_ACCOUNT_COLUMNS,
    TABLE_NAMES,
    ContractError,
    ContractWarning,
    Tables,
    load_tables,
    read_tables,
    summarize,
    validate_tables,
    write_tables,
)


def _with(raw: dict[str, pd.DataFrame], table: str, **columns) -> dict[str, pd.DataFrame]:
    """A copy of ``raw`` with some columns of one table replaced."""
    return {**raw, table: raw[table].assign(**columns)}


def _write_csv(raw: dict[str, pd.DataFrame], folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in raw.items():
        frame.to_csv(folder / f"{name}.csv", index=False)


def _assert_canonical(tables: Tables) -> None:
    acc = tables.accounts
    assert acc["account_id"].dtype == "str"
    assert acc["name"].dtype == "str"
    assert acc["employees"].dtype == "Int64"
    assert acc["founded_year"].dtype == "Int64"
    assert acc["annual_revenue"].dtype == "float64"
    assert acc["industry"].dtype == "str"
    assert acc["tech_crm"].dtype == "boolean"
    assert tables.contacts["created_at"].dtype == "datetime64[us]"
    assert tables.events["ts"].dtype == "datetime64[us]"
    assert tables.events["contact_id"].dtype == "str"
    assert tables.events["minutes"].dtype == "float64"
    assert tables.intent["week"].dtype == "datetime64[us]"
    assert tables.intent["score"].dtype == "float64"
    opp = tables.opportunities
    assert opp["created_at"].dtype == "datetime64[us]"
    assert opp["closed_at"].dtype == "datetime64[us]"
    assert opp["amount"].dtype == "float64"
    assert opp["outcome"].dtype == "str"


# ---------------------------------------------------------------------------- valid input


def test_specs_cover_the_five_tables():
    assert tuple(SPECS) == TABLE_NAMES
    assert [n for n, s in SPECS.items() if s.required] == ["accounts"]
    assert SPECS["intent"].key == ("account_id", "week", "topic")
    assert SPECS["opportunities"].column("outcome").allowed == ("won", "lost", "open")
    assert STATIC_ACCOUNT_COLUMNS == (
        "industry",
        "employees",
        "annual_revenue",
        "country",
        "founded_year",
    )


def test_valid_tables_are_coerced_to_canonical_values(raw):
    originals = {name: frame.copy() for name, frame in raw.items()}
    tables = validate_tables(raw)
    _assert_canonical(tables)
    assert tables.present() == TABLE_NAMES
    assert tables.accounts["employees"].tolist() == [120, pd.NA, 15]
    assert tables.accounts["tech_crm"].tolist() == [True, False, pd.NA]
    assert tables.contacts["role"].tolist() == ["decision_maker", "user", "it"]
    assert tables.opportunities["outcome"].tolist() == ["won", "lost", "open"]
    assert tables.opportunities["type"].tolist() == ["new_business", "new_business", "expansion"]
    assert tables.events["contact_id"].isna().tolist() == [False, True, False, True]
    assert tables.events["ts"].iloc[2] == pd.Timestamp("2023-04-01 08:30:00")
    # extra account columns stay as they are and are flagged as export-only
    assert tables.accounts["lifecycle_stage"].tolist() == ["customer", "subscriber", "unknown"]
    assert tables.export_only_account_columns == ("lifecycle_stage",)
    assert tables.static_account_columns == (*STATIC_ACCOUNT_COLUMNS, "tech_crm")
    # inputs untouched
    for name, frame in raw.items():
        pd.testing.assert_frame_equal(frame, originals[name])


def test_validation_is_idempotent(raw):
    once = validate_tables(raw)
    twice = validate_tables({name: once.get(name) for name in once.present()})
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(once.get(name), twice.get(name))


def test_tz_aware_timestamps_become_naive_utc(raw):
    aware = pd.Series(
        pd.to_datetime(
            ["2023-03-01 12:00", "2023-03-02 01:00", "2023-04-01 00:00", "2023-04-02 00:00"]
        ).tz_localize("Europe/Berlin")
    )
    tables = validate_tables(_with(raw, "events", ts=aware))
    assert tables.events["ts"].dtype == "datetime64[us]"
    assert tables.events["ts"].iloc[0] == pd.Timestamp("2023-03-01 11:00")
    assert tables.events["ts"].iloc[1] == pd.Timestamp("2023-03-02 00:00")
    # mixed offsets in ISO text too
    text = [
        "2023-03-01T12:00:00+02:00",
        "2023-03-01T12:00:00Z",
        "2023-03-01",
        "2023-03-01T12:00:00-05:00",
    ]
    ts = validate_tables(_with(raw, "events", ts=text)).events["ts"]
    assert ts.tolist() == [
        pd.Timestamp(t)
        for t in ("2023-03-01 10:00", "2023-03-01 12:00", "2023-03-01", "2023-03-01 17:00")
    ]


def test_optional_tables_may_be_absent(raw, tmp_path):
    _write_csv({"accounts": raw["accounts"]}, tmp_path)
    tables = load_tables(tmp_path)
    assert tables.present() == ("accounts",)
    assert tables.get("events") is None
    with pytest.raises(KeyError, match="unknown table 'event'"):
        tables.get("event")


# ---------------------------------------------------------------------------- files


def test_csv_folder_round_trips_through_parquet(raw, tmp_path):
    _write_csv(raw, tmp_path / "csv")
    (tmp_path / "csv" / "notes.txt").write_text("ignored")
    from_csv = load_tables(tmp_path / "csv")
    _assert_canonical(from_csv)
    write_tables(from_csv, tmp_path / "parquet")
    assert sorted(p.name for p in (tmp_path / "parquet").iterdir()) == [
        f"{n}.parquet" for n in TABLE_NAMES
    ]
    from_parquet = load_tables(tmp_path / "parquet")
    _assert_canonical(from_parquet)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(from_csv.get(name), from_parquet.get(name))
    # parquet input written by someone else, with native dtypes, also loads
    write_tables(from_parquet, tmp_path / "again")
    pd.testing.assert_frame_equal(load_tables(tmp_path / "again").events, from_csv.events)


def test_truth_subfolder_and_unknown_files_are_not_read(raw, tmp_path):
    _write_csv({"accounts": raw["accounts"]}, tmp_path)
    _write_csv({"events": raw["events"]}, tmp_path / "truth")
    (tmp_path / "accounts.json").write_text("{}")
    assert set(read_tables(tmp_path)) == {"accounts"}


def test_csv_and_parquet_for_one_table_is_an_error(raw, tmp_path):
    _write_csv(raw, tmp_path)
    raw["events"].to_parquet(tmp_path / "events.parquet")
    with pytest.raises(
        ContractError, match=r"table 'events': both events.csv and events.parquet exist"
    ):
        read_tables(tmp_path)


def test_missing_folder_and_missing_accounts_file(raw, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_tables(tmp_path / "nope")
    _write_csv({"events": raw["events"]}, tmp_path)
    with pytest.raises(ContractError, match=r"table 'accounts': missing required table"):
        load_tables(tmp_path)


def test_unreadable_files_are_problems_naming_table_and_file(raw, tmp_path):
    _write_csv({"accounts": raw["accounts"]}, tmp_path)
    (tmp_path / "events.parquet").write_bytes(b"PAR1 truncated")
    (tmp_path / "intent.csv").write_bytes(b"")
    with pytest.raises(ContractError) as info:
        read_tables(tmp_path)
    assert [(p.table, p.column) for p in info.value.problems] == [
        ("events", None),
        ("intent", None),
    ]
    assert "events.parquet is truncated or damaged" in str(info.value)
    assert "intent.csv is empty" in str(info.value)


def test_a_semicolon_latin1_csv_is_read_like_a_utf8_one(raw, tmp_path):
    from propensity.io import CsvFormatWarning

    raw["accounts"].assign(name=["Société", "Müller", "Olé"]).to_csv(
        tmp_path / "accounts.csv", index=False, sep=";", encoding="latin-1"
    )
    with pytest.warns(CsvFormatWarning, match=r"read as cp1252 .*; fields separated by ';'"):
        tables = load_tables(tmp_path)
    assert tables.accounts["name"].tolist() == ["Société", "Müller", "Olé"]
    assert tables.accounts["employees"].tolist()[0] == 120


def test_another_tables_file_under_a_tables_name_is_one_problem(raw):
    with pytest.raises(ContractError) as info:
        validate_tables({"accounts": raw["contacts"]})
    (problem,) = info.value.problems
    assert problem.table == "accounts" and problem.column is None
    assert "missing required column name" in problem.message
    assert "is this the contacts file?" in problem.message


def test_write_refuses_stale_table_files(raw, tmp_path):
    tables = validate_tables({"accounts": raw["accounts"]})
    _write_csv({"events": raw["events"]}, tmp_path)
    with pytest.raises(FileExistsError, match="events.csv"):
        write_tables(tables, tmp_path)
    assert not (tmp_path / "accounts.parquet").exists()


# ---------------------------------------------------------------------------- checks


def test_missing_required_table():
    with pytest.raises(ContractError, match=r"table 'accounts': missing required table"):
        validate_tables({})


def test_empty_table_is_an_error(raw):
    with pytest.raises(ContractError, match=r"table 'intent': empty table"):
        validate_tables({**raw, "intent": raw["intent"].iloc[:0]})
    with pytest.raises(ContractError, match=r"table 'accounts': empty table"):
        validate_tables({"accounts": raw["accounts"].iloc[:0]})


def test_unknown_table_name(raw):
    with pytest.raises(ContractError, match=r"table 'opportunity': unknown table name"):
        validate_tables({**raw, "opportunity": raw["opportunities"]})


def test_missing_required_column_lists_columns_found(raw):
    broken = {**raw, "events": raw["events"].drop(columns="ts")}
    with pytest.raises(
        ContractError,
        match=r"table 'events', column 'ts': missing required column \(columns found: account_id, contact_id, event_type",
    ):
        validate_tables(broken)


def test_missing_value_in_required_column(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'accounts', column 'name': 1 value missing.*row 1 \{'account_id': 'A2', 'name': ' '\}",
    ):
        validate_tables(_with(raw, "accounts", name=["Acme", " ", "Initech"]))


def test_unparseable_timestamp(raw):
    bad = _with(raw, "events", ts=["2023-03-01", "yesterday", "2023-04-01", "31/12/2023"])
    with pytest.raises(
        ContractError,
        match=r"table 'events', column 'ts': 2 values are not parseable timestamps.*row 1 \{'account_id': 'A1', 'ts': 'yesterday'\}; row 3",
    ) as info:
        validate_tables(bad)
    (problem,) = info.value.problems
    assert (problem.table, problem.column, problem.count) == ("events", "ts", 2)
    assert problem.examples == [
        {"row": 1, "account_id": "A1", "ts": "yesterday"},
        {"row": 3, "account_id": "A2", "ts": "31/12/2023"},
    ]


def test_unparseable_number(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'opportunities', column 'amount': 1 value are not parseable numbers.*'amount': '1,000'",
    ):
        validate_tables(_with(raw, "opportunities", amount=["1,000", None, "5"]))
    with pytest.raises(
        ContractError, match=r"table 'accounts', column 'employees': 1 value are not whole numbers"
    ):
        validate_tables(_with(raw, "accounts", employees=["12.5", "3", None]))


def test_unparseable_boolean_flag(raw):
    with pytest.raises(
        ContractError, match=r"table 'accounts', column 'tech_crm': 1 value are not booleans"
    ):
        validate_tables(_with(raw, "accounts", tech_crm=["maybe", "yes", "0"]))


@pytest.mark.parametrize(
    ("table", "columns", "match"),
    [
        (
            "accounts",
            {"account_id": ["A1", "A1", "A3"]},
            r"table 'accounts', column 'account_id': 2 rows share a duplicate key",
        ),
        (
            "contacts",
            {"contact_id": ["C1", "C2", "C2"]},
            r"table 'contacts', column 'contact_id': 2 rows share a duplicate key",
        ),
        (
            "opportunities",
            {"opportunity_id": ["O1", "O1", "O1"]},
            r"table 'opportunities', column 'opportunity_id': 3 rows share a duplicate key \(1 key duplicated\)",
        ),
        (
            "intent",
            {"topic": ["crm", "crm", "crm"]},
            r"table 'intent', column 'account_id, week, topic': 2 rows share a duplicate key",
        ),
    ],
)
def test_duplicate_primary_key(raw, table, columns, match):
    with pytest.raises(ContractError, match=match):
        validate_tables(_with(raw, table, **columns))


@pytest.mark.parametrize("table", ["contacts", "events", "intent", "opportunities"])
def test_unknown_account_is_an_error(raw, table):
    ids = raw[table]["account_id"].tolist()
    ids[-1] = "A9"
    with pytest.raises(
        ContractError,
        match=rf"table '{table}', column 'account_id': 1 row whose account_id is not in accounts.*'A9'",
    ):
        validate_tables(_with(raw, table, account_id=ids))


def test_unknown_contact_is_an_error(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'events', column 'contact_id': 1 row whose contact_id is not in contacts.*'C9'",
    ):
        validate_tables(_with(raw, "events", contact_id=["C1", None, "C9", None]))


def test_unknown_contact_is_not_checked_without_contacts(raw):
    broken = _with(raw, "events", contact_id=["C1", None, "C9", None])
    del broken["contacts"]
    assert validate_tables(broken).events["contact_id"].tolist()[2] == "C9"


def test_unknown_accounts_drop_drops_and_warns(raw):
    broken = _with(raw, "events", account_id=["A1", "A9", "A9", "A2"])
    broken = _with(
        broken, "contacts", account_id=["A1", "A1", "A8"]
    )  # C3 goes, so event 2 goes too
    with pytest.warns(ContractWarning) as record:
        tables = validate_tables(broken, unknown_accounts="drop")
    messages = [str(w.message) for w in record]
    assert (
        "table 'contacts', column 'account_id': dropped 1 row whose account_id is not in accounts"
        in messages
    )
    assert (
        "table 'events', column 'account_id': dropped 2 rows whose account_id is not in accounts"
        in messages
    )
    assert tables.contacts["contact_id"].tolist() == ["C1", "C2"]
    assert tables.events["account_id"].tolist() == ["A1", "A2"]
    assert tables.events.index.tolist() == [0, 1]


def test_drop_leaving_no_rows_makes_the_table_absent(raw):
    with pytest.warns(ContractWarning) as record:
        tables = validate_tables(
            _with(raw, "intent", account_id=["A9"] * 3), unknown_accounts="drop"
        )
    assert [str(w.message) for w in record] == [
        "table 'intent', column 'account_id': dropped 3 rows whose account_id is not in accounts",
        "table 'intent': no rows left after dropping, treated as absent",
    ]
    assert tables.intent is None
    assert tables.present() == ("accounts", "contacts", "events", "opportunities")


def test_no_warning_when_nothing_dropped(raw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_tables(raw, unknown_accounts="drop")
    with pytest.raises(ValueError, match="unknown_accounts must be 'error' or 'drop', got 'skip'"):
        validate_tables(raw, unknown_accounts="skip")


@pytest.mark.parametrize(
    ("table", "column", "values"),
    [
        ("opportunities", "amount", ["-5", None, "1"]),
        ("accounts", "employees", ["-1", "2", None]),
        ("accounts", "annual_revenue", ["1", "-2e6", None]),
        ("events", "minutes", [None, "-3", None, None]),
    ],
)
def test_negative_values(raw, table, column, values):
    with pytest.raises(
        ContractError, match=rf"table '{table}', column '{column}': 1 value are negative"
    ):
        validate_tables(_with(raw, table, **{column: values}))


def test_intent_score_outside_range(raw):
    with pytest.raises(
        ContractError, match=r"table 'intent', column 'score': 2 values are outside 0\.\.100"
    ):
        validate_tables(_with(raw, "intent", score=["101", "-1", "50"]))


def test_closed_before_created(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'opportunities', column 'closed_at': 1 value before created_at.*'O2'",
    ):
        validate_tables(_with(raw, "opportunities", closed_at=["2023-05-15", "2023-04-30", None]))


@pytest.mark.parametrize(
    ("table", "column", "values", "allowed"),
    [
        ("opportunities", "outcome", ["won", "pending", "open"], "won, lost, open"),
        ("contacts", "role", ["user", "champion", "it"], "user, influencer, decision_maker, it"),
        ("opportunities", "type", ["renewal", "expansion", None], "new_business, expansion"),
    ],
)
def test_values_outside_allowed_set(raw, table, column, values, allowed):
    with pytest.raises(
        ContractError,
        match=rf"table '{table}', column '{column}': 1 value not allowed \(allowed: {allowed}\)",
    ):
        validate_tables(_with(raw, table, **{column: values}))


def test_event_type_is_free_text(raw):
    tables = validate_tables(_with(raw, "events", event_type=["podcast", "x", "y", "z"]))
    assert tables.events["event_type"].tolist() == ["podcast", "x", "y", "z"]


def test_closed_outcome_needs_closed_at(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'opportunities', column 'closed_at': 1 row with outcome won/lost and no closed_at.*'O2'",
    ):
        validate_tables(_with(raw, "opportunities", closed_at=["2023-05-15", None, None]))


def test_open_outcome_with_closed_at(raw):
    with pytest.raises(
        ContractError,
        match=r"table 'opportunities', column 'closed_at': 1 row with outcome open but a closed_at.*'O3'",
    ):
        validate_tables(
            _with(raw, "opportunities", closed_at=["2023-05-15", "2023-06-10", "2023-07-01"])
        )


def test_error_lists_all_problems_at_once(raw):
    broken = _with(
        raw,
        "events",
        ts=["bad", "2023-03-02", "2023-04-01", "2023-04-02"],
        account_id=["A1", "A1", "A2", "A7"],
    )
    broken = _with(broken, "intent", score=["101", "5", "5"])
    broken = {**broken, "accounts": broken["accounts"].drop(columns="name")}
    with pytest.raises(ContractError) as info:
        validate_tables(broken)
    where = [(p.table, p.column) for p in info.value.problems]
    assert where == [
        ("accounts", "name"),
        ("events", "ts"),
        ("intent", "score"),
        ("events", "account_id"),
    ]
    lines = str(info.value).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("table 'accounts', column 'name': missing required column")
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value)


# ---------------------------------------------------------------------------- summary


def test_summarize_on_hand_built_example(raw):
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3", "O4", "O5"],
            "account_id": ["A1", "A1", "A2", "A2", "A3"],
            "created_at": ["2023-01-01", "2023-02-01", "2023-03-01", "2023-04-01", "2023-05-01"],
            "closed_at": ["2023-02-01", "2023-03-01", "2023-04-01", "2024-01-31", None],
            "outcome": ["won", "lost", "lost", "won", "open"],
        }
    )
    tables = validate_tables(
        {"accounts": raw["accounts"], "intent": raw["intent"], "opportunities": opportunities}
    )
    report = summarize(tables)
    assert report.win_rate == pytest.approx(0.5)
    assert (report.opportunities_won, report.opportunities_lost) == (2, 2)
    assert report.rows == {"accounts": 3, "intent": 3, "opportunities": 5}
    assert report.date_min == pd.Timestamp("2023-01-01")
    assert report.date_max == pd.Timestamp("2024-01-31")
    assert (
        report.accounts_with_engagement,
        report.accounts_with_intent,
        report.accounts_with_opportunities,
    ) == (0, 2, 3)
    assert report.families_present == ("firmographic", "intent", "history")
    assert report.export_only_account_columns == ("lifecycle_stage",)
    lines = report.to_lines()
    assert "win rate: 50.0% (2 won of 4 closed)" in lines
    assert "data window: 2023-01-01 .. 2024-01-31" in lines


def test_summarize_without_closed_opportunities(raw):
    report = summarize(validate_tables({"accounts": raw["accounts"]}))
    assert report.win_rate is None
    assert report.date_min is None
    assert report.families_present == ("firmographic",)
    assert "win rate: n/a (no closed opportunities)" in report.to_lines()


# ---- problems found in parts of a table (the Spark engine checks each partition's accounts)


def test_problems_of_parts_add_up_their_counts_and_keep_the_first_example_rows():
    from propensity.data.problems import Problem, merge_problems

    def negative(rows: list[int]) -> Problem:
        what = f"{len(rows)} value{'s' if len(rows) != 1 else ''} are negative"
        examples = [{"row": r, "employees": -1} for r in rows]
        return Problem("accounts", "employees", what, len(rows), examples, (0, 3, 1))

    missing = Problem(
        "events", "channel", "missing required column (columns found: ts)", 0, [], (2, 0, 4)
    )
    duplicated = Problem(
        "accounts", "account_id", "2 rows share a duplicate key (1 key duplicated)", 2,
        [{"row": 8, "account_id": "A"}, {"row": 9, "account_id": "A"}], (0, 2, 0),
    )  # fmt: skip
    parts = [
        [negative([40, 41, 42]), missing],
        [duplicated, negative([3, 90, 91, 92, 93]), missing],
        [negative([7])],
    ]
    merged = merge_problems(parts)
    # in the order of one check of the whole table; a missing column is reported once
    assert [p.column for p in merged] == ["account_id", "employees", "channel"]
    total = merged[1]
    assert total.message == "9 values are negative" and total.count == 9
    assert [e["row"] for e in total.examples] == [3, 7, 40, 41, 42]
    assert merged[0].message == "2 rows share a duplicate key (1 key duplicated)"
    assert merge_problems([[duplicated], [duplicated]])[0].message == (
        "4 rows share a duplicate key (2 keys duplicated)"
    )
