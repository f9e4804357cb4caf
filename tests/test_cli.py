"""The `propensity` command through its real entry point (the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ENTRY = shutil.which("propensity", path=str(Path(sys.executable).parent))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    assert ENTRY, "the propensity console script is not installed next to the test interpreter"
    return subprocess.run([ENTRY, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["generate"],
        ["validate"],
        ["features"],
        ["train"],
        ["tune"],
        ["explain"],
        ["promote"],
        ["rollback"],
        ["runs"],
        ["score"],
        ["demo"],
        ["export"],
        ["report"],
        ["config", "show"],
        ["table", "train"],
        ["table", "score"],
        ["table", "adapt"],
        ["scorecard", "export"],
    ],
)
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.slow(seconds=11)
def test_generate_validate_features_through_the_cli(tmp_path):
    world = tmp_path / "world"
    result = run("generate", "--accounts", "300", "--seed", "2", "--out", str(world))
    assert result.returncode == 0, result.stderr
    assert (world / "events.parquet").exists() and (world / "truth" / "conversion.parquet").exists()

    result = run("validate", str(world))
    assert result.returncode == 0, result.stderr
    assert "win rate" in result.stdout and "accounts 300" in result.stdout

    out = tmp_path / "features.parquet"
    result = run("features", "--data", str(world), "--out", str(out))
    assert result.returncode == 0, result.stderr
    matrix = pd.read_parquet(out)
    assert list(matrix.columns[:2]) == ["account_id", "as_of"]
    labels = pd.read_parquet(tmp_path / "features.labels.parquet")
    assert len(labels) == len(matrix)
    assert (tmp_path / "features.settings.json").exists()

    single = tmp_path / "single.parquet"
    result = run("features", "--data", str(world), "--out", str(single), "--as-of", "2025-06-01")
    assert result.returncode == 0, result.stderr
    assert pd.read_parquet(single)["as_of"].unique().tolist() == [pd.Timestamp("2025-06-01")]


def test_generate_refuses_to_overwrite_and_keeps_the_folder(tmp_path):
    world = tmp_path / "world"
    world.mkdir()
    (world / "mine.txt").write_text("keep")
    result = run("generate", "--accounts", "60", "--out", str(world))
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (world / "mine.txt").read_text() == "keep"


def test_validate_bad_folder_names_table_and_column_and_exits_nonzero(tmp_path):
    (tmp_path / "accounts.csv").write_text("account_id,name,employees\nA1,Acme,12\nA1,Acme2,-3\n")
    result = run("validate", str(tmp_path))
    assert result.returncode == 2
    assert "table 'accounts', column 'account_id'" in result.stderr
    assert "table 'accounts', column 'employees'" in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "accounts.csv"]  # wrote nothing


def test_bad_option_value_is_a_clear_error(tmp_path):
    result = run(
        "features",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "f.parquet"),
        "--as-of",
        "2025-13-01",
    )
    assert result.returncode == 2
    assert "--as-of must be a date" in result.stderr


def test_a_run_folder_holds_every_artifact_and_explains_an_account(trained):
    """The session's run (written by the one run-folder writer) read back, and `explain` on it."""
    run_dir = trained.run_dir
    evaluation = pd.read_csv(run_dir / "evaluation.csv")
    assert {"model", "scorecard", "learned_scorecard", "logistic", "oracle", "base_rate"} <= set(
        evaluation["scorer"]
    )
    assert set(evaluation["head"]) == {"fit", "conversion"}
    for column in (
        "roc_auc", "pr_auc", "brier", "brier_skill", "ece", "lift_5", "lift_10", "lift_20",
        "precision_at_k", "recall_at_k",
    ):  # fmt: skip
        assert {column, f"{column}_lo", f"{column}_hi"} <= set(evaluation.columns)
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert list(predictions.columns[:4]) == ["account_id", "as_of", "head", "repeat"]
    for name in (
        "models/conversion.lgb.txt", "models/fit.lgb.txt", "global_reasons.csv",
        "global_reasons_conversion.png", "gains_fit.png", "calibration_conversion.png",
        "summary.json", "summary.md", "screen.csv", "features.csv", "test_window.parquet",
        "scoring_model.joblib", "config.yaml",
    ):  # fmt: skip
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["kind"] == "account" and set(summary["verdicts"]) == {"fit", "conversion"}
    assert not list(run_dir.parent.glob(".*partial"))  # written atomically, nothing left over

    top = predictions.loc[predictions["head"] == "conversion"].sort_values("model").iloc[-1]
    card = run(
        "explain", "--account", top["account_id"], "--data", str(trained.world),
        "--run", str(run_dir), "--as-of", str(top["as_of"].date()),
    )  # fmt: skip
    assert card.returncode == 0, card.stderr
    assert "conversion" in card.stdout and "score" in card.stdout


def test_report_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    (tmp_path / "summary.json").write_text("{}")
    result = run("report", "--run", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert "not a complete run folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_train_onto_an_existing_run_folder_refuses_without_overwrite_and_keeps_it(
    trained, tmp_path
):
    champion = tmp_path / "champion_run"
    shutil.copytree(trained.run_dir, champion)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in champion.iterdir())
    for command in (
        ("train", "--data", str(trained.world), "--out", str(champion), "--no-track"),
        ("table", "train", str(tmp_path / "any.csv"), "--out", str(champion), "--no-track"),
    ):
        result = run(*command)
        assert result.returncode == 2, command
        assert (
            f"{champion} exists (a run folder)" in result.stderr and "--overwrite" in result.stderr
        )
        assert "Traceback" not in result.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in champion.iterdir()) == before


def test_a_model_file_from_another_version_is_a_clear_error(trained, tmp_path):
    run_dir = tmp_path / "old_run"
    shutil.copytree(trained.run_dir, run_dir)
    # a pickle naming a class this version does not have (as a model from an older release)
    (run_dir / "scoring_model.joblib").write_bytes(b"cpropensity.model.head\n_MarginClassifier\n.")
    out = tmp_path / "list.csv"
    result = run("export", "--data", str(trained.world), "--run", str(run_dir), "--out", str(out))
    assert result.returncode == 2
    assert "another version of propensity" in result.stderr and "train again" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_packaged_configs_are_shown_and_a_project_copy_overrides_them(tmp_path):
    shown = run("config", "show", "model")
    assert shown.returncode == 0 and "horizon_days" in shown.stdout
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "model.yaml").write_text("conversion: {num_leaves: 1}\n")
    result = run(
        "train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), cwd=tmp_path
    )  # the project's own configs/model.yaml is read, and validated
    assert result.returncode == 2
    assert "configs/model.yaml" in result.stderr and "conversion.num_leaves" in result.stderr


def test_train_refuses_a_bad_config_naming_the_key(tmp_path):
    config = tmp_path / "model.yaml"
    config.write_text("conversion: {num_leaves: 1}\nmin_positive: 3\n")
    result = run(
        "train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--config", str(config)
    )
    assert result.returncode == 2
    assert "conversion.num_leaves" in result.stderr and "min_positive" in result.stderr


def test_explain_unknown_account_is_a_clear_error(tmp_path):
    result = run("explain", "--account", "nope", "--data", str(tmp_path), "--run", str(tmp_path))
    assert result.returncode == 2
    assert "scoring_model.joblib" in result.stderr


def test_error_text_with_brackets_is_printed_as_is(tmp_path):
    data = tmp_path / "exports [bold] 2025"  # rich would read [bold] as markup
    data.mkdir()
    (data / "accounts.csv").write_text("")
    result = run("validate", str(data))
    assert result.returncode == 2
    assert f"{data}/accounts.csv is empty" in result.stderr.replace("\n", "")


def test_generate_sets_a_world_knob_and_names_a_wrong_one(tmp_path):
    out = tmp_path / "w"
    result = run(
        "generate", "--out", str(out), "--accounts", "300", "--set", "sales_cycle_days=120",
        "--set", "engagement_lag_weeks=3", "--set", "intent_lead_weeks=3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "opportunities.parquet").is_file()
    wrong = run("generate", "--out", str(tmp_path / "x"), "--set", "research_weeks=2")
    assert wrong.returncode == 2
    assert "--set research_weeks: not a world setting" in wrong.stderr
    assert "research_weeks_scale" in wrong.stderr and not (tmp_path / "x").exists()
    future = run("generate", "--out", str(tmp_path / "y"), "--set", "intent_lead_weeks=2")
    assert future.returncode == 2
    assert "intent_lead_weeks (2) must not exceed engagement_lag_weeks (0)" in future.stderr
