"""Generate a world: simulate chunk by chunk and write the folder atomically as Parquet."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from propensity.data.world.chunk import WorldChunk, simulate_chunk
from propensity.data.world.config import WorldConfig
from propensity.io import follow_umask

WORLD_TABLES = ("accounts", "contacts", "events", "intent", "opportunities")
_TRUTH_TABLES = ("truth_accounts", "truth_conversion")
ABSENT_WHEN_EMPTY = ("events", "intent")  # intent_coverage 0: a world without an intent feed


def iter_world_chunks(config: WorldConfig) -> Iterator[WorldChunk]:
    """Simulate the world chunk by chunk (independent random stream per chunk)."""
    first_contact = 0
    for chunk_index, first in enumerate(range(0, config.n_accounts, config.chunk_accounts)):
        size = min(config.chunk_accounts, config.n_accounts - first)
        chunk = simulate_chunk(config, chunk_index, first, size, first_contact)
        first_contact += chunk.contacts.num_rows
        yield chunk


def generate_world(
    config: WorldConfig,
    out: Path | str,
    *,
    overwrite: bool = False,
    on_chunk: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a world folder (five contract tables as Parquet + ``truth/``) atomically; a table
    of :data:`ABSENT_WHEN_EMPTY` that has no rows (``intent_coverage: 0``) is left out, as a
    company without the feed has no file for it.

    The folder is assembled in a temporary sibling and renamed into place at the end, so an
    interrupted run never leaves a half-written world. ``on_chunk(done, total)`` reports progress.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(
            f"world folder {out} already exists (pass overwrite=True / --overwrite to replace it)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "truth").mkdir()
        writers: dict[str, pq.ParquetWriter] = {}
        total = -(-config.n_accounts // config.chunk_accounts)
        for done, chunk in enumerate(iter_world_chunks(config), start=1):
            for name in (*WORLD_TABLES, *_TRUTH_TABLES):
                table: pa.Table = getattr(chunk, name)
                # dictionaries differ per chunk: write plain strings so chunks share one schema
                table = table.cast(pa.schema([_plain(f) for f in table.schema]))
                if name not in writers:
                    writers[name] = pq.ParquetWriter(
                        _table_path(staging, name), table.schema, compression="zstd"
                    )
                writers[name].write_table(table, row_group_size=1_000_000)
            if on_chunk:
                on_chunk(done, total)
        for writer in writers.values():
            writer.close()
        for name in ABSENT_WHEN_EMPTY:
            if pq.ParquetFile(_table_path(staging, name)).metadata.num_rows == 0:
                # a company without the data has no file for it (the contract refuses an empty one)
                _table_path(staging, name).unlink()
        (staging / "truth" / "world_config.json").write_text(
            json.dumps(config.model_dump(mode="json"), indent=2) + "\n"
        )
        follow_umask(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _table_path(folder: Path, name: str) -> Path:
    if name.startswith("truth_"):
        return folder / "truth" / f"{name.removeprefix('truth_')}.parquet"
    return folder / f"{name}.parquet"


def _plain(field: pa.Field) -> pa.Field:
    if pa.types.is_dictionary(field.type):
        return pa.field(field.name, field.type.value_type, nullable=True)
    return field
