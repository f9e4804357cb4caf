"""File output and input at the edge: atomic writes (a temp file in the target folder, then
os.replace) and the one CSV-or-Parquet switch (:func:`read_frame`, :func:`write_frame`).

An interrupted write never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it into place, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates the file for its owner only; the result gets the usual permissions
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
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


def read_frame(path: Path | str, **csv_options) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (the one suffix switch for reading)."""
    path = check_frame_suffix(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, **csv_options)


def write_frame(frame: pd.DataFrame, path: Path | str) -> Path:
    """Write ``frame`` as CSV or Parquet by the suffix of ``path``, atomically."""
    path = check_frame_suffix(path)
    if path.suffix.lower() == ".parquet":
        return write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


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
