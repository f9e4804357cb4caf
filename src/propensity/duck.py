"""The one way the toolkit opens DuckDB: in memory, times in UTC, memory bounded, spills removed.

Every DuckDB connection of the pipeline (parsing, validation, the feature build) comes from
:func:`connect`, so the rules hold everywhere: the session time zone is UTC (naive timestamp
text is taken as UTC, as the contract says), memory is capped (default: half of the machine's
memory, since the process also holds what DuckDB returns) and a query that needs more spills to
a temporary folder, by default a new one in the system's temporary directory that is removed on
exit (never DuckDB's own default, ``.tmp`` in the working directory). A given temporary
folder gets a new subfolder per connection, removed on exit; the folders of processes that were
killed before they could remove theirs are removed by the next connection.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

__all__ = [
    "SIZE_PATTERN",
    "check_size",
    "connect",
    "machine_memory_share",
    "remove_stale_spills",
    "scalar",
]

SPILL_PREFIX = "propensity-duckdb-"  # then the pid of the process that made the folder

# a DuckDB size: a number and a unit, e.g. "4GB", "512 MiB"
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$"


def check_size(value: str | None, what: str) -> str | None:
    """``value`` stripped if it is a DuckDB size (None passes); ValueError naming ``what``."""
    if value is None:
        return None
    if not re.match(SIZE_PATTERN, value, flags=re.IGNORECASE):
        raise ValueError(
            f"{what} must be a size such as '4GB' or '512MiB' (units B, KB, MB, GB, TB, KiB, "
            f"MiB, GiB, TiB), got {value!r}"
        )
    return value.strip()


def machine_memory_share(share: float) -> str | None:
    """``share`` of the machine's physical memory as a DuckDB size (None where unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return f"{int(total * share) // 2**20}MiB"


@contextmanager
def connect(
    *,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    threads: int | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection (see the module docstring), closed on exit."""
    if temp_directory is not None:
        os.makedirs(temp_directory, exist_ok=True)
    base = Path(temp_directory or tempfile.gettempdir())
    remove_stale_spills(base)
    # a folder of this connection's own (inside the one given): jobs sharing a spill folder do
    # not meet, and everything spilled is removed on exit. DuckDB creates it only when it
    # spills, so a job that never spills (and is killed) leaves nothing behind.
    made = str(base / f"{SPILL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    settings: dict[str, str | int] = {"temp_directory": made}
    memory_limit = memory_limit or machine_memory_share(0.5)
    if memory_limit:
        settings["memory_limit"] = memory_limit.strip()
    if threads:
        settings["threads"] = int(threads)
    try:
        con = duckdb.connect(config=settings)
    except BaseException:
        shutil.rmtree(made, ignore_errors=True)
        raise
    try:
        # after connecting: the time zone needs the (built-in) ICU extension loaded first
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()
        shutil.rmtree(made, ignore_errors=True)


def remove_stale_spills(base: Path) -> list[Path]:
    """Remove the spill folders in ``base`` left by processes that no longer run (a job killed
    with ``kill -9`` cannot remove its own); returns what was removed."""
    removed = []
    for folder in base.glob(f"{SPILL_PREFIX}*-*"):
        pid = folder.name[len(SPILL_PREFIX) :].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True


def scalar(con: duckdb.DuckDBPyConnection, query: str, parameters: list | None = None):
    """The one value a query returns (the result is drained, so the connection is free)."""
    rows = con.execute(query, parameters or []).fetchall()
    return rows[0][0] if rows else None
