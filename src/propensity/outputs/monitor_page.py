"""The monitoring page: one self-contained HTML file (PNG plots embedded) with the alarms, the
retraining recommendation, realised vs predicted conversion per period, ranking and lift over
time next to the scorecard, the tiers and deciles, and the drift and freshness tables.

Rendered by the report's jinja2 environment (autoescape on: every value is text); the PNGs are
also written next to the page for slides and tickets.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from propensity.io import write_atomic, write_text
from propensity.monitor import Monitoring
from propensity.outputs.report import data_uri, environment, html_table

TEMPLATE = "monitor.html.j2"
PLOTS = ("calibration_over_time", "ranking_over_time", "feature_drift")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    def write(tmp: Path) -> None:
        fig.savefig(tmp, dpi=110, format="png")

    fig.tight_layout()
    write_atomic(path, write)
    _pyplot().close(fig)
    return path


def plot_calibration_over_time(periods: pd.DataFrame, path: Path) -> Path:
    """Realised vs predicted conversion per scoring with outcomes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(periods["as_of"], periods["predicted"], marker="o", label="predicted (mean)")
    ax.plot(periods["as_of"], periods["realised"], marker="o", label="realised")
    ax.set_ylabel("conversion within the horizon")
    ax.set_title("Realised vs predicted, per scoring")
    ax.legend(loc="best")
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_ranking_over_time(periods: pd.DataFrame, path: Path) -> Path:
    """ROC-AUC and top-tier lift of the model and the scorecard per scoring."""
    plt = _pyplot()
    fig, (auc, lift) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    auc.plot(periods["as_of"], periods["roc_auc"], marker="o", label="model")
    auc.plot(periods["as_of"], periods["scorecard_roc_auc"], marker="o", label="scorecard")
    auc.set_title("ROC-AUC")
    auc.legend(loc="best")
    lift.plot(periods["as_of"], periods["top_tier_lift"], marker="o", label="model: hot tier")
    lift.plot(
        periods["as_of"], periods["scorecard_top_lift"], marker="o", label="scorecard: same share"
    )
    lift.set_title("Top-tier lift (rate / average)")
    lift.legend(loc="best")
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_feature_drift(field_drift: pd.DataFrame, path: Path, top: int = 12) -> Path:
    """PSI of the fields that moved most, on the latest scoring."""
    plt = _pyplot()
    latest = field_drift[field_drift["as_of"] == field_drift["as_of"].max()]
    latest = latest.sort_values("psi", ascending=False).head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(latest) + 1.2))
    ax.barh(latest["field"], latest["psi"], color="#3b6ea8")
    ax.axvline(0.25, color="#b42318", linestyle="--", linewidth=1)
    ax.set_xlabel("PSI against the training rows")
    day = pd.Timestamp(field_drift["as_of"].max()).date() if len(field_drift) else ""
    ax.set_title(f"Feature drift on {day}")
    return _save(fig, path)


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ("as_of", "previous_as_of"):
        if column in out:
            out[column] = pd.to_datetime(out[column]).dt.date.astype(str)
    return out.round(4)


def write_monitor_page(result: Monitoring, out: Path | str) -> list[Path]:
    """The page at ``out`` and its PNGs next to it (``<stem>_<plot>.png``); all written
    atomically. Returns the files written."""
    out = Path(out)
    images: dict[str, Path | None] = dict.fromkeys(PLOTS)
    if len(result.periods):
        images["calibration_over_time"] = plot_calibration_over_time(
            result.periods, out.with_name(f"{out.stem}_calibration_over_time.png")
        )
        images["ranking_over_time"] = plot_ranking_over_time(
            result.periods, out.with_name(f"{out.stem}_ranking_over_time.png")
        )
    if len(result.field_drift):
        images["feature_drift"] = plot_feature_drift(
            result.field_drift, out.with_name(f"{out.stem}_feature_drift.png")
        )
    latest_drift = result.field_drift[
        result.field_drift["as_of"] == result.field_drift["as_of"].max()
    ]
    page = {
        "data_end": str(result.data_end.date()) if result.data_end is not None else "",
        "current": html_table(_dated(result.alarm_table(result.current))),
        "has_current": bool(result.current),
        "recommendation": result.recommendation,
        "alarms": html_table(_dated(result.alarm_table())),
        "periods": html_table(_dated(result.periods.drop(columns=["batch_id"], errors="ignore"))),
        "tiers": html_table(_dated(result.tiers)),
        "deciles": html_table(result.deciles.round(4)),
        "score_drift": html_table(_dated(result.score_drift)),
        "field_drift": html_table(
            _dated(latest_drift.drop(columns=["batch_id"], errors="ignore").head(20))
        ),
        "freshness": html_table(_dated(result.freshness)),
        "images": {name: data_uri(path) if path else None for name, path in images.items()},
    }
    html = environment().get_template(TEMPLATE).render(page=page)
    return [write_text(html, out), *(path for path in images.values() if path)]
