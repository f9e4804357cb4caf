"""One self-contained HTML report per run: for data scientists (comparison, deciles, gains,
calibration, global reasons) and for sales (the top accounts with their reasons, one card each).

Plots are embedded as base64 PNG; every data value goes through ``html.escape``, so an account
named ``<script>`` renders as text.
"""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

import pandas as pd

from propensity.evaluate import METRICS

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #dde3ea;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f6f9}.num{text-align:right}.plots img{max-width:32%;margin-right:1%}
.card{border:1px solid #dde3ea;border-radius:6px;padding:.6rem .9rem;margin:.6rem 0}.pos{color:#1a7f37}.neg{color:#b42318}
.muted{color:#66727f;font-size:.85rem}
"""


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{"" if value != value else f"{value:.3f}"}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _reasons_html(payload: str) -> str:
    items = []
    for reason in json.loads(payload or "[]"):
        css = "pos" if reason["contribution"] > 0 else "neg"
        sign = "+" if reason["contribution"] > 0 else "&minus;"
        items.append(
            f'<li class="{css}">{sign} {escape(reason["text"])} <span class="muted">({reason["share"]:+.0%})</span></li>'
        )
    return "<ul>" + "".join(items) + "</ul>"


def build_report(
    run_dir: Path,
    target_list: pd.DataFrame | None = None,
    scored: pd.DataFrame | None = None,
    top: int = 50,
    cards: int = 10,
) -> str:
    """The report's HTML for a run folder; ``target_list``/``scored`` add the accounts section."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluation = pd.read_csv(run_dir / "evaluation.csv")
    deciles = pd.read_csv(run_dir / "deciles.csv")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>propensity run report: {escape(run_dir.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>propensity run report: {escape(run_dir.name)}</h1>",
        "<h2>Data and protocol</h2>",
        f"<p>Families used: {escape(', '.join(summary['families']))}"
        + (
            f"; skipped: {escape(json.dumps(summary['skipped_families']))}"
            if summary.get("skipped_families")
            else ""
        )
        + ".</p>",
        f"<p>Out of time: train before {escape(summary['split']['valid_start'])}; validation (early stopping, "
        f"calibration) until the gap; test {escape(summary['split']['test_start'])} .. "
        f"{escape(summary['split']['test_end'])} on complete labels.</p>",
        _table(
            pd.DataFrame(
                [
                    {"head": h, **{k: v for k, v in info.items() if k != "calibration_log_loss"}}
                    for h, info in summary["heads"].items()
                ]
            )
        ),
        "<h2>Model vs scorecard vs logistic baseline vs oracle (test window)</h2>",
        "<p class='muted'>Point estimates; 95 % bootstrap intervals (accounts resampled) are in evaluation.md. "
        "Brier and ECE only for probabilities; the oracle exists only on a generated world.</p>",
        _table(evaluation[["head", "scorer", *METRICS, "decile_monotonicity"]]),
    ]
    if summary.get("fit_against_truth"):
        parts.append(
            f"<p class='muted'>Fit head vs the hidden true fit: {escape(json.dumps(summary['fit_against_truth']))}</p>"
        )
    for head in summary["heads"]:
        parts += [
            f"<h2>{escape(head)} head: gains, calibration, what drives the score</h2><div class='plots'>",
            _image(run_dir / f"gains_{head}.png", f"{head} gains"),
            _image(run_dir / f"calibration_{head}.png", f"{head} calibration"),
            _image(run_dir / f"global_reasons_{head}.png", f"{head} global reasons"),
            "</div>",
            _table(
                deciles[(deciles["head"] == head) & (deciles["scorer"] == "model")].drop(
                    columns=["head", "scorer"]
                )
            ),
        ]
    if target_list is not None and len(target_list):
        listing = target_list[target_list["change"] != "dropped"].head(top)
        parts += [
            f"<h2>Top {len(listing)} accounts (as of {escape(str(listing['as_of'].iloc[0]))}, "
            f"model {escape(str(listing['model_version'].iloc[0]))})</h2>",
            _table(
                listing[
                    [
                        "rank",
                        "account_name",
                        "account_id",
                        "priority",
                        "fit_tier",
                        "conversion_tier",
                        "conversion_score",
                        "reasons",
                    ]
                ]
            ),
            "<h2>Account cards for sales</h2>",
        ]
        by_id = scored.set_index("account_id") if scored is not None else None
        for row in listing.head(cards).itertuples(index=False):
            parts.append(
                f"<div class='card'><b>{escape(str(row.account_name))}</b> <span class='muted'>"
                f"{escape(str(row.account_id))} &middot; {escape(str(row.priority))} &middot; fit "
                f"{escape(str(row.fit_tier))} ({row.fit_score}/100) &middot; conversion "
                f"{escape(str(row.conversion_tier))} ({row.conversion_score}/100)</span>"
            )
            if by_id is not None and row.account_id in by_id.index:
                detail = by_id.loc[row.account_id]
                parts.append(
                    "<div>Why now:" + _reasons_html(detail["conversion_reasons_json"]) + "</div>"
                )
                parts.append(
                    "<div>Why a fit:" + _reasons_html(detail["fit_reasons_json"]) + "</div>"
                )
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
