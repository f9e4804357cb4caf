"""The HTML run report: both modes render the sections that apply, every value from a run or an
account comes out escaped, plots are embedded as data URIs, and a run folder reads back."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.evaluate import METRICS
from propensity.outputs.report import ReportInput, build_report

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


class _Tags(HTMLParser):
    """The start tags of a page and their attributes, as a browser's parser sees them."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]


def _png(path: Path, colour: float) -> Path:
    import matplotlib.image

    matplotlib.image.imsave(path, np.full((2, 2), colour), vmin=0, vmax=1, format="png")
    return path


def _evaluation(heads: dict[str, list[str]], brier_skill: bool = False) -> pd.DataFrame:
    rows = []
    for head, scorers in heads.items():
        for i, scorer in enumerate(scorers):
            row = {"head": head, "scorer": scorer, **dict.fromkeys(METRICS, 0.5 + i / 10)}
            row.update(decile_monotonicity=-0.9, rows=200, positives=20)
            if brier_skill:
                row.update(brier_skill=0.25 - i / 10, brier_skill_lo=0.1, brier_skill_hi=0.3)
            rows.append(row)
    return pd.DataFrame(rows)


def _deciles(heads: list[str], scorers: list[str]) -> pd.DataFrame:
    rows = [
        {
            "decile": d,
            "accounts": 20,
            "positives": 11 - d,
            "rate": (11 - d) / 20,
            "lift": (11 - d) / 2,
            "cumulative_share_of_positives": d / 10,
            "head": head,
            "scorer": scorer,
        }
        for head in heads
        for scorer in scorers
        for d in range(1, 11)
    ]
    return pd.DataFrame(rows)


def _account_summary(**extra) -> dict:
    return {
        "split": {
            "valid_start": "2024-09-02",
            "test_start": "2025-03-02",
            "test_end": "2025-09-01",
        },
        "families": ["firmographic", "engagement", "intent", "history"],
        "skipped_families": {},
        "heads": {
            head: {
                "train_rows": 13413,
                "train_positives": 121,
                "trees": 238,
                "calibration": "isotonic",
                "calibration_log_loss": {"isotonic": 0.089, "sigmoid": 0.090},
                "features": 12,
            }
            for head in ("fit", "conversion")
        },
        "fit_against_truth": {"accounts": 2682, "model_spearman_true_fit": 0.0332},
        "screen_suspects": [],
        "screen_suspects_kept": False,
        "timings_s": {"train": 8.15},
        **extra,
    }


def _table_summary(**extra) -> dict:
    return {
        "table": "x_education",
        "rows": 9240,
        "positives": 3561,
        "base_rate": 0.3854,
        "protocol": {"protocol": "repeated_stratified_group_kfold", "folds": 5, "repeats": 1},
        "verdict": "The model beats the base rate: ROC-AUC 0.905 [0.898, 0.911].",
        "beats_base_rate": True,
        "suspects": ["Tags", "Lead Quality"],
        "suspects_kept": False,
        "set_aside": {"Lead Number": "excluded by the user", "Magazine": "constant"},
        "model_version": "table-7428fc422b4c",
        "trees": 509,
        "calibration": "sigmoid",
        **extra,
    }


def _account_run(tmp_path: Path, **extra) -> ReportInput:
    heads = ["fit", "conversion"]
    images = {
        f"{kind}_{head}.png": _png(tmp_path / f"{kind}_{head}.png", 0.2)
        for kind in ("gains", "calibration", "global_reasons")
        for head in heads
    }
    return ReportInput(
        name="run-2025-09-01",
        summary=_account_summary(**extra),
        evaluation=_evaluation({h: ["model", "scorecard", "logistic", "oracle"] for h in heads}),
        deciles=_deciles(heads, ["model", "scorecard"]),
        images=images,
    )


def _table_run(tmp_path: Path, **extra) -> ReportInput:
    images = {
        f"{kind}_table.png": _png(tmp_path / f"{kind}_table.png", 0.7)
        for kind in ("gains", "calibration", "global_reasons")
    }
    return ReportInput(
        name="x_education_run",
        summary=_table_summary(**extra),
        evaluation=_evaluation({"table": ["model", "logistic", "base_rate"]}, brier_skill=True),
        deciles=_deciles(["table"], ["model", "logistic"]),
        images=images,
    )


def _reasons(*reasons: tuple[str, float, float]) -> str:
    return json.dumps([{"text": t, "contribution": c, "share": s} for t, c, s in reasons])


def _accounts(names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"A{i:07d}" for i in range(len(names))]
    target_list = pd.DataFrame(
        {
            "rank": range(1, len(names) + 1),
            "account_id": ids,
            "account_name": names,
            "fit_score": [90 - i for i in range(len(names))],
            "fit_tier": "A",
            "conversion_score": [80 - i for i in range(len(names))],
            "conversion_tier": "hot",
            "priority": "priority 1",
            "reasons": "+ visited pricing twice",
            "model_version": "v-abc123",
            "as_of": "2025-09-01",
            "change": ["new"] * (len(names) - 1) + ["dropped"],
        }
    )
    scored = pd.DataFrame(
        {
            "account_id": ids,
            "conversion_reasons_json": _reasons(
                ("visited pricing twice this week", 0.8, 0.62),
                ("no meeting in 90 days", -0.2, -0.15),
            ),
            "fit_reasons_json": _reasons(("software company, 500 staff", 0.5, 0.4)),
        }
    )
    return target_list, scored


def test_account_run_shows_protocol_comparison_every_head_and_no_table_mode_sections(tmp_path):
    page = build_report(_account_run(tmp_path))
    assert "Families used: firmographic, engagement, intent, history." in page
    assert "train before 2024-09-02" in page and "test 2025-03-02 .. 2025-09-01" in page
    assert "Model vs scorecard vs logistic baseline vs oracle (test window)" in page
    assert "Fit head vs the hidden true fit: accounts 2,682; model_spearman_true_fit 0.033" in page
    for head in ("fit", "conversion"):
        assert f"{head} head: gains, calibration, what drives the score" in page
    assert "calibration_log_loss" not in page
    assert "Final model" not in page and "Columns set aside" not in page
    assert 'class="verdict' not in page
    assert "Top " not in page and "Account cards for sales" not in page
    tags = _Tags(page)
    assert len(tags.named("img")) == 6
    # comparison, heads, one decile table per head
    assert len(tags.named("table")) == 4


def test_account_run_shows_per_head_verdicts_when_the_summary_has_them(tmp_path):
    verdicts = {"conversion": "The conversion head beats the scorecard."}
    page = build_report(_account_run(tmp_path, verdicts=verdicts))
    assert (
        '<p class="verdict">conversion head: The conversion head beats the scorecard.</p>' in page
    )


def test_table_run_leads_with_its_verdict_and_shows_protocol_not_the_split(tmp_path):
    page = build_report(_table_run(tmp_path))
    assert (
        '<p class="verdict beats">The model beats the base rate: ROC-AUC 0.905 [0.898, 0.911].</p>'
        in page
    )
    assert page.index('class="verdict') < page.index("Data and protocol")
    assert "Table x_education: 9,240 rows, 3,561 positives, base rate 0.385." in page
    assert "<th>protocol</th><td>repeated_stratified_group_kfold</td>" in page
    assert "Final model: version table-7428fc422b4c, 509 trees, sigmoid calibration." in page
    assert "<td>Lead Number</td><td>excluded by the user</td>" in page
    assert "Leakage screen suspects (excluded): Tags, Lead Quality" in page
    assert "Model vs logistic baseline vs base rate (held-out rows)" in page
    assert "<th>brier_skill</th>" in page and "<th>brier_skill_lo</th>" not in page
    assert "Families used" not in page and "Out of time" not in page
    assert "oracle" not in page and "Fit head vs the hidden true fit" not in page
    assert len(_Tags(page).named("img")) == 3


def test_a_table_run_that_does_not_beat_the_base_rate_says_so(tmp_path):
    run = _table_run(
        tmp_path, verdict="The model does not beat the base rate.", beats_base_rate=False
    )
    assert '<p class="verdict fails">The model does not beat the base rate.</p>' in build_report(
        run
    )


def test_decile_tables_show_the_model_scorer_only(tmp_path):
    run = _table_run(tmp_path)
    deciles = run.deciles.assign(
        rate=np.where(run.deciles["scorer"] == "logistic", 0.123456, run.deciles["rate"])
    )
    page = build_report(ReportInput(run.name, run.summary, run.evaluation, deciles, run.images))
    assert "0.123" not in page
    assert '<td class="num">0.500</td>' in page  # decile 1 of the model: 10 / 20


def test_plots_are_embedded_as_data_uris_and_missing_files_are_skipped(tmp_path):
    run = _table_run(tmp_path)
    (tmp_path / "calibration_table.png").unlink()
    page = build_report(run)
    sources = [img["src"] for img in _Tags(page).named("img")]
    assert len(sources) == 2
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert (
        base64.b64decode(sources[0].split(",", 1)[1]) == (tmp_path / "gains_table.png").read_bytes()
    )
    assert str(tmp_path) not in page and 'src="http' not in page
    assert "<style>" in page and "<link" not in page


def test_top_accounts_and_cards_carry_worded_reasons_with_their_share(tmp_path):
    target_list, scored = _accounts(["Acme GmbH", "Globex", "Initech", "Gone Ltd"])
    page = build_report(_account_run(tmp_path), target_list, scored, top=50, cards=2)
    assert "Top 3 accounts (as of 2025-09-01, model v-abc123)" in page
    assert "Gone Ltd" not in page  # dropped since the last export
    assert page.count('class="card"') == 2
    assert (
        '<li class="pos">+ visited pricing twice this week <span class="muted">(+62%)</span>'
        in page
    )
    assert '<li class="neg">− no meeting in 90 days <span class="muted">(-15%)</span>' in page
    assert "Why a fit:" in page and "software company, 500 staff" in page
    assert "fit A (90/100)" in page and "conversion hot (80/100)" in page


def test_hostile_values_from_data_come_out_as_text(tmp_path):
    target_list, scored = _accounts([SCRIPT, IMG, "-minus & <b>bold</b>", "x"])
    scored["conversion_reasons_json"] = _reasons((SCRIPT, 0.5, 0.5), (IMG, -0.5, -0.5))
    account = _account_run(
        tmp_path,
        families=[SCRIPT],
        split={"valid_start": IMG, "test_start": SCRIPT, "test_end": "x"},
        verdicts={IMG: SCRIPT},
        fit_against_truth={SCRIPT: IMG},
    )
    table = _table_run(
        tmp_path,
        table=SCRIPT,
        verdict=IMG,
        protocol={SCRIPT: IMG},
        set_aside={IMG: SCRIPT},
        suspects=[SCRIPT],
        model_version=IMG,
        calibration=SCRIPT,
    )
    hostile_account = ReportInput(
        name=IMG,
        summary=account.summary,
        evaluation=account.evaluation.assign(scorer=SCRIPT),
        deciles=account.deciles,
        images=account.images,
    )
    pages = [
        build_report(hostile_account, target_list, scored),
        build_report(ReportInput(SCRIPT, table.summary, table.evaluation, table.deciles)),
    ]
    for page in pages:
        tags = _Tags(page)
        assert not tags.named("script")
        assert all(img["src"].startswith("data:image/png;base64,") for img in tags.named("img"))
        assert not any("onerror" in attrs for _, attrs in tags.tags)
        assert "<script" not in page.lower() and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>bold</b>" not in pages[0] and "-minus &amp; &lt;b&gt;bold&lt;/b&gt;" in pages[0]


def test_heads_come_from_the_evaluation_when_the_summary_names_none(tmp_path):
    run = _table_run(tmp_path)
    assert "heads" not in run.summary and run.heads == ["table"]
    assert _account_run(tmp_path).heads == ["fit", "conversion"]


def test_a_run_folder_reads_back_into_a_report_input(tmp_path):
    run_dir = tmp_path / "run-7"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(_table_summary()))
    _evaluation({"table": ["model", "logistic"]}, brier_skill=True).to_csv(
        run_dir / "evaluation.csv", index=False
    )
    _deciles(["table"], ["model"]).to_csv(run_dir / "deciles.csv", index=False)
    for kind in ("gains", "calibration", "global_reasons"):
        _png(run_dir / f"{kind}_table.png", 0.5)
    (run_dir / "notes.txt").write_text("not a plot")

    run = ReportInput.from_folder(run_dir)
    assert run.name == "run-7"
    assert run.summary == _table_summary()
    assert list(run.evaluation["scorer"]) == ["model", "logistic"]
    assert len(run.deciles) == 10
    assert sorted(run.images) == [
        "calibration_table.png",
        "gains_table.png",
        "global_reasons_table.png",
    ]
    assert run.images["gains_table.png"] == run_dir / "gains_table.png"
    page = build_report(run)
    assert "propensity run report: run-7" in page and len(_Tags(page).named("img")) == 3


def test_a_run_folder_without_a_summary_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="summary.json"):
        ReportInput.from_folder(tmp_path)


def test_the_template_ships_as_package_data():
    template = files("propensity").joinpath("outputs/templates/report.html.j2")
    assert template.is_file() and "{{ page.name }}" in template.read_text(encoding="utf-8")
