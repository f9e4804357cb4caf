"""The library calls behind each command: read the inputs, run the recipe, write the outputs.

Each function is one user action (train on a data folder, train on a table, tune, score,
export a target list, write a report) and returns what it did, so the CLI only prints and a
notebook gets the same objects. File I/O and MLflow live here, at the edge; the stages they
call are pure functions over DataFrames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from propensity import settings
from propensity.data.contract import Tables, load_tables
from propensity.data.table import read_table
from propensity.data.world.truth import read_truth
from propensity.features.matrix import FeatureSet, build_features
from propensity.io import check_frame_suffix, write_frame, write_parquet, write_text
from propensity.model.config import ModelConfig, TableConfig
from propensity.model.scorecard import Scorecard
from propensity.outputs.export import (
    ScoringConfig,
    neutralise_formulas,
    ranked_list,
    read_export,
    with_changes,
    write_export,
)
from propensity.outputs.export import (
    batch_tiers as batch_tier_scores,
)
from propensity.outputs.report import ReportInput, build_report
from propensity.runs.account import data_fingerprint, labelled_features, train_account_model
from propensity.runs.folder import (
    RunFolderError,
    RunResult,
    check_run_target,
    load_scoring_model,
    read_run,
    write_run,
)
from propensity.runs.table import table_fingerprint, train_table_model
from propensity.runs.tune import TuningResult, tune_head, with_best_params
from propensity.scoring import AccountModel, TableModel, score_snapshot, snapshot_features
from propensity.spine import build_labels, build_spine, check_as_of, data_end


@dataclass
class TrainedRun:
    """A run written to its folder (and logged to MLflow when tracked)."""

    result: RunResult
    run_dir: Path
    report: Path | None = None
    run_id: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None
    challenger: bool = False  # the versions hold the ``challenger`` alias
    blocked: dict[str, list[str]] = field(default_factory=dict)  # head -> problems
    forced: str | None = None


# MLflow takes seconds to import: commands that do not track (or read the registry) skip it
def _logged(
    result: RunResult,
    out: Path,
    report: Path,
    data: dict[str, Any],
    track: bool,
    uri: str | None,
    force_reason: str | None,
) -> TrainedRun:
    if not track:
        return TrainedRun(result, out, report)
    from propensity.store import tracking_uri
    from propensity.tracking import log_run

    logged = log_run(result, out, data, uri, force_reason)
    return TrainedRun(
        result, out, report, logged.run_id, logged.versions, tracking_uri(uri),
        logged.challenger, logged.blocked, logged.forced,
    )  # fmt: skip


def train_accounts(
    data_dir: Path | str,
    out: Path | str,
    config: ModelConfig,
    scorecard: Scorecard,
    *,
    track: bool = True,
    uri: str | None = None,
    progress=None,
    tables: Tables | None = None,
    overwrite: bool = False,
    force_reason: str | None = None,
) -> TrainedRun:
    """Train both heads on a contract data folder, write the run folder and its report (with
    the prospects at the end of the data scored), log and register in MLflow (as challenger
    unless a shipped scorer is degenerate and no ``force_reason`` is given). An existing
    ``out`` is refused before anything is trained, unless ``overwrite``."""
    data_dir, out = Path(data_dir), Path(out)
    check_run_target(out, overwrite)
    if track:  # a dead server or a wrong store is found before minutes of training
        settings.check_store(settings.tracking_uri(uri), create=True)
    tables = tables if tables is not None else load_tables(data_dir)
    result = train_account_model(
        tables, config, scorecard, read_truth(data_dir), progress, name=data_dir.name
    )
    write_run(
        result,
        out,
        overwrite,
        extra=lambda run, staging: write_report(
            run, staging / "report.html", tables, result.scoring_model
        ),
    )
    report = out / "report.html"
    data = {"source": str(data_dir), **data_fingerprint(tables)}
    return _logged(result, out, report, data, track, uri, force_reason)


def train_table(
    frame: pd.DataFrame,
    config: TableConfig,
    out: Path | str,
    *,
    name: str = "table",
    source: str = "",
    track: bool = True,
    uri: str | None = None,
    progress=None,
    overwrite: bool = False,
    force_reason: str | None = None,
) -> TrainedRun:
    """Table mode end to end: the recipe, the run folder and its report, MLflow (registered as
    :func:`train_accounts` says). An existing ``out`` is refused before anything is trained,
    unless ``overwrite``."""
    out = Path(out)
    check_run_target(out, overwrite)
    if track:
        settings.check_store(settings.tracking_uri(uri), create=True)
    result = train_table_model(frame, config, name, progress)
    write_run(
        result,
        out,
        overwrite,
        extra=lambda run, staging: write_text(build_report(run), staging / "report.html"),
    )
    report = out / "report.html"
    data = {"source": source, **table_fingerprint(frame)}
    return _logged(result, out, report, data, track, uri, force_reason)


def write_report(
    run: ReportInput,
    out: Path | str,
    tables: Tables | None = None,
    model: AccountModel | None = None,
    run_dir: Path | str | None = None,
    top: int = 50,
) -> Path:
    """The run's HTML report; with tables, the current prospects are scored for its accounts
    section (by ``model``, else the scoring model of ``run_dir``)."""
    target_list = scored = None
    if tables is not None and run.summary.get("kind", "account") == "account":
        model = model or load_account_model(run_dir)
        scored = score_snapshot(tables, model)
        target_list = ranked_list(scored, tables.accounts, ScoringConfig.from_yaml(), top_k=top)
    return write_text(build_report(run, target_list, scored), out)


@dataclass
class FeatureFiles:
    feature_set: FeatureSet
    rows: int
    written: list[Path]


def write_features(
    data_dir: Path | str,
    out: Path | str,
    config: ModelConfig,
    as_of: pd.Timestamp | None = None,
    tables: Tables | None = None,
    *,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> FeatureFiles:
    """The point-in-time feature matrix with the model config's spine and feature settings; for
    a spine (no ``as_of``) also its labels and the settings that made them. An ``as_of`` the
    data cannot describe is refused (:func:`propensity.spine.check_as_of`). ``engine`` "spark"
    reads, checks and builds on Spark (:mod:`propensity.spark_features`; ``spark_master``: see
    :func:`propensity.spark.spark_session`), with the same files as a result."""
    out = Path(out)
    if engine == "spark":
        from propensity.spark import spark_session
        from propensity.spark_features import feature_matrix_on_spark

        with spark_session(spark_master) as session:
            built = feature_matrix_on_spark(session, data_dir, config.spine, config.features, as_of)
        feature_set, labels = built.feature_set, built.labels
    else:
        tables = tables if tables is not None else load_tables(data_dir)
        if as_of is not None:
            as_of = check_as_of(tables, as_of, config.spine.horizon_days)
        spine = build_spine(tables, config.spine, as_of=as_of)
        feature_set = build_features(tables, spine, config.features)
        labels = build_labels(tables, spine, config.spine) if as_of is None else None
    written = [write_parquet(feature_set.matrix, out)]
    if labels is not None:
        written.append(write_parquet(labels, out.with_name(out.stem + ".labels.parquet")))
        settings_text = json.dumps(
            {
                "spine": config.spine.model_dump(mode="json"),
                "features": config.features.model_dump(mode="json"),
                "families": list(feature_set.families),
            },
            indent=2,
        )
        written.append(write_text(settings_text + "\n", out.with_name(out.stem + ".settings.json")))
    return FeatureFiles(feature_set, len(feature_set.matrix), written)


@dataclass
class TuningSession:
    results: list[TuningResult]
    config: ModelConfig
    written: Path
    run_id: str | None = None


def tune(
    data_dir: Path | str,
    config: ModelConfig,
    heads: tuple[str, ...],
    *,
    write_config: Path | str | None = None,
    track: bool = True,
    uri: str | None = None,
    on_head=None,
    tables: Tables | None = None,
) -> TuningSession:
    """Optuna over each head on the screened features ``train`` uses; the best parameters land
    in the model config (``write_config``, default the project's configs/model.yaml)."""
    if track:
        settings.check_store(settings.tracking_uri(uri), create=True)
    tables = tables if tables is not None else load_tables(data_dir)
    prepared = labelled_features(tables, config)
    results = []
    for head in heads:
        if on_head:
            on_head(head)
        result = tune_head(prepared, config, head)
        results.append(result)
        config = with_best_params(config, result)
    target = Path(write_config) if write_config else settings.writable_config_path("model")
    written = write_text(config.to_yaml(), target)
    run_id = None
    if track:
        from propensity.tracking import log_tuning_run

        data = {"source": str(data_dir), **data_fingerprint(tables)}
        run_id = log_tuning_run(results, config, data, uri)
    return TuningSession(results, config, written, run_id)


def read_run_folder(run_dir: Path | str):
    """What a report needs from a run folder; a missing or damaged file is a
    :class:`RunFolderError` naming the folder (never a parser's traceback)."""
    try:
        return read_run(run_dir)
    except RunFolderError:
        raise
    except (ValueError, OSError, KeyError) as exc:
        raise RunFolderError(
            f"{run_dir} is a damaged run folder ({type(exc).__name__}: {exc}): train again"
        ) from None


def load_account_model(
    run_dir: Path | str | None, versions: dict[str, str] | None = None, uri: str | None = None
) -> AccountModel:
    """A run folder's model, else the registry's champions (or explicit versions)."""
    if run_dir is not None:
        model = load_scoring_model(run_dir)
        if not isinstance(model, AccountModel):
            raise LookupError(
                f"{run_dir} holds a table model: score it with `propensity table score`"
            )
        return model
    from propensity.tracking import load_registered_scoring_model

    return load_registered_scoring_model(versions, uri)


def export_learned_scorecard(model: AccountModel, head: str, out: Path | str) -> Scorecard:
    """Write ``model``'s learned points card for ``head`` to ``out`` (YAML in the shape of
    ``scorecard.yaml``, named after the model version, with its test-window figures as
    comments); the card written."""
    scorer = model.scorers.get(head)
    if scorer is None or getattr(scorer, "learned_scorecard", None) is None:
        raise LookupError(
            f"model {model.version} has no learned scorecard for the {head} head: it was trained "
            "with `learned_scorecard: null` or by a version before learned cards; train again"
        )
    # the head's own version: ``conversion:v5:sha-...`` from the registry, ``sha-...`` from a run
    version = next(
        (part for part in model.version.split(",") if part.startswith(f"{head}:")), scorer.version
    )
    card = scorer.learned_scorecard.model_copy(update={"name": f"learned-{head}-{version}"})
    figures = getattr(scorer, "learned_scorecard_auc", {})
    names = {
        "learned_scorecard": "this card",
        "scorecard": "the hand-made card",
        "model": "the LightGBM model",
        "stacked": "the stacked model",
    }
    compared = ", ".join(f"{names[k]} {figures[k]:.3f}" for k in names if k in figures)
    header = "\n".join(
        [
            f"Learned points scorecard of the {head} head, model {version}.",
            "Written by `propensity scorecard export` in the shape of scorecard.yaml.",
            "Points per field value or range, learned on the rows the model learned from. A field",
            "your marketing-automation tool lacks must be synced to it under the same name. An",
            "account at or above handover_threshold points is handed over (as many accounts as",
            "the hand-made card hands over on those rows).",
            *([f"Test-window ROC-AUC: {compared}."] if compared else []),
        ]
    )
    write_text(card.to_yaml(header), out)
    return card


def load_table_model(
    run_dir: Path | str | None, registered: str | None, uri: str | None = None
) -> TableModel:
    """A table run folder's model, or a registered one (``NAME``, ``NAME@alias``, ``NAME:version``)."""
    if run_dir is not None:
        model = load_scoring_model(run_dir)
        if not isinstance(model, TableModel):
            raise LookupError(f"{run_dir} holds an account model: score it with `propensity score`")
        return model
    from propensity.tracking import load_registered_table_model

    name, _, pin = registered.replace(":", "@").partition("@")
    return load_registered_table_model(name, pin or "challenger", uri)


@dataclass
class Recorded:
    """Where a scoring went in the score history, and whether it was new there."""

    path: Path
    batch_id: str
    new: bool  # False: the same as_of and model version were recorded before (nothing changed)


@dataclass
class ScoredFile:
    scored: pd.DataFrame
    out: Path
    stability: dict = field(default_factory=dict)
    recorded: Recorded | None = None


def _record(
    matrix: pd.DataFrame,
    scored: pd.DataFrame,
    model: AccountModel,
    freshness_days: dict[str, int | None],
    as_of: pd.Timestamp,
    config: ScoringConfig,
    history: Path | str | None,
    source: str,
) -> Recorded:
    from propensity.history import history_batch, history_path, record

    batch = history_batch(
        matrix,
        scored,
        model,
        freshness_days,
        as_of,
        scorecard=Scorecard.from_yaml(),
        config=config,
        source=source,
    )
    path = history_path(history)
    return Recorded(path, batch.batch_id, record(batch, path))


def score_accounts(
    data_dir: Path | str,
    out: Path | str,
    model: AccountModel,
    as_of=None,
    tables: Tables | None = None,
    *,
    history: Path | str | None = None,
    keep_history: bool = True,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ScoredFile:
    """Score the prospects at ``as_of`` (refused outside the data's span), write every scored
    column (CSV or Parquet), then append the scoring to the score history (``history``, see
    :func:`propensity.history.history_path`) unless ``keep_history`` is False. ``engine``
    "spark" reads, checks and builds the snapshot's features and scores it (with reasons) on
    Spark (:mod:`propensity.spark_features`, :mod:`propensity.spark`)."""
    from propensity.history import freshness

    out = check_frame_suffix(out, "--out")
    previous = read_export(out, ("account_id", "conversion_probability"))
    kept: list[pd.DataFrame] = []

    def parts(scored_parts):
        # written part by part; only the columns the history and stability read are kept
        for part in scored_parts:
            kept.append(without_reasons_json(part))
            yield neutralise_formulas(part)

    if engine == "spark":
        from propensity import spark
        from propensity.spark_features import feature_matrix_on_spark

        with spark.spark_session(spark_master) as session:
            built = feature_matrix_on_spark(
                session, data_dir, model.spine, model.features, as_of, snapshot=True
            )
            matrix, as_of = built.feature_set.matrix, built.as_of
            write_frame(parts(spark.score_parts(session, model, matrix)), out)
        freshness_days = built.freshness
    else:
        tables = tables if tables is not None else load_tables(data_dir)
        if as_of is not None:
            as_of = check_as_of(tables, as_of, model.spine.horizon_days)
        as_of = as_of if as_of is not None else data_end(tables)
        matrix = snapshot_features(tables, model, as_of)
        write_frame(parts(model.score_parts(matrix)), out)
        freshness_days = freshness(tables, as_of)
    scored = pd.concat(kept, ignore_index=True)
    stability = _stability(scored, previous)
    recorded = None
    if keep_history:
        config = ScoringConfig.from_yaml()
        recorded = _record(
            matrix, scored, model, freshness_days, as_of, config, history, str(data_dir)
        )
    return ScoredFile(scored, out, stability, recorded)


def without_reasons_json(scored: pd.DataFrame) -> pd.DataFrame:
    """Scored rows without the ``<head>_reasons_json`` columns (the bulk of a scored row)."""
    return scored.drop(columns=[c for c in scored.columns if c.endswith("reasons_json")])


def _stability(scored: pd.DataFrame, previous: pd.DataFrame | None, top_k: int = 100) -> dict:
    """Versus the previous scores at the same path: rank correlation and top-k turnover (by the
    export's own comparison, over the conversion probability)."""
    if previous is None or "conversion_probability" not in previous or scored.empty:
        return {"previous_export": False}

    def ranks(frame: pd.DataFrame) -> pd.DataFrame:
        order = frame.sort_values("conversion_probability", ascending=False, kind="stable")
        return pd.DataFrame(
            {
                "account_id": order["account_id"].astype(str).to_numpy(),
                "rank": range(1, len(order) + 1),
            }
        )

    listing = ranks(scored).assign(change="new")
    return with_changes(listing, ranks(previous), top_k, columns=["account_id", "rank", "change"])[
        1
    ]


def score_table(
    table: Path | str,
    out: Path | str,
    model: TableModel,
    *,
    open_only: bool = False,
    top: int | None = None,
    reasons: bool = True,
    encoding: str | None = None,
    sep: str | None = None,
) -> ScoredFile:
    """Score a table's rows with a table model: rank, id, probability, score, tier, outcome,
    reasons, model version (written atomically, formula-like text neutralised). A CSV is read
    with ``encoding`` / ``sep``, else detected."""
    table, out = Path(table), check_frame_suffix(out, "--out")
    frame = read_table(table, encoding=encoding, sep=sep)
    scored = model.score(frame, table.stem, reasons=reasons)
    if open_only and "outcome" in scored:
        scored = scored[scored["outcome"] == "open"].reset_index(drop=True)
        if "rank" in scored:  # the open rows' own ranks, 1..n
            scored["rank"] = np.arange(1, len(scored) + 1)
    if top:
        scored = scored.head(top)
    write_frame(neutralise_formulas(scored), out)
    return ScoredFile(scored, out)


@dataclass
class TargetList:
    listing: pd.DataFrame
    out: Path
    stability: dict
    model_version: str
    recorded: Recorded | None = None


def export_target_list(
    data_dir: Path | str,
    out: Path | str,
    model: AccountModel,
    *,
    as_of=None,
    top: int | None = None,
    filters: dict[str, list[str] | None] | None = None,
    batch_tiers: bool = False,
    tables: Tables | None = None,
    history: Path | str | None = None,
    keep_history: bool = True,
) -> TargetList:
    """The ranked, CRM-ready target list (one row per prospect) with changes since the previous
    export at ``out`` and its stability figures next to it, then the scoring appended to the
    score history (as :func:`score_accounts`). An ``as_of`` outside the data's span is refused;
    a file at ``out`` that is not a readable export is refused (never replaced), both before
    anything is scored."""
    out = check_frame_suffix(out, "--out")
    config = ScoringConfig.from_yaml()
    if batch_tiers:
        config = config.model_copy(update={"tiers": "batch"})
    tables = tables if tables is not None else load_tables(data_dir)
    if as_of is not None:
        as_of = check_as_of(tables, as_of, model.spine.horizon_days)
    previous = read_export(out)
    matrix = snapshot_features(tables, model, as_of)
    # the list carries the worded reasons, not their JSON: drop it part by part
    scored = pd.concat(map(without_reasons_json, model.score_parts(matrix)), ignore_index=True)
    listing = ranked_list(scored, tables.accounts, config, top_k=top, filters=filters)
    listing, stability = with_changes(listing, previous, top)
    stability.update(
        {
            "rows": int((listing["change"] != "dropped").sum()),
            "model_version": model.version,
            "as_of": listing["as_of"].iloc[0] if len(listing) else None,
            "alarm_share": config.stability_alarm_share,
        }
    )
    write_export(listing, out, stability)
    recorded = None
    if keep_history:
        from propensity.history import freshness

        tiered = batch_tier_scores(scored) if config.tiers == "batch" else scored
        as_of = as_of if as_of is not None else data_end(tables)
        recorded = _record(
            matrix, tiered, model, freshness(tables, as_of), as_of, config, history, str(data_dir)
        )
    return TargetList(listing, out, stability, model.version, recorded)
