"""The table recipe: one won/lost table (a CRM export of accounts, leads or deals) to a calibrated,
explained model, through the same protocol as the account heads (:mod:`propensity.runs.protocol`).

1. :func:`propensity.data.table.prepare_table`: label, row time, typed candidate columns,
   identifier-like and constant columns set aside with a reason;
2. the leakage screen (:func:`propensity.model.screen.screen`) on the development rows (the
   training and validation rows of an out-of-time split, every row for K-fold); suspects are
   excluded unless ``keep_suspects``;
3. the protocol with one head, ``"table"``: out of time when rows have a time
   (:class:`propensity.model.splits.RowOutOfTime`: rows with the same time stay in one part),
   otherwise repeated stratified K-fold where identical feature vectors always share a fold
   (:class:`propensity.model.splits.RepeatedGroupKFold`: a duplicate in train and test would
   flatter the model); LightGBM vs the logistic baseline vs the base rate, the Brier skill and a
   plain verdict;
4. the final model (:class:`propensity.scoring.TableModel`): for out-of-time, the model that was
   tested; for K-fold, refitted on every labelled row. It scores any table of the same shape.
"""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.data.table import (
    Kind,
    PreparedTable,
    TableError,
    duplicate_counts,
    model_matrix,
    prepare_table,
)
from propensity.evaluate import to_markdown
from propensity.features.registry import FeatureSpec
from propensity.model.config import TableConfig
from propensity.model.screen import ScreenResult, screen
from propensity.model.splits import ROW_TIME, RepeatedGroupKFold, RowOutOfTime
from propensity.runs.folder import RunResult
from propensity.runs.protocol import FitSettings, HeadTask, run_head
from propensity.scoring import TABLE_TIERS, Scorer, TableModel

log = logging.getLogger(__name__)

HEAD = "table"
# the label's rate changes with the row's position in the file by at least this ROC-AUC (a
# shuffled export gives 0.5 +- 0.01 at a few thousand rows)
LABEL_DRIFT_AUC = 0.6


def feature_specs(kinds: dict[str, Kind], time_column: str | None) -> tuple[FeatureSpec, ...]:
    """One business field per column: reasons read "Lead Source: Reference"."""
    specs = []
    for column, kind in kinds.items():
        definition = (
            f"days from {column} to the row's {time_column}"
            if kind == "date"
            else f"column {column!r} of the table"
        )
        specs.append(
            FeatureSpec(
                name=column,
                family="table",
                field=column,
                label=column,
                definition=definition,
                availability="as exported; screened for leakage before training",
                kind="categorical" if kind == "categorical" else "numeric",
            )
        )
    return tuple(specs)


def vector_groups(matrix: pd.DataFrame) -> np.ndarray:
    """One integer per distinct feature vector (identical rows get the same number)."""
    return pd.factorize(pd.util.hash_pandas_object(matrix, index=False))[0]


def splitter_for(config: TableConfig):
    """Out of time when the rows have a time or an order, else repeated grouped K-fold."""
    if config.out_of_time:
        return RowOutOfTime(config.valid_share, config.test_share, origins=config.origins)
    return RepeatedGroupKFold(config.folds, config.repeats, config.seed)


def _labelled(prepared: PreparedTable, config: TableConfig, name: str):
    labelled = prepared.labelled
    label = prepared.label[labelled].to_numpy().astype(int)
    if label.sum() < config.min_positives:
        raise TableError(
            f"{name}: only {int(label.sum())} positive rows ({list(config.positive)} in "
            f"{config.label_column!r}); at least {config.min_positives} are needed (min_positives)"
        )
    candidates = prepared.candidates.loc[labelled].reset_index(drop=True)
    time = prepared.time[labelled].reset_index(drop=True) if prepared.time is not None else None
    # each labelled row's rank in the file (0 = first): K-fold's "later" rows are the last ones
    position = prepared.position[labelled].rank(method="first").to_numpy() - 1
    return labelled, label, candidates, time, position


# K-fold rows in file order: the last share of the rows is "later" for the period check
FILE_ORDER_LATER_SHARE = 0.4


def screen_columns(
    candidates: pd.DataFrame,
    label: np.ndarray,
    time,
    config: TableConfig,
    name: str,
    position: np.ndarray | None = None,
) -> tuple[ScreenResult, list[str], np.ndarray | None]:
    """The leakage screen on the development rows; the columns the model may use.

    The period check compares the later rows with the earlier ones: out of time, the
    validation window against the training window (the test window is not looked at); with
    K-fold, the last rows of the file against the first. Out of time a period indicator is
    excluded; with K-fold it is only warned about (a file sorted by amount makes the amount look
    like one), and in both it is left out of the "far above every other column" comparison, so
    a leak's verdict does not depend on the protocol."""
    development = None
    if config.out_of_time:
        fold = RowOutOfTime(config.valid_share, config.test_share).folds(
            pd.DataFrame({ROW_TIME: time}), label
        )[0]
        development = np.concatenate([fold.train, fold.valid])
        later = np.r_[np.zeros(len(fold.train), dtype=int), np.ones(len(fold.valid), dtype=int)]
        order = np.argsort(np.argsort(np.asarray(time)[development], kind="stable"))
    else:
        order = np.arange(len(label)) if position is None else np.asarray(position)
        later = (order >= len(label) * (1 - FILE_ORDER_LATER_SHARE)).astype(int)
    rows = development if development is not None else np.arange(len(label))
    date_time = time if (time is not None and config.time_column) else None
    screened = screen(
        candidates.iloc[rows].reset_index(drop=True),
        label[rows],
        time=date_time.iloc[rows].reset_index(drop=True) if date_time is not None else None,
        later=later,
        order=order,
        period_verdict="exclude" if config.out_of_time else "warn",
        config=config.screen,
    )
    columns = (
        list(candidates.columns) if config.keep_suspects else screened.kept(candidates.columns)
    )
    if not columns:
        raise TableError(
            f"{name}: the leakage screen flags every candidate column "
            f"({', '.join(screened.suspects)}); check the table, or pass keep_suspects to "
            "train on them anyway"
        )
    return screened, columns, development


def file_order_drift(
    label: np.ndarray, position: np.ndarray, screened: ScreenResult, config: TableConfig
) -> str | None:
    """For K-fold: a warning when the rows look time-ordered (the label's rate or the columns
    change with the row's position in the file), else None. Random folds then mix later rows
    into training and flatter the model."""
    if config.out_of_time:
        return None
    signs = []
    label = np.asarray(label)[np.argsort(position, kind="stable")]  # in file order
    position_auc = roc_auc_score(label, np.arange(len(label)))
    position_auc = max(position_auc, 1 - position_auc)
    if position_auc >= LABEL_DRIFT_AUC:
        first, last = np.array_split(label, 5)[0].mean(), np.array_split(label, 5)[-1].mean()
        signs.append(
            f"the positive rate moves with the row's position (ROC-AUC of the position "
            f"{position_auc:.3f}; first fifth {first:.1%}, last fifth {last:.1%})"
        )
    table = screened.table
    periodic = table[(table["check"] == "period_indicator") & (table["verdict"] == "warn")]
    if len(periodic):
        signs.append(
            f"columns tell the last rows from the first and are fixed by the row's place in the "
            f"file ({', '.join(periodic['column'])}; kept: if the file is sorted by them rather "
            "than by time, ignore this)"
        )
    if not signs:
        return None
    return (
        "the rows look time-ordered: " + "; ".join(signs) + ". K-fold mixes later rows into "
        "training and flatters the model: pass --time-ordered (rows in time order) or --time "
        "COLUMN to evaluate out of time"
    )


def protocol_facts(config: TableConfig, splitter, matrix: pd.DataFrame, label, time) -> dict:
    if not config.out_of_time:
        return {
            "protocol": "repeated_stratified_group_kfold",
            "folds": config.folds,
            "repeats": config.repeats,
            "grouping": "identical feature vectors share a fold",
        }
    folds = splitter.folds(matrix, label)
    fold = folds[-1]  # the latest
    return {
        "protocol": "out_of_time",
        "time": config.time_column or "row order",
        "origins": len(folds),
        "train_rows": len(fold.train),
        "valid_rows": len(fold.valid),
        "test_rows": len(fold.test),
        "valid_start": str(time.iloc[fold.valid].min()),
        "test_start": str(time.iloc[fold.test].min()),
        "test_end": str(time.iloc[fold.test].max()),
    }


def train_table_model(
    frame: pd.DataFrame, config: TableConfig, name: str = "table", progress=None
) -> RunResult:
    """Prepare, screen, evaluate by the protocol, fit the final model (see the module docstring)."""
    _step(progress, "prepare", name)
    prepared = prepare_table(frame, config, name)
    labelled, label, candidates, time, position = _labelled(prepared, config, name)
    _step(progress, "screen", name)
    screened, columns, _ = screen_columns(candidates, label, time, config, name, position)
    kinds = {c: prepared.kinds[c] for c in columns}
    date_time = time if (time is not None and config.time_column) else None
    matrix = model_matrix(candidates[columns], kinds, date_time)
    duplicates = {
        # the file as given (every column but the id), before any column is dropped
        "exact_duplicate_rows_in_file": file_duplicates(prepared, labelled, config),
        **duplicate_counts(matrix, pd.Series(label)),
    }
    ids = prepared.ids[labelled].to_numpy()
    task_matrix = matrix.assign(**{ROW_TIME: time.to_numpy()}) if time is not None else matrix
    groups = vector_groups(matrix)
    task = HeadTask(
        head=HEAD,
        matrix=task_matrix,
        label=label,
        columns=columns,
        categorical=[c for c in columns if kinds[c] == "categorical"],
        specs=feature_specs(kinds, config.time_column),
        tiers=TABLE_TIERS,
        keys=pd.DataFrame({"id": ids}),
        groups=ids,  # the bootstrap resamples rows; folds keep identical vectors together
        dates=None,
    )
    _step(progress, "evaluate", name)
    splitter = splitter_for(config)
    head = run_head(task, _KFoldGroups(splitter, groups), _settings(config))
    _step(progress, "final model", name)
    shipped = recalibrate_on_latest(head, task, label, config)
    model = TableModel(
        schema=config,
        scorer=Scorer.fit(HEAD, shipped, task.specs, TABLE_TIERS),
        columns=columns,
        kinds=kinds,
        screen=screened.table,
        verdict=head.verdict,
        beats_base_rate=head.beats_base_rate,
        categories={  # what the final model's trees learned from
            c: sorted(candidates[c].iloc[head.final_fold.train].dropna().astype(str).unique())
            for c in columns
            if kinds[c] == "categorical"
        },
    )
    notes = [f"set aside {c}: {why}" for c, why in prepared.set_aside.items()]
    if config.id_column is None:
        notes.append("no id column: rows are named by their number in the file (1 = first row)")
    if screened.suspects:
        action = "kept (keep_suspects)" if config.keep_suspects else "excluded"
        notes.append(f"leakage screen suspects {action}: {', '.join(screened.suspects)}")
    model.notes = notes
    if config.keep_suspects and screened.suspects:
        # a comparison run: it must not become the model the next `table score` picks up
        head.shipped.problems.append(
            f"trained on columns the leakage screen flags ({', '.join(screened.suspects)}; "
            "keep_suspects): for comparison, not for scoring"
        )
    model.warnings = [
        *filter(None, [file_order_drift(label, position, screened, config)]),
        *head.shipped.warnings,
        *(f"the shipped scorer has a problem: {p}" for p in head.shipped.problems),
    ]
    protocol = protocol_facts(config, splitter, task_matrix, label, time)
    summary = table_summary(prepared, head, screened, columns, duplicates, protocol, config)
    summary["model_version"] = model.version
    summary["warnings"] = model.warnings
    result = RunResult(
        kind="table",
        name=prepared.name,
        config=config,
        heads={HEAD: head},
        scoring_model=model,
        summary=summary,
        markdown="",
        screen=screened,
        test_window=_test_window(prepared, labelled, label, head, config),
        registered_names={HEAD: config.model_name or registered_table_name(prepared.name)},
        input_examples={HEAD: _input_example(prepared.frame, model)},
        tables={"scores.csv": lambda: model.score(prepared.frame, prepared.name)},
    )
    result.markdown = summary_markdown(result)
    _step(progress, "done", name)
    return result


def recalibrate_on_latest(head, task, label: np.ndarray, config: TableConfig):
    """The shipped scorer, its probabilities refitted (Platt, positive slope: the ranking is
    unchanged, so the rank figures ``promote`` reads on the test window are too) on the most
    recent labelled window once the test has been reported; kept as it is with K-fold, with
    ``recalibrate: validation``, with too few positives there, or when the order reversed."""
    shipped = head.shipped.model
    if not config.out_of_time or config.recalibrate != "latest":
        return shipped
    latest = head.final_fold.test
    positives = int(label[latest].sum())
    window = f"the latest window ({len(latest):,} rows, {positives:,} positives)"
    if positives < config.min_calibration_positives:
        head.facts["calibration_rows"] += (
            f"; not recalibrated on {window}: fewer than min_calibration_positives"
        )
        return shipped
    recalibrated = shipped.recalibrated(task.matrix.iloc[latest], label[latest])
    if recalibrated is None:
        head.facts["calibration_rows"] += (
            f"; not recalibrated on {window}: the scores rank it in reverse (drift)"
        )
        return shipped
    head.facts["calibration_rows"] = f"recalibrated (Platt) on {window} after the test"
    head.facts["calibration"] = "sigmoid"
    head.facts["calibration_log_loss"] = {}
    return recalibrated


def file_duplicates(prepared: PreparedTable, labelled: np.ndarray, config: TableConfig) -> int:
    """Labelled rows equal in every column but the id to an earlier row of the file."""
    rows = prepared.frame.loc[labelled]
    if config.id_column is not None:
        rows = rows.drop(columns=config.id_column)
    return int(rows.duplicated().sum())


class _KFoldGroups:
    """The splitter with the feature-vector groups (K-fold folds keep identical vectors together,
    while the bootstrap resamples rows)."""

    def __init__(self, splitter, groups: np.ndarray):
        self.splitter, self.groups = splitter, groups

    def folds(self, X, y=None, groups=None):
        return self.splitter.folds(X, y, self.groups)

    def final_fold(self, X, y=None, groups=None):
        return self.splitter.final_fold(X, y, self.groups)


def _settings(config: TableConfig) -> FitSettings:
    return FitSettings(
        params=config.lightgbm,
        calibration_methods=config.calibration_methods,
        seed=config.seed,
        n_jobs=config.n_jobs,
        capacity_k=config.capacity_k,
        n_bootstrap=config.n_bootstrap,
        min_calibration_positives=config.min_calibration_positives,
        selection_level=config.selection_level,
        selection_metric=config.selection_metric,
        stack=config.stack_logistic,
    )


def _step(progress, text: str, name: str) -> None:
    if progress:
        progress(text)
    log.info("table %s: %s", name, text)


def _test_window(prepared, labelled, label, head, config: TableConfig) -> pd.DataFrame | None:
    """The raw rows of the out-of-time test part with ``label_table`` (K-fold has no untouched
    rows: the final model saw every row)."""
    if not config.out_of_time:
        return None
    rows = prepared.frame.loc[labelled].reset_index(drop=True).iloc[head.final_fold.test]
    window = rows.reset_index(drop=True).copy()
    window[f"label_{HEAD}"] = label[head.final_fold.test]
    return window


def _input_example(frame: pd.DataFrame, model: TableModel) -> pd.DataFrame:
    needed = [c for c in (model.schema.id_column, *model.columns) if c is not None]
    if any(k == "date" for k in model.kinds.values()) and model.schema.time_column:
        needed.append(model.schema.time_column)  # dates are measured from the row's time
    rows = frame[needed]
    filled = rows.notna().sum(axis=1).sort_values(ascending=False, kind="stable")
    return rows.loc[filled.index[:5]].reset_index(drop=True)


def table_fingerprint(frame: pd.DataFrame) -> dict:
    """Content hash of a table (row order does not matter), its rows and columns."""
    digest = hashlib.sha256()
    digest.update(json.dumps([f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()]).encode())
    digest.update(np.sort(pd.util.hash_pandas_object(frame, index=False).to_numpy()).tobytes())
    return {"sha256": digest.hexdigest(), "rows": len(frame), "columns": len(frame.columns)}


def registered_table_name(name: str) -> str:
    """``propensity-table-<table name>`` with anything but letters and digits as ``-``."""
    return "propensity-table-" + "".join(ch if ch.isalnum() else "-" for ch in name.lower())


def table_summary(prepared, head, screened, columns, duplicates, protocol, config) -> dict:
    """The run's facts in one JSON-able dict (also what the CLI prints and MLflow logs)."""
    label = prepared.label
    spread = head.folds.groupby("scorer", sort=False)["roc_auc"]
    return {
        "table": prepared.name,
        "rows": len(label),
        "labelled_rows": int(label.notna().sum()),
        "open_rows": int(label.isna().sum()),
        "positives": int((label == 1).sum()),
        "base_rate": float(label.mean()),
        "protocol": protocol,
        "duplicates": duplicates,
        "set_aside": prepared.set_aside,
        "suspects": list(screened.suspects),
        "suspects_kept": config.keep_suspects,
        "period_auc": screened.period_auc,
        "period_auc_without_indicators": screened.period_auc_without_indicators,
        "base_rates": head.facts["base_rates"],
        "shipped": head.shipped.describe(),
        "features": columns,
        "verdict": head.verdict,
        "beats_base_rate": head.beats_base_rate,
        "trees": head.facts["trees"],
        "calibration": head.facts["calibration"],
        "heads": {HEAD: head.facts},
        "fold_roc_auc": {
            scorer: {"mean": float(values.mean()), "sd": float(values.std())}
            for scorer, values in spread
        },
    }


def without_indicators_text(facts: dict) -> str:
    value = facts.get("period_auc_without_indicators")
    return "-, every column is one" if value is None else f"{value:.3f}"


def fold_spread_lines(result: RunResult) -> list[str]:
    """ROC-AUC per scorer over the folds (K-fold) or the successive out-of-time folds (rolling
    origin): mean, sd, and each origin's figure from the earliest."""
    folds = result.folds
    lines = []
    for scorer in ("model", "logistic"):
        values = folds[folds["scorer"] == scorer].sort_values(["repeat", "fold"])["roc_auc"]
        if len(values) < 2:
            continue
        if result.config.out_of_time:
            each = ", ".join(f"{v:.3f}" for v in values.to_numpy()[::-1])
            lines.append(
                f"{scorer} ROC-AUC over {len(values)} successive out-of-time folds (earliest "
                f"first): {each}; mean {values.mean():.3f} ± {values.std():.3f} (sd)"
            )
        else:
            lines.append(
                f"{scorer} ROC-AUC over {len(values)} folds: {values.mean():.3f} ± "
                f"{values.std():.3f} (sd)"
            )
    return lines


def summary_markdown(result: RunResult) -> str:
    """A readable account of the run: verdict, evaluation, screen, duplicates, set-aside columns."""
    facts, config = result.summary, result.config
    duplicates = facts["duplicates"]
    table = result.screen.table
    suspects = table[table["verdict"].isin(["exclude", "warn"])]
    evaluation = result.evaluation
    rates = facts["base_rates"]
    repeated = config.repeats > 1 and not config.out_of_time
    lines = [
        f"# Table mode: {facts['table']}",
        "",
        f"**{facts['verdict']}**",
        "",
        f"- rows {facts['rows']:,} (labelled {facts['labelled_rows']:,}, open {facts['open_rows']:,}); "
        f"positives {facts['positives']:,}, base rate {facts['base_rate']:.3f}",
        f"- protocol: {json.dumps(facts['protocol'])}",
        f"- duplicates among labelled rows: {duplicates['exact_duplicate_rows_in_file']:,} exact "
        "duplicate rows in the file (every column but the id); on the model's columns "
        f"{duplicates['exact_duplicate_rows']:,} exact duplicates, "
        f"{duplicates['conflicting_vectors']:,} feature vectors with both outcomes "
        f"({duplicates['conflicting_rows']:,} rows), {duplicates['distinct_vectors']:,} distinct "
        "vectors (identical vectors share a fold)",
        f"- model: {facts['trees']} trees, {facts['calibration']} calibration, version "
        f"{facts['model_version']}",
        f"- ships: {facts['shipped']['reason']}",
        *(
            [
                f"- base rate: training {rates['train']:.3f}, validation "
                f"{rates['validation']:.3f}, test {rates['test']:.3f} "
                f"({rates['test_over_train']:.2f}x training); calibration: "
                f"{facts['heads']['table']['calibration_rows']}"
            ]
            if config.out_of_time
            else []
        ),
        *(
            [
                f"- the columns together tell later rows from earlier ones with ROC-AUC "
                f"{facts['period_auc']:.3f} ({without_indicators_text(facts)} "
                "without the period indicators)"
            ]
            if facts.get("period_auc") is not None
            else []
        ),
        *(f"- **warning: {w}**" for w in facts.get("warnings", [])),
        "",
        "## Evaluation (held-out rows" + (", first repeat" if repeated else "") + ")",
        "",
        to_markdown(evaluation),
        "",
        *(f"- {line}" for line in fold_spread_lines(result)),
        "",
        "| scorer | Brier skill over the base rate |",
        "|---|---|",
        *[
            f"| {r.scorer} | {r.brier_skill:+.3f} [{r.brier_skill_lo:+.3f}, {r.brier_skill_hi:+.3f}] |"
            for r in evaluation.itertuples()
        ],
        "",
        "## Leakage screen: suspects",
        "",
        ("none" if suspects.empty else _markdown_table(suspects)),
        "",
        "## Columns set aside",
        "",
        *(f"- {column}: {why}" for column, why in facts["set_aside"].items()),
        "",
    ]
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, "|" + "---|" * len(frame.columns), *rows])
