"""Observable ceiling (part of ``make bench``): how much of the oracle's lift any model on the
observable data can reach, on every robustness world; written to ``benchmarks/ceiling.md`` and
``.json``.

The oracle of the robustness table knows each account's true fit and its journey state in the
week of as_of. The data do not. Per world this measures the conversion model, the same model
given the true fit (what inferring the fit costs) and given the filtered journey state (what
inferring the state costs), and a bound no model on the data can beat:

* the **Bayes bound**: the exact posterior probability of the label from the forward filter of
  the world's own hidden Markov chain (:mod:`bayes_filter`), with privileged nuisance values
  (true fit, contacts' propensities); on worlds whose engagement or intent trails the journey
  (``engagement_lag_weeks``, the intent lag of :class:`propensity.data.world.WorldConfig`) the
  filter reads each signal as evidence about the journey week it shows;
* on the lagged worlds also the *ceiling at lag L*: the model given the true fit and the exact
  journey state ``L`` weeks before as_of (a cruder view of the same limit, kept for
  comparison: where every signal trails by at least ``L`` weeks nothing in the history says
  more, up to the model's own estimation loss).

Usage: ``python benchmarks/ceiling.py [--out-dir benchmarks] [--settings intent_leads,...]``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bayes_filter import bayes_conversion, bayes_for_world
from feature_ablation import SEEDS, fit_and_score
from robustness import (
    ACCOUNTS,
    SEED,
    SETTINGS,
    TARGETS,
    run_settings,
    settings_main,
    write_report,
)

DEFAULT_SETTINGS = tuple(SETTINGS)
STATES = ("out_of_market", "researching", "buying")  # a prospect's states (STATE_NAMES)


def lagged_state_columns(data, truth, start, lag_weeks: int):
    """Per spine row: the true fit and the one-hot journey state of the week ``lag_weeks``
    before the last week that ends before as_of (the truth table's weekly dates hold, at a
    week start, the state of the week before)."""
    import pandas as pd

    accounts, conversion = truth
    keys = data[["account_id", "as_of"]].reset_index(drop=True)
    last_week = ((keys["as_of"] - start).dt.days - 1) // 7
    keys["truth_date"] = (
        start + pd.to_timedelta(7 * (last_week - lag_weeks + 1), unit="D")
    ).astype("datetime64[us]")
    states = conversion[["account_id", "as_of", "true_state"]].rename(
        columns={"as_of": "truth_date"}
    )
    states["truth_date"] = states["truth_date"].astype("datetime64[us]")
    rows = keys.merge(states, on=["account_id", "truth_date"], how="left").merge(
        accounts[["account_id", "true_fit"]], on="account_id", how="left"
    )
    known = float(rows["true_state"].notna().mean())
    if known < 0.95:  # the first weeks of the world have no earlier truth date
        raise ValueError(f"only {known:.0%} of the rows have a true state {lag_weeks} weeks back")
    state = rows["true_state"].astype(str)
    return pd.DataFrame(
        {
            "true_fit": rows["true_fit"].to_numpy(),
            **{f"true_state_{s}": (state == s).astype(float).to_numpy() for s in STATES},
        },
        index=data.index,
    )


# (engagement lag, intent lead) in weeks: intent trails the journey by lag - lead
SWEEP_LAGS = ((0, 0), (1, 0), (1, 1), (2, 0), (2, 2), (3, 0), (3, 3), (4, 0), (4, 4))
SWEEP_MONTHS = 6  # the last monthly snapshot dates with complete labels, as the test window


def lag_sweep(accounts: int) -> list[dict]:
    """The Bayes bound's share of the oracle's lift as engagement (and intent) fall behind the
    journey, on the default world otherwise (same seed: the same journeys and labels, only the
    signals move). Rows: the prospects (out of market, researching, buying) on the last
    ``SWEEP_MONTHS`` monthly dates whose labels are complete; the oracle is the world's true
    probability on the same rows."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from propensity.data.world import WorldConfig
    from propensity.data.world.accounts import account_ids
    from propensity.data.world.chunk import simulate_hidden
    from propensity.data.world.truth import truth_conversion_table

    results, labels = [], None
    for lag, lead in SWEEP_LAGS:
        started = time.perf_counter()
        world = WorldConfig(
            n_accounts=accounts,
            seed=SEED,
            chunk_accounts=max(accounts, 50),
            engagement_lag_weeks=lag,
            intent_lead_weeks=lead,
        )
        hidden = simulate_hidden(world, 0, accounts, 0)
        truth = truth_conversion_table(
            world, account_ids(0, accounts), hidden.fit, hidden.journey, hidden.opportunities
        ).to_pandas()
        end = pd.Timestamp(world.end) - pd.Timedelta(days=world.horizon_days)
        monthly = truth["as_of"][(truth["as_of"].dt.day == 1) & (truth["as_of"] <= end)]
        dates = sorted(monthly.unique())[-SWEEP_MONTHS:]
        rows = truth[
            truth["as_of"].isin(dates)
            & truth["true_state"].isin(["out_of_market", "researching", "buying"])
        ].reset_index(drop=True)
        rows["account"] = rows["account_id"].str[1:].astype(int)
        label = rows["realised_label"].astype(int).to_numpy()
        if labels is not None and not np.array_equal(label, labels):
            raise ValueError("the lag sweep's worlds differ in their journeys, not only signals")
        labels = label
        bayes = bayes_conversion(hidden, world, rows[["account", "as_of"]], world.horizon_days)
        oracle = roc_auc_score(label, rows["true_conversion_probability"])
        bound = roc_auc_score(label, bayes["probability"])
        results.append(
            {
                "engagement_lag_weeks": lag,
                "intent_lag_weeks": world.intent_lag_weeks,
                "rows": len(rows),
                "positives": int(label.sum()),
                "oracle_roc_auc": round(float(oracle), 4),
                "bayes_roc_auc": round(float(bound), 4),
                "bayes_share": round(float((bound - 0.5) / (oracle - 0.5)), 3),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(f"  lag sweep {json.dumps(results[-1])}", flush=True)
    return results


@dataclass
class ConversionSetup:
    """A robustness world generated in ``folder`` and the conversion head's task on it: the
    packaged features, the out-of-time fold, the test labels and the oracle's ROC-AUC."""

    world: object
    config: object
    folder: Path
    truth: tuple
    data: object
    task: object
    fold: object
    settings: object
    label: object
    oracle: float

    def share(self, auc: float) -> float:
        return round((auc - 0.5) / (self.oracle - 0.5), 3)


def conversion_setup(name: str, accounts: int, workdir: Path) -> ConversionSetup:
    """Generate the world of setting ``name`` and prepare the conversion head's task."""
    import numpy as np
    from model import packaged_model_config, packaged_scorecard
    from sklearn.metrics import roc_auc_score

    from propensity.data.contract import load_tables
    from propensity.data.world import WorldConfig, generate_world, read_truth
    from propensity.model.splits import SnapshotOutOfTime
    from propensity.runs.account import fit_settings, head_task
    from propensity.runs.labelled import conversion_censoring, labelled_features

    _, world_changes, spine_changes = SETTINGS[name]
    world = WorldConfig(n_accounts=accounts, seed=SEED, **world_changes)
    folder = workdir / f"world_{name}"
    generate_world(world, folder, overwrite=True)
    config = packaged_model_config()
    if spine_changes:
        config = config.model_copy(update={"spine": config.spine.model_copy(update=spine_changes)})
    tables, truth = load_tables(folder), read_truth(folder)
    prepared = labelled_features(tables, config)
    data = prepared.data
    splitter = SnapshotOutOfTime(config.split, config.spine.horizon_days)
    task = head_task(
        "conversion",
        data,
        splitter.windows(data),
        prepared.feature_set,
        packaged_scorecard(),
        truth,
        censor_conversion=conversion_censoring(config),
    )
    fold = splitter.folds(data, task.training_label, task.groups)[0]
    label = task.label[fold.test].astype(int)
    oracle = roc_auc_score(label, np.asarray(task.references(fold, fold.test)["oracle"], float))
    settings = fit_settings(config, "conversion")
    return ConversionSetup(
        world, config, folder, truth, data, task, fold, settings, label, float(oracle)
    )


def measure_setting(name: str, accounts: int, workdir: Path) -> dict:
    """One world: the model on the packaged features, then the ceilings."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    setup = conversion_setup(name, accounts, workdir)
    world, config, truth, data = setup.world, setup.config, setup.truth, setup.data
    task, fold, settings, label, oracle = (
        setup.task,
        setup.fold,
        setup.settings,
        setup.label,
        setup.oracle,
    )
    model, _ = fit_and_score(task, task.columns, fold, settings)
    lags = sorted({0, 1, world.engagement_lag_weeks, world.intent_lag_weeks})

    share = setup.share
    model_auc = float(roc_auc_score(label, model))
    out = {
        "setting": name,
        "accounts": accounts,
        "engagement_lag_weeks": world.engagement_lag_weeks,
        "intent_lag_weeks": world.intent_lag_weeks,
        "intent_coverage": world.intent_coverage,
        "test_positives": int(label.sum()),
        "oracle_roc_auc": round(float(oracle), 4),
        "model_roc_auc": round(model_auc, 4),
        "model_share": share(model_auc),
        "ceilings": {},
    }

    def with_columns(extra: pd.DataFrame) -> dict:
        privileged = dataclasses.replace(task, matrix=pd.concat([task.matrix, extra], axis=1))
        probability, _ = fit_and_score(privileged, [*task.columns, *extra.columns], fold, settings)
        auc = float(roc_auc_score(label, probability))
        return {"roc_auc": round(auc, 4), "share": share(auc)}

    true_fit = truth[0].set_index("account_id")["true_fit"]
    out["model_with_true_fit"] = with_columns(
        pd.DataFrame({"true_fit": data["account_id"].map(true_fit).to_numpy()}, index=data.index)
    )
    on_time = world.engagement_lag_weeks == 0 and world.intent_lag_weeks == 0
    if world.regime_change is None:
        bayes = bayes_for_world(world, data[["account_id", "as_of"]], config.spine.horizon_days)
        if bayes["probability"].isna().any():
            raise ValueError("the Bayes filter left spine rows without a probability")
        auc = float(roc_auc_score(label, bayes["probability"].to_numpy()[fold.test]))
        out["bayes"] = {"roc_auc": round(auc, 4), "share": share(auc)}
        out["model_with_filtered_state"] = with_columns(
            bayes[["p_out", "p_research", "p_buying"]].set_axis(data.index)
        )
        plain = bayes_for_world(
            world, data[["account_id", "as_of"]], config.spine.horizon_days, privileged=False
        )
        auc = float(roc_auc_score(label, plain["probability"].to_numpy()[fold.test]))
        out["plain_filter"] = {"roc_auc": round(auc, 4), "share": share(auc)}
        out["model_with_plain_filter_state"] = with_columns(
            plain[["p_out", "p_research", "p_buying"]].set_axis(data.index)
        )
    start = pd.Timestamp(world.start)
    for lag in lags if not on_time else [0]:
        out["ceilings"][str(lag)] = with_columns(lagged_state_columns(data, truth, start, lag))
    out["seconds"] = round(time.perf_counter() - started, 1)
    shutil.rmtree(setup.folder, ignore_errors=True)
    return out


def ceiling_markdown(report: dict) -> str:
    target = TARGETS["share"]

    def cell(result: dict | None) -> str:
        return "-" if result is None else f"{result['roc_auc']:.3f} ({result['share']:.3f})"

    lines = [
        "# Observable ceiling: how much of the oracle's lift the data allow",
        "",
        f"Written by `make bench` (`benchmarks/ceiling.py`) on {report['date']}; machine: "
        f"{report['machine']}; {report['seconds']:.0f} s in all.",
        f"Protocol: robustness worlds ({report['accounts']:,} accounts, seed {SEED}), packaged "
        "configuration and out-of-time split; ROC-AUC (share) on the test window. *Share* = "
        f"(AUC - 0.5) / (oracle - 0.5); issue 15's target is {target} (0.92 on default). The "
        "oracle knows each account's true fit and its journey state in the week of as_of.",
        "",
        "- *model*: the conversion head's LightGBM model (mean probability of its fits with "
        f"seeds {', '.join(map(str, SEEDS))}) on the packaged features.",
        "- *+ true fit*: the same model given also each account's true fit: what inferring the "
        "fit from firmographics costs.",
        "- *+ filtered state*: the same model given also the Bayes filter's probabilities of "
        "out of market / researching / buying (below): what inferring the journey state costs.",
        "- *+ plain filter*: the same model given the state probabilities of a filter that knows "
        "the world's law (its rates and transition probabilities) but no hidden trait of an "
        "account or contact (`without_privileges`: the population's mean fit, no traps, mean "
        "propensities and intent levels; which accounts intent covers, which the data show in "
        "effect, it keeps): what a journey-state filter whose parameters are learned from the "
        "data could add; in brackets that filter's own ROC-AUC.",
        "- *Bayes bound*: the exact posterior probability of the label given everything the data "
        "show before as_of, from the forward filter of the world's own hidden Markov chain with "
        "its true parameters (`benchmarks/bayes_filter.py`), handed the true fit and each "
        "contact's engagement propensity as privileged values; where engagement or intent trails "
        "the journey, each signal is read as evidence about the journey week it shows. The "
        "posterior ranks best on its information (Neyman-Pearson) and the privileged values only "
        "add information, so no model on the observable data beats it, up to sampling noise on "
        "the test rows.",
        "- *model / bound*: the model's share over the Bayes bound's: how much of what the data "
        "allow the model uses.",
        "- *ceiling at lag L* (lagged worlds): the model given the true fit and the exact journey "
        "state of the week L weeks before as_of, a cruder view of the same limit kept for "
        "comparison (lag 0 against the oracle shows the model's own estimation loss).",
        "",
        "| setting | engagement / intent lag (weeks) | intent coverage | oracle | model "
        "| + true fit | + filtered state | + plain filter [alone] | Bayes bound | model / bound "
        "| ceiling at lag L |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        if "failed" in r:
            lines.append(f"| {r['setting']} | failed: {' / '.join(r['failed'])} |")
            continue
        ceilings = "; ".join(f"{lag}: {cell(c)}" for lag, c in r["ceilings"].items())
        model = {"roc_auc": r["model_roc_auc"], "share": r["model_share"]}
        alone = f"[{r['plain_filter']['roc_auc']:.3f}]" if "plain_filter" in r else ""
        of_bound = f"{r['model_share'] / r['bayes']['share']:.3f}" if "bayes" in r else "-"
        lines.append(
            f"| {r['setting']} | {r['engagement_lag_weeks']} / {r['intent_lag_weeks']} "
            f"| {r['intent_coverage']:.0%} | {r['oracle_roc_auc']:.3f} | {cell(model)} "
            f"| {cell(r.get('model_with_true_fit'))} | {cell(r.get('model_with_filtered_state'))} "
            f"| {cell(r.get('model_with_plain_filter_state'))} {alone} "
            f"| {cell(r.get('bayes'))} | {of_bound} | {ceilings} |"
        )
    lines += [
        "",
        "## The Bayes bound as the signals fall behind the journey",
        "",
        f"The default world ({report['accounts']:,} accounts, seed {SEED}) with only the lags "
        "changed: the same journeys and labels, the signals moved. Rows: the prospects on the "
        f"last {SWEEP_MONTHS} monthly snapshot dates whose labels are complete; ROC-AUC of the "
        "Bayes bound and of the oracle on the same rows, and the bound's share of the oracle's "
        f"lift (issue 15's target: {target}, 0.92 on default).",
        "",
        "| engagement lag (weeks) | intent lag (weeks) | rows | positives | oracle | Bayes bound "
        "| share |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.get("lag_sweep", []):
        lines.append(
            f"| {r['engagement_lag_weeks']} | {r['intent_lag_weeks']} | {r['rows']:,} "
            f"| {r['positives']:,} | {r['oracle_roc_auc']:.3f} | {r['bayes_roc_auc']:.3f} "
            f"| {r['bayes_share']:.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def ceiling_benchmark(
    out_dir: Path, workdir: Path | None = None, accounts: int = ACCOUNTS, names=None
) -> dict:
    names = list(names or DEFAULT_SETTINGS)
    report = run_settings("ceiling", names, accounts, workdir, Path(__file__).resolve())
    started = time.perf_counter()
    report["lag_sweep"] = lag_sweep(accounts)
    report["seconds"] = round(report["seconds"] + time.perf_counter() - started, 1)
    write_report(out_dir, "ceiling", report, ceiling_markdown(report))
    return report


def main(argv: list[str] | None = None) -> None:
    settings_main(
        argv, __doc__.splitlines()[0], DEFAULT_SETTINGS, measure_setting, ceiling_benchmark
    )


if __name__ == "__main__":
    main()
