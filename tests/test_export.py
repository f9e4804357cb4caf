"""The target list marketing ops loads into a CRM, and the HTML report: ranks, tiers, reasons,
versions, change tracking, and hostile account names that survive export and report intact."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

from conftest import HOSTILE, browser_missing, cli
from propensity.data.contract import load_tables
from propensity.outputs.export import ScoringConfig, neutralise_formulas, priority
from propensity.runs.folder import read_run
from propensity.runs.workflows import export_target_list


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """One target list exported through the CLI from the session's run."""
    out = tmp_path_factory.mktemp("export") / "list.csv"
    result = cli(
        "export", "--data", str(trained.world), "--run", str(trained.run_dir), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out


def test_exported_csv_has_ranks_tiers_reasons_and_versions(exported):
    listing = pd.read_csv(exported, dtype={"account_id": str})
    for column in (
        "rank",
        "account_id",
        "account_name",
        "fit_score",
        "fit_tier",
        "conversion_score",
        "conversion_tier",
        "priority",
        "reasons",
        "model_version",
        "as_of",
        "change",
    ):
        assert column in listing.columns
    assert listing["rank"].tolist() == list(range(1, len(listing) + 1))
    assert listing["account_id"].is_unique
    assert set(listing["fit_tier"]) <= {"A", "B", "C", "D"}
    assert set(listing["conversion_tier"]) <= {"hot", "warm", "cold"}
    assert listing["reasons"].str.contains(r"\(\+\)|\(-\)").mean() > 0.95
    assert listing["model_version"].nunique() == 1
    # the version names a head that ships a baseline (here the 3,000-account world's fit head)
    assert re.fullmatch(
        r"(logistic-)?(scorecard-)?(stacked-)?sha-[0-9a-f]{12}", listing["model_version"].iloc[0]
    )
    assert listing["as_of"].nunique() == 1
    order = {"priority 1": 0, "priority 2": 1, "priority 3": 2, "priority 4": 3, "nurture": 4}
    assert listing["priority"].map(order).is_monotonic_increasing
    assert set(listing["change"]) == {"new"}


def test_hostile_names_survive_export_quoted_and_intact(trained, exported, tmp_path):
    world, root = trained.world, tmp_path
    names = pd.read_csv(exported, dtype=str).set_index("account_id")["account_name"]
    present = [a for a in HOSTILE if a in names.index]
    assert len(present) >= 4  # most of them are prospects at the end of the data
    for account in present:
        original = HOSTILE[account]
        expected = "'" + original if original.startswith(("=", "+", "-", "@")) else original
        assert names[account] == expected
    parquet = root / "hostile.parquet"
    export_target_list(world, parquet, trained.result.scoring_model, tables=trained.tables)
    assert (
        set(pd.read_parquet(parquet)["account_name"]) >= {HOSTILE["A0000002"]}
        or "A0000002" not in names.index
    )


def test_second_export_tracks_changes_and_stability(trained, tmp_path):
    world, run_dir, root = trained.world, trained.run_dir, tmp_path
    out = root / "weekly.csv"
    # last month's list, written by the library call the command makes
    export_target_list(
        world, out, trained.result.scoring_model, as_of="2025-10-01", top=200, tables=trained.tables
    )
    result = cli(
        "export", "--data", str(world), "--run", str(run_dir), "--out", str(out), "--top", "200"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    listing = pd.read_csv(out, dtype={"account_id": str})
    changes = listing["change"].str.split().str[0]
    assert set(changes) <= {"new", "up", "down", "same", "dropped"}
    assert (changes == "dropped").any() and listing.loc[changes == "dropped", "rank"].isna().all()
    meta = json.loads((root / "weekly.csv.meta.json").read_text())
    assert -1 <= meta["rank_correlation_with_previous"] <= 1
    assert 0 <= meta["top_k_changed_share"] <= 1
    assert "rank correlation" in result.stdout


def test_filters_and_bad_filter_values(trained, tmp_path):
    world, run_dir, root = trained.world, trained.run_dir, tmp_path
    out = root / "hot.csv"
    result = cli(
        "export",
        "--data",
        str(world),
        "--run",
        str(run_dir),
        "--out",
        str(out),
        "--conversion-tier",
        "hot",
        "--country",
        "us",
    )
    assert result.returncode == 0
    listing = pd.read_csv(out)
    assert set(listing["conversion_tier"]) <= {"hot"} and set(listing["country"]) <= {"us"}
    bad = cli("export", "--data", str(world), "--run", str(run_dir), "--out", str(root / "x.txt"))
    assert bad.returncode == 2 and ".csv or .parquet" in bad.stderr


def test_report_escapes_every_value_and_embeds_plots(trained, tmp_path):
    world, run_dir, root = trained.world, trained.run_dir, tmp_path
    out = root / "report.html"
    result = cli("report", "--run", str(run_dir), "--out", str(out), "--data", str(world))
    assert result.returncode == 0, result.stderr[-2000:]
    html = out.read_text()
    assert "data:image/png;base64," in html and 'src="http' not in html
    assert "Top 50 accounts" in html and "Account cards for sales" in html

    # the top account renamed to each hostile string: the real report code must escape it
    from propensity.outputs.export import ranked_list
    from propensity.outputs.report import build_report
    from propensity.runs.folder import load_scoring_model
    from propensity.scoring import score_snapshot

    tables = load_tables(world)
    scored = score_snapshot(tables, load_scoring_model(run_dir))
    listing = ranked_list(scored, tables.accounts, ScoringConfig(), top_k=50)
    for name in HOSTILE.values():
        listing.loc[0, "account_name"] = name
        page = build_report(read_run(run_dir), listing, scored)
        assert "<script>" not in page and "<b>bold</b>" not in page and "<img src" not in page
        if "<b>bold</b>" in name:
            assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_report_renders_in_headless_chromium(trained, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        browser_missing("Chromium is not installed (`make browser` installs it)")
    world, run_dir, root = trained.world, trained.run_dir, tmp_path
    from propensity.outputs.export import ranked_list
    from propensity.outputs.report import build_report
    from propensity.runs.folder import load_scoring_model
    from propensity.scoring import score_snapshot

    tables = load_tables(world)
    scored = score_snapshot(tables, load_scoring_model(run_dir))
    listing = ranked_list(scored, tables.accounts, ScoringConfig(), top_k=50)
    listing.loc[0, "account_name"] = HOSTILE["A0000001"]
    out = root / "render.html"
    out.write_text(build_report(read_run(run_dir), listing, scored))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={root / 'chromium'}",
            "--dump-dom",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "report" in dom.stdout.lower()
    assert "<script>" not in dom.stdout  # the hostile name stayed text
    assert dom.stdout.count("<img") >= 4


def test_priority_rule_first_match_wins():
    config = ScoringConfig()
    fit = pd.Series(["A", "C", "A", "D", "B"])
    conversion = pd.Series(["hot", "hot", "cold", "cold", "warm"])
    assert priority(fit, conversion, config).tolist() == [
        "priority 1",
        "priority 3",
        "priority 4",
        "nurture",
        "priority 2",
    ]


def test_formula_cells_are_neutralised_and_safe_text_kept():
    frame = pd.DataFrame(
        {"name": ["=1+1", "+x", "-y", "@z", "plain", None], "n": [1, 2, 3, 4, 5, 6]}
    )
    out = neutralise_formulas(frame)
    assert out["name"].tolist()[:5] == ["'=1+1", "'+x", "'-y", "'@z", "plain"]
    assert out["n"].tolist() == [1, 2, 3, 4, 5, 6]


def test_scoring_part_by_part_gives_the_rows_of_one_scoring(trained):
    from propensity.scoring import snapshot_features

    model = trained.result.scoring_model
    matrix = snapshot_features(trained.tables, model).head(120)
    whole = model.score_features(matrix)
    parts = list(model.score_parts(matrix, part_rows=50))
    assert [len(p) for p in parts] == [50, 50, 20]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    empty = list(model.score_parts(matrix.head(0)))
    assert len(empty) == 1 and empty[0].empty and list(empty[0].columns) == list(whole.columns)
