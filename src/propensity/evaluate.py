"""Decision metrics for ranked account lists, with account-clustered bootstrap intervals.

Inputs are plain arrays: ``label`` (0/1), ``score`` (higher = more likely), ``group`` (account
id, the bootstrap resamples accounts because an account's rows at several dates are not
independent) and ``as_of`` (for precision/recall at a per-date capacity).

Metrics: ROC-AUC, PR-AUC (average precision), Brier score, expected calibration error (10
equal-count bins of the score: sum over bins of bin share x |mean score - observed rate|),
lift at 5/10/20 % (positive rate in the top share / overall rate; a tie block straddling
the cut counts pro rata, so tied scores are never ordered by input position), precision and recall at a
capacity of ``k`` accounts per snapshot date, a decile table and the monotonicity of its rates.
Brier and ECE need probabilities; they are left empty for scores that are not (a scorecard).

The bootstrap draws accounts with replacement and turns the draw into row weights, so every
metric is a weighted metric over one fixed sort of the scores: O(n) per replicate instead of a
re-sort, which is why these are written here rather than taken from scikit-learn (the tests
check them against scikit-learn and against hand-computed examples).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "lift_5",
    "lift_10",
    "lift_20",
    "precision_at_k",
    "recall_at_k",
)
PROBABILITY_METRICS = ("brier", "ece")


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by descending score, with tie blocks and fixed per-row facts."""

    label: np.ndarray
    score: np.ndarray
    tie_start: np.ndarray  # for each row, index of the first row of its tie block
    tie_end: np.ndarray  # for each row, index one past the last row of its tie block
    block_ends: np.ndarray  # index one past the last row of each tie block
    ece_bin: np.ndarray
    in_capacity: np.ndarray
    group_codes: np.ndarray
    n_groups: int


def _rank(label, score, group, as_of, capacity_k: int | None) -> _Ranked:
    label = np.asarray(label, dtype=float)
    score = np.asarray(score, dtype=float)
    order = np.argsort(-score, kind="stable")
    label, score = label[order], score[order]
    n = len(score)
    new_block = np.r_[True, score[1:] != score[:-1]] if n else np.array([], dtype=bool)
    block_id = np.cumsum(new_block) - 1
    starts = np.flatnonzero(new_block)
    ends = np.r_[starts[1:], n]
    tie_start, tie_end = starts[block_id], ends[block_id]
    # equal-count bins on the ascending score for ECE (ties may straddle: fine for a diagnostic)
    ece_bin = np.minimum((np.arange(n)[::-1] * 10) // max(n, 1), 9)
    in_capacity = np.zeros(n, dtype=bool)
    if capacity_k is not None and as_of is not None:
        dates = pd.Series(np.asarray(as_of)[order])
        rank_in_date = dates.groupby(dates).cumcount().to_numpy()
        in_capacity = rank_in_date < capacity_k
    codes, uniques = pd.factorize(pd.Series(np.asarray(group)[order]))
    return _Ranked(
        label, score, tie_start, tie_end, ends, ece_bin, in_capacity, codes, len(uniques)
    )


def _weighted_metrics(r: _Ranked, w: np.ndarray, is_probability: bool) -> dict[str, float]:
    y = r.label
    pos_w, neg_w = w * y, w * (1 - y)
    total_pos, total_neg, total = pos_w.sum(), neg_w.sum(), w.sum()
    out = dict.fromkeys(METRICS, np.nan)
    if total_pos == 0 or total_neg == 0:
        return out
    # ROC-AUC: for each positive, negatives ranked below it (+ half the tied ones)
    cum_neg = np.r_[0.0, np.cumsum(neg_w)]
    neg_above = cum_neg[r.tie_start]
    neg_tied = cum_neg[r.tie_end] - cum_neg[r.tie_start]
    neg_below = total_neg - neg_above - neg_tied
    out["roc_auc"] = float((pos_w * (neg_below + 0.5 * neg_tied)).sum() / (total_pos * total_neg))
    # average precision with tie blocks treated as one threshold (as scikit-learn does)
    cum_pos = np.r_[0.0, np.cumsum(pos_w)]
    cum_all = np.r_[0.0, np.cumsum(w)]
    tp, seen = cum_pos[r.block_ends], cum_all[r.block_ends]
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    recall_steps = np.diff(np.r_[0.0, tp]) / total_pos
    out["pr_auc"] = float((precision * recall_steps).sum())
    base_rate = total_pos / total
    block_weight, block_positives = cum_all[r.block_ends], cum_pos[r.block_ends]
    for share in (5, 10, 20):
        cut = share / 100 * total
        # tie blocks wholly inside the top share, plus the straddling block pro rata: the
        # expected lift when ties are broken at random (input order must not decide it)
        inside = int(np.searchsorted(block_weight, cut + 1e-9, side="right"))
        taken = block_weight[inside - 1] if inside else 0.0
        positives = block_positives[inside - 1] if inside else 0.0
        if inside < len(block_weight) and cut > taken:
            straddle_weight = block_weight[inside] - taken
            straddle_positives = block_positives[inside] - positives
            positives += straddle_positives * (cut - taken) / straddle_weight
            taken = cut
        if taken > 0:
            out[f"lift_{share}"] = float((positives / taken) / base_rate)
    chosen = r.in_capacity
    if chosen.any():
        out["precision_at_k"] = float(pos_w[chosen].sum() / max(w[chosen].sum(), 1e-12))
        out["recall_at_k"] = float(pos_w[chosen].sum() / total_pos)
    if is_probability:
        out["brier"] = float((w * (r.score - y) ** 2).sum() / total)
        bin_w = np.bincount(r.ece_bin, weights=w, minlength=10)
        bin_pred = np.bincount(r.ece_bin, weights=w * r.score, minlength=10)
        bin_obs = np.bincount(r.ece_bin, weights=pos_w, minlength=10)
        filled = bin_w > 0
        gap = np.abs(bin_pred[filled] - bin_obs[filled]) / bin_w[filled]
        out["ece"] = float((bin_w[filled] / total * gap).sum())
    return out


def score_metrics(
    label,
    score,
    group,
    as_of=None,
    *,
    capacity_k: int | None = None,
    is_probability: bool = True,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric with ``<metric>_lo`` / ``<metric>_hi`` 95 % bootstrap bounds (accounts resampled)."""
    ranked = _rank(label, score, group, as_of, capacity_k)
    point = _weighted_metrics(ranked, np.ones(len(ranked.score)), is_probability)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        counts = rng.multinomial(ranked.n_groups, np.full(ranked.n_groups, 1 / ranked.n_groups))
        draws.append(
            _weighted_metrics(ranked, counts[ranked.group_codes].astype(float), is_probability)
        )
    result: dict[str, float] = {}
    for metric in METRICS:
        values = np.array([d[metric] for d in draws], dtype=float)
        values = values[~np.isnan(values)]
        result[metric] = point[metric]
        lo, hi = np.quantile(values, [0.025, 0.975]) if len(values) else (np.nan, np.nan)
        result[f"{metric}_lo"], result[f"{metric}_hi"] = float(lo), float(hi)
    return result


def decile_table(label, score) -> pd.DataFrame:
    """Deciles by score (1 = highest): accounts, positives, rate, lift, cumulative share of positives."""
    frame = pd.DataFrame(
        {"label": np.asarray(label, dtype=float), "score": np.asarray(score, dtype=float)}
    )
    rank = frame["score"].rank(method="first", ascending=False)
    frame["decile"] = np.ceil(rank / len(frame) * 10).astype(int).clip(1, 10)
    table = frame.groupby("decile").agg(accounts=("label", "size"), positives=("label", "sum"))
    table["positives"] = table["positives"].astype(int)
    table["rate"] = table["positives"] / table["accounts"]
    base = frame["label"].mean()
    table["lift"] = table["rate"] / base if base > 0 else np.nan
    table["cumulative_share_of_positives"] = table["positives"].cumsum() / max(
        table["positives"].sum(), 1
    )
    return table.reset_index()


def decile_monotonicity(deciles: pd.DataFrame) -> float:
    """Spearman correlation of decile rank and rate: -1 = perfectly decreasing (as it should)."""
    if deciles["rate"].nunique() < 2:
        return float("nan")
    return float(deciles["decile"].corr(deciles["rate"], method="spearman"))


def calibration_table(label, probability, bins: int = 10) -> pd.DataFrame:
    """Equal-count bins: mean predicted probability vs observed rate (for calibration plots)."""
    frame = pd.DataFrame(
        {"label": np.asarray(label, dtype=float), "p": np.asarray(probability, dtype=float)}
    )
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), bins, labels=False)
    return (
        frame.groupby("bin")
        .agg(predicted=("p", "mean"), observed=("label", "mean"), rows=("label", "size"))
        .reset_index()
    )


def comparison_table(
    predictions: pd.DataFrame,
    scorers: list[str],
    *,
    head: str,
    capacity_k: int,
    probability_scorers: set[str],
    n_bootstrap: int,
    seed: int,
    group: str = "account_id",
    date: str | None = "as_of",
) -> pd.DataFrame:
    """One row per scorer: every metric with bounds plus decile monotonicity.

    ``group`` names the bootstrap unit's column (an account: its rows at several dates are not
    independent); ``date`` the column of the snapshot date for precision/recall at ``capacity_k``
    per date (None: all rows are one list).
    """
    dates = predictions[date] if date else np.zeros(len(predictions))
    rows = []
    for scorer in scorers:
        if scorer not in predictions or predictions[scorer].isna().all():
            continue
        metrics = score_metrics(
            predictions["label"],
            predictions[scorer],
            predictions[group],
            dates,
            capacity_k=capacity_k,
            is_probability=scorer in probability_scorers,
            n_bootstrap=n_bootstrap,
            seed=seed,
        )
        deciles = decile_table(predictions["label"], predictions[scorer])
        rows.append(
            {
                "head": head,
                "scorer": scorer,
                **metrics,
                "decile_monotonicity": decile_monotonicity(deciles),
                "rows": len(predictions),
                "positives": int(predictions["label"].sum()),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """The comparison table as Markdown: each metric as 'value [lo, hi]'."""
    header = ["head", "scorer", *METRICS, "decile_monotonicity"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        data = row._asdict()
        cells = [data["head"], data["scorer"]]
        for metric in METRICS:
            value = data[metric]
            cells.append(
                ""
                if pd.isna(value)
                else f"{value:.3f} [{data[metric + '_lo']:.3f}, {data[metric + '_hi']:.3f}]"
            )
        cells.append(f"{data['decile_monotonicity']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def brier_skill(
    label, probability, reference, group, *, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, float]:
    """1 - Brier(probability) / Brier(reference), e.g. against the base rate; > 0 is better.

    The interval comes from a paired bootstrap over groups (both Brier scores on the same draw).
    """
    return brier_skills(
        label, {"p": probability}, reference, group, n_bootstrap=n_bootstrap, seed=seed
    )["p"]


def brier_skills(
    label, probabilities: dict, reference, group, *, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, dict[str, float]]:
    """:func:`brier_skill` for several scorers at once, on the same bootstrap draws (the same
    figures as one call per scorer with the same seed, for one set of draws)."""
    label = np.asarray(label, dtype=float)
    ref = (np.asarray(reference, dtype=float) - label) ** 2
    own = {k: (np.asarray(p, dtype=float) - label) ** 2 for k, p in probabilities.items()}
    codes, uniques = pd.factorize(pd.Series(np.asarray(group)))
    draws: dict[str, list[float]] = {k: [] for k in own}
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        weights = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)))[codes]
        denominator = (weights * ref).sum()
        if denominator > 0:
            for k, errors in own.items():
                draws[k].append(1 - (weights * errors).sum() / denominator)
    out = {}
    for k, errors in own.items():
        point = 1 - errors.sum() / ref.sum() if ref.sum() > 0 else np.nan
        lo, hi = np.quantile(draws[k], [0.025, 0.975]) if draws[k] else (np.nan, np.nan)
        out[k] = {
            "brier_skill": float(point),
            "brier_skill_lo": float(lo),
            "brier_skill_hi": float(hi),
        }
    return out


def _weighted_auc(tie_group: np.ndarray, label: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of ``weights`` (draws x rows), ties counted half; ``tie_group`` numbers
    the rows' distinct scores in increasing order."""
    groups = int(tie_group.max()) + 1
    aucs = np.empty(len(weights))
    for i, w in enumerate(weights):
        positive = np.bincount(tie_group, w * label, minlength=groups)
        negative = np.bincount(tie_group, w * (1 - label), minlength=groups)
        below = np.cumsum(negative) - negative
        total = positive.sum() * negative.sum()
        aucs[i] = (positive * (below + 0.5 * negative)).sum() / total if total else np.nan
    return aucs


def _weighted_average_precision(
    tie_group: np.ndarray, label: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision (PR-AUC, as scikit-learn's ``average_precision_score``: one threshold
    per distinct score) for each row of ``weights`` (draws x rows)."""
    groups = int(tie_group.max()) + 1
    values = np.empty(len(weights))
    for i, w in enumerate(weights):
        # distinct scores from the highest down
        positive = np.bincount(tie_group, w * label, minlength=groups)[::-1]
        negative = np.bincount(tie_group, w * (1 - label), minlength=groups)[::-1]
        found, flagged = np.cumsum(positive), np.cumsum(positive + negative)
        total = found[-1]
        if total <= 0:
            values[i] = np.nan
            continue
        precision = np.divide(found, flagged, out=np.zeros_like(found), where=flagged > 0)
        values[i] = float((positive / total * precision).sum())
    return values


RANKING_METRICS = {"roc_auc": _weighted_auc, "pr_auc": _weighted_average_precision}


def auc_difference_bound(
    label,
    score_a,
    score_b,
    group,
    *,
    level: float = 0.95,
    n_bootstrap: int = 200,
    seed: int = 0,
    metric: str = "roc_auc",
) -> tuple[float, float]:
    """(metric(a) - metric(b), its one-sided lower bound at ``level``) from a paired bootstrap
    over groups: both scorers on the same draws. ``metric``: ``roc_auc`` or ``pr_auc`` (average
    precision). The bound is NaN when no draw has both classes."""
    measure = RANKING_METRICS[metric]
    label = np.asarray(label, dtype=float)
    ties_a = np.unique(np.asarray(score_a, dtype=float), return_inverse=True)[1]
    ties_b = np.unique(np.asarray(score_b, dtype=float), return_inverse=True)[1]
    codes, uniques = pd.factorize(pd.Series(np.asarray(group)))
    ones = np.ones((1, len(label)))
    difference = float((measure(ties_a, label, ones) - measure(ties_b, label, ones))[0])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), n_bootstrap)
    weights = draws[:, codes].astype(float)
    differences = measure(ties_a, label, weights) - measure(ties_b, label, weights)
    differences = differences[~np.isnan(differences)]
    bound = float(np.quantile(differences, 1 - level)) if len(differences) else float("nan")
    return difference, bound
