"""How the commands show a run: the leakage screen, the comparison table with its verdicts,
feature coverage, an account's card. Printing only; nothing here computes."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from propensity.cli.common import console, err_console

METRICS = ("roc_auc", "pr_auc", "brier", "brier_skill", "ece", "lift_10", "precision_at_k")


def print_screen(result, keep_suspects: bool) -> None:
    """The leakage screen: every flagged check, then each kept column's single-column AUC."""
    if result is None:
        return
    checks = result.table
    if not result.suspects and not (checks["verdict"] == "warn").any():
        best = checks[checks["check"] == "single_column_auc"]["figure"].str[:5].astype(float).max()
        console.print(
            f"leakage screen: no suspects among {checks['column'].nunique()} columns "
            f"(strongest single column AUC {best:.3f}; all checks in screen.csv)"
        )
        return
    table = Table(title="leakage screen (suspects, then each kept column's single-column AUC)")
    for column in ("column", "check", "figure", "verdict"):
        table.add_column(column)
    for row in checks[checks["verdict"].isin(["exclude", "warn"])].itertuples(index=False):
        colour = "red" if row.verdict == "exclude" else "yellow"
        table.add_row(str(row.column), row.check, row.figure, f"[{colour}]{row.verdict}[/]")
    kept = checks[
        ~checks["column"].isin(result.suspects) & (checks["check"] == "single_column_auc")
    ]
    for row in kept.itertuples(index=False):
        table.add_row(str(row.column), row.check, row.figure, row.verdict)
    console.print(table)
    verb = "kept (keep_suspects)" if keep_suspects else "excluded"
    console.print(f"[bold]{verb}:[/] {', '.join(map(str, result.suspects))}")


def print_evaluation(result) -> None:
    """The comparison table (with 95 % intervals for ROC-AUC) and each head's verdict."""
    summary = result.summary
    if "split" in summary:
        split = summary["split"]
        title = (
            f"test window {split['test_start']}..{split['test_end']} (out of time; train < "
            f"{split['valid_start']} <= validation)"
        )
    elif summary["protocol"]["protocol"] == "out_of_time":
        protocol = summary["protocol"]
        title = f"held-out rows: out of time, test {protocol['test_start'][:10]}..{protocol['test_end'][:10]}"
    else:
        title = (
            f"held-out rows: {result.config.folds}-fold (first of {result.config.repeats} repeats)"
        )
    table = Table(title=title)
    for column in ("head", "scorer", *METRICS):
        table.add_column(column)
    for row in result.evaluation.to_dict("records"):
        cells = [row["head"], row["scorer"]]
        for metric in METRICS:
            value = row.get(metric)
            text = "" if value is None or value != value else f"{value:.3f}"
            if metric == "roc_auc" and text and row.get("roc_auc_lo") == row.get("roc_auc_lo"):
                text += f" [{row['roc_auc_lo']:.3f}, {row['roc_auc_hi']:.3f}]"
            cells.append(text)
        table.add_row(*cells)
    console.print(table)
    if "families" in summary:
        console.print(f"families: {', '.join(summary['families'])}")
    for head, run in result.heads.items():
        style = "green" if run.beats_base_rate else "yellow"
        console.print(f"[bold {style}]{head}: {run.verdict}[/]", highlight=False)
        console.print(f"  {head} ships {escape(run.shipped.reason)}", highlight=False)
        for warning in run.shipped.warnings:
            err_console.print(f"[bold yellow]warning:[/] {head}: {escape(warning)}")


def print_coverage(feature_set) -> None:
    for family, reason in feature_set.skipped.items():
        console.print(f"  skipped {family}: {reason}")
    for row in feature_set.coverage().itertuples():
        console.print(
            f"  {row.family:<13} {row.features:>3} features; rows with values "
            f"{row.non_missing_share:6.1%}, non-empty {row.non_empty_share:6.1%}"
        )


def print_card(card: dict, name: str) -> None:
    console.print(
        f"[bold]{name}[/] ({card['account_id']}) as of {card['as_of']}  model "
        f"{card['model_version']}",
        highlight=False,
    )
    for head, entry in card["heads"].items():
        delta = entry.get("score_delta")
        change = "" if delta is None else f"  ({delta:+d} since {entry['previous_as_of']})"
        console.print(
            f"  {head:<10} score {entry['score']:>3}/100  tier {entry['tier']:<5} "
            f"p={entry['probability']:.3f}{change}",
            highlight=False,
        )
        for reason in entry["reasons"]:
            sign = "+" if reason["contribution"] > 0 else "-"
            console.print(
                f"      {sign} {reason['text']}  ({reason['share']:+.0%})",
                highlight=False,
                markup=False,
            )
        if entry.get("moved"):
            moved = ", ".join(f"{m['field']} {m['change']:+.2f}" for m in entry["moved"])
            console.print(f"      moved most since last snapshot: {moved}", highlight=False)


def print_stability(stability: dict, alarm_share: float) -> None:
    """Rank correlation and top-k turnover against the previous file at the same path."""
    if not stability.get("previous_export"):
        return
    console.print(
        f"vs previous: rank correlation {stability['rank_correlation_with_previous']:.3f}, "
        f"top-k changed {stability['top_k_changed_share']:.0%}, dropped {stability['dropped']}"
    )
    if stability["top_k_changed_share"] > alarm_share:
        err_console.print(
            f"[yellow]warning:[/] {stability['top_k_changed_share']:.0%} of the top-k changed since "
            f"the previous file (alarm above {alarm_share:.0%}): check the data and the model version"
        )


def print_decisions(decisions) -> bool:
    """Each promotion decision; True when a gate refused a challenger."""
    refused = False
    for d in decisions:
        verdict = "promoted" if d.promoted else "kept the champion"
        console.print(
            f"{d.name}: challenger v{d.challenger} vs champion v{d.champion or '-'}: {verdict} "
            f"({d.reason})",
            highlight=False,
        )
        if not d.comparison.empty:
            console.print(d.comparison.to_string(index=False), highlight=False)
        refused |= not d.promoted and d.champion != d.challenger
    return refused


def print_recorded(recorded) -> None:
    """Where a scoring went in the score history."""
    if recorded is None:
        return
    if recorded.new:
        console.print(f"recorded in the score history {recorded.path}", highlight=False)
    else:
        console.print(
            f"already in the score history {recorded.path} ({recorded.batch_id}): left as it was",
            highlight=False,
        )


def print_monitoring(result) -> None:
    """The per-period table, the current alarms and the recommendation of a monitoring."""
    periods = result.periods
    if periods.empty:
        console.print(
            "no scoring has outcomes yet: a scoring's horizon must pass before the data ends",
            highlight=False,
        )
    else:
        table = Table(title="scorings with outcomes")
        columns = (
            ("as_of", "as_of", "{}"),
            ("accounts", "accounts", "{:,}"),
            ("predicted", "predicted", "{:.2%}"),
            ("realised", "realised", "{:.2%}"),
            ("real/pred", "realised_to_predicted", "{:.2f}"),
            ("z", "z", "{:+.1f}"),
            ("AUC", "roc_auc", "{:.3f}"),
            ("scorecard AUC", "scorecard_roc_auc", "{:.3f}"),
            ("hot lift", "top_tier_lift", "{:.1f}"),
            ("scorecard lift", "scorecard_top_lift", "{:.1f}"),
        )
        for title, _, _ in columns:
            table.add_column(title, justify="left" if title == "as_of" else "right")
        for row in periods.itertuples():
            cells = []
            for _, column, fmt in columns:
                value = getattr(row, column)
                cells.append(str(value.date()) if column == "as_of" else fmt.format(value))
            table.add_row(*cells)
        console.print(table)
    drift = result.field_drift
    if len(drift):
        latest = drift[drift["as_of"] == drift["as_of"].max()].head(5)
        moved = ", ".join(f"{r.field} {r.psi:.2f}" for r in latest.itertuples())
        console.print(
            f"fields that moved most on the latest scoring (PSI): {moved}", highlight=False
        )
    if not result.current:
        console.print("[bold green]no alarm on the latest scoring[/]")
    for alarm in result.current:
        console.print(
            f"[bold red]alarm {alarm.name}[/] ({alarm.as_of.date()}): {alarm.message} "
            f"[{alarm.figure} vs {alarm.threshold}]",
            highlight=False,
            markup=True,
        )
    if result.recommendation:
        console.print(f"[bold]{result.recommendation}[/]", highlight=False)
