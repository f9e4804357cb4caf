"""One self-contained HTML report per run, account mode or table mode: for data scientists
(verdict, data and protocol, comparison, deciles, gains, calibration, global reasons) and for
sales (the top accounts with their reasons, one card each).

The page is one jinja2 template shipped as package data (``outputs/templates/report.html.j2``)
rendered with autoescape on: every value from a run, a summary or an account is escaped, so an
account named ``<script>`` renders as text. Plots are embedded as base64 PNG data URIs.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from propensity.evaluate import METRICS

TEMPLATE = "report.html.j2"
COMPARISON_COLUMNS = ("head", "scorer", *METRICS, "decile_monotonicity", "brier_skill")
ACCOUNT_COLUMNS = (
    "rank",
    "account_name",
    "account_id",
    "priority",
    "fit_tier",
    "conversion_tier",
    "conversion_score",
    "reasons",
)
PLOTS = (
    ("gains", "gains"),
    ("calibration", "calibration"),
    ("global_reasons", "global reasons"),
)


@dataclass(frozen=True)
class ReportInput:
    """What a report is made of: the run folder's name, its summary.json content, the comparison
    table (evaluation.csv), the decile tables (deciles.csv) and its PNG plots by file name."""

    name: str
    summary: dict
    evaluation: pd.DataFrame
    deciles: pd.DataFrame
    images: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, run_dir: Path | str) -> ReportInput:
        """Read summary.json, evaluation.csv, deciles.csv and every ``*.png`` of a run folder."""
        run_dir = Path(run_dir)
        return cls(
            name=run_dir.name,
            summary=json.loads((run_dir / "summary.json").read_text(encoding="utf-8")),
            evaluation=pd.read_csv(run_dir / "evaluation.csv"),
            deciles=pd.read_csv(run_dir / "deciles.csv"),
            images={path.name: path for path in sorted(run_dir.glob("*.png"))},
        )

    @property
    def heads(self) -> list[str]:
        """The heads in the summary's order; a summary without ``heads`` (table mode) takes the
        evaluation's ``head`` column."""
        if self.summary.get("heads"):
            return list(self.summary["heads"])
        return [str(h) for h in pd.unique(self.evaluation["head"])]


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("propensity", "outputs/templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    """A value as the page shows it: floats to 3 decimals, counts with thousands separators."""
    if _is_missing(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.3f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def html_table(frame: pd.DataFrame) -> dict:
    """A frame as header + rows of cells; numbers are flagged so the page aligns them right."""
    rows = [
        [
            {
                "text": _text(v),
                "numeric": isinstance(v, int | float | np.number) and not isinstance(v, bool),
            }
            for v in row
        ]
        for row in frame.itertuples(index=False)
    ]
    return {"columns": [str(c) for c in frame.columns], "rows": rows}


def data_uri(path: Path) -> str:
    # built here from bytes read by us: base64 has no character autoescape would change
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _image(images: dict[str, Path], kind: str, head: str) -> Path | None:
    # a table run written before heads were named keeps its plots as gains.png etc.
    for name in (f"{kind}_{head}.png", f"{kind}.png"):
        path = images.get(name)
        if path is not None and Path(path).is_file():
            return Path(path)
    return None


def _verdicts(summary: dict) -> list[dict]:
    """The table run's verdict and any per-head verdicts of an account run."""
    verdicts = []
    if summary.get("verdict"):
        beats = summary.get("beats_base_rate")
        verdicts.append({"head": None, "text": str(summary["verdict"]), "beats": beats})
    for head, sentence in (summary.get("verdicts") or {}).items():
        verdicts.append({"head": str(head), "text": str(sentence), "beats": None})
    return verdicts


def _shipped(summary: dict) -> list[dict]:
    """Which scorer each head ships and why (:mod:`propensity.runs.selection`), with any problem
    that kept it from being registered."""
    found = {h: info.get("shipped") for h, info in (summary.get("heads") or {}).items()}
    return [
        {
            "head": None if head is None else str(head),
            "text": _text(shipped.get("reason")),
            "problems": [_text(p) for p in shipped.get("problems") or []],
            "warnings": [_text(w) for w in shipped.get("warnings") or []],
        }
        for head, shipped in found.items()
        if shipped
    ]


def _account_protocol(summary: dict) -> dict:
    heads = pd.DataFrame(
        [
            {
                "head": h,
                **{k: v for k, v in info.items() if k not in ("calibration_log_loss", "shipped")},
            }
            for h, info in (summary.get("heads") or {}).items()
        ]
    )
    return {
        "families": [str(f) for f in summary.get("families", [])],
        "skipped": _text(summary["skipped_families"]) if summary.get("skipped_families") else "",
        "split": {k: _text(v) for k, v in (summary.get("split") or {}).items()},
        "heads": html_table(heads) if len(heads) else None,
    }


def _table_protocol(summary: dict) -> dict:
    return {
        "table": _text(summary.get("table")),
        "rows": _text(summary.get("rows")),
        "positives": _text(summary.get("positives")),
        "base_rate": _text(summary.get("base_rate")),
        "protocol": [(str(k), _text(v)) for k, v in (summary.get("protocol") or {}).items()],
        "model_version": _text(summary.get("model_version")),
        "trees": _text(summary.get("trees")),
        "calibration": _text(summary.get("calibration")),
        "set_aside": [(str(k), _text(v)) for k, v in (summary.get("set_aside") or {}).items()],
    }


def _suspects(summary: dict) -> dict | None:
    """The leakage screen's suspects and what the run did with them (None when there were none)."""
    suspects = summary.get("suspects", summary.get("screen_suspects")) or []
    if not suspects:
        return None
    kept = summary.get("suspects_kept", summary.get("screen_suspects_kept", False))
    return {"columns": [str(s) for s in suspects], "kept": bool(kept)}


def _head_sections(run: ReportInput) -> list[dict]:
    """Per head: its plots (those present) and the model's decile table."""
    sections = []
    deciles = run.deciles
    for head in run.heads:
        rows = deciles
        if "head" in rows:
            rows = rows[rows["head"].astype(str) == head]
        if "scorer" in rows:
            rows = rows[rows["scorer"] == "model"]
        rows = rows.drop(columns=[c for c in ("head", "scorer") if c in rows])
        images = []
        for kind, words in PLOTS:
            path = _image(run.images, kind, head)
            if path is not None:
                images.append({"alt": f"{head} {words}", "src": data_uri(path)})
        sections.append({"head": head, "images": images, "deciles": html_table(rows)})
    return sections


def _reasons(payload: Any) -> list[dict]:
    """Worded reasons from a ``*_reasons_json`` cell: + (pushes the score up) or - with share."""
    if _is_missing(payload) or payload == "":
        return []
    reasons = json.loads(payload) if isinstance(payload, str) else list(payload)
    return [
        {
            "text": str(r["text"]),
            "up": r["contribution"] > 0,
            "share": f"{r['share']:+.0%}",
        }
        for r in reasons
    ]


def _accounts(
    target_list: pd.DataFrame | None, scored: pd.DataFrame | None, top: int, cards: int
) -> dict | None:
    """The top accounts table and the sales cards (None without a target list)."""
    if target_list is None or not len(target_list):
        return None
    listing = target_list
    if "change" in listing:
        listing = listing[listing["change"] != "dropped"]
    listing = listing.head(top)
    if not len(listing):
        return None
    details = {}
    if scored is not None:
        for row in scored.to_dict("records"):
            details[row["account_id"]] = row
    account_cards = []
    for row in listing.head(cards).to_dict("records"):
        detail = details.get(row["account_id"], {})
        account_cards.append(
            {
                **{k: _text(row.get(k)) for k in ("account_name", "account_id", "priority")},
                **{k: _text(row.get(k)) for k in ("fit_tier", "fit_score")},
                **{k: _text(row.get(k)) for k in ("conversion_tier", "conversion_score")},
                "why_now": _reasons(detail.get("conversion_reasons_json")),
                "why_fit": _reasons(detail.get("fit_reasons_json")),
                "scored": bool(detail),
            }
        )
    return {
        "count": len(listing),
        "as_of": _text(listing["as_of"].iloc[0]) if "as_of" in listing else "",
        "model_version": _text(listing["model_version"].iloc[0])
        if "model_version" in listing
        else "",
        "table": html_table(listing[[c for c in ACCOUNT_COLUMNS if c in listing]]),
        "cards": account_cards,
    }


def build_report(
    run: ReportInput,
    target_list: pd.DataFrame | None = None,
    scored: pd.DataFrame | None = None,
    top: int = 50,
    cards: int = 10,
) -> str:
    """The report's HTML for a run (account or table mode); ``target_list`` adds the top
    ``top`` accounts, ``scored`` (rows by ``account_id``) the reasons on the first ``cards``."""
    summary = run.summary
    table_mode = "protocol" in summary and "split" not in summary
    fit_truth = summary.get("fit_against_truth")
    page = {
        "name": run.name,
        "table_mode": table_mode,
        "verdicts": _verdicts(summary),
        "shipped": _shipped(summary),
        "account_protocol": None if table_mode else _account_protocol(summary),
        "table_protocol": _table_protocol(summary) if table_mode else None,
        "suspects": _suspects(summary),
        "comparison": html_table(
            run.evaluation[[c for c in COMPARISON_COLUMNS if c in run.evaluation]]
        ),
        "fit_against_truth": [(str(k), _text(v)) for k, v in fit_truth.items()]
        if fit_truth
        else None,
        "heads": _head_sections(run),
        "accounts": _accounts(target_list, scored, top, cards),
    }
    return environment().get_template(TEMPLATE).render(page=page)


__all__ = ["ReportInput", "build_report"]
