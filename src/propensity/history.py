"""The score history: every scoring of the prospects (``propensity score`` / ``export``) kept,
so that months later the scores can be set against what became of the accounts.

* :func:`history_batch` (pure) turns one scoring into a :class:`HistoryBatch`: one row per
  scored account (both scores, tiers, priority, reasons, the hand-made scorecard's points on the
  same features, model versions), the scoring's facts (as_of, versions, the spine settings that
  define its label, how fresh each table was at ``as_of``) and the share of the scored rows in
  each reference bin of each feature (:mod:`propensity.drift`).
* :func:`record` appends a batch to the store, an embedded DuckDB file
  (:func:`history_path`: ``--history``, else ``$PROPENSITY_HISTORY``, else
  ``<workdir>/models/history.duckdb``). A batch is keyed by (as_of, model version): recording
  the same scoring again changes nothing. The rows are inserted in one transaction, the batch
  row last, so a killed process leaves no partial batch; DuckDB lets one process write a file
  at a time, so a second writer waits up to ``lock_seconds`` and then gets a
  :class:`HistoryError` naming the file (never a corrupt file).
* :func:`read_history` reads the store back (read-only; "no history at PATH" when there is none).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from propensity import faults, settings
from propensity.data.specs import Tables
from propensity.model.scorecard import Scorecard
from propensity.outputs.export import ScoringConfig, priority
from propensity.scoring import AccountModel

HISTORY_ENV = "PROPENSITY_HISTORY"
LOCK_SECONDS = 60.0

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS batches (
        batch_id VARCHAR PRIMARY KEY, as_of DATE NOT NULL, model_version VARCHAR NOT NULL,
        fit_version VARCHAR, conversion_version VARCHAR, scored_at TIMESTAMP NOT NULL,
        source VARCHAR, rows INTEGER NOT NULL, horizon_days INTEGER NOT NULL,
        spine_json VARCHAR NOT NULL, freshness_json VARCHAR NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS scores (
        batch_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL, as_of DATE NOT NULL,
        fit_probability DOUBLE, fit_score INTEGER, fit_tier VARCHAR,
        conversion_probability DOUBLE, conversion_score INTEGER, conversion_tier VARCHAR,
        priority VARCHAR, scorecard_points DOUBLE,
        fit_reasons VARCHAR, conversion_reasons VARCHAR, model_version VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS feature_shares (
        batch_id VARCHAR NOT NULL, head VARCHAR NOT NULL, feature VARCHAR NOT NULL,
        family VARCHAR, field VARCHAR, bin INTEGER NOT NULL, bin_label VARCHAR,
        reference_share DOUBLE NOT NULL, share DOUBLE NOT NULL, normal_psi DOUBLE)""",
)
SCORE_COLUMNS = (
    "batch_id", "account_id", "as_of", "fit_probability", "fit_score", "fit_tier",
    "conversion_probability", "conversion_score", "conversion_tier", "priority",
    "scorecard_points", "fit_reasons", "conversion_reasons", "model_version",
)  # fmt: skip
SHARE_COLUMNS = (
    "batch_id", "head", "feature", "family", "field", "bin", "bin_label", "reference_share", "share",
    "normal_psi",
)  # fmt: skip
# the column that dates each table's rows, as the features read them
FRESHNESS_COLUMNS = {
    "events": "ts",
    "intent": "week",
    "opportunities": "created_at",
    "contacts": "created_at",
}


class HistoryError(ValueError):
    """A history store that cannot be used: none there, busy, or not a history file."""


def history_path(explicit: Path | str | None = None) -> Path:
    """The history store: explicit > ``$PROPENSITY_HISTORY`` > <workdir>/models/history.duckdb."""
    if explicit:
        return Path(explicit)
    if os.environ.get(HISTORY_ENV):
        return Path(os.environ[HISTORY_ENV])
    return settings.workdir() / "models" / "history.duckdb"


@dataclass
class HistoryBatch:
    """One scoring as the history keeps it (see the module docstring)."""

    batch_id: str
    facts: dict
    scores: pd.DataFrame  # SCORE_COLUMNS
    feature_shares: pd.DataFrame  # SHARE_COLUMNS


def merge_freshness(parts: list[dict[str, int | None]]) -> dict[str, int | None]:
    """The :func:`freshness` of tables held in parts (some accounts each): per table, the
    freshest part's."""
    merged: dict[str, int | None] = {}
    for part in parts:
        for name, days in part.items():
            seen = merged.get(name)
            merged[name] = days if seen is None else (seen if days is None else min(seen, days))
    return merged


def freshness(tables: Tables, as_of: pd.Timestamp) -> dict[str, int | None]:
    """Per table, days between ``as_of`` and its newest row known before it (None: no such row;
    tables absent from the data are left out)."""
    out = {}
    for name, column in FRESHNESS_COLUMNS.items():
        table = tables.get(name)
        if table is None or column not in table:
            continue
        # a week is delivered when it has ended; other rows count from their time on, and
        # features use rows strictly before as_of
        latest = tables.latest_before(name, column, as_of, delay_days=7 if name == "intent" else 0)
        out[name] = None if latest is None else int((as_of - latest).days)
    return out


def history_batch(
    matrix: pd.DataFrame,
    scored: pd.DataFrame,
    model: AccountModel,
    freshness_days: dict[str, int | None],
    as_of: pd.Timestamp,
    *,
    scorecard: Scorecard,
    config: ScoringConfig,
    source: str = "",
) -> HistoryBatch:
    """One scoring at ``as_of`` (``scored`` from ``model.score_features(matrix)``, possibly no
    rows; ``freshness_days``: :func:`freshness` of the tables) as a history batch."""
    as_of = pd.Timestamp(as_of)
    batch_id = f"{as_of.date()}|{model.version}"
    scores = pd.DataFrame(
        {
            "batch_id": batch_id,
            "account_id": scored["account_id"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(scored["as_of"]).dt.date.to_numpy(),
            "priority": priority(scored["fit_tier"], scored["conversion_tier"], config).to_numpy(),
            "scorecard_points": scorecard.score(matrix).to_numpy(dtype=float),
            "model_version": scored["model_version"].to_numpy(),
        }
    )
    for head in ("fit", "conversion"):
        # the worded reasons; their JSON (values, contributions) would quadruple the store
        for column in ("probability", "score", "tier", "reasons"):
            name = f"{head}_{column}"
            scores[name] = scored[name].to_numpy() if name in scored else None
    shares = []
    for head, scorer in model.scorers.items():
        for bins in (scorer.reference or {}).values():
            now = bins.shares_of(matrix[bins.feature])
            shares.append(
                pd.DataFrame(
                    {
                        "batch_id": batch_id,
                        "head": head,
                        "feature": bins.feature,
                        "family": bins.family,
                        "field": bins.field,
                        "bin": np.arange(len(now)),
                        "bin_label": bins.labels,
                        "reference_share": bins.shares,
                        "share": now,
                        "normal_psi": bins.normal_psi,
                    }
                )
            )
    feature_shares = (
        pd.concat(shares, ignore_index=True) if shares else pd.DataFrame(columns=SHARE_COLUMNS)
    )
    facts = {
        "batch_id": batch_id,
        "as_of": as_of.date(),
        "model_version": model.version,
        "fit_version": model.scorers["fit"].version if "fit" in model.scorers else None,
        "conversion_version": model.scorers["conversion"].version
        if "conversion" in model.scorers
        else None,
        "scored_at": datetime.now(UTC).replace(tzinfo=None),
        "source": source,
        "rows": len(scores),
        "horizon_days": model.spine.horizon_days,
        "spine_json": json.dumps(model.spine.model_dump(mode="json")),
        "freshness_json": json.dumps(freshness_days),
    }
    return HistoryBatch(batch_id, facts, scores[list(SCORE_COLUMNS)], feature_shares)


def _connect(path: Path, read_only: bool, lock_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + lock_seconds
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise HistoryError(f"history store {path} cannot be opened: {exc}") from None
            if time.monotonic() > deadline:
                raise HistoryError(
                    f"history store {path} is in use by another process and stayed busy for "
                    f"{lock_seconds:.0f} s; rerun when it has finished"
                ) from None
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise HistoryError(
                f"{path} is not a readable history store ({type(exc).__name__}: {exc}); "
                "move it away and score again, or point --history elsewhere"
            ) from None


def record(batch: HistoryBatch, path: Path | str, lock_seconds: float = LOCK_SECONDS) -> bool:
    """Append ``batch`` to the store at ``path`` (created when missing). False when a batch with
    the same (as_of, model version) is already there: the history is then left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, lock_seconds=lock_seconds)
    try:
        for statement in SCHEMA:
            con.execute(statement)
        con.execute("BEGIN TRANSACTION")
        if con.execute("SELECT 1 FROM batches WHERE batch_id = ?", [batch.batch_id]).fetchone():
            con.execute("ROLLBACK")
            return False
        con.register("new_scores", batch.scores)
        con.execute(
            f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) "
            f"SELECT {', '.join(SCORE_COLUMNS)} FROM new_scores"
        )
        if len(batch.feature_shares):
            con.register("new_shares", batch.feature_shares)
            con.execute(
                f"INSERT INTO feature_shares ({', '.join(SHARE_COLUMNS)}) "
                f"SELECT {', '.join(SHARE_COLUMNS)} FROM new_shares"
            )
        facts = batch.facts
        con.execute(
            f"INSERT INTO batches ({', '.join(facts)}) VALUES ({', '.join('?' for _ in facts)})",
            list(facts.values()),
        )
        faults.pause_point("history.inserting")
        con.execute("COMMIT")
        return True
    finally:
        con.close()


@dataclass
class History:
    """The store's three tables as frames (as_of as Timestamps)."""

    batches: pd.DataFrame
    scores: pd.DataFrame
    feature_shares: pd.DataFrame


def read_history(path: Path | str, lock_seconds: float = LOCK_SECONDS) -> History:
    """Everything in the store at ``path``; :class:`HistoryError` when there is none."""
    path = Path(path)
    if not path.is_file():
        raise HistoryError(
            f"no history at {path}: `propensity score` and `propensity export` record one "
            "(or point --history / $PROPENSITY_HISTORY at it)"
        )
    con = _connect(path, read_only=True, lock_seconds=lock_seconds)
    try:
        frames = {}
        for table in ("batches", "scores", "feature_shares"):
            try:
                frames[table] = con.execute(f"SELECT * FROM {table}").df()
            except duckdb.CatalogException:
                raise HistoryError(f"{path} is a DuckDB file but not a history store") from None
    finally:
        con.close()
    for frame in (frames["batches"], frames["scores"]):
        frame["as_of"] = pd.to_datetime(frame["as_of"])
    frames["batches"] = frames["batches"].sort_values(["as_of", "scored_at"], ignore_index=True)
    return History(frames["batches"], frames["scores"], frames["feature_shares"])
