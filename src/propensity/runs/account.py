"""The account recipe: tables -> spine + labels -> point-in-time features -> leakage screen ->
both heads through the protocol (:mod:`propensity.runs.protocol`) -> a :class:`RunResult`.

* fit head: firmographic/technographic features only; judged on "the account wins new
  business", fitted on ``fit_label`` ("opened or won" by default), censored at the start of the
  test window for the rows it is fitted on, so no test-period outcome is used for fitting; it
  learns from one row per account: the customer base (accounts
  that were customers before the first snapshot) and each prospect of the training and
  validation windows (:func:`propensity.runs.labelled.account_rows`), its trees boosted from the
  hand-made scorecard's fit points;
* conversion head: every present family; label = a new-business opportunity within the horizon.

Both are split out of time (:class:`propensity.model.splits.SnapshotOutOfTime`) and compared on
the test window with the hand-tuned scorecard, a logistic baseline, the base rate and, on a
generated world, the oracle (the world's true probability).
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from propensity.data.specs import FAMILY_TABLES, Tables, TableView
from propensity.evaluate import to_markdown
from propensity.explain import explain
from propensity.features.matrix import FeatureSet
from propensity.model.config import ModelConfig
from propensity.model.scorecard import Scorecard
from propensity.model.splits import OutOfTimeSplit, SnapshotOutOfTime
from propensity.runs.folder import RunResult
from propensity.runs.labelled import (
    account_rows,
    check_positives,
    conversion_censoring,
    customer_base,
    head_features,
    head_labels,
    labelled_features,
)
from propensity.runs.protocol import FitSettings, HeadTask, run_head
from propensity.scoring import CONVERSION_TIERS, FIT_TIERS, AccountModel, Scorer, model_version
from propensity.spine import data_end, data_start

HEADS = ("fit", "conversion")
REGISTERED = {"fit": "propensity-fit", "conversion": "propensity-conversion"}
Truth = tuple[pd.DataFrame, pd.DataFrame]


def _references(head: str, data: pd.DataFrame, scorecard: Scorecard, truth: Truth | None):
    """The recipe's own scorers on held-out rows: the scorecard and, on a generated world, the oracle."""
    oracle = np.full(len(data), np.nan)
    if truth is not None:
        truth_accounts, truth_conversion = truth
        if head == "fit":
            true_fit = truth_accounts.set_index("account_id")["true_fit"]
            oracle = data["account_id"].map(true_fit).to_numpy(dtype=float)
        else:
            lookup = truth_conversion.set_index(["account_id", "as_of"])[
                "true_conversion_probability"
            ]
            keys = pd.MultiIndex.from_frame(data[["account_id", "as_of"]])
            oracle = lookup.reindex(keys).to_numpy(dtype=float)

    def references(fold, rows: np.ndarray) -> dict[str, np.ndarray]:
        test = data.iloc[rows]
        points = scorecard.points_by_column(test, head).sum(axis=1)
        return {"scorecard": points.to_numpy(dtype=float), "oracle": oracle[rows]}

    return references


def head_task(
    head: str,
    data: pd.DataFrame,
    windows: OutOfTimeSplit,
    feature_set: FeatureSet,
    scorecard: Scorecard,
    truth: Truth | None,
    learn_only: np.ndarray | None = None,
    fit_label: str = "won",
    censor_conversion: str | None = None,
) -> HeadTask:
    columns = head_features(feature_set, head)
    categorical = set(feature_set.categorical_columns)
    return HeadTask(
        head=head,
        matrix=data,
        label=head_labels(data, windows, head, fitted=False),
        fit_label=head_labels(
            data,
            windows,
            head,
            fitted=True,
            fit_label=fit_label,
            censor_conversion=censor_conversion,
        ),
        # the fit head's probability is that of a win, whatever it learns from
        probability_label=head_labels(data, windows, head, fitted=True, fit_label="won")
        if head == "fit" and fit_label != "won"
        else None,
        columns=columns,
        categorical=[c for c in columns if c in categorical],
        specs=feature_set.specs,
        tiers=FIT_TIERS if head == "fit" else CONVERSION_TIERS,
        keys=data[["account_id", "as_of"]],
        groups=data["account_id"].to_numpy(),
        dates=data["as_of"].to_numpy(),
        references=_references(head, data, scorecard, truth),
        probability_references=frozenset() if head == "fit" else frozenset({"oracle"}),
        scorecard=scorecard,
        learn_only=learn_only,
    )


def fit_settings(config: ModelConfig, head: str) -> FitSettings:
    return FitSettings(
        params=config.fit if head == "fit" else config.conversion,
        # the fit head's probability is one per account and sets its 0-100 score: a step
        # (isotonic) calibrator gave a quarter of 17,000 prospects one fit score (20,000-account
        # world, seed 5), which sales cannot rank; Platt keeps the model's order
        calibration_methods=config.calibration_methods if head == "conversion" else ("sigmoid",),
        negative_sample_rate=config.negative_sample_rate,
        seed=config.seed,
        n_jobs=config.n_jobs,
        capacity_k=config.capacity_k,
        n_bootstrap=config.n_bootstrap,
        min_calibration_positives=config.min_calibration_positives,
        selection_level=config.selection_level,
        selection_metric=config.selection_metric,
        # the fit head's features are static: an account's validation rows repeat its training
        # rows (whose censored label already counts a win in the validation window), so the
        # validation window is no hold-out for it; its rows are cross-fitted by account
        cross_fit=head == "fit",
        boost_from_scorecard=head == "fit",
        stack=config.stack_logistic.get(head, False),
        points=config.learned_scorecard,
    )


def fit_against_truth(predictions: pd.DataFrame, truth_accounts: pd.DataFrame) -> dict:
    """Fit head vs the hidden ICP fit, one row per account: AUC on 'true fit above median', Spearman."""
    fit_rows = predictions[predictions["head"] == "fit"]
    per_account = fit_rows.groupby("account_id")[["model", "scorecard", "logistic"]].mean()
    true_fit = truth_accounts.set_index("account_id")["true_fit"].reindex(per_account.index)
    above = (true_fit > true_fit.median()).astype(int)
    out = {"accounts": int(len(per_account))}
    for scorer in ("model", "scorecard", "logistic"):
        out[f"{scorer}_auc_true_fit_above_median"] = float(
            roc_auc_score(above, per_account[scorer])
        )
        out[f"{scorer}_spearman_true_fit"] = float(
            per_account[scorer].corr(true_fit, method="spearman")
        )
    return out


def _step(progress, name: str) -> None:
    if progress:
        progress(name)


def train_account_model(
    tables: Tables,
    config: ModelConfig,
    scorecard: Scorecard,
    truth: Truth | None = None,
    progress=None,
    name: str = "data",
    heads: tuple[str, ...] = HEADS,
) -> RunResult:
    """The whole account recipe (see the module docstring); nothing is written."""
    started = time.perf_counter()
    prepared = labelled_features(tables, config, progress)
    data = prepared.data
    splitter = SnapshotOutOfTime(config.split, config.spine.horizon_days)
    windows = splitter.windows(data)
    runs, scorers = {}, {}
    for head in heads:
        _step(progress, f"train and evaluate the {head} head")
        rows, learn_only = data, None
        if head == "fit":
            base = customer_base(tables, prepared.feature_set, config, data["as_of"].min())
            rows, learn_only = account_rows(data, windows, base)
        # the same dates bound the windows on the fit head's rows (the test rows are the data's)
        head_windows = splitter.windows(rows)
        task = head_task(
            head,
            rows,
            head_windows,
            prepared.feature_set,
            scorecard,
            truth,
            learn_only,
            fit_label=config.fit_label,
            censor_conversion=conversion_censoring(config),
        )
        settings = fit_settings(config, head)
        # a cross-fitted head learns from train + validation: its positives are counted there
        pooled = settings.cross_fits(int(task.training_label[head_windows.valid].sum()))
        learned_rows = head_windows.train | head_windows.valid if pooled else head_windows.train
        check_positives(
            head,
            int(task.training_label[learned_rows].sum()),
            config,
            head_windows,
            rows.loc[learned_rows, "as_of"].min(),
            until=head_windows.t2 if pooled else head_windows.t1,
        )
        runs[head] = run = run_head(task, splitter, settings)
        if head == "fit":
            run.facts["customer_base_rows"] = len(base)
        # drift is measured against the prospects the head learned from
        reference = learned_rows & (~learn_only if learn_only is not None else True)
        scorers[head] = Scorer.fit(
            head, run.shipped.model, task.specs, task.tiers, reference_rows=rows.loc[reference]
        )
        scorers[head].learned_scorecard = run.learned_scorecard
        scorers[head].learned_scorecard_auc = {
            row.scorer: float(row.roc_auc)
            for row in run.evaluation.itertuples()
            if row.scorer in ("learned_scorecard", "scorecard", "model", "stacked")
        }
    _step(progress, "done")
    model = AccountModel(
        scorers,
        config.spine,
        config.features,
        model_version([scorers[h].model for h in sorted(scorers)]),
    )
    test_window = data.loc[windows.test].reset_index(drop=True)
    for head in heads:
        test_window[f"label_{head}"] = head_labels(data, windows, head, fitted=False)[windows.test]
    predictions = pd.concat([r.predictions for r in runs.values()], ignore_index=True)
    summary = {
        "data": name,
        "split": windows.describe(),
        "families": list(prepared.feature_set.families),
        "skipped_families": prepared.feature_set.skipped,
        "heads": {head: run.facts for head, run in runs.items()},
        "fit_against_truth": fit_against_truth(predictions, truth[0])
        if truth is not None and "fit" in runs
        else None,
        "screen_suspects": list(prepared.screen.suspects),
        "screen_suspects_kept": config.keep_suspects,
        "model_version": model.version,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result = RunResult(
        kind="account",
        name=name,
        config=config,
        heads=runs,
        scoring_model=model,
        summary=summary,
        markdown="",
        screen=prepared.screen,
        test_window=test_window,
        registered_names={head: REGISTERED[head] for head in heads},
        input_examples={head: input_example(test_window[scorers[head].features]) for head in heads},
        tables={"features.csv": prepared.feature_set.definitions()},
    )
    result.markdown = summary_markdown(result)
    return result


def input_example(features: pd.DataFrame) -> pd.DataFrame:
    """Rows with the most filled-in values (so every column's type is visible in a signature)."""
    filled = features.notna().sum(axis=1).sort_values(ascending=False, kind="stable")
    return features.loc[filled.index[:5]].reset_index(drop=True)


def summary_markdown(result: RunResult) -> str:
    split = result.summary["split"]
    lines = [
        f"# Account run: {result.name}",
        "",
        *(f"- **{head}**: {sentence}" for head, sentence in result.verdicts.items()),
        "",
        f"Out of time: train < {split['valid_start']} <= validation < gap < test "
        f"{split['test_start']}..{split['test_end']}; families: "
        f"{', '.join(result.summary['families'])}; model version {result.summary['model_version']}.",
        "",
        to_markdown(result.evaluation),
    ]
    return "\n".join(lines)


def data_fingerprint(tables: Tables) -> dict:
    """Content hash of every input table (row order does not matter), row counts, dates, families."""
    digest = hashlib.sha256()
    rows = {}
    for name in tables.present():
        table = tables.get(name)
        # a table kept in DuckDB is hashed a part at a time: the same row hashes, never the
        # whole table in pandas
        parts = table.frames() if isinstance(table, TableView) else iter([table])
        first = next(parts, None)
        if first is None:  # a view with no rows (the validator refuses empty tables)
            first = table.to_pandas()
        hashes = [pd.util.hash_pandas_object(first, index=False).to_numpy()]
        hashes += [pd.util.hash_pandas_object(f, index=False).to_numpy() for f in parts]
        hashed = np.sort(np.concatenate(hashes))
        rows[name] = len(hashed)
        digest.update(name.encode())
        digest.update(
            json.dumps([f"{c}:{t}" for c, t in first.dtypes.astype(str).items()]).encode()
        )
        digest.update(hashed.tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": rows,
        "date_start": str(data_start(tables).date()),
        "date_end": str(data_end(tables).date()),
        "families": [f for f, t in FAMILY_TABLES.items() if tables.get(t) is not None],
    }


def reason_checks(result: RunResult, truth: Truth) -> dict:
    """On the last test date: how often the top conversion reason of a truly buying account is an
    engagement or intent reason, and how often a no-fit trap account with engagement gets a fit
    (firmographic) reason among its negatives."""
    truth_accounts, truth_conversion = truth
    data = result.test_window
    last = data[data["as_of"] == data["as_of"].max()]
    states = truth_conversion.set_index(["account_id", "as_of"])["true_state"]
    state = states.reindex(pd.MultiIndex.from_frame(last[["account_id", "as_of"]])).to_numpy()
    trap = last["account_id"].map(truth_accounts.set_index("account_id")["trap"]).to_numpy()
    scorer = result.scoring_model.scorers["conversion"]
    buying = last[state == "buying"]
    engaged_traps = last[(trap != "none") & (last["eng_events_90d"] > 0)]
    out = {
        "as_of": str(last["as_of"].max().date()),
        "buying_accounts": len(buying),
        "engaged_trap_accounts": len(engaged_traps),
    }
    if len(buying):
        reasons = explain(scorer.model, buying, scorer.specs)["reasons_json"].map(json.loads)
        top = reasons.map(lambda r: r[0]["family"] if r and r[0]["contribution"] > 0 else None)
        out["buying_top_reason_engagement_or_intent_share"] = float(
            top.isin(["engagement", "intent"]).mean()
        )
    if len(engaged_traps):
        reasons = explain(scorer.model, engaged_traps, scorer.specs)["reasons_json"].map(json.loads)
        fit_negative = reasons.map(
            lambda r: any(x["family"] == "firmographic" and x["contribution"] < 0 for x in r)
        )
        out["trap_fit_reason_among_negatives_share"] = float(fit_negative.mean())
    return out
