"""Table files read by DuckDB where they lie, for tables larger than memory.

A table is ``NAME.parquet``, ``NAME.csv``, or a folder ``NAME/`` of part files (``*.parquet`` or
``*.csv``, read in name order as one table), as exports from a warehouse arrive. Each becomes a
:class:`propensity.data.validate.RawTable`: a view in a DuckDB connection over the files, which
the validator checks with queries; nothing is loaded into pandas.

* Parquet: column names from the file footers (all parts must have the same); rows are numbered
  by their position across the parts, in name order (``file_row_number`` plus the rows of the
  parts before), so examples name the same row as for a loaded file.
* CSV: read as text (the parser types every column), with the encoding and separator given or
  detected by :func:`propensity.io.sniff_csv`, and pandas' missing-value markers; a cp1252 file
  is first re-encoded as UTF-8 into the connection's temporary folder (DuckDB reads UTF-8 and
  latin-1 only). Rows are numbered on demand, in reading order.
"""

from __future__ import annotations

import codecs
import csv
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from propensity.data.checks import ROW, RawTable, quote
from propensity.data.problems import Problem, readable
from propensity.data.specs import SPECS, TABLE_NAMES
from propensity.io import (
    CsvFormat,
    InputFileError,
    one_column_hint,
    parquet_columns,
    sniff_csv,
    warn_format,
)

__all__ = ["CSV_MISSING", "TableFiles", "find_table_files", "raw_table"]

# the text pandas reads as missing by default (so a CSV reads the same either way)
CSV_MISSING = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "latin-1": "latin-1"}


@dataclass(frozen=True)
class TableFiles:
    """The files of one table: one file, or the part files of a folder, all of one kind."""

    name: str
    paths: tuple[Path, ...]
    kind: Literal["parquet", "csv"]


def find_table_files(folder: Path) -> tuple[dict[str, TableFiles], list[Problem]]:
    """The files of each table in ``folder`` and the problems (a table given twice, an empty
    part folder, a folder mixing kinds, a missing required table)."""
    found: dict[str, TableFiles] = {}
    problems: list[Problem] = []
    for name in TABLE_NAMES:
        candidates = [
            TableFiles(name, (folder / f"{name}.{kind}",), kind)
            for kind in ("parquet", "csv")
            if (folder / f"{name}.{kind}").is_file()
        ]
        parts = folder / name
        if parts.is_dir():
            kinds = {p.suffix for p in parts.iterdir() if p.suffix in (".parquet", ".csv")}
            if len(kinds) > 1:
                what = f"folder {parts} holds both .csv and .parquet parts; keep one kind"
                problems.append(Problem(name, None, what, 2))
                continue
            if not kinds:
                what = f"folder {parts} has no .parquet or .csv part files"
                problems.append(Problem(name, None, what, 0))
                continue
            kind = kinds.pop()
            paths = tuple(sorted(p for p in parts.iterdir() if p.suffix == kind and p.is_file()))
            candidates.append(TableFiles(name, paths, kind.removeprefix(".")))  # type: ignore[arg-type]
        if len(candidates) > 1:
            given = ", ".join(
                str(c.paths[0]) if len(c.paths) == 1 else f"{name}/" for c in candidates
            )
            problems.append(Problem(name, None, f"given more than once ({given}); keep one", 2))
        elif candidates:
            found[name] = candidates[0]
        elif SPECS[name].required:
            what = f"missing required table ({name}.csv, {name}.parquet or a folder {name}/) in {folder}"
            problems.append(Problem(name, None, what, 0))
    return found, problems


def raw_table(
    con: duckdb.DuckDBPyConnection,
    files: TableFiles,
    *,
    encoding: str | None = None,
    sep: str | None = None,
) -> RawTable:
    """The view ``raw_NAME`` over a table's files; InputFileError for a file that cannot be read
    (naming it)."""
    if files.kind == "parquet":
        return _parquet(con, files)
    return _csv(con, files, encoding, sep)


def arrow_raw_table(con: duckdb.DuckDBPyConnection, name: str, part: pa.Table) -> RawTable:
    """The view ``raw_NAME`` over a part of a table held in Arrow (the rows of some accounts, as
    Spark hands them to a task), numbered by its ``ROW`` column: the rows' positions in the
    whole table, so the checks' examples name the same rows as a check of the files."""
    relation = f"raw_{name}"
    con.register(f"{relation}_arrow", part)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT * FROM {relation}_arrow")
    columns = tuple(c for c in part.column_names if c != ROW)
    return RawTable(
        name, relation, columns, _types(con, relation), True, _examples(con, relation, True)
    )


_PANDAS_INDEX = re.compile(r"^__index_level_\d+__$")  # pandas' index, stored as a column


def _parquet(con: duckdb.DuckDBPyConnection, files: TableFiles) -> RawTable:
    columns = [c for c in parquet_columns(files.paths[0]) if not _PANDAS_INDEX.match(c)]
    # rows are numbered by the reader, unless a column of the data has the reader's name
    numbered = "file_row_number" not in columns
    selected = ", ".join(quote(c) for c in columns)
    offset, parts = 0, []
    for path in files.paths:
        other = [c for c in parquet_columns(path) if not _PANDAS_INDEX.match(c)]
        if other != columns:
            raise InputFileError(
                f"{path} has columns ({', '.join(other)}) unlike {files.paths[0]} "
                f"({', '.join(columns)}): every part of a table needs the same columns"
            )
        if numbered:
            parts.append(
                f"SELECT {selected}, file_row_number + {offset} AS {ROW} "
                f"FROM read_parquet({_literal(path)}, file_row_number = true)"
            )
        else:
            parts.append(f"SELECT {selected} FROM read_parquet({_literal(path)})")
        offset += pq.read_metadata(path).num_rows
    relation = f"raw_{files.name}"
    if len(set(columns)) < len(columns):  # reported by the validator before any query
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT 1 FROM range({min(offset, 1)})"
        )
        return RawTable(
            files.name, relation, tuple(columns), {}, True, _examples(con, relation, True)
        )
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS {' UNION ALL '.join(parts)}")
    return RawTable(
        files.name, relation, tuple(columns), _types(con, relation), numbered,
        _examples(con, relation, numbered),
    )  # fmt: skip


def _csv(
    con: duckdb.DuckDBPyConnection, files: TableFiles, encoding: str | None, sep: str | None
) -> RawTable:
    paths, columns = [], None
    for path in files.paths:
        fmt = sniff_csv(path, encoding, sep)
        read = path
        if fmt.encoding.removesuffix("-sig") not in _DUCKDB_ENCODINGS:
            read = _as_utf8(con, path, fmt.encoding)
        try:
            with open(
                read, newline="", encoding=_DUCKDB_ENCODINGS.get(fmt.encoding, "utf-8")
            ) as file:
                header = next(csv.reader(file, delimiter=fmt.sep), None)
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{path} is not {fmt.encoding} text (byte {exc.object[exc.start : exc.start + 1]!r} "
                "cannot be read): pass the file's encoding with --encoding, e.g. cp1252"
            ) from None
        if header is None:
            raise InputFileError(
                f"{path} has no header line: export the table again (a header and its rows)"
            )
        # as pandas names them: no BOM, "Unnamed: i" for an empty name
        header = [h.removeprefix("\ufeff") or f"Unnamed: {i}" for i, h in enumerate(header)]
        one_column_hint(header, fmt, path)
        if columns is not None and header != columns:
            raise InputFileError(
                f"{path} has columns ({', '.join(header)}) unlike {files.paths[0]} "
                f"({', '.join(columns)}): every part of a table needs the same columns"
            )
        columns = header
        paths.append((path, read, fmt))
        warn_format(fmt, path)
    relation = f"raw_{files.name}"
    if len(set(columns)) < len(columns):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS SELECT 1")
        return RawTable(
            files.name, relation, tuple(columns), {}, False, _examples(con, relation, False)
        )
    typed = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in columns) + "}"
    missing = "[" + ", ".join(_literal(v) for v in CSV_MISSING) + "]"

    def scan(read: Path, fmt: CsvFormat) -> str:
        # a line with fewer fields is padded with missing values, as pandas reads it
        return (
            f"SELECT * FROM read_csv({_literal(read)}, header = true, auto_detect = false, "
            f"columns = {typed}, delim = {_literal(fmt.sep)}, quote = '\"', escape = '\"', "
            f"null_padding = true, nullstr = {missing}, "
            f"encoding = {_literal(_DUCKDB_ENCODINGS.get(fmt.encoding, 'utf-8'))})"
        )

    scans = []
    for path, read, fmt in paths:
        try:  # a malformed line fails here, naming the file, not in the middle of the checks
            # every field read once (a bad byte or line anywhere fails now)
            lengths = ", ".join(f"sum(length({quote(c)}))" for c in columns)
            con.execute(f"SELECT count(*), {lengths} FROM ({scan(read, fmt)})").fetchall()
        except duckdb.Error as exc:
            if not (
                _is_encoding_error(exc)
                and not fmt.encoding_given
                and fmt.encoding.startswith("utf-8")
            ):
                raise InputFileError(_csv_problem(path, fmt, exc)) from None
            # a non-UTF-8 byte after the sniffed sample: read as cp1252, as the pandas reader does
            fmt = CsvFormat("cp1252", fmt.sep, False, fmt.sep_given)
            read = _as_utf8(con, path, fmt.encoding)
            warn_format(fmt, path)
        scans.append(scan(read, fmt))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {relation} AS {' UNION ALL '.join(scans)}")
    return RawTable(
        files.name,
        relation,
        tuple(columns),
        _types(con, relation),
        False,
        _examples(con, relation, False),
    )


def _csv_problem(path: Path, fmt: CsvFormat, exc: duckdb.Error) -> str:
    """What a CSV that DuckDB cannot read means for the user."""
    text = str(exc)
    if _is_encoding_error(exc):
        return (
            f"{path} is not {fmt.encoding} text (a byte cannot be read): pass the file's "
            "encoding with --encoding, e.g. cp1252"
        )
    line = re.search(r"[Ll]ine:? (\d+)", text)
    where = f" (line {line.group(1)})" if line else ""
    return (
        f"{path} is not a readable CSV with {fmt.sep_name} between fields{where}: a line has "
        "more or fewer fields than the header; check the separator (--sep) and the quoting of "
        "that line"
    )


def _is_encoding_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "unicode" in text or "utf-8" in text or "utf8" in text or "encoding" in text


def _as_utf8(con: duckdb.DuckDBPyConnection, path: Path, encoding: str) -> Path:
    """``path`` re-encoded as UTF-8 into the connection's temporary folder (removed when the
    connection closes: :func:`propensity.duck.connect`), a block at a time."""
    folder = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix="utf8-", suffix=".csv")
    decoder = codecs.getincrementaldecoder(encoding)()
    with open(path, "rb") as source, open(handle, "w", encoding="utf-8", newline="") as out:
        while block := source.read(1 << 24):
            out.write(decoder.decode(block))
        out.write(decoder.decode(b"", final=True))
    return Path(name)


def _types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    described = con.execute(f"DESCRIBE {relation}").fetchall()
    return {name: str(kind) for name, kind, *_ in described if name != ROW}


def _examples(con: duckdb.DuckDBPyConnection, relation: str, numbered: bool):
    source = (
        relation if numbered else f"(SELECT row_number() OVER () - 1 AS {ROW}, * FROM {relation})"
    )

    def examples(rows, columns) -> list[dict[str, Any]]:
        if not rows:
            return []
        shown = ", ".join([ROW, *map(quote, columns)])
        found = con.execute(
            f"SELECT {shown} FROM {source} WHERE {ROW} IN ({', '.join(map(str, rows))}) ORDER BY {ROW}"
        ).fetchall()
        return [
            {"row": int(r[0]), **{c: readable(v) for c, v in zip(columns, r[1:], strict=True)}}
            for r in found
        ]

    return examples


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"
