"""Bad input, full disks, racing writers and dates out of range, through the real `propensity`
entry point: every foreseeable fault is one ``error:`` line naming the file or flag, exit code
2, no traceback and nothing written; a file the toolkit now reads (Latin-1, cp1252, ``;`` or
tab separated) succeeds with a ``warning:`` saying how it was read. Outputs follow the umask."""

from __future__ import annotations

import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import cli
from propensity.data.contract import late_dates, read_tables, summarize, validate_tables
from propensity.io import SNIFF_BYTES, CsvFormatWarning, read_csv

NAMES = ["Société Générale", "Müller Bäckerei GmbH", "Café Olé", "Plain Ltd"]
ACCOUNTS = pd.DataFrame(
    {
        "account_id": [f"A{i}" for i in range(len(NAMES))],
        "name": NAMES,
        "industry": ["banking", "food", "food", "software"],
        "country": ["fr", "de", "es", "gb"],
    }
)


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and mtime: what "nothing written" compares."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial"))]


def _one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit code 2, no traceback anywhere, exactly one ``error:`` line holding ``needles``."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------- a corpus of files


def _text(encoding: str, sep: str = ",", frame: pd.DataFrame = ACCOUNTS) -> bytes:
    return frame.to_csv(index=False, sep=sep).encode(encoding)


def _truncated_parquet(frame: pd.DataFrame = ACCOUNTS) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    return data[: len(data) // 2]


def _parquet_bytes(frame: pd.DataFrame = ACCOUNTS) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


CONTACTS = pd.DataFrame(
    {"contact_id": ["C1", "C2"], "account_id": ["A0", "A1"], "role": ["user", "champion"]}
)
# name -> (file name, bytes, extra CLI options, expected needles in the error line)
BAD_FILES = {
    "truncated parquet": ("accounts.parquet", _truncated_parquet(), [], ["accounts.parquet"]),
    "empty csv": ("accounts.csv", b"", [], ["accounts.csv is empty"]),
    "empty parquet": ("accounts.parquet", b"", [], ["accounts.parquet is empty"]),
    "header-only csv": (
        "accounts.csv",
        b"account_id,name,industry\n",
        [],
        ["table 'accounts'", "empty table (0 rows)"],
    ),
    "binary named .csv": (
        "accounts.csv",
        bytes(range(256)) * 40,
        [],
        ["accounts.csv is not a CSV file", "binary"],
    ),
    "xlsx named .csv": (
        "accounts.csv",
        b"PK\x03\x04" + bytes(300),
        [],
        ["accounts.csv is not a CSV file", "Excel"],
    ),
    "parquet named .csv": (
        "accounts.csv",
        _parquet_bytes(),
        [],
        ["accounts.csv is not a CSV file", "name it .parquet"],
    ),
    "wrong table file": (
        "accounts.csv",
        _text("utf-8", frame=CONTACTS),
        [],
        ["table 'accounts'", "is this the contacts file?"],
    ),
    "unclosed quote": (
        "accounts.csv",
        b'account_id,name\nA0,Acme\nA1,"Globex\n',
        [],
        ["accounts.csv is not a readable CSV"],
    ),
    "; csv read with --sep ,": (
        "accounts.csv",
        _text("utf-8", ";"),
        ["--sep", ","],
        ["accounts.csv", "pass --sep ';'"],
    ),
    "latin-1 csv read with --encoding utf-8": (
        "accounts.csv",
        _text("latin-1"),
        ["--encoding", "utf-8"],
        ["accounts.csv is not utf-8 text", "--encoding"],
    ),
    "unknown --encoding": (
        "accounts.csv",
        _text("utf-8"),
        ["--encoding", "klingon"],
        ["--encoding"],
    ),
    "--sep of two characters": ("accounts.csv", _text("utf-8"), ["--sep", ";;"], ["--sep"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_file_is_one_line_naming_it_and_nothing_is_written(case, tmp_path):
    name, content, options, needles = BAD_FILES[case]
    (tmp_path / name).write_bytes(content)
    before = _listing(tmp_path)
    _one_error_line(cli("validate", str(tmp_path), *options), *needles)
    assert _listing(tmp_path) == before


# name -> (bytes, the warning expected on stderr)
READABLE = {
    "latin-1": (_text("latin-1"), "read as cp1252"),
    "cp1252 with € and curly quotes": (
        _text("cp1252", frame=ACCOUNTS.assign(name=["Café €uro", "O’Brien", "Plain", "Ölwerk"])),
        "read as cp1252",
    ),
    "; separated": (_text("utf-8", ";"), "separated by ';'"),
    "tab separated, latin-1": (_text("latin-1", "\t"), "separated by tab"),
    "| separated": (_text("utf-8", "|"), "separated by '|'"),
    "utf-8 with a byte-order mark": (b"\xef\xbb\xbf" + _text("utf-8"), None),
    "utf-16 (Excel's Unicode text)": (_text("utf-16", "\t"), "separated by tab"),
}


@pytest.mark.parametrize("case", list(READABLE))
def test_files_in_other_encodings_and_separators_are_read_and_validated(case, tmp_path):
    content, warning = READABLE[case]
    (tmp_path / "accounts.csv").write_bytes(content)
    result = cli("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "accounts 4" in result.stdout
    if warning:
        assert warning in result.stderr and "accounts.csv" in result.stderr
    else:
        assert "warning" not in result.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CsvFormatWarning)
        accounts = read_tables(tmp_path)["accounts"]
    assert list(accounts.columns) == list(ACCOUNTS.columns)
    if "cp1252" not in case:
        assert accounts["name"].tolist() == NAMES


def test_given_encoding_and_separator_are_used_without_a_warning(tmp_path):
    (tmp_path / "accounts.csv").write_bytes(_text("latin-1", ";"))
    result = cli("validate", str(tmp_path), "--encoding", "latin-1", "--sep", ";")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_a_non_utf8_byte_after_the_sniffed_sample_falls_back_to_cp1252(tmp_path):
    rows = SNIFF_BYTES // 10
    frame = pd.DataFrame({"account_id": [f"A{i:07d}" for i in range(rows)], "name": "Plain"})
    frame.loc[rows - 1, "name"] = "Société"
    path = tmp_path / "accounts.csv"
    path.write_bytes(_text("latin-1", frame=frame))
    assert path.stat().st_size > SNIFF_BYTES
    with pytest.warns(CsvFormatWarning, match="read as cp1252"):
        read = read_csv(path, dtype=str)
    assert read["name"].iloc[-1] == "Société"


def test_table_mode_names_a_truncated_table_file_and_writes_nothing(tmp_path):
    (tmp_path / "deals.parquet").write_bytes(_truncated_parquet())
    result = cli("table", "train", str(tmp_path / "deals.parquet"), "--out", str(tmp_path / "run"))
    _one_error_line(result, "deals.parquet is truncated")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- dates


def _linked_world(world: Path, folder: Path, replace: dict[str, pd.DataFrame]) -> Path:
    """A data folder whose tables link to the shared world's files, except ``replace``."""
    folder.mkdir()
    for path in world.glob("*.parquet"):
        if path.stem not in replace:
            (folder / path.name).symlink_to(path)
    for name, frame in replace.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_validate_names_an_event_dated_years_after_the_data(world, tmp_path):
    events = pd.read_parquet(world / "events.parquet")
    events.loc[7, "ts"] = pd.Timestamp("2031-03-04 10:00")
    data = _linked_world(world, tmp_path / "data", {"events": events})
    result = cli("validate", str(data))
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, result.stdout
    assert "table 'events', column 'ts': 1 value dated after" in warning[0]
    assert "2031-03-04" in warning[0] and "row 7" in warning[0]


def test_late_dates_rule_on_a_hand_built_example():
    accounts = pd.DataFrame({"account_id": ["A1", "A2"], "name": ["a", "b"]})
    ts = pd.date_range("2024-01-01", "2025-06-30", periods=2000).strftime("%Y-%m-%d").tolist()
    ts[10] = "2031-01-05"  # a wrong year
    ts[11] = "2026-03-01"  # eight months after the bulk's end: plausible
    events = pd.DataFrame({"account_id": "A1", "ts": ts, "event_type": "web_visit"})
    tables = validate_tables({"accounts": accounts, "events": events})
    found = late_dates(tables, today=pd.Timestamp("2035-01-01"))
    assert found.bulk_end == pd.Timestamp("2025-06-30")
    assert found.newest_plausible == pd.Timestamp("2026-06-30")
    ((problem,),) = [found.problems]
    assert (problem.table, problem.column, problem.count) == ("events", "ts", 1)
    assert problem.examples[0]["row"] == 10
    # the clock is the other bound: data cannot come from after tomorrow
    early = late_dates(tables, today=pd.Timestamp("2025-12-31"))
    assert early.newest_plausible == pd.Timestamp("2026-01-01")
    assert early.problems[0].count == 2
    assert (
        summarize(tables, today=pd.Timestamp("2035-01-01"))
        .to_lines()[-1]
        .startswith("warning: table 'events', column 'ts': 1 value dated after 2026-06-30")
    )


@pytest.mark.parametrize(
    ("command", "as_of", "side"),
    [
        ("export", "2035-01-01", "after the data"),
        ("export", "1990-01-01", "before the first row"),
        ("score", "2035-01-01", "after the data"),
        ("features", "1990-01-01", "before the first row"),
        ("explain", "2035-01-01", "after the data"),
    ],
)
def test_an_as_of_outside_the_data_is_refused_naming_the_span(
    trained, tmp_path, command, as_of, side
):
    args = {
        "export": ["--run", str(trained.run_dir), "--out", str(tmp_path / "list.csv")],
        "score": ["--run", str(trained.run_dir), "--out", str(tmp_path / "scored.parquet")],
        "features": ["--out", str(tmp_path / "features.parquet")],
        "explain": ["--run", str(trained.run_dir), "--account", "A0000010"],
    }[command]
    result = cli(command, "--data", str(trained.world), "--as-of", as_of, *args)
    _one_error_line(result, f"--as-of {as_of} is {side}", "the data spans 20", "give a date from")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- run folders


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained.run_dir, copy)
    return copy


@pytest.mark.parametrize(
    ("damage", "command", "needle"),
    [
        ("no model", "report", "not a complete run folder (missing scoring_model.joblib)"),
        ("no model", "score", "scoring_model.joblib not found"),
        ("no model", "export", "scoring_model.joblib not found"),
        ("truncated summary", "report", "damaged run folder"),
        ("truncated model", "score", "scoring_model.joblib cannot be loaded"),
    ],
)
def test_a_run_folder_missing_or_damaging_an_artifact_is_one_line(
    trained, run_copy, tmp_path, damage, command, needle
):
    if damage == "no model":
        (run_copy / "scoring_model.joblib").unlink()
    elif damage == "truncated summary":
        text = (run_copy / "summary.json").read_text()
        (run_copy / "summary.json").write_text(text[: len(text) // 2])
    else:
        data = (run_copy / "scoring_model.joblib").read_bytes()
        (run_copy / "scoring_model.joblib").write_bytes(data[:1000])
    out = tmp_path / ("report.html" if command == "report" else "out.csv")
    args = ["--run", str(run_copy), "--out", str(out)]
    if command != "report":
        args += ["--data", str(trained.world)]
    _one_error_line(cli(command, *args), needle)
    assert not out.exists()


# ---------------------------------------------------------------------------- writing


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: a write past the limit fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("name", ["list.csv", "list.parquet"])
def test_a_full_disk_during_export_is_one_line_and_keeps_the_previous_export(
    trained, tmp_path, name
):
    out = tmp_path / name
    meta = tmp_path / f"{name}.meta.json"
    first = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir), "--out", str(out)
    )
    assert first.returncode == 0, first.stderr
    before = (out.read_bytes(), meta.read_bytes())
    assert len(before[0]) > 32_000
    result = subprocess.run(
        [str(Path(sys.executable).parent / "propensity"), "export", "--data", str(trained.world),
         "--run", str(trained.run_dir), "--out", str(out), "--top", "2000"],
        capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(32_000),
    )  # fmt: skip
    _one_error_line(result, f"cannot write {out}", "File too large", "no file was replaced")
    assert (out.read_bytes(), meta.read_bytes()) == before
    assert _temporaries(tmp_path) == []
    again = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir), "--out", str(out)
    )
    assert again.returncode == 0, again.stderr


@pytest.mark.slow(seconds=15)
def test_four_exports_to_one_path_at_once_leave_one_complete_export(trained, tmp_path):
    reference = tmp_path / "reference.csv"
    done = cli(
        "export",
        "--data",
        str(trained.world),
        "--run",
        str(trained.run_dir),
        "--out",
        str(reference),
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "shared" / "list.csv"
    command = [str(Path(sys.executable).parent / "propensity"), "export", "--data",
               str(trained.world), "--run", str(trained.run_dir), "--out", str(out)]  # fmt: skip
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    for p in processes:
        p.stdout.close()
        p.stderr.close()
    assert all(code == 0 for code, _ in results), results
    assert "Traceback" not in "".join(err for _, err in results)
    listing = pd.read_csv(out, dtype={"account_id": str})
    expected = pd.read_csv(reference, dtype={"account_id": str})
    assert len(listing) == len(expected) and listing["account_id"].is_unique
    assert set(listing["account_id"]) == set(expected["account_id"])
    assert _temporaries(tmp_path) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["list.csv", "list.csv.meta.json"]


def test_export_refuses_to_replace_a_file_that_is_not_an_export(trained, tmp_path):
    mine = tmp_path / "accounts.csv"
    mine.write_text("id,owner\n1,me\n")
    result = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir), "--out", str(mine)
    )
    _one_error_line(result, "accounts.csv exists and is not a previous export", "it is kept")
    assert mine.read_text() == "id,owner\n1,me\n"


def test_export_onto_a_folder_is_one_line(trained, tmp_path):
    (tmp_path / "list.csv").mkdir()
    result = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir),
        "--out", str(tmp_path / "list.csv"),
    )  # fmt: skip
    _one_error_line(result, "list.csv")
    assert _temporaries(tmp_path) == []


WRITE_RUN = (
    "import pickle, sys\n"
    "from propensity.runs.folder import write_run\n"
    "write_run(pickle.loads(open(sys.argv[1], 'rb').read()), sys.argv[2])\n"
)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"])
def test_exports_reports_and_features_follow_the_umask(trained, tmp_path, umask, mode):
    def run(*args: str) -> None:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "propensity"), *args],
            capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    world, run_dir = str(trained.world), str(trained.run_dir)
    run("export", "--data", world, "--run", run_dir, "--out", str(tmp_path / "list.csv"))
    run("score", "--data", world, "--run", run_dir, "--out", str(tmp_path / "scored.parquet"))
    run("report", "--run", run_dir, "--out", str(tmp_path / "out" / "report.html"))
    written = [
        tmp_path / "list.csv",
        tmp_path / "list.csv.meta.json",
        tmp_path / "scored.parquet",
        tmp_path / "out" / "report.html",
    ]
    assert {p.name: oct(_mode(p)) for p in written} == {p.name: oct(mode) for p in written}
    assert _mode(tmp_path / "out") == 0o777 & ~umask  # a folder made for an output: mkdir's mode


@pytest.mark.slow(seconds=12)
@pytest.mark.parametrize(("umask", "mode"), [(0o027, 0o640)], ids=["027"])
def test_run_folder_files_follow_the_umask(trained, tmp_path, umask, mode):
    pickled = tmp_path / "result.pickle"
    pickled.write_bytes(pickle.dumps(trained.result))
    result = subprocess.run(
        [sys.executable, "-c", WRITE_RUN, str(pickled), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, preexec_fn=lambda: os.umask(umask),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert files and {oct(_mode(p)) for p in files} == {oct(mode)}
    folders = [tmp_path / "run", *(p for p in (tmp_path / "run").rglob("*") if p.is_dir())]
    assert {oct(_mode(p)) for p in folders} == {oct(0o777 & ~umask)}


# ---------------------------------------------------------------------------- --verbose


def test_verbose_shows_the_traceback_and_sets_the_environment(tmp_path):
    (tmp_path / "accounts.parquet").write_bytes(_truncated_parquet())
    quiet = cli("validate", str(tmp_path))
    _one_error_line(quiet, "accounts.parquet is truncated")
    loud = cli("--verbose", "validate", str(tmp_path))
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "accounts.parquet is truncated" in loud.stderr


def test_an_unforeseen_error_is_one_line_unless_verbose(tmp_path, monkeypatch, capsys):
    from propensity import cli as command
    from propensity.data import contract

    (tmp_path / "accounts.csv").write_bytes(_text("utf-8"))

    def broken(tables, today=None):
        raise RuntimeError("a bug")

    monkeypatch.setattr(contract, "summarize", broken)
    monkeypatch.setenv("PROPENSITY_VERBOSE", "0")  # undone after the test, unlike a delenv
    with pytest.raises(SystemExit) as exit_info:
        command.app(["validate", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: unexpected RuntimeError: a bug (rerun with --verbose for the traceback, and "
        "report it)"
    ]
    with pytest.raises(RuntimeError, match="a bug"):
        command.app(["--verbose", "validate", str(tmp_path)])
    assert os.environ["PROPENSITY_VERBOSE"] == "1"


def test_sniffing_costs_the_same_on_any_size(tmp_path):
    """The separator is sniffed from the first 64 KiB only: a file 50 times larger reads the
    same way (and the sample is what is decoded twice, never the file)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"account_id": [f"A{i}" for i in range(60_000)], "x": rng.random(60_000)})
    path = tmp_path / "big.csv"
    path.write_bytes(_text("utf-8", ";", frame))
    assert path.stat().st_size > 20 * SNIFF_BYTES
    with pytest.warns(CsvFormatWarning, match="';'"):
        assert read_csv(path).shape == (60_000, 2)
