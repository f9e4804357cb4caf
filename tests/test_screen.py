"""The leakage screen: each check catches a planted leak and lets an honest strong feature pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from propensity.model.screen import screen


@pytest.fixture
def honest():
    rng = np.random.default_rng(0)
    n = 4000
    signal = rng.normal(size=n)
    label = (rng.random(n) < 1 / (1 + np.exp(-(1.6 * signal - 1)))).astype(int)
    frame = pd.DataFrame(
        {
            "visits": np.round(np.exp(signal + rng.normal(0, 0.3, n))),  # honest and strong
            "source": rng.choice(["ads", "organic", "referral"], n),
            "employees": rng.lognormal(4, 1, n),
        }
    )
    return frame, label, rng


def verdicts(result, column):
    table = result.table[result.table["column"] == column]
    return dict(zip(table["check"], table["verdict"], strict=True))


def test_honest_strong_feature_is_not_flagged(honest):
    frame, label, _ = honest
    result = screen(frame, label)
    assert result.suspects == ()
    assert verdicts(result, "visits")["single_column_auc"] == "ok"


def test_column_that_almost_is_the_label_is_caught(honest):
    frame, label, rng = honest
    flip = rng.random(len(label)) < 0.02
    frame = frame.assign(stage_code=np.where(flip, 1 - label, label) * 7 + 3)
    result = screen(frame, label)
    assert "stage_code" in result.suspects
    assert verdicts(result, "stage_code")["single_column_auc"] == "exclude"
    assert verdicts(result, "stage_code")["determines_label"] == "exclude"
    assert "visits" not in result.suspects


def test_missingness_only_in_one_class_is_caught(honest):
    frame, label, rng = honest
    filled_later = np.where(
        (label == 1) | (rng.random(len(label)) < 0.6), rng.normal(size=len(label)), np.nan
    )
    frame = frame.assign(call_duration=filled_later)
    # the non-missing values are noise: only the missingness leaks
    result = screen(frame, label)
    assert verdicts(result, "call_duration")["missing_in_one_class"] == "exclude"


def test_date_later_than_the_row_time_is_caught(honest):
    frame, label, rng = honest
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        rng.integers(0, 300, len(label)), unit="D"
    )
    frame = frame.assign(
        signed_on=created + pd.to_timedelta(rng.integers(1, 60, len(label)), unit="D"),
        first_touch=created - pd.to_timedelta(rng.integers(1, 60, len(label)), unit="D"),
    )
    result = screen(frame, label, time=pd.Series(created))
    assert verdicts(result, "signed_on")["date_after_row_time"] == "exclude"
    assert verdicts(result, "first_touch")["date_after_row_time"] == "ok"


def test_far_above_every_other_column_is_caught(honest):
    frame, label, rng = honest
    noisy_copy = np.where(rng.random(len(label)) < 0.12, rng.integers(0, 2, len(label)), label)
    frame = frame.assign(follow_up_flag=noisy_copy, visits=rng.normal(size=len(label)))
    result = screen(frame, label)
    assert verdicts(result, "follow_up_flag")["single_column_auc"] == "exclude"


def test_export_time_names_are_caught_and_plain_names_pass(honest):
    frame, label, rng = honest
    frame = frame.assign(
        **{"Last Activity": rng.choice(["email", "call"], len(label)), "Lead Quality": "x"}
    )
    result = screen(frame, label)
    assert verdicts(result, "Last Activity")["export_time_name"] == "exclude"
    assert verdicts(result, "Lead Quality")["export_time_name"] == "exclude"
    assert "export_time_name" not in verdicts(result, "visits")


def test_the_outcome_of_an_earlier_campaign_is_not_an_export_time_name(honest):
    frame, label, rng = honest
    earlier = rng.choice(["success", "failure", "none"], len(label))
    frame = frame.assign(
        previous_outcome=earlier, poutcome=earlier, **{"Prior Deal Result": earlier},
        outcome=earlier, last_outcome=earlier,
    )  # fmt: skip
    result = screen(frame, label)
    for name in ("previous_outcome", "poutcome", "Prior Deal Result"):
        assert "export_time_name" not in verdicts(result, name), name
        assert "single_column_auc" in verdicts(result, name)  # the data checks still run
    for name in ("outcome", "last_outcome"):
        assert verdicts(result, name)["export_time_name"] == "exclude", name


def test_x_education_screen_flags_the_post_outcome_fields():
    from pathlib import Path

    path = (
        Path(__file__).resolve().parents[2]
        / "shared"
        / "data"
        / "real"
        / "x_education_leads"
        / "Leads.csv"
    )
    if not path.exists():
        pytest.skip(f"real data not present at {path}")
    leads = pd.read_csv(path)
    label = leads.pop("Converted").to_numpy()
    result = screen(leads.drop(columns=["Prospect ID"]), label)
    assert {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"} <= set(
        result.suspects
    )
    assert "Total Time Spent on Website" not in result.suspects


def test_field_filled_in_only_for_won_rows_is_caught(honest):
    frame, label, rng = honest
    # filled in for a third of the won rows only (a "segment" typed in at closing), else empty
    filled = (label == 1) & (rng.random(len(label)) < 0.33)
    frame = frame.assign(closing_segment=np.where(filled, rng.choice(["a", "b"], len(label)), None))
    result = screen(frame, label)
    assert verdicts(result, "closing_segment")["missing_in_one_class"] == "exclude"
    assert "source" not in result.suspects and "visits" not in result.suspects


def test_number_derived_from_a_late_date_is_caught(honest):
    frame, label, rng = honest
    created = pd.Timestamp("2024-01-01") + pd.to_timedelta(
        rng.integers(0, 300, len(label)), unit="D"
    )
    closed = created + pd.to_timedelta(rng.integers(5, 120, len(label)), unit="D")
    frame = frame.assign(
        close_date=closed,
        days_open=(closed - created).days,  # derived from the close date: a leak by construction
        tenure_days=rng.integers(0, 900, len(label)),  # an honest number of days
    )
    result = screen(frame, label, time=pd.Series(created))
    assert verdicts(result, "days_open")["derived_from_late_date"] == "exclude"
    assert verdicts(result, "tenure_days")["derived_from_late_date"] == "ok"
    assert "tenure_days" not in result.suspects


def test_history_counts_named_closed_are_not_flagged_by_name():
    from propensity.model.screen import EXPORT_TIME_NAME

    assert not EXPORT_TIME_NAME.search("account_prior_closed")
    assert EXPORT_TIME_NAME.search("close_value") and EXPORT_TIME_NAME.search("Closed Date")
