"""Tables read and checked by DuckDB where they lie: the same tables, the same problems, the same
features as the in-memory path, from one file or a folder of part files."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import cli
from propensity.data.contract import (
    ContractError,
    ContractWarning,
    TableView,
    load_tables,
    open_tables,
    validate_tables,
)
from propensity.data.world import WorldConfig, generate_world
from propensity.duck import connect
from propensity.features import FeatureConfig, build_features
from propensity.spine import SpineConfig, build_spine


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    return generate_world(
        WorldConfig(n_accounts=600, seed=13), tmp_path_factory.mktemp("files") / "world"
    )


def _write(raw: dict[str, pd.DataFrame], folder: Path, kind: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in raw.items():
        if kind == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            pq.write_table(
                pa.Table.from_pandas(frame, preserve_index=False), folder / f"{name}.parquet"
            )
    return folder


def _as_frames(tables) -> dict[str, pd.DataFrame]:
    return {
        name: (table.to_pandas() if isinstance(table, TableView) else table)
        for name in tables.present()
        if (table := tables.get(name)) is not None
    }


def _problems(error: ContractError) -> list[tuple]:
    return [(p.table, p.column, p.message, p.count, p.examples) for p in error.problems]


# ------------------------------------------------------------------------------ same tables


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_files_read_in_duckdb_give_the_tables_loaded_in_memory(raw, tmp_path, kind):
    folder = _write(raw, tmp_path / kind, kind)
    loaded = load_tables(folder)
    with connect() as con:
        opened = open_tables(folder, con)
        assert isinstance(opened.events, TableView) and isinstance(opened.accounts, pd.DataFrame)
        frames = _as_frames(opened)
    for name in loaded.present():
        pd.testing.assert_frame_equal(frames[name], loaded.get(name), check_exact=True)


def test_feature_matrix_from_files_equals_the_in_memory_one(small_world):
    tables = load_tables(small_world)
    spine = build_spine(tables, SpineConfig(cadence="monthly"))
    expected = build_features(tables, spine, FeatureConfig()).matrix
    with connect(memory_limit="256MB") as con:
        opened = open_tables(small_world, con)
        opened_spine = build_spine(opened, SpineConfig(cadence="monthly"))
        pd.testing.assert_frame_equal(opened_spine, spine)
        matrix = build_features(opened, opened_spine, FeatureConfig()).matrix
    pd.testing.assert_frame_equal(matrix, expected, check_exact=True)


def test_a_folder_of_part_files_reads_as_one_table(small_world, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for path in small_world.glob("*.parquet"):
        if path.stem != "events":
            (folder / path.name).symlink_to(path)
    events = pq.read_table(small_world / "events.parquet")
    (folder / "events").mkdir()
    third = events.num_rows // 3
    for i, start in enumerate((0, third, 2 * third)):
        end = events.num_rows if i == 2 else start + third
        pq.write_table(events.slice(start, end - start), folder / "events" / f"part-{i:03}.parquet")
    with connect() as con:
        parts = open_tables(folder, con).events.to_pandas()
    pd.testing.assert_frame_equal(parts, load_tables(small_world).events, check_exact=True)


# ------------------------------------------------------------------------------ same problems


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_checks_on_files_name_the_problems_and_rows_the_frame_checks_name(raw, tmp_path, kind):
    bad = {
        **raw,
        "events": raw["events"].assign(
            ts=["2023-03-01", "yesterday", "2023-04-01", "31/12/2023"],
            account_id=["A1", "A9", "A2", "A2"],
        ),
        "contacts": raw["contacts"].assign(contact_id=["C1", "C1", "C3"]),
        "opportunities": raw["opportunities"].assign(outcome=["Won", "maybe", "open"]),
    }
    with pytest.raises(ContractError) as in_memory:
        validate_tables(bad)
    folder = _write(bad, tmp_path / kind, kind)
    with connect() as con, pytest.raises(ContractError) as from_files:
        open_tables(folder, con)
    assert _problems(from_files.value) == _problems(in_memory.value)
    assert {p.table for p in from_files.value.problems} == {"events", "contacts", "opportunities"}


def test_an_orphan_in_a_later_part_file_is_named_by_its_row_across_the_parts(raw, tmp_path):
    folder = _write({k: v for k, v in raw.items() if k != "events"}, tmp_path / "t", "parquet")
    (folder / "events").mkdir()
    events = raw["events"].assign(account_id=["A1", "A1", "A2", "A9"])
    for i, part in enumerate((events.iloc[:2], events.iloc[2:])):
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), folder / "events" / f"{i}.parquet"
        )
    with connect() as con, pytest.raises(ContractError) as error:
        open_tables(folder, con)
    (problem,) = error.value.problems
    assert problem.message == "1 row whose account_id is not in accounts"
    assert problem.examples == [{"row": 3, "account_id": "A9"}]


def test_dropping_unknown_accounts_from_files_drops_the_rows_the_frames_drop(raw, tmp_path):
    bad = {**raw, "events": raw["events"].assign(account_id=["A1", "A9", "A9", "A2"])}
    with pytest.warns(ContractWarning) as in_memory:
        expected = validate_tables(bad, unknown_accounts="drop").events
    folder = _write(bad, tmp_path / "t", "parquet")
    with connect() as con, pytest.warns(ContractWarning) as from_files:
        events = open_tables(folder, con, unknown_accounts="drop").events.to_pandas()
    assert [str(w.message) for w in from_files] == [str(w.message) for w in in_memory]
    pd.testing.assert_frame_equal(events, expected)


def test_a_cp1252_csv_is_read_like_the_loaded_one(raw, tmp_path):
    folder = _write(raw, tmp_path / "t", "csv")
    accounts = raw["accounts"].assign(name=["Société Générale", "Globex", "Crème"])
    accounts.to_csv(folder / "accounts.csv", index=False, encoding="cp1252", sep=";")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = load_tables(folder).accounts
        with connect() as con:
            accounts = open_tables(folder, con).accounts
    pd.testing.assert_frame_equal(accounts, expected)
    assert accounts["name"].tolist()[0] == "Société Générale"


def test_a_truncated_parquet_file_is_one_problem_naming_it(raw, tmp_path):
    folder = _write(raw, tmp_path / "t", "parquet")
    data = (folder / "events.parquet").read_bytes()
    (folder / "events.parquet").write_bytes(data[: len(data) // 2])
    with connect() as con, pytest.raises(ContractError, match=r"events.parquet is truncated"):
        open_tables(folder, con)


def test_a_table_given_as_a_file_and_as_a_folder_is_refused(raw, tmp_path):
    folder = _write(raw, tmp_path / "t", "parquet")
    (folder / "events").mkdir()
    pq.write_table(pa.Table.from_pandas(raw["events"]), folder / "events" / "0.parquet")
    with (
        connect() as con,
        pytest.raises(ContractError, match=r"table 'events': given more than once"),
    ):
        open_tables(folder, con)


# ------------------------------------------------------------------------------ the command


def test_features_command_reads_the_files_spills_where_told_and_leaves_nothing(
    small_world, tmp_path
):
    spill = tmp_path / "spill"
    out = tmp_path / "features.parquet"
    done = cli(
        "features", "--data", str(small_world), "--out", str(out),
        "--memory-limit", "200MB", "--temp-dir", str(spill),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tables = load_tables(small_world)
    expected = build_features(tables, build_spine(tables, SpineConfig(cadence="monthly"))).matrix
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_exact=True)
    assert list(spill.iterdir()) == []  # the build's own spill folder is gone
    refused = cli(
        "features", "--data", str(small_world), "--out", str(out), "--memory-limit", "lots"
    )
    assert refused.returncode == 2
    assert "--memory-limit must be a size such as '4GB'" in refused.stderr


# ------------------------------------------------------------------------------ odd files


def test_cp1252_part_files_of_two_tables_with_the_same_names_stay_apart(raw, tmp_path):
    folder = tmp_path / "t"
    for name in ("accounts", "contacts"):
        (folder / name).mkdir(parents=True)
        frame = raw[name].assign(
            **({"name": ["Société", "Globex", "Crème"]} if name == "accounts" else {})
        )
        frame.to_csv(folder / name / "part-0.csv", index=False, encoding="cp1252")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with connect() as con:
            tables = open_tables(folder, con)
            contacts = tables.contacts.to_pandas()
    assert tables.accounts["name"].tolist() == ["Société", "Globex", "Crème"]
    assert contacts["contact_id"].tolist() == ["C1", "C2", "C3"]


def test_a_csv_line_with_an_extra_field_is_one_problem_naming_the_line(raw, tmp_path):
    folder = _write({"accounts": raw["accounts"]}, tmp_path / "t", "csv")
    with open(folder / "accounts.csv", "a") as file:
        file.write("A9,Nine,1,true,software,us,1999,,,stage,extra\n")
    with connect() as con, pytest.raises(ContractError) as error:
        open_tables(folder, con)
    (problem,) = error.value.problems
    assert "accounts.csv is not a readable CSV" in problem.message and "(line 5)" in problem.message


def test_a_csv_line_with_fewer_fields_reads_the_rest_as_missing(raw, tmp_path):
    folder = _write({"accounts": raw["accounts"]}, tmp_path / "t", "csv")
    with open(folder / "accounts.csv", "a") as file:
        file.write("A9,Nine\n")
    with connect() as con:
        accounts = open_tables(folder, con).accounts
    assert accounts["account_id"].tolist()[-1] == "A9" and pd.isna(accounts["industry"].iloc[-1])
    pd.testing.assert_frame_equal(accounts, load_tables(folder).accounts)


def test_words_a_database_reads_as_dates_are_not_iso_8601_timestamps(raw, tmp_path):
    bad = {**raw, "events": raw["events"].assign(ts=["infinity", "epoch", "2023-04-01", "PST"])}
    folder = _write(bad, tmp_path / "t", "csv")
    with connect() as con, pytest.raises(ContractError) as error:
        open_tables(folder, con)
    (problem,) = error.value.problems
    assert problem.message.startswith("3 values are not parseable timestamps")


def test_quotes_in_column_names_are_read_as_they_are(raw, tmp_path):
    accounts = raw["accounts"].rename(
        columns={"tech_crm": 'tech_"crm"', "lifecycle_stage": 'note "x"'}
    )
    folder = _write({**raw, "accounts": accounts}, tmp_path / "t", "parquet")
    with connect() as con:
        opened = open_tables(folder, con)
        spine = build_spine(opened, SpineConfig(lookback_days=7))
        matrix = build_features(opened, spine).matrix
    assert opened.accounts['tech_"crm"'].tolist()[:2] == [True, False]
    assert 'tech_"crm"' in matrix.columns


def test_naive_timestamp_text_is_utc_whatever_the_connection_says(raw, tmp_path):
    folder = _write(raw, tmp_path / "t", "csv")
    with connect() as con:
        con.execute("SET TimeZone = 'America/New_York'")
        events = open_tables(folder, con).events.to_pandas()
    assert events["ts"].tolist()[0] == pd.Timestamp("2023-03-01 10:00")


def test_unknown_accounts_are_reported_table_by_table_then_unknown_contacts(raw, tmp_path):
    bad = {
        **raw,
        "events": raw["events"].assign(
            account_id=["A1", "A9", "A2", "A2"], contact_id=["C9", None, "C3", None]
        ),
        "intent": raw["intent"].assign(account_id=["A1", "A1", "A8"]),
    }
    with pytest.raises(ContractError) as error:
        validate_tables(bad)
    assert [(p.table, p.column) for p in error.value.problems] == [
        ("events", "account_id"),
        ("intent", "account_id"),
        ("events", "contact_id"),
    ]


def test_a_channel_column_with_no_values_gives_zero_channels_reached(small_world, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    for path in small_world.glob("*.parquet"):
        (folder / path.name).symlink_to(path)
    (folder / "events.parquet").unlink()
    events = pd.read_parquet(small_world / "events.parquet").assign(channel=None)
    events["channel"] = events["channel"].astype("str")
    events.to_parquet(folder / "events.parquet", index=False)
    with connect() as con:
        opened = open_tables(folder, con)
        matrix = build_features(opened, build_spine(opened, SpineConfig())).matrix
    assert (matrix["eng_channels_90d"] == 0).all()


def test_what_a_run_reads_of_the_tables_is_the_same_from_files(small_world):
    from propensity.history import freshness
    from propensity.outputs.explorer import buying_groups, intent_topics
    from propensity.runs.account import data_fingerprint

    loaded = load_tables(small_world)
    as_of = pd.Timestamp("2025-06-02")
    accounts = pd.Index(loaded.accounts["account_id"][:100])
    with connect() as con:
        opened = open_tables(small_world, con)
        assert data_fingerprint(opened) == data_fingerprint(loaded)
        assert freshness(opened, as_of) == freshness(loaded, as_of)
        assert buying_groups(opened, accounts, as_of) == buying_groups(loaded, accounts, as_of)
        assert intent_topics(opened, accounts, as_of) == intent_topics(loaded, accounts, as_of)
        with pytest.raises(TypeError, match="known_before needs the tables in memory"):
            opened.known_before(as_of)


def test_a_killed_jobs_spill_folder_is_removed_by_the_next_connection(tmp_path):
    import subprocess
    import sys

    # a process that opens a connection spilling into tmp_path, then is killed with -9
    code = (
        "import os, signal, sys; from propensity.duck import connect\n"
        f"with connect(temp_directory={str(tmp_path)!r}) as con:\n"
        "    spill = con.execute(\"SELECT current_setting('temp_directory')\").fetchall()[0][0]\n"
        "    os.makedirs(os.path.join(spill, 'spilled'))  # as DuckDB does when it spills\n"
        "    print('open', flush=True); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert killed.returncode == -9 and killed.stdout == "open\n"
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith("propensity-duckdb-")
    with connect(temp_directory=str(tmp_path)):
        assert list(tmp_path.iterdir()) == []  # the killed job's folder is gone
    assert list(tmp_path.iterdir()) == []
