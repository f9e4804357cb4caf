"""After the model ships: the score history (idempotent, safe against a kill and a second
writer), the drift measures, a world that changes, and `propensity monitor` on it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from conftest import BIN, FAST, cli, kill_at
from propensity.data.contract import load_tables
from propensity.data.world import RegimeChange, WorldConfig, generate_world
from propensity.drift import FeatureBins, psi
from propensity.features.registry import FeatureSpec
from propensity.history import HistoryError, read_history, record
from propensity.model.config import ModelConfig
from propensity.model.scorecard import Scorecard
from propensity.monitor import MonitorConfig, monitor
from propensity.runs.account import train_account_model
from propensity.runs.folder import write_run
from propensity.runs.workflows import score_accounts

# ---------------------------------------------------------------------------------------------
# drift measures


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_move():
    same = psi([0.5, 0.5], [0.5, 0.5])
    small = psi([0.5, 0.5], [0.45, 0.55])
    large = psi([0.5, 0.5], [0.1, 0.9])
    assert same == 0 and 0 < small < 0.1 < 0.25 < large


def test_a_value_on_an_edge_falls_in_the_lower_bin_and_missing_in_the_last():
    bins = FeatureBins("x", "engagement", "x", edges=(0.0, 2.0), shares=(0.5, 0.3, 0.2, 0.0))
    codes = bins.codes(pd.Series([0.0, 1.0, 2.0, 5.0, np.nan]))
    assert codes.tolist() == [0, 1, 1, 2, 3]
    assert bins.labels == ["<= 0", "<= 2", "> 2", "missing"]


def test_an_unseen_category_counts_as_other():
    bins = FeatureBins("c", "firmographic", "c", categories=("saas", "retail"), shares=(1, 0, 0, 0))
    assert bins.codes(pd.Series(["retail", "mining", None])).tolist() == [1, 2, 3]


def test_normal_psi_is_how_much_one_training_snapshot_moves():
    from propensity.drift import feature_bins

    spec = FeatureSpec("opens", "engagement", "opens", "opens", "", "")
    rows = pd.DataFrame(
        {
            "as_of": np.repeat(pd.to_datetime(["2025-01-01", "2025-02-01"]), 400),
            "opens": np.r_[np.zeros(400), np.ones(400)],  # one month quiet, one busy
        }
    )
    bins = feature_bins(rows, [spec], ["opens"])["opens"]
    assert bins.normal_psi > 1  # each month alone is far from the pooled rows


# ---------------------------------------------------------------------------------------------
# the data as an export at a date would have held it; a world that changes


def test_known_before_shows_a_deal_closed_later_as_open_and_intent_a_week_late(world):
    tables = load_tables(world)
    day = pd.Timestamp("2025-03-03")
    before = tables.known_before(day)
    assert (before.events["ts"] < day).all()
    assert (before.intent["week"] + pd.Timedelta(days=7) <= day).all()
    opps = before.opportunities
    assert (opps["created_at"] < day).all()
    assert not (opps["closed_at"] >= day).any()
    closed_later = tables.opportunities[
        (tables.opportunities["created_at"] < day) & (tables.opportunities["closed_at"] >= day)
    ]["opportunity_id"]
    assert (
        len(closed_later)
        and (opps.set_index("opportunity_id").loc[closed_later, "outcome"] == "open").all()
    )


def test_a_regime_change_leaves_the_world_before_it_untouched(tmp_path):
    change = RegimeChange(at="2024-09-02", intent_stop_share=1.0, events_stop_share=0.5)
    same = generate_world(WorldConfig(n_accounts=300, seed=2, weeks=52), tmp_path / "same")
    changed = generate_world(
        WorldConfig(n_accounts=300, seed=2, weeks=52, regime_change=change), tmp_path / "changed"
    )
    at = pd.Timestamp(change.at)
    for table, column in (("events", "ts"), ("intent", "week")):
        a, b = (pd.read_parquet(folder / f"{table}.parquet") for folder in (same, changed))
        pd.testing.assert_frame_equal(
            a[a[column] < at].reset_index(drop=True), b[b[column] < at].reset_index(drop=True)
        )
        assert len(b[b[column] >= at]) < len(a[a[column] >= at])
    intent = pd.read_parquet(changed / "intent.parquet")
    assert intent["week"].max() < at  # the whole feed stopped
    # the market itself did not change (the export-date bait follows the data it describes)
    bait = ["lifecycle_stage", "last_activity_at"]
    for table, drop in (("accounts", bait), ("opportunities", [])):
        pd.testing.assert_frame_equal(
            pd.read_parquet(same / f"{table}.parquet").drop(columns=drop),
            pd.read_parquet(changed / f"{table}.parquet").drop(columns=drop),
        )


def test_a_regime_change_that_changes_nothing_is_refused():
    with pytest.raises(ValueError, match="intent_stop_share or events_stop_share"):
        RegimeChange(at="2024-09-02")


# ---------------------------------------------------------------------------------------------
# the score history


def _score(trained, tmp_path: Path, history: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(
        "score", "--data", str(trained.world), "--run", str(trained.run_dir),
        "--out", str(tmp_path / "scores.parquet"), "--history", str(history), *args,
        cwd=tmp_path,
    )  # fmt: skip


def _counts(history: Path) -> tuple[int, int, int]:
    stored = read_history(history)
    return len(stored.batches), len(stored.scores), len(stored.feature_shares)


def test_rerunning_a_scoring_leaves_the_history_unchanged(trained, tmp_path):
    history = tmp_path / "history.duckdb"
    first = _score(trained, tmp_path, history, "--as-of", "2025-06-01")
    assert first.returncode == 0, first.stderr
    assert "recorded in the score history" in first.stdout
    before = read_history(history)
    again = _score(trained, tmp_path, history, "--as-of", "2025-06-01")
    assert again.returncode == 0, again.stderr
    assert "already in the score history" in again.stdout
    after = read_history(history)
    pd.testing.assert_frame_equal(before.scores, after.scores)
    pd.testing.assert_frame_equal(before.batches, after.batches)
    rows = before.scores
    assert len(before.batches) == 1 and len(rows) == before.batches["rows"].iloc[0]
    assert rows["model_version"].eq(trained.result.scoring_model.version).all()
    assert rows["priority"].notna().all() and rows["scorecard_points"].notna().all()
    assert rows["conversion_reasons"].str.len().gt(0).all()
    assert set(before.feature_shares["head"]) == {"fit", "conversion"}


def test_a_killed_scoring_leaves_the_history_readable_with_no_partial_batch(trained, tmp_path):
    history = tmp_path / "history.duckdb"
    assert _score(trained, tmp_path, history, "--as-of", "2025-05-01").returncode == 0
    before = _counts(history)
    args = [
        str(BIN / "propensity"), "score", "--data", str(trained.world), "--run",
        str(trained.run_dir), "--out", str(tmp_path / "scores.parquet"), "--history",
        str(history), "--as-of", "2025-06-01",
    ]  # fmt: skip
    kill_at("history.inserting", args, tmp_path, tmp_path / "tmp")
    assert _counts(history) == before  # the killed batch is not there, not even in part
    rerun = _score(trained, tmp_path, history, "--as-of", "2025-06-01")
    assert rerun.returncode == 0, rerun.stderr
    batches, scores, _ = _counts(history)
    assert batches == before[0] + 1 and scores > before[1]


def test_a_second_writer_waits_then_gets_an_error_naming_the_file(trained, tmp_path):
    from propensity.history import HistoryBatch

    history = tmp_path / "history.duckdb"
    assert _score(trained, tmp_path, history, "--as-of", "2025-05-01").returncode == 0
    busy = subprocess.Popen(
        [str(BIN / "python"), "-c",
         f"import duckdb, time; c = duckdb.connect({str(history)!r}); print('open', flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert busy.stdout.readline().strip() == "open"
        empty = HistoryBatch("2025-06-01|x", {}, pd.DataFrame(), pd.DataFrame())
        with pytest.raises(HistoryError, match=f"{history}.*in use by another process"):
            record(empty, history, lock_seconds=1)
    finally:
        busy.kill()
        busy.wait()
    assert _counts(history)[0] == 1


def test_monitor_without_a_history_says_so_and_writes_nothing(trained, tmp_path):
    result = cli(
        "monitor", "--data", str(trained.world), "--history", str(tmp_path / "none.duckdb"),
        "--out", str(tmp_path / "monitor.html"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "no history at" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_file_that_is_not_a_history_is_refused_by_name(tmp_path):
    not_history = tmp_path / "other.duckdb"
    duckdb.connect(str(not_history)).execute("CREATE TABLE t (x INT)").close()
    with pytest.raises(HistoryError, match="not a history store"):
        read_history(not_history)


# ---------------------------------------------------------------------------------------------
# a world that changes, scored monthly, monitored

CHANGE_AT = "2026-05-04"
TRAINED_AT = "2026-01-05"
SCORED = pd.date_range("2026-02-01", "2026-09-01", freq="MS")


@pytest.fixture(scope="module")
def monitored_worlds(tmp_path_factory):
    """The same world (5,000 accounts, three years) with and without a regime change (intent
    feed gone, engagement lost for half the accounts), a model trained on the data of its
    first two years, and each world scored monthly through the change into its own history."""
    folder = tmp_path_factory.mktemp("monitored")
    config = WorldConfig(n_accounts=5000, seed=3, weeks=156)
    worlds = {
        "same": generate_world(config, folder / "same"),
        "changed": generate_world(
            config.model_copy(
                update={
                    "regime_change": RegimeChange(
                        at=CHANGE_AT, intent_stop_share=1.0, events_stop_share=0.5
                    )
                }
            ),
            folder / "changed",
        ),
    }
    tables = {name: load_tables(path) for name, path in worlds.items()}
    result = train_account_model(
        tables["same"].known_before(TRAINED_AT),
        ModelConfig.model_validate(FAST),
        Scorecard.from_yaml(),
    )
    write_run(result, folder / "run")
    for name, path in worlds.items():
        for as_of in SCORED:
            score_accounts(
                path,
                folder / f"{name}.parquet",
                result.scoring_model,
                as_of,
                tables=tables[name],
                history=folder / f"{name}.duckdb",
            )
    return folder, worlds, tables


@pytest.mark.slow(seconds=120)
def test_alarms_fire_after_a_regime_change_and_stay_silent_on_the_unchanged_world(
    monitored_worlds,
):
    folder, worlds, tables = monitored_worlds
    config = MonitorConfig()
    same = monitor(read_history(folder / "same.duckdb"), tables["same"], config)
    changed = monitor(read_history(folder / "changed.duckdb"), tables["changed"], config)

    assert len(same.periods) >= 6  # the scorings whose 90 days have passed
    assert same.alarms == [] and same.recommendation is None

    after = pd.Timestamp(CHANGE_AT)
    alarms = changed.alarm_table()
    assert (pd.to_datetime(alarms["as_of"]) > after).all()  # nothing before the change
    fired = set(alarms["alarm"])
    assert {"calibration", "feature_drift", "freshness"} <= fired
    calibration = changed.periods[changed.periods["as_of"] > after]
    assert (calibration["realised_to_predicted"] > config.calibration_ratio[1]).all()
    drift = " ".join(alarms[alarms["alarm"] == "feature_drift"]["message"])
    assert "intent (" in drift and "engagement (" in drift  # the families that moved, named
    assert "intent row" in " ".join(alarms[alarms["alarm"] == "freshness"]["message"])
    assert changed.recommendation and "retrain" in changed.recommendation


@pytest.mark.slow(seconds=30)
def test_monitor_command_pages_on_the_changed_world_and_writes_its_page(monitored_worlds):
    folder, worlds, _ = monitored_worlds
    for name, code in (("same", 0), ("changed", 3)):
        page = folder / f"{name}_monitor.html"
        result = cli(
            "monitor", "--data", str(worlds[name]), "--history", str(folder / f"{name}.duckdb"),
            "--out", str(page),
        )  # fmt: skip
        assert result.returncode == code, result.stdout + result.stderr
        html = page.read_text(encoding="utf-8")
        assert "Realised vs predicted" in html and "data:image/png;base64," in html
        assert page.with_name(f"{name}_monitor_calibration_over_time.png").is_file()
    assert "alarm calibration" in result.stdout and "retrain recommended" in result.stdout


def test_monitor_before_any_outcome_shows_drift_and_says_no_outcome_yet(trained, tmp_path):
    history = tmp_path / "history.duckdb"
    assert _score(trained, tmp_path, history).returncode == 0  # at the end of the data
    page = tmp_path / "monitor.html"
    result = cli(
        "monitor", "--data", str(trained.world), "--history", str(history), "--out", str(page),
    )  # fmt: skip
    assert result.returncode in (0, 3), result.stderr
    assert "no scoring has outcomes yet" in result.stdout
    assert "Feature drift on the latest scoring" in page.read_text(encoding="utf-8")
