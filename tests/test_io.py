"""The file edge: atomic writes and the one CSV-or-Parquet switch."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from propensity.io import read_frame, write_atomic, write_frame


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    def broken(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "out.csv", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        write_atomic(target, lambda path: (_ for _ in ()).throw(RuntimeError("killed")))
    assert target.read_text() == "previous"


def test_written_files_get_the_usual_permissions(tmp_path):
    written = write_frame(pd.DataFrame({"a": [1]}), tmp_path / "list.csv")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(written).st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_frames_round_trip_by_suffix(tmp_path, name):
    frame = pd.DataFrame({"account_id": ["001", "A2"], "score": [1.5, 2.0]})
    read = read_frame(write_frame(frame, tmp_path / name), dtype={"account_id": str})
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)


def test_an_unknown_suffix_is_refused_with_the_name(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.parquet, got rows\.xlsx"):
        write_frame(pd.DataFrame({"a": [1]}), tmp_path / "rows.xlsx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["rows.csv", "rows.parquet"])
def test_parts_are_written_as_one_frame(tmp_path, name):
    frame = pd.DataFrame(
        {"account_id": [f"A{i}" for i in range(7)], "reasons": ["x; y"] * 7, "p": range(7)}
    )
    parts = (frame.iloc[start : start + 3] for start in range(0, 7, 3))
    read = read_frame(write_frame(parts, tmp_path / name), dtype={"account_id": str})
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)


def test_a_part_that_fails_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "scores.parquet"
    write_frame(pd.DataFrame({"a": [1]}), target)

    def parts():
        yield pd.DataFrame({"a": [2]})
        raise MemoryError("killed half way")

    with pytest.raises(MemoryError):
        write_frame(parts(), target)
    assert read_frame(target)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_parts_with_other_columns_are_refused(tmp_path):
    parts = iter([pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [2]})])
    with pytest.raises(ValueError, match="columns"):
        write_frame(parts, tmp_path / "rows.csv")
    assert list(tmp_path.iterdir()) == []
