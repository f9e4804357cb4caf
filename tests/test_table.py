"""Table mode: label parsing, clear errors, the protocol (time order, duplicates in one fold),
duplicate counts, the screen wired in, honest verdicts, scoring with reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from propensity.data.table import TableError, duplicate_counts, label_values, prepare_table
from propensity.model.config import TableConfig
from propensity.model.splits import ROW_TIME, RepeatedGroupKFold, RowOutOfTime, SplitError
from propensity.runs.table import train_table_model, vector_groups

FAST = {"repeats": 1, "folds": 3, "n_bootstrap": 20, "min_positives": 10}


def leads(n: int = 1500, seed: int = 0, signal: float = 1.5) -> pd.DataFrame:
    """A lead export: one honest strong signal, a category, noise, and a time per row."""
    rng = np.random.default_rng(seed)
    minutes = rng.gamma(2.0, 10.0, n)
    source = rng.choice(["ads", "organic", "referral", "partner"], n)
    logit = signal * (np.log1p(minutes) - 2.5) + np.where(source == "referral", 0.8, 0.0) - 0.5
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(n)],
            "created": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(np.sort(rng.integers(0, 500, n)), unit="D"),
            "minutes_on_site": minutes.round(1),
            "source": source,
            "employees": rng.lognormal(4, 1, n).round(),
            "outcome": np.where(won, "Won", "Lost"),
        }
    )


def config(**changes) -> TableConfig:
    base = {"id_column": "lead_id", "label_column": "outcome", "positive": ("Won",), **FAST}
    return TableConfig(**{**base, **changes})


def test_positive_negative_and_open_rows():
    frame = pd.DataFrame({"outcome": ["Won", "Lost", "Engaging", None, " Won "]})
    label = label_values(frame, config(negative=("Lost",)))
    assert label.tolist()[:3] == [1.0, 0.0, None] or np.isnan(label[2])
    assert label[0] == 1 and label[1] == 0 and np.isnan(label[2]) and np.isnan(label[3])
    assert label[4] == 1  # whitespace is not a different value
    # without negative values, every other known value is lost; a missing label stays open
    label = label_values(frame, config())
    assert label[2] == 0 and np.isnan(label[3])


def test_numeric_labels_match_text_values():
    frame = pd.DataFrame({"Converted": [1, 0, 1.0, 0]})
    label = label_values(frame, config(label_column="Converted", positive=("1",)))
    assert label.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_no_positive_value_names_the_values_seen():
    frame = leads(50)
    with pytest.raises(TableError, match=r"(?s)no row has a positive value \['won'\].*Won"):
        prepare_table(frame, config(positive=("won",)))


def test_missing_column_lists_the_columns_that_exist():
    with pytest.raises(TableError, match=r"(?s)no column 'lead'.*lead_id, created"):
        prepare_table(leads(50), config(id_column="lead"))


def test_repeated_ids_are_an_error_with_example_rows():
    frame = leads(50)
    frame.loc[7, "lead_id"] = frame.loc[3, "lead_id"]
    with pytest.raises(TableError, match=r"(?s)repeats 1 ids \(2 rows\).*row 3.*row 7"):
        prepare_table(frame, config())


def test_unparseable_time_names_the_rows():
    frame = leads(50).assign(created=lambda f: f["created"].astype(str))
    frame.loc[4, "created"] = "last tuesday"
    with pytest.raises(
        TableError, match=r"(?s)time column 'created' has 1 values that are not dates.*row 4"
    ):
        prepare_table(frame, config(time_column="created"))


def test_config_rejects_time_column_and_row_order_together():
    with pytest.raises(ValidationError, match="either time_column or rows_in_time_order"):
        config(time_column="created", rows_in_time_order=True)


def test_identifier_like_and_constant_columns_are_set_aside_with_a_reason():
    frame = leads(300).assign(email=lambda f: f["lead_id"] + "@example.com", region="EU")
    prepared = prepare_table(frame, config())
    assert "identifier" in prepared.set_aside["email"]
    assert "constant" in prepared.set_aside["region"]
    assert prepared.kinds["source"] == "categorical" and prepared.kinds["employees"] == "numeric"
    # without a row time a date cannot be measured from anything
    assert "no time" in prepared.set_aside["created"]


def test_out_of_time_parts_are_ordered_and_one_time_is_never_split():
    time = pd.Series(
        pd.to_datetime(["2024-01-01"] * 30 + ["2024-02-01"] * 40 + ["2024-03-01"] * 30)
    )
    label = np.tile([0, 1], 50)
    (fold,) = RowOutOfTime(valid_share=0.3, test_share=0.25).folds(
        pd.DataFrame({ROW_TIME: time}), label
    )
    assert (
        time[fold.train].max()
        < time[fold.valid].min()
        <= time[fold.valid].max()
        < time[fold.test].min()
    )
    assert len(fold.train) + len(fold.valid) + len(fold.test) == 100
    for date, rows in time.groupby(time).groups.items():
        parts = {
            part
            for part, idx in (("t", fold.train), ("v", fold.valid), ("s", fold.test))
            if set(rows) & set(idx)
        }
        assert len(parts) == 1, date


def test_identical_feature_vectors_always_share_a_fold():
    rng = np.random.default_rng(1)
    matrix = pd.DataFrame({"a": rng.integers(0, 12, 400), "b": rng.choice(["x", "y"], 400)})
    label = rng.integers(0, 2, 400)
    groups = vector_groups(matrix)
    assert len(np.unique(groups)) == 24  # 12 x 2 distinct vectors
    for fold in RepeatedGroupKFold(n_splits=4, n_repeats=2, seed=7).folds(matrix, label, groups):
        assert not set(groups[fold.test]) & set(groups[np.r_[fold.train, fold.valid]])
        assert not set(groups[fold.train]) & set(groups[fold.valid])


def test_duplicates_and_conflicting_duplicates_are_counted():
    matrix = pd.DataFrame({"a": [1, 1, 1, 2, 2, 3], "b": ["x", "x", "x", "y", "y", "z"]})
    label = pd.Series([1, 1, 0, 0, 0, 1])
    counts = duplicate_counts(matrix, label)
    # (1,x,1) twice -> 1 exact duplicate; (2,y,0) twice -> 1 more; (1,x) has both labels
    assert counts["exact_duplicate_rows"] == 2
    assert counts["conflicting_vectors"] == 1 and counts["conflicting_rows"] == 3
    assert counts["distinct_vectors"] == 3


def test_planted_leak_is_excluded_and_the_honest_model_still_beats_the_base_rate():
    frame = leads(1500)
    frame["deal_stage_code"] = np.where(frame["outcome"] == "Won", 7, 3)
    run = train_table_model(frame, config())
    assert "deal_stage_code" in run.screen.suspects
    assert (
        "deal_stage_code" not in run.summary["features"]
        and "minutes_on_site" in run.summary["features"]
    )
    assert run.heads["table"].beats_base_rate, run.heads["table"].verdict
    model = run.evaluation.set_index("scorer").loc["model"]
    assert 0.65 < model["roc_auc"] < 0.95  # honest signal, not the leak's 1.0
    assert model["brier"] < run.evaluation.set_index("scorer").loc["base_rate", "brier"]


def test_keep_suspects_trains_on_the_leak_and_says_so():
    frame = leads(800)
    frame["deal_stage_code"] = np.where(frame["outcome"] == "Won", 7, 3)
    run = train_table_model(frame, config(keep_suspects=True))
    assert "deal_stage_code" in run.summary["features"]
    assert any("kept" in note for note in run.scoring_model.notes)


def test_a_table_without_signal_gets_a_plain_no_signal_verdict():
    frame = leads(1500, signal=0.0)
    frame["source"] = np.random.default_rng(5).permutation(frame["source"].to_numpy())
    run = train_table_model(frame, config(time_column="created", n_bootstrap=100))
    assert not run.heads["table"].beats_base_rate
    assert (
        run.heads["table"].verdict.startswith("No signal beyond the base rate")
        or "no better than the base rate" in run.heads["table"].verdict
    )
    assert run.summary["protocol"]["protocol"] == "out_of_time"


def test_open_rows_are_scored_but_never_trained_on():
    frame = leads(1200)
    frame.loc[frame.index[-100:], "outcome"] = "Open"
    run = train_table_model(frame, config(negative=("Lost",)))
    assert len(run.predictions) == 1100  # held-out rows are labelled rows only
    scored = run.scoring_model.score(frame)
    assert len(scored) == 1200 and (scored["outcome"] == "open").sum() == 100
    assert scored["rank"].tolist() == list(range(1, 1201))
    assert scored["probability"].is_monotonic_decreasing
    assert scored["model_version"].eq(run.scoring_model.version).all()
    assert scored["reasons"].str.contains(r"\(\+\)|\(-\)").all()


def test_same_seed_same_config_same_evaluation():
    frame = leads(700)
    first = train_table_model(frame, config()).evaluation
    second = train_table_model(frame.sample(frac=1, random_state=3), config()).evaluation
    pd.testing.assert_frame_equal(first, second)


def test_true_false_labels_read_the_same_with_and_without_open_rows():
    complete = pd.DataFrame({"won": [True, False, True]})
    with_gaps = pd.DataFrame({"won": [True, False, None]})
    settings = config(label_column="won", positive=(True,))
    assert settings.positive == ("true",)
    assert label_values(complete, settings).tolist() == [1.0, 0.0, 1.0]
    assert label_values(with_gaps, settings, require_both=False).tolist()[:2] == [1.0, 0.0]


def test_configured_label_values_are_text_without_spaces():
    assert config(positive=[1, " Won "]).positive == ("1", "Won")


def test_a_numeric_time_column_is_refused_with_advice():
    frame = leads(50).assign(created=lambda f: f["created"].dt.year)
    with pytest.raises(TableError, match="holds numbers, not dates.*rows_in_time_order"):
        prepare_table(frame, config(time_column="created"))


def test_too_few_distinct_rows_for_k_fold_is_a_clear_error():
    frame = leads(400)[["lead_id", "source", "outcome"]]
    with pytest.raises(SplitError, match="distinct feature vectors per class"):
        train_table_model(frame, config())


@pytest.mark.slow(seconds=20)
def test_runs_points_to_the_table_runs_when_the_store_holds_only_those(tmp_path):
    from conftest import cli

    leads(600).to_csv(tmp_path / "leads.csv", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    trained = cli(
        "table", "train", str(tmp_path / "leads.csv"), "--id", "lead_id", "--label", "outcome",
        "--positive", "Won", "--time", "created", "--out", str(tmp_path / "run"),
        "--tracking-uri", uri, cwd=tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    listed = cli("runs", "--tracking-uri", uri, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "holds table runs" in listed.stdout and "propensity runs --table" in listed.stdout
    table_runs = cli("runs", "--table", "--tracking-uri", uri, cwd=tmp_path)
    assert "table_auc" in table_runs.stdout


@pytest.mark.slow(seconds=20)
def test_a_new_users_export_without_ids_semicolons_and_new_values_reads_right(tmp_path):
    """As a new user meets table mode: a ';'-separated export with no id column and a few
    duplicated rows trains with a hint for each; a later file with a category value the model
    never saw is scored with a warning and reasons that say so; a mistake names the flag."""
    from conftest import cli

    frame = leads(900).drop(columns=["lead_id"])
    frame = pd.concat([frame, frame.iloc[:3]], ignore_index=True)  # 3 exact duplicates
    frame.to_csv(tmp_path / "leads.csv", index=False, sep=";")
    run_dir = tmp_path / "run"
    trained = cli(
        "table", "train", str(tmp_path / "leads.csv"), "--label", "outcome", "--positive",
        "Won", "--folds", "3", "--repeats", "1", "--out", str(run_dir), "--no-track",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "separated by ';'" in trained.stderr
    assert "rows are named by their number in the file" in trained.stdout
    assert "duplicates: 3 exact duplicate rows in the file" in trained.stdout
    scores = pd.read_csv(run_dir / "scores.csv")
    assert sorted(scores["id"]) == list(range(1, 904))

    later = leads(40, seed=9).drop(columns=["lead_id"])
    later.loc[:4, "source"] = "podcast"
    later.to_csv(tmp_path / "later.csv", index=False)
    scored = cli(
        "table", "score", str(tmp_path / "later.csv"), "--run", str(run_dir),
        "--out", str(tmp_path / "later_scored.csv"),
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "column 'source' has 5 rows with values the model never saw" in scored.stderr
    rows = pd.read_csv(tmp_path / "later_scored.csv")
    new = rows[rows["id"].isin([1, 2, 3, 4, 5])]
    naming_source = new[new["reasons_json"].str.contains('"field": "source"')]
    assert len(naming_source) and naming_source["reasons"].str.contains("podcast").all()
    assert (
        naming_source["reasons_json"]
        .str.contains("podcast (not seen in training", regex=False)
        .all()
    )

    wrong = cli(
        "table", "train", str(tmp_path / "leads.csv"), "--positive", "Won", "--time", "created",
        "--time-ordered", "--out", str(tmp_path / "run2"), "--no-track",
    )  # fmt: skip
    assert wrong.returncode == 2 and "--label (label_column): required" in wrong.stderr
    both = cli(
        "table", "train", str(tmp_path / "leads.csv"), "--label", "outcome", "--positive", "Won",
        "--time", "created", "--time-ordered", "--out", str(tmp_path / "run2"), "--no-track",
    )  # fmt: skip
    assert both.returncode == 2
    assert "--time (time_column) or --time-ordered (rows_in_time_order)" in both.stderr
