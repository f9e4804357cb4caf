"""The synthetic world: deterministic, realistic magnitudes, ground truth that behaves."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from propensity.data.contract import load_tables
from propensity.data.world import WorldConfig, conversion_probability, generate_world, read_truth
from propensity.data.world.engagement import lagged

TABLES = ("accounts", "contacts", "events", "intent", "opportunities")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world") / "w"
    generate_world(WorldConfig(n_accounts=6_000, seed=11), folder)
    return folder


@pytest.fixture(scope="module")
def tables(world):
    return load_tables(world)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_world_folder_holds_exactly_the_contract_tables_and_truth(world):
    assert sorted(p.name for p in world.iterdir()) == sorted(
        [*(f"{t}.parquet" for t in TABLES), "truth"]
    )
    assert sorted(p.name for p in (world / "truth").iterdir()) == [
        "accounts.parquet",
        "conversion.parquet",
        "world_config.json",
    ]
    assert json.loads((world / "truth" / "world_config.json").read_text())["seed"] == 11


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    small = WorldConfig(n_accounts=400, seed=3, chunk_accounts=150)
    a = generate_world(small, tmp_path / "a")
    b = generate_world(small, tmp_path / "b")
    c = generate_world(small.model_copy(update={"seed": 4}), tmp_path / "c")
    files = [
        *(f"{t}.parquet" for t in TABLES),
        "truth/accounts.parquet",
        "truth/conversion.parquet",
    ]
    for name in files:
        assert _digest(a / name) == _digest(b / name), name
    assert _digest(a / "events.parquet") != _digest(c / "events.parquet")


def test_chunked_generation_keeps_ids_unique_across_chunks(tmp_path):
    folder = generate_world(WorldConfig(n_accounts=300, seed=5, chunk_accounts=100), tmp_path / "w")
    tables = load_tables(folder)
    assert tables.accounts["account_id"].is_unique
    assert tables.contacts["contact_id"].is_unique
    assert tables.opportunities["opportunity_id"].is_unique
    assert len(tables.accounts) == 300


def test_existing_folder_is_not_overwritten_by_default(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        generate_world(WorldConfig(n_accounts=60), folder)
    assert (folder / "keep.txt").read_text() == "mine"


def test_config_rejects_a_start_that_is_not_a_monday():
    with pytest.raises(ValidationError, match="start must be a Monday"):
        WorldConfig(start="2024-01-03")


def test_magnitudes_are_those_of_a_real_b2b_funnel(tables):
    opps = tables.opportunities
    new_business = opps[opps["type"] == "new_business"]
    closed = new_business[new_business["outcome"] != "open"]
    win_rate = (closed["outcome"] == "won").mean()
    assert 0.15 <= win_rate <= 0.35

    visits = tables.events[tables.events["event_type"] == "web_visit"]
    anonymous_share = visits["contact_id"].isna().mean()
    assert 0.30 <= anonymous_share <= 0.60

    months = tables.events["ts"].dt.to_period("M")
    engaged_per_month = tables.events.groupby(months)["account_id"].nunique() / len(tables.accounts)
    assert engaged_per_month.max() < 0.5  # most accounts have no engagement in a given month


def test_new_business_rate_per_90_days_among_prospects(world):
    _, conversion = read_truth(world)
    prospects = conversion[
        conversion["true_state"].isin(["out_of_market", "researching", "buying"])
    ]
    complete = prospects[prospects["as_of"] <= prospects["as_of"].max() - pd.Timedelta(days=90)]
    assert 0.01 <= complete["realised_label"].mean() <= 0.06


def test_accounts_with_higher_true_fit_win_more_often(tables, world):
    truth_accounts, _ = read_truth(world)
    opps = tables.opportunities
    closed = opps[(opps["type"] == "new_business") & (opps["outcome"] != "open")]
    closed = closed.merge(truth_accounts, on="account_id")
    top = closed["true_fit"] >= closed["true_fit"].median()
    win_top = (closed.loc[top, "outcome"] == "won").mean()
    win_bottom = (closed.loc[~top, "outcome"] == "won").mean()
    assert win_top > win_bottom + 0.08


def test_accounts_in_buying_state_engage_more(tables, world):
    _, conversion = read_truth(world)
    monthly = conversion[conversion["as_of"].dt.day == 1]
    events = tables.events
    rows = []
    for as_of, group in monthly.groupby("as_of"):
        window = events[(events["ts"] >= as_of - pd.Timedelta(days=30)) & (events["ts"] < as_of)]
        counts = window.groupby("account_id").size()
        rows.append(group.assign(events_30d=group["account_id"].map(counts).fillna(0)))
    by_state = pd.concat(rows).groupby("true_state", observed=True)["events_30d"].mean()
    assert by_state["buying"] > 3 * by_state["out_of_market"]
    assert by_state["researching"] > 3 * by_state["out_of_market"]


def test_true_probability_is_calibrated_against_realised_labels(world):
    _, conversion = read_truth(world)
    prospects = conversion[
        conversion["true_state"].isin(["out_of_market", "researching", "buying"])
    ]
    complete = prospects[prospects["as_of"] <= prospects["as_of"].max() - pd.Timedelta(days=90)]
    assert complete["true_conversion_probability"].mean() == pytest.approx(
        complete["realised_label"].mean(), rel=0.15
    )
    bins = pd.qcut(complete["true_conversion_probability"], 5, duplicates="drop")
    observed = complete.groupby(bins, observed=True)["realised_label"].mean()
    assert observed.is_monotonic_increasing


def test_oracle_ranks_far_better_than_chance(world):
    from sklearn.metrics import roc_auc_score

    _, conversion = read_truth(world)
    prospects = conversion[
        conversion["true_state"].isin(["out_of_market", "researching", "buying"])
    ]
    assert (
        roc_auc_score(prospects["realised_label"], prospects["true_conversion_probability"]) > 0.8
    )


def test_traps_engage_without_fit(tables, world):
    truth_accounts, _ = read_truth(world)
    per_account = tables.events.groupby("account_id").size()
    truth_accounts = truth_accounts.assign(
        events=truth_accounts["account_id"].map(per_account).fillna(0)
    )
    traps = truth_accounts[truth_accounts["trap"] != "none"]
    others = truth_accounts[truth_accounts["trap"] == "none"]
    assert traps["events"].median() > 3 * max(others["events"].median(), 1)
    assert traps["true_fit"].max() < others["true_fit"].median()

    autoopen = truth_accounts[truth_accounts["email_autoopen"]]["account_id"]
    mail = tables.events[tables.events["event_type"].isin(["email_open", "email_click"])]
    share_auto = mail["account_id"].isin(autoopen).mean()
    assert share_auto > 2 * len(autoopen) / len(truth_accounts)


def test_leakage_bait_is_in_accounts_and_describes_the_export_date(tables):
    accounts = tables.accounts
    assert {"lifecycle_stage", "last_activity_at"} <= set(accounts.columns)
    last_event = tables.events.groupby("account_id")["ts"].max()
    joined = accounts.set_index("account_id")["last_activity_at"].dropna()
    assert (joined == last_event.reindex(joined.index)).all()


def test_firmographics_have_realistic_missingness(tables):
    missing = (
        tables.accounts[["industry", "employees", "annual_revenue", "country", "founded_year"]]
        .isna()
        .mean()
    )
    assert ((missing > 0.01) & (missing < 0.3)).all()


def test_intent_covers_a_subset_and_surges_while_researching(tables, world):
    truth_accounts, conversion = read_truth(world)
    intent = tables.intent
    covered = intent["account_id"].nunique() / len(truth_accounts)
    assert 0.4 < covered <= 0.62
    assert intent["score"].between(0, 100).all()
    weekly = conversion[conversion["as_of"].dt.day_of_week == 0][
        ["account_id", "as_of", "true_state"]
    ]
    joined = intent.merge(weekly, left_on=["account_id", "week"], right_on=["account_id", "as_of"])
    surging = joined[joined["score"] >= 60].groupby("true_state", observed=True).size()
    rows = weekly.groupby("true_state", observed=True).size()
    rate = surging / rows
    assert rate["researching"] > 5 * rate["out_of_market"]


def test_conversion_probability_is_zero_for_customers_and_grows_with_state():
    fit = np.full(4, 0.5)
    state = np.array([0, 1, 2, 4])
    p = conversion_probability(state, fit, weeks_into_window=0.0, horizon_days=90, state_known=True)
    assert p[3] == 0.0
    assert p[0] < p[1] < p[2] <= 1.0


# ---------------------------------------------------------------------------------------------
# the knobs that make worlds differ as companies do (the robustness benchmark turns them)


def _stretched_world(folder, **changes):
    generate_world(WorldConfig(n_accounts=3_000, seed=3, **changes), folder, overwrite=True)
    return load_tables(folder), read_truth(folder)


@pytest.fixture(scope="module")
def plain_world(tmp_path_factory):
    return _stretched_world(tmp_path_factory.mktemp("plain") / "w")


def test_the_default_knobs_leave_the_world_as_documented(tmp_path):
    explicit = WorldConfig(
        n_accounts=300,
        seed=1,
        research_weeks_scale=1.0,
        engagement_lag_weeks=0,
        intent_lead_weeks=0,
        anonymous_traffic_scale=1.0,
        win_rate_shift=0.0,
        sales_cycle_days=50,
    )
    generate_world(WorldConfig(n_accounts=300, seed=1), tmp_path / "a")
    generate_world(explicit, tmp_path / "b")
    for table in TABLES:
        assert _digest(tmp_path / "a" / f"{table}.parquet") == _digest(
            tmp_path / "b" / f"{table}.parquet"
        ), table


def test_lagged_shows_each_week_what_happened_weeks_before():
    weekly = np.array([[0, 1, 2, 2, 0, 0]])
    assert lagged(weekly, 0) is weekly
    assert lagged(weekly, 2).tolist() == [[0, 0, 0, 1, 2, 2]]


def test_intent_cannot_lead_engagement_by_more_than_engagement_trails():
    with pytest.raises(ValidationError, match="intent_lead_weeks \\(3\\) must not exceed"):
        WorldConfig(intent_lead_weeks=3, engagement_lag_weeks=1)


def test_a_longer_research_phase_keeps_accounts_researching_longer(plain_world, tmp_path):
    _, (_, plain) = plain_world
    _, (_, stretched) = _stretched_world(tmp_path / "w", research_weeks_scale=3.0)

    def researching_to_buying(conversion):
        weekly = conversion[conversion["as_of"].dt.day_of_week == 0]
        counts = weekly["true_state"].value_counts()
        return counts["researching"] / counts["buying"]

    assert researching_to_buying(stretched) > 2 * researching_to_buying(plain)
    prospects = stretched[stretched["true_state"].isin(["out_of_market", "researching", "buying"])]
    complete = prospects[prospects["as_of"] <= prospects["as_of"].max() - pd.Timedelta(days=90)]
    # the truth follows the stretched journey: its probability still matches the realised labels
    assert complete["true_conversion_probability"].mean() == pytest.approx(
        complete["realised_label"].mean(), rel=0.15
    )


def test_engagement_lag_moves_contact_activity_later_in_the_journey(plain_world, tmp_path):
    def share_before_buying(tables, truth):
        _, conversion = truth
        weekly = conversion[conversion["as_of"].dt.day_of_week == 0]
        events = tables.events[tables.events["contact_id"].notna()].copy()
        events["week"] = events["ts"].dt.to_period("W-SUN").dt.start_time
        joined = events.merge(
            weekly, left_on=["account_id", "week"], right_on=["account_id", "as_of"]
        )
        active = joined[joined["true_state"] != "out_of_market"]
        return (active["true_state"] == "researching").mean()

    lagged_tables, lagged_truth = _stretched_world(tmp_path / "w", engagement_lag_weeks=8)
    plain_tables, plain_truth = plain_world
    assert share_before_buying(lagged_tables, lagged_truth) < share_before_buying(
        plain_tables, plain_truth
    )


def test_win_rate_sales_cycle_and_anonymous_traffic_move_as_set(plain_world, tmp_path):
    plain, _ = plain_world
    harder, _ = _stretched_world(
        tmp_path / "w", win_rate_shift=-1.0, sales_cycle_days=120, anonymous_traffic_scale=2.0
    )

    def won_share(tables):
        deals = tables.opportunities
        closed = deals[
            (deals["type"] == "new_business")
            & (deals["outcome"] != "open")
            & (deals["created_at"] >= pd.Timestamp(WorldConfig().start))  # not the history's
        ]
        return (closed["outcome"] == "won").mean()

    def median_days_open(tables):
        # new business opened in the first 40 weeks: closed by the export date (at most 400 days)
        start = pd.Timestamp(WorldConfig().start)
        deals = tables.opportunities
        early = deals[
            (deals["type"] == "new_business")
            & deals["created_at"].between(start, start + pd.Timedelta(weeks=40))
        ]
        assert early["closed_at"].notna().all()
        return (early["closed_at"] - early["created_at"]).dt.days.median()

    def anonymous_share(tables):
        visits = tables.events[tables.events["event_type"] == "web_visit"]
        return visits["contact_id"].isna().mean()

    assert won_share(harder) < 0.75 * won_share(plain)
    assert median_days_open(harder) > 1.6 * median_days_open(plain)
    assert anonymous_share(harder) > anonymous_share(plain) + 0.1


def test_a_world_without_an_intent_feed_has_no_intent_file(tmp_path):
    folder = generate_world(
        WorldConfig(n_accounts=300, seed=2, intent_coverage=0.0), tmp_path / "w"
    )
    assert not (folder / "intent.parquet").exists()
    assert load_tables(folder).intent is None  # the contract reads it as an absent table
