"""File output and input at the edge: atomic writes (a temp file in the target folder, then
os.replace) and the one CSV-or-Parquet switch (:func:`read_frame`, :func:`write_frame`).

Writing: an interrupted or failed write never leaves a half-written file under the final name,
nor a temporary file; the file gets the permissions the umask gives (0644 under the usual 022).
A write that fails for a reason the user can act on (a full disk, a file-size limit, no
permission) is an :class:`OutputError` naming the file and saying that nothing was replaced.

Reading a CSV (:func:`read_csv`, the one CSV reader of the toolkit):

* encoding: the ``encoding`` given, else detected: UTF-8 (a byte-order mark is skipped; a UTF-16
  mark means UTF-16), and when the file is not valid UTF-8, **cp1252** (Windows' Western
  encoding, what Excel writes; it reads Latin-1 text the same except for rarely used control
  bytes), and when even cp1252 fails, **latin-1** (every byte is a character). A fallback is
  announced with a :class:`CsvFormatWarning`.
* separator: the ``sep`` given, else sniffed from the first 64 KiB: of ``,`` ``;`` tab ``|``,
  the one that splits the header into the most fields while at least 90 % of the sampled rows
  have as many fields (``,`` when none does). A separator other than ``,`` is announced with a
  :class:`CsvFormatWarning`. Sniffing reads only the sample, so it costs the same on any size.
* an empty file, a binary file (a spreadsheet, Parquet or gzip file named .csv), a malformed
  row, and a single column whose header holds another separator are :class:`InputFileError`\\ s
  naming the file and what to do.

A Parquet file that is truncated or not Parquet at all is an :class:`InputFileError` too.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = [
    "CSV_ENCODINGS",
    "CSV_SEPARATORS",
    "CsvFormat",
    "CsvFormatWarning",
    "InputFileError",
    "OutputError",
    "atomic_path",
    "atomic_paths",
    "check_encoding",
    "check_frame_suffix",
    "check_separator",
    "follow_umask",
    "frame_writer",
    "neutralise_formulas",
    "read_csv",
    "read_frame",
    "read_parquet",
    "sniff_csv",
    "write_atomic",
    "write_frame",
    "write_parquet",
    "write_text",
]

# --------------------------------------------------------------------------------------------
# writing


class OutputError(OSError):
    """A file could not be written (disk full, size limit, permission); nothing was replaced."""

    def __str__(self) -> str:
        return str(self.strerror)


_WRITE_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write to another disk",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EFBIG: "the file is larger than this system allows (a file-size limit): write "
    "elsewhere or raise the limit",
    errno.EACCES: "no permission to write there: choose another path",
    errno.EPERM: "no permission to write there: choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
}


def _output_error(paths: list[Path], exc: OSError) -> OutputError:
    # pyarrow raises OSError without errno ("... error: File too large"): match on the text too
    code = exc.errno
    if code is None:
        text = str(exc).lower()
        hints = {"no space": errno.ENOSPC, "too large": errno.EFBIG, "permission": errno.EACCES}
        code = next((c for h, c in hints.items() if h in text), None)
    reason = os.strerror(code) if code is not None else str(exc)
    advice = _WRITE_ADVICE.get(code, "check the path and the disk")
    what = " and ".join([str(paths[0]), *(p.name for p in paths[1:])])
    previous = "the previous file is unchanged" if len(paths) == 1 else "no file was replaced"
    return OutputError(code, f"cannot write {what} ({reason}): {advice}; {previous}", str(paths[0]))


def follow_umask(path: Path | str) -> Path:
    """Give ``path`` the mode a plain ``open()`` or ``mkdir()`` would (0644 / 0755 under the
    usual umask 022): temporary files and folders (``tempfile.mkstemp`` / ``mkdtemp``) are
    created for their owner only, and keep that mode when renamed into place."""
    mode = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, mode & ~_umask())
    return Path(path)


@contextmanager
def atomic_paths(*paths: Path | str) -> Iterator[list[Path]]:
    """Temporary paths next to ``paths``; when the block succeeds every one is moved into place
    (the first last), else all are deleted and no file is replaced.

    Results follow the umask (0644 under 022). An OSError while writing (disk full, file too
    large, no permission) becomes an :class:`OutputError` naming the file(s).
    """
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            os.close(fd)
            temps.append(Path(tmp))
        yield list(temps)
        for tmp in temps:
            follow_umask(tmp)
        for tmp, target in reversed(list(zip(temps, targets, strict=True))):
            os.replace(tmp, target)
    except BaseException as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise _output_error(targets, exc) from exc
        raise


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it into place, else delete it
    (see :func:`atomic_paths`)."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (os.umask(0) would
    briefly give a thread creating a file at that moment a world-writable mode)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_parquet(frame: pd.DataFrame, path: Path | str) -> Path:
    return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(text: str, path: Path | str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


FRAME_SUFFIXES = (".csv", ".parquet")


def check_frame_suffix(path: Path | str, what: str = "file") -> Path:
    """``path`` if it ends in .csv or .parquet, else a ValueError naming it."""
    path = Path(path)
    if path.suffix.lower() not in FRAME_SUFFIXES:
        raise ValueError(f"{what} must end in .csv or .parquet, got {path.name}")
    return path


def write_frame(frame: pd.DataFrame | Iterable[pd.DataFrame], path: Path | str) -> Path:
    """Write ``frame`` (or its parts, one after the other) as CSV or Parquet by the suffix of
    ``path``, atomically."""
    path = check_frame_suffix(path)
    return write_atomic(path, frame_writer(frame, path))


def frame_writer(
    frame: pd.DataFrame | Iterable[pd.DataFrame], path: Path | str
) -> Callable[[Path], None]:
    """A function writing ``frame`` to a given (temporary) path in the format ``path`` names.

    ``frame`` may be an iterable of parts with the same columns (the first part's column
    types hold for all): they are written as they come, so only one part is in memory at a
    time (a Parquet row group per part; a CSV header once)."""
    parquet = Path(path).suffix.lower() == ".parquet"
    if isinstance(frame, pd.DataFrame):
        if parquet:
            return lambda tmp: frame.to_parquet(tmp, index=False)
        return lambda tmp: frame.to_csv(tmp, index=False)
    return lambda tmp: _write_parts(frame, tmp, parquet)


def _write_parts(parts: Iterable[pd.DataFrame], tmp: Path, parquet: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, schema, columns = None, None, None
    try:
        for part in parts:
            if columns is None:
                columns = list(part.columns)
                if parquet:
                    schema = pa.Schema.from_pandas(part, preserve_index=False)
                    writer = pq.ParquetWriter(tmp, schema)
                else:
                    part.to_csv(tmp, index=False)
                    continue
            elif list(part.columns) != columns:
                raise ValueError(f"a part has columns {list(part.columns)}, not {columns}")
            if parquet:
                table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
                writer.write_table(table)
            else:
                part.to_csv(tmp, mode="a", header=False, index=False)
        if columns is None:
            raise ValueError("no parts to write")
    finally:
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------------------------
# reading


class InputFileError(ValueError):
    """A file that cannot be read as given; the message names it and says what to do."""


class CsvFormatWarning(UserWarning):
    """A CSV read with a detected encoding other than UTF-8 or a separator other than ``,``."""


CSV_ENCODINGS = ("utf-8", "cp1252", "latin-1")  # tried in this order when none is given
CSV_SEPARATORS = (",", ";", "\t", "|")  # sniffed in this order of preference
SNIFF_BYTES = 64 * 1024
_SNIFF_ROWS = 200
_CONSISTENT_SHARE = 0.9
_SEPARATOR_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?): save it as CSV (UTF-8)",
    b"PAR1": "a Parquet file: name it .parquet",
    b"\x1f\x8b": "gzip-compressed: decompress it first",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook: save it as CSV (UTF-8)",
}


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is read: its text encoding and field separator, and whether each was
    given (else detected)."""

    encoding: str
    sep: str
    encoding_given: bool = False
    sep_given: bool = False

    @property
    def sep_name(self) -> str:
        return _SEPARATOR_NAMES.get(self.sep, repr(self.sep))


def check_encoding(encoding: str | None, flag: str = "--encoding") -> str | None:
    """The canonical codec name, or a ValueError naming ``flag`` for an unknown encoding."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"{flag} {encoding!r} is not a known text encoding (e.g. utf-8, cp1252, latin-1)"
        ) from None


def check_separator(sep: str | None, flag: str = "--sep") -> str | None:
    """One separator character (``\\t``, ``tab`` and ``TAB`` mean a tab), or a ValueError."""
    if sep is None:
        return None
    sep = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(sep, sep)
    if len(sep) != 1 or sep in "\"'\r\n":
        raise ValueError(f"{flag} must be one character such as ',' ';' '|' or tab, got {sep!r}")
    return sep


def _sample(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(SNIFF_BYTES)


def _binary_kind(sample: bytes) -> str | None:
    """What a binary file is, when the sample says it is not text (None for text)."""
    for magic, kind in _MAGIC.items():
        if sample.startswith(magic):
            return kind
    if b"\x00" in sample:
        return "binary data, not text: export the table as CSV (UTF-8)"
    return None


def _guess_encoding(sample: bytes) -> str:
    """UTF-16 by its mark, else UTF-8 when the sample decodes as UTF-8, else cp1252."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252" if _decodes(sample, "cp1252") else "latin-1"
    return "utf-8"


def _decodes(sample: bytes, encoding: str) -> bool:
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _guess_separator(text: str) -> str:
    """The candidate that splits the header into most fields with consistent rows, else ','."""
    best, best_fields = ",", 1
    for sep in CSV_SEPARATORS:
        try:
            rows = []
            for row in csv.reader(io.StringIO(text), delimiter=sep):
                if row:
                    rows.append(len(row))
                if len(rows) > _SNIFF_ROWS:
                    break
        except csv.Error:
            continue
        if not rows or rows[0] < 2:
            continue
        body = rows[1:]
        consistent = sum(n == rows[0] for n in body) / len(body) if body else 1.0
        if consistent >= _CONSISTENT_SHARE and rows[0] > best_fields:
            best, best_fields = sep, rows[0]
    return best


def sniff_csv(path: Path | str, encoding: str | None = None, sep: str | None = None) -> CsvFormat:
    """The encoding and separator to read ``path`` with (see the module docstring); an
    :class:`InputFileError` for an empty or binary file."""
    path = Path(path)
    sample = _sample(path)
    if not sample.strip():
        raise InputFileError(f"{path} is empty: export the table again (a header and its rows)")
    kind = None if encoding and "16" in encoding else _binary_kind(sample)
    if kind and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputFileError(f"{path} is not a CSV file: it is {kind}")
    guessed = encoding or _guess_encoding(sample)
    if guessed == "utf-8" and sample.startswith(codecs.BOM_UTF8):
        guessed = "utf-8-sig"
    if sep is None:
        text = sample.decode(guessed, errors="replace")
        if len(sample) == SNIFF_BYTES and "\n" in text:  # the last line may be cut: drop it
            text = text[: text.rindex("\n")]
        sep = _guess_separator(text)
        return CsvFormat(guessed, sep, encoding is not None, False)
    return CsvFormat(guessed, sep, encoding is not None, True)


def one_column_hint(columns: list, fmt: CsvFormat, path: Path) -> None:
    """InputFileError when a file read as one column has another separator in its header."""
    if len(columns) != 1:
        return
    header = str(columns[0])
    others = [s for s in CSV_SEPARATORS if s != fmt.sep and s in header]
    if others:
        name = _SEPARATOR_NAMES[others[0]]
        flag = r"\t" if others[0] == "\t" else others[0]
        raise InputFileError(
            f"{path} was read as a single column named {header[:60]!r}: its fields look "
            f"separated by {name}, not {fmt.sep_name}; pass --sep '{flag}'"
        )


def read_csv(
    path: Path | str, *, encoding: str | None = None, sep: str | None = None, **options
) -> pd.DataFrame:
    """The one CSV reader: ``path`` with the given or detected encoding and separator (see the
    module docstring); ``options`` go to :func:`pandas.read_csv`. Problems are
    :class:`InputFileError`\\ s naming the file."""
    path = Path(path)
    fmt = sniff_csv(path, check_encoding(encoding), check_separator(sep))
    tried = [fmt.encoding]
    if not fmt.encoding_given and fmt.encoding in ("utf-8", "utf-8-sig", "cp1252"):
        # a non-UTF-8 byte after the sniffed sample: fall back as for one inside it
        tried += list(CSV_ENCODINGS[CSV_ENCODINGS.index(fmt.encoding.removesuffix("-sig")) + 1 :])
    for position, candidate in enumerate(tried):
        try:
            frame = pd.read_csv(path, sep=fmt.sep, encoding=candidate, **options)
            break
        except UnicodeDecodeError as exc:
            if position + 1 < len(tried):
                continue
            raise InputFileError(
                f"{path} is not {candidate} text (byte {exc.object[exc.start : exc.start + 1]!r} "
                f"cannot be read): pass the file's encoding with --encoding, e.g. cp1252"
            ) from None
        except pd.errors.EmptyDataError:
            raise InputFileError(
                f"{path} has no header line: export the table again (a header and its rows)"
            ) from None
        except pd.errors.ParserError as exc:
            detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
            raise InputFileError(
                f"{path} is not a readable CSV with {fmt.sep_name} between fields ({detail}): "
                "check the separator (--sep) and the quoting of that line"
            ) from None
    fmt = CsvFormat(candidate, fmt.sep, fmt.encoding_given, fmt.sep_given)
    one_column_hint(list(frame.columns), fmt, path)
    warn_format(fmt, path)
    return frame


def warn_format(fmt: CsvFormat, path: Path) -> None:
    """A CsvFormatWarning when the encoding or the separator was detected and is not the usual."""
    notes = []
    if not fmt.encoding_given and fmt.encoding not in ("utf-8", "utf-8-sig"):
        notes.append(f"not UTF-8 text, read as {fmt.encoding} (pass --encoding to choose)")
    if not fmt.sep_given and fmt.sep != ",":
        notes.append(f"fields separated by {fmt.sep_name} (detected; pass --sep to choose)")
    if notes:
        warnings.warn(f"{path}: {'; '.join(notes)}", CsvFormatWarning, stacklevel=3)


def read_parquet(path: Path | str) -> pd.DataFrame:
    """A Parquet file as pandas reads it (through pyarrow directly: about three times faster on
    large text columns); a truncated or non-Parquet file is an :class:`InputFileError`."""
    import pyarrow.parquet as pq

    with _parquet_errors(path):
        return pq.read_table(path).to_pandas()


def parquet_columns(path: Path | str) -> list[str]:
    """The column names of a Parquet file (duplicates included), read from its footer; a
    truncated or non-Parquet file is an :class:`InputFileError`."""
    import pyarrow.parquet as pq

    with _parquet_errors(path):
        return list(pq.read_schema(path).names)


@contextmanager
def _parquet_errors(path: Path | str) -> Iterator[None]:
    """A file pyarrow cannot read as Parquet: an InputFileError saying what it is instead."""
    import pyarrow as pa

    path = Path(path)
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        with open(path, "rb") as file:
            head = file.read(4)
        if not head:
            what = "is empty (0 bytes)"
        elif head != b"PAR1":
            what = "is not a Parquet file (no Parquet header)"
        else:
            what = "is truncated or damaged"
        reason = str(exc).split(": ", 1)[-1].split(". ")[0]
        raise InputFileError(f"{path} {what} ({reason}): write or export it again") from None


def read_frame(
    path: Path | str, *, encoding: str | None = None, sep: str | None = None, **csv_options
) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (the one suffix switch for reading); a CSV through
    :func:`read_csv` (encoding and separator given or detected)."""
    path = check_frame_suffix(path)
    if path.suffix.lower() == ".parquet":
        return read_parquet(path)
    return read_csv(path, encoding=encoding, sep=sep, **csv_options)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells a spreadsheet would evaluate (=, +, -, @, tab, CR) with a quote."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            values = out[column]
            risky = values.astype("str").str.startswith(FORMULA_PREFIXES) & values.notna()
            out.loc[risky, column] = "'" + values[risky].astype("str")
    return out
