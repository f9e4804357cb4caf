"""Issue 9's figures on the real public exports (skipped when ../shared/data/real is absent).

The full figures (2 repeats, 200 bootstrap draws) are in benchmarks/real_data.md, written by
`make bench-real`; these runs use fewer draws and one repeat to stay quick.
"""

from __future__ import annotations

import pytest

from propensity.data.adapters import SOURCES, real_data_available
from propensity.runs.folder import RunResult
from propensity.runs.table import train_table_model
from propensity.settings import REAL_DATA_ENV, real_data_dir

pytestmark = pytest.mark.skipif(
    not all(real_data_available(name) for name in SOURCES),
    reason=f"real exports not found under {real_data_dir()} (set {REAL_DATA_ENV})",
)


def table_run(name: str, join: bool = False, **options) -> RunResult:
    source = SOURCES[name](**({"join_closed_deals": True} if join else {}))
    config = source.table_config(n_bootstrap=50, **options)
    return train_table_model(source.frame, config, name)


def model_figures(run: RunResult):
    return run.evaluation.set_index("scorer")


@pytest.mark.slow(seconds=16)
def test_x_education_screen_alone_flags_the_sales_filled_fields_and_the_model_still_ranks():
    run = table_run("x_education", repeats=1)
    assert {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"} <= set(
        run.screen.suspects
    )
    assert run.summary["protocol"]["protocol"] == "repeated_stratified_group_kfold"
    assert model_figures(run).loc["model", "roc_auc"] >= 0.89
    assert run.heads["table"].beats_base_rate


def test_olist_out_of_time_beats_the_base_rate_brier_and_catches_closed_deal_fields():
    plain = table_run("olist")
    figures = model_figures(plain)
    assert plain.summary["protocol"]["protocol"] == "out_of_time"
    assert figures.loc["model", "roc_auc"] >= 0.69
    assert figures.loc["model", "brier"] < figures.loc["base_rate", "brier"]
    joined = table_run("olist", join=True)
    closed_deal_fields = set(SOURCES["olist"](join_closed_deals=True).frame.columns) - set(
        SOURCES["olist"]().frame.columns
    )
    assert closed_deal_fields - {"seller_id"} <= set(joined.screen.suspects)
    assert "seller_id" in joined.summary["set_aside"]  # an identifier, set aside before the screen
    assert joined.summary["features"] == plain.summary["features"]


def test_maven_flags_outcome_fields_and_says_plainly_there_is_no_signal():
    run = table_run("maven")
    assert {"close_value", "close_date", "days_to_close"} <= set(run.screen.suspects)
    assert not run.heads["table"].beats_base_rate
    assert run.heads["table"].verdict.startswith("No signal beyond the base rate")


def test_maven_contract_tables_through_the_cli_validate(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    entry = str(Path(sys.executable).parent / "propensity")
    folder = tmp_path / "maven"
    adapted = subprocess.run(
        [entry, "table", "adapt", "maven", "--contract", "--out", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert adapted.returncode == 0, adapted.stderr[-2000:]
    assert "accounts 85, opportunities 7,212" in adapted.stdout
    validated = subprocess.run([entry, "validate", str(folder)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr[-2000:]
    assert "4238 won of 6711 closed" in validated.stdout
