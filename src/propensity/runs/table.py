"""Table mode: one won/lost table (a CRM export of accounts, leads or deals) to a calibrated,
explained model, evaluated as honestly as the account pipeline.

Stages, each a function over DataFrames and a :class:`TableConfig`:

1. :func:`prepare_table`: the label (``positive`` values are 1, ``negative`` values 0; with
   ``negative`` given, other values are *open* rows that are scored but never trained on; a
   missing label is open too), the row time, typed candidate columns (numbers, categories,
   dates), identifier-like and constant columns set aside with a reason, duplicate counts;
2. :func:`propensity.model.screen.screen` on the development rows: suspects are excluded unless
   ``keep_suspects``;
3. the protocol (:func:`protocol_folds`): out of time when rows have a time (train on the
   earliest part, validate on the next, test on the latest; rows with the same time stay in one
   part), otherwise repeated stratified K-fold where identical feature vectors always share a
   fold (a duplicate in train and test would flatter the model);
4. per fold, LightGBM calibrated on its validation rows (:class:`propensity.model.head.HeadModel`),
   the logistic baseline, and the base rate (the training share of positives);
5. :func:`evaluate_table`: every metric of the account pipeline with bootstrap intervals, the
   Brier skill over the base rate and a plain verdict on whether the model beats the base rate;
6. the final model (:class:`TableModel`): for out-of-time, the model that was tested; for
   K-fold, refitted on every labelled row; it scores any table of the same shape with reasons.

A date column enters the model as days before the row's time (so it means the same at scoring
time); without a row time it is set aside. The row time itself is never a feature: calendar
position does not carry to a later period.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from propensity.data.table import (
    Kind,
    PreparedTable,
    TableError,
    coerce,
    duplicate_counts,
    label_values,
    model_matrix,
    prepare_table,
    row_time,
)
from propensity.evaluate import brier_skill, comparison_table, decile_table
from propensity.explain import explain
from propensity.features import FeatureSpec
from propensity.model.config import TableConfig
from propensity.model.head import HeadModel, logistic_baseline
from propensity.model.screen import ScreenResult, screen
from propensity.scoring import HeadCalibration, head_calibration, to_score, to_tier

log = logging.getLogger(__name__)

SCORERS = ("model", "logistic", "base_rate")
PROBABILITY_SCORERS = {"model", "logistic", "base_rate"}
TABLE_TIERS = (("A", 0.10), ("B", 0.20), ("C", 0.30), ("D", 0.40))


# ---------------------------------------------------------------------------------------------
# protocol


@dataclass(frozen=True)
class Fold:
    """Row positions (into the labelled rows) of one train / validation / test assignment."""

    repeat: int
    fold: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def out_of_time_fold(time: pd.Series, label: np.ndarray, config: TableConfig) -> Fold:
    """Train on the earliest rows, validate on the next ``valid_share``, test on the latest
    ``test_share``; cuts fall between distinct times, so one time is never in two parts."""
    values = time.to_numpy()
    order = np.argsort(values, kind="stable")
    n = len(values)
    test_start = values[order[int(np.floor(n * (1 - config.test_share)))]]
    valid_start = values[order[int(np.floor(n * (1 - config.test_share - config.valid_share)))]]
    test = np.flatnonzero(values >= test_start)
    valid = np.flatnonzero((values >= valid_start) & (values < test_start))
    train = np.flatnonzero(values < valid_start)
    for part, rows in (("training", train), ("validation", valid), ("test", test)):
        if len(rows) == 0 or label[rows].min() == label[rows].max():
            raise TableError(
                f"the {part} part of the out-of-time split has {len(rows)} rows and "
                f"{int(label[rows].sum()) if len(rows) else 0} positives: it needs both classes; "
                "change valid_share/test_share or use K-fold (no time column)"
            )
    return Fold(0, 0, train, valid, test)


def _inner_validation(
    rows: np.ndarray, label: np.ndarray, groups: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows 80/20, stratified, identical vectors together (early stopping, calibration)."""
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    fit_idx, valid_idx = next(splitter.split(rows, label[rows], groups[rows]))
    return rows[fit_idx], rows[valid_idx]


def kfold_folds(label: np.ndarray, groups: np.ndarray, config: TableConfig) -> list[Fold]:
    """Repeated stratified K-fold; rows with the same ``groups`` value (feature vector) share a fold."""
    for value in (0, 1):
        distinct = len(np.unique(groups[label == value]))
        needed = max(2 * config.folds, 10)  # outer folds, then a grouped inner split
        if distinct < needed:
            raise TableError(
                f"K-fold needs at least {needed} distinct feature vectors per class; class "
                f"{value} has {distinct} (the columns left after the screen barely vary): add "
                "columns, lower folds, or give a time column"
            )
    folds = []
    everything = np.arange(len(label))
    for repeat in range(config.repeats):
        splitter = StratifiedGroupKFold(
            n_splits=config.folds, shuffle=True, random_state=config.seed + repeat
        )
        for number, (train_idx, test_idx) in enumerate(splitter.split(everything, label, groups)):
            train, valid = _inner_validation(
                train_idx, label, groups, config.seed + 1000 * repeat + number
            )
            folds.append(Fold(repeat, number, train, valid, test_idx))
    return folds


def vector_groups(matrix: pd.DataFrame) -> np.ndarray:
    """One integer per distinct feature vector (identical rows get the same number)."""
    return pd.factorize(pd.util.hash_pandas_object(matrix, index=False))[0]


# ---------------------------------------------------------------------------------------------
# models


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


@dataclass
class FoldModels:
    model: HeadModel
    logistic: object
    base_rate: float


def fit_fold(
    matrix: pd.DataFrame,
    label: np.ndarray,
    fold: Fold,
    columns: list[str],
    categorical: list[str],
    config: TableConfig,
) -> FoldModels:
    """LightGBM (early stopping and calibration on the fold's validation rows), logistic, base rate."""
    y = label.astype(int)
    model = HeadModel(
        features=columns,
        categorical=categorical,
        params=config.lightgbm,
        calibration_methods=config.calibration_methods,
        seed=config.seed,
        n_jobs=config.n_jobs,
    )
    model.fit(
        matrix.iloc[fold.train], y[fold.train], eval_set=(matrix.iloc[fold.valid], y[fold.valid])
    )
    numeric = [c for c in columns if c not in categorical]
    logistic = logistic_baseline(numeric, categorical, config.seed)
    development = np.concatenate([fold.train, fold.valid])
    logistic.fit(matrix.iloc[development][columns], y[development])
    return FoldModels(model, logistic, float(y[development].mean()))


def fold_predictions(
    models: FoldModels, matrix: pd.DataFrame, label: np.ndarray, ids: np.ndarray, fold: Fold
) -> pd.DataFrame:
    test = matrix.iloc[fold.test]
    return pd.DataFrame(
        {
            "account_id": ids[fold.test],  # the bootstrap unit (evaluate's name for it)
            "as_of": 0,
            "repeat": fold.repeat,
            "fold": fold.fold,
            "label": label[fold.test].astype(int),
            "model": models.model.predict_proba(test)[:, 1],
            "logistic": models.logistic.predict_proba(test)[:, 1],
            "base_rate": models.base_rate,
        }
    )


# ---------------------------------------------------------------------------------------------
# evaluation


def evaluate_table(predictions: pd.DataFrame, config: TableConfig) -> pd.DataFrame:
    """The comparison table (model, logistic, base rate) on the first repeat's held-out rows,
    with the Brier skill over the base rate (paired bootstrap over rows)."""
    first = predictions[predictions["repeat"] == 0]
    table = comparison_table(
        first,
        list(SCORERS),
        head="table",
        capacity_k=config.capacity_k,
        probability_scorers=PROBABILITY_SCORERS,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )
    skills = []
    for scorer in table["scorer"]:
        skills.append(
            brier_skill(
                first["label"],
                first[scorer],
                first["base_rate"],
                first["account_id"],
                n_bootstrap=config.n_bootstrap,
                seed=config.seed,
            )
        )
    return pd.concat([table, pd.DataFrame(skills)], axis=1)


def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """ROC-AUC and Brier per scorer for every fold of every repeat (K-fold spread)."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rows = []
    for (repeat, fold), part in predictions.groupby(["repeat", "fold"], sort=True):
        for scorer in SCORERS:
            auc = (
                roc_auc_score(part["label"], part[scorer])
                if part["label"].nunique() == 2
                else np.nan
            )
            rows.append(
                {
                    "repeat": repeat,
                    "fold": fold,
                    "scorer": scorer,
                    "roc_auc": auc,
                    "brier": brier_score_loss(part["label"], part[scorer]),
                    "rows": len(part),
                }
            )
    return pd.DataFrame(rows)


def verdict(evaluation: pd.DataFrame) -> tuple[bool, str]:
    """Whether the model beats the base rate, in one plain sentence with the evidence."""
    row = evaluation.set_index("scorer").loc["model"]
    auc = f"ROC-AUC {row['roc_auc']:.3f} [{row['roc_auc_lo']:.3f}, {row['roc_auc_hi']:.3f}]"
    skill = (
        f"Brier skill over the base rate {row['brier_skill']:+.3f} "
        f"[{row['brier_skill_lo']:+.3f}, {row['brier_skill_hi']:+.3f}]"
    )
    ranks = row["roc_auc_lo"] > 0.5
    calibrated_gain = row["brier_skill_lo"] > 0
    if ranks and calibrated_gain:
        return True, f"The model beats the base rate: {auc}, {skill}."
    if ranks:
        return False, (
            f"The model ranks rows better than chance ({auc}) but its probabilities are no better "
            f"than the base rate ({skill}): use its order, not its probabilities."
        )
    return False, (
        f"No signal beyond the base rate: {auc}, {skill}. The columns given do not predict the "
        "outcome on held-out rows; do not use this model to prioritise."
    )


# ---------------------------------------------------------------------------------------------
# the final model and scoring


@dataclass
class TableModel:
    """A trained table model as scoring uses it (saved as ``table_model.joblib``)."""

    config: TableConfig
    model: HeadModel
    columns: list[str]
    kinds: dict[str, Kind]
    specs: tuple[FeatureSpec, ...]
    calibration: HeadCalibration
    version: str
    screen: pd.DataFrame
    verdict: str
    beats_base_rate: bool = True

    def score(self, frame: pd.DataFrame, name: str = "table", reasons: bool = True) -> pd.DataFrame:
        """Probability, 0-100 score, tier, rank, known outcome, reasons and model version per row."""
        frame = frame.reset_index(drop=True)
        needed = [self.config.id_column, *self.columns]
        if any(k == "date" for k in self.kinds.values()) and self.config.time_column:
            needed.append(self.config.time_column)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise TableError(
                f"{name}: the model needs columns {missing} which the table does not have"
            )
        kinds = {c: self.kinds[c] for c in self.columns}
        time = (
            row_time(frame, self.config, name) if any(k == "date" for k in kinds.values()) else None
        )
        matrix = model_matrix(coerce(frame, kinds), kinds, time)
        probability = self.model.predict_proba(matrix)[:, 1]
        out = pd.DataFrame({"id": frame[self.config.id_column].astype("string").to_numpy()})
        out["probability"] = probability
        out["score"] = to_score(probability, self.calibration)
        out["tier"] = to_tier(probability, self.calibration)
        if self.config.label_column in frame:
            label = label_values(frame, self.config, require_both=False).to_numpy()
            out["outcome"] = np.where(label == 1, "won", np.where(label == 0, "lost", "open"))
        if reasons:
            worded = explain(self.model, matrix, self.specs)
            out["reasons"] = worded["reasons"].to_numpy()
            out["reasons_json"] = worded["reasons_json"].to_numpy()
        out["model_version"] = self.version
        out = out.sort_values("probability", ascending=False, kind="stable", ignore_index=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out


def model_version(model: HeadModel) -> str:
    """Content hash of the booster and its calibration: the same model has the same version."""
    digest = hashlib.sha256(model.booster_.model_to_string().encode())
    digest.update(json.dumps(model.calibration_method_).encode())
    return f"table-{digest.hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------
# the whole run


@dataclass
class TableRun:
    config: TableConfig
    prepared: PreparedTable
    screen: ScreenResult
    columns: list[str]  # the model's columns after the screen
    matrix: pd.DataFrame  # what the model saw: labelled rows, ``columns``, dates as days
    duplicates: dict[str, int]
    predictions: pd.DataFrame  # held-out predictions, every fold of every repeat
    evaluation: pd.DataFrame
    folds: pd.DataFrame
    deciles: pd.DataFrame
    final: TableModel
    beats_base_rate: bool
    verdict: str
    protocol: dict
    notes: list[str] = field(default_factory=list)


def run_table(
    frame: pd.DataFrame, config: TableConfig, name: str = "table", progress=None
) -> TableRun:
    """Prepare, screen, evaluate by the protocol, fit the final model (see the module docstring)."""

    def step(text: str) -> None:
        if progress:
            progress(text)
        log.info("table %s: %s", name, text)

    step("prepare")
    prepared = prepare_table(frame, config, name)
    labelled = prepared.labelled
    label = prepared.label[labelled].to_numpy().astype(int)
    ids = prepared.ids[labelled].to_numpy()
    candidates = prepared.candidates.loc[labelled].reset_index(drop=True)
    time = prepared.time[labelled].reset_index(drop=True) if prepared.time is not None else None
    if label.sum() < config.min_positives:
        raise TableError(
            f"{name}: only {int(label.sum())} positive rows ({list(config.positive)} in "
            f"{config.label_column!r}); at least {config.min_positives} are needed (min_positives)"
        )

    step("screen")
    if config.out_of_time:
        oot = out_of_time_fold(time, label, config)
        development = np.concatenate([oot.train, oot.valid])
    else:
        development = np.arange(len(label))
    date_time = time if (time is not None and config.time_column) else None
    screened = screen(
        candidates.iloc[development].reset_index(drop=True),
        label[development],
        time=date_time.iloc[development].reset_index(drop=True) if date_time is not None else None,
        config=config.screen,
    )
    columns = (
        list(candidates.columns) if config.keep_suspects else screened.kept(candidates.columns)
    )
    if not columns:
        raise TableError(
            f"{name}: the leakage screen flags every candidate column ({', '.join(screened.suspects)}); "
            "check the table, or pass keep_suspects to train on them anyway"
        )
    kinds = {c: prepared.kinds[c] for c in columns}
    matrix = model_matrix(candidates[columns], kinds, date_time)
    categorical = [c for c in columns if kinds[c] == "categorical"]
    duplicates = duplicate_counts(matrix, pd.Series(label))

    step("evaluate")
    if config.out_of_time:
        folds = [oot]
        protocol = {
            "protocol": "out_of_time",
            "time": config.time_column or "row order",
            "train_rows": len(oot.train),
            "valid_rows": len(oot.valid),
            "test_rows": len(oot.test),
            "valid_start": str(time.iloc[oot.valid].min()),
            "test_start": str(time.iloc[oot.test].min()),
            "test_end": str(time.iloc[oot.test].max()),
        }
    else:
        groups = vector_groups(matrix)
        folds = kfold_folds(label, groups, config)
        protocol = {
            "protocol": "repeated_stratified_group_kfold",
            "folds": config.folds,
            "repeats": config.repeats,
            "grouping": "identical feature vectors share a fold",
        }
    predictions = []
    fitted = None
    for fold in folds:
        fitted = fit_fold(matrix, label, fold, columns, categorical, config)
        predictions.append(fold_predictions(fitted, matrix, label, ids, fold))
    predictions = pd.concat(predictions, ignore_index=True)
    evaluation = evaluate_table(predictions, config)
    beats, sentence = verdict(evaluation)
    first = predictions[predictions["repeat"] == 0]
    deciles = pd.concat(
        [decile_table(first["label"], first[s]).assign(scorer=s) for s in ("model", "logistic")],
        ignore_index=True,
    )

    step("final model")
    if config.out_of_time:
        final_fold = folds[0]
    else:
        everything = np.arange(len(label))
        train, valid = _inner_validation(everything, label, vector_groups(matrix), config.seed)
        final_fold = Fold(0, -1, train, valid, np.array([], dtype=int))
        fitted = fit_fold(matrix, label, final_fold, columns, categorical, config)
    valid_probability = fitted.model.predict_proba(matrix.iloc[final_fold.valid])[:, 1]
    final = TableModel(
        config=config,
        model=fitted.model,
        columns=columns,
        kinds=kinds,
        specs=feature_specs(kinds, config.time_column),
        calibration=head_calibration(valid_probability, TABLE_TIERS),
        version=model_version(fitted.model),
        screen=screened.table,
        verdict=sentence,
        beats_base_rate=beats,
    )
    notes = [f"set aside {c}: {why}" for c, why in prepared.set_aside.items()]
    if screened.suspects:
        action = "kept (keep_suspects)" if config.keep_suspects else "excluded"
        notes.append(f"leakage screen suspects {action}: {', '.join(screened.suspects)}")
    step("done")
    return TableRun(
        config,
        prepared,
        screened,
        columns,
        matrix,
        duplicates,
        predictions,
        evaluation,
        fold_metrics(predictions),
        deciles,
        final,
        beats,
        sentence,
        protocol,
        notes,
    )


# ---------------------------------------------------------------------------------------------
# the run folder (I/O at the edge)


def summary(run: TableRun) -> dict:
    """The run's facts in one JSON-able dict (also what the CLI prints and MLflow logs)."""
    label = run.prepared.label
    return {
        "table": run.prepared.name,
        "rows": len(label),
        "labelled_rows": int(label.notna().sum()),
        "open_rows": int(label.isna().sum()),
        "positives": int((label == 1).sum()),
        "base_rate": float(label.mean()),
        "protocol": run.protocol,
        "duplicates": run.duplicates,
        "set_aside": run.prepared.set_aside,
        "suspects": list(run.screen.suspects),
        "suspects_kept": run.config.keep_suspects,
        "features": run.columns,
        "verdict": run.verdict,
        "beats_base_rate": run.beats_base_rate,
        "model_version": run.final.version,
        "trees": run.final.model.best_iteration_,
        "calibration": run.final.model.calibration_method_,
        "fold_roc_auc": {
            scorer: {"mean": float(part["roc_auc"].mean()), "sd": float(part["roc_auc"].std())}
            for scorer, part in run.folds.groupby("scorer", sort=False)
        },
    }


def summary_markdown(run: TableRun) -> str:
    """A readable account of the run: verdict, evaluation, screen, duplicates, set-aside columns."""
    from propensity.evaluate import to_markdown

    facts = summary(run)
    duplicates = run.duplicates
    suspects = run.screen.table[run.screen.table["verdict"] == "exclude"]
    lines = [
        f"# Table mode: {facts['table']}",
        "",
        f"**{run.verdict}**",
        "",
        f"- rows {facts['rows']:,} (labelled {facts['labelled_rows']:,}, open {facts['open_rows']:,}); "
        f"positives {facts['positives']:,}, base rate {facts['base_rate']:.3f}",
        f"- protocol: {json.dumps(run.protocol)}",
        f"- duplicates among labelled rows: {duplicates['exact_duplicate_rows']:,} exact duplicate rows; "
        f"{duplicates['conflicting_vectors']:,} feature vectors with both outcomes "
        f"({duplicates['conflicting_rows']:,} rows); {duplicates['distinct_vectors']:,} distinct vectors",
        f"- model: {facts['trees']} trees, {facts['calibration']} calibration, version {facts['model_version']}",
        "",
        "## Evaluation (held-out rows"
        + (", first repeat" if run.config.repeats > 1 and not run.config.out_of_time else "")
        + ")",
        "",
        to_markdown(run.evaluation),
        "",
        "| scorer | Brier skill over the base rate |",
        "|---|---|",
        *[
            f"| {r.scorer} | {r.brier_skill:+.3f} [{r.brier_skill_lo:+.3f}, {r.brier_skill_hi:+.3f}] |"
            for r in run.evaluation.itertuples()
        ],
        "",
        "## Leakage screen: suspects",
        "",
        ("none" if suspects.empty else _markdown_table(suspects)),
        "",
        "## Columns set aside",
        "",
        *(f"- {column}: {why}" for column, why in run.prepared.set_aside.items()),
        "",
    ]
    return "\n".join(lines)


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, "|" + "---|" * len(frame.columns), *rows])


def write_table_run(run: TableRun, run_dir: Path | str, frame: pd.DataFrame) -> list[Path]:
    """Write the run folder; ``scores.csv`` holds every row of ``frame`` scored by the final model."""
    import joblib

    from propensity.evaluate import calibration_table, plot_calibration, plot_gains
    from propensity.explain import global_importance, plot_global_importance
    from propensity.io import write_atomic, write_parquet, write_text
    from propensity.outputs.export import neutralise_formulas

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    first = run.predictions[run.predictions["repeat"] == 0]
    csv = lambda table: lambda p: table.to_csv(p, index=False)  # noqa: E731
    written = [
        write_text(run.config.to_yaml(), run_dir / "config.yaml"),
        write_atomic(run_dir / "screen.csv", csv(run.screen.table)),
        write_atomic(run_dir / "evaluation.csv", csv(run.evaluation)),
        write_atomic(run_dir / "folds.csv", csv(run.folds)),
        write_atomic(run_dir / "deciles.csv", csv(run.deciles)),
        write_atomic(
            run_dir / "calibration.csv", csv(calibration_table(first["label"], first["model"]))
        ),
        write_parquet(run.predictions, run_dir / "predictions.parquet"),
        write_text(
            json.dumps(summary(run), indent=2, default=str) + "\n", run_dir / "summary.json"
        ),
        write_text(summary_markdown(run), run_dir / "summary.md"),
        write_atomic(
            run_dir / "calibration.png",
            lambda p: plot_calibration(first["label"], first["model"], p, "calibration (held out)"),
        ),
        write_atomic(
            run_dir / "gains.png",
            lambda p: plot_gains(
                first["label"],
                {s: first[s].to_numpy() for s in ("model", "logistic")},
                p,
                "cumulative gains (held out)",
            ),
        ),
        write_atomic(run_dir / "table_model.joblib", lambda p: joblib.dump(run.final, p)),
        write_atomic(
            run_dir / "model.lgb.txt", lambda p: run.final.model.booster_.save_model(str(p))
        ),
    ]
    importance = global_importance(run.final.model, run.matrix, run.final.specs, head="table")
    written.append(write_atomic(run_dir / "global_reasons.csv", csv(importance)))
    written.append(
        write_atomic(
            run_dir / "global_reasons.png", lambda p: plot_global_importance(importance, p)
        )
    )
    scores = run.final.score(frame, run.prepared.name)
    written.append(write_atomic(run_dir / "scores.csv", csv(neutralise_formulas(scores))))
    return written
