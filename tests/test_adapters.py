"""Tests of the real-data adapters: point-in-time history, typo fixes, labels, real-data counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from propensity.data import adapters
from propensity.data.adapters import (
    ENV_VAR,
    SOURCES,
    TableSource,
    contract_tables,
    deal_table,
    lead_table,
    maven_deals,
    maven_tables,
    mql_table,
    olist_mqls,
    real_data_available,
    x_education_leads,
)
from propensity.data.contract import Tables


def needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not real_data_available(name),
        reason=f"real {name} data not present (../shared/data/real or ${ENV_VAR})",
    )


# --------------------------------------------------------------------------------------------
# Maven


@pytest.fixture
def maven_frames() -> dict[str, pd.DataFrame]:
    """A tiny pipeline. Account A: D1 won (closes Jan 10), D2 lost (closes Jan 20, the day D3
    engages), D3 won (engaged Jan 20, closes Feb 15, after D4 engages), D4 still Engaging.
    B: D5 lost (product GTXPro). D6 Engaging without account, D7 Prospecting (no dates)."""
    pipeline = pd.DataFrame(
        {
            "opportunity_id": ["D1", "D2", "D3", "D4", "D5", "D6", "D7"],
            "sales_agent": ["Ann", "Bob", "Ann", "Bob", "Ann", "Bob", "Ann"],
            "product": ["P", "P", "P", "P", "GTXPro", "P", "P"],
            "account": ["A", "A", "A", "A", "B", None, "A"],
            "deal_stage": ["Won", "Lost", "Won", "Engaging", "Lost", "Engaging", "Prospecting"],
            "engage_date": [
                "2017-01-01",
                "2017-01-05",
                "2017-01-20",
                "2017-01-15",
                "2017-01-02",
                "2017-02-01",
                None,
            ],
            "close_date": [
                "2017-01-10",
                "2017-01-20",
                "2017-02-15",
                None,
                "2017-01-08",
                None,
                None,
            ],
            "close_value": [100.0, 0.0, 300.0, None, 0.0, None, None],
        }
    )
    accounts = pd.DataFrame(
        {
            "account": ["A", "B"],
            "sector": ["technolgy", "retail"],
            "year_established": [1990, 2001],
            "revenue": [12.5, 3.0],
            "employees": [100, 20],
            "office_location": ["United States", "Kenya"],
            "subsidiary_of": [None, "A"],
        }
    )
    teams = pd.DataFrame(
        {"sales_agent": ["Ann", "Bob"], "manager": ["M", "M"], "regional_office": ["East", "West"]}
    )
    products = pd.DataFrame(
        {"product": ["P", "GTX Pro"], "series": ["S", "GTX"], "sales_price": [50, 4821]}
    )
    return {"pipeline": pipeline, "accounts": accounts, "teams": teams, "products": products}


@pytest.fixture
def deals(maven_frames) -> pd.DataFrame:
    return deal_table(**maven_frames).set_index("opportunity_id")


def test_prospecting_deals_without_engage_date_are_dropped(deals):
    assert list(deals.index) == ["D1", "D2", "D3", "D4", "D5", "D6"]
    assert pd.api.types.is_datetime64_dtype(deals["engage_date"])
    assert pd.api.types.is_datetime64_dtype(deals["close_date"])
    assert deals["close_value"].dtype == "float64"


def test_account_history_counts_only_deals_closed_strictly_before_engage(deals):
    # D3 engages Jan 20: D1 (closed Jan 10) counts, D2 (closed ON Jan 20) does not
    assert deals.loc["D3", "account_prior_closed"] == 1
    assert deals.loc["D3", "account_prior_won"] == 1
    assert deals.loc["D3", "account_prior_win_rate"] == 1.0
    assert deals.loc["D3", "account_days_since_last_close"] == 10
    # D4 engages Jan 15: D3 closes after (Feb 15) and does not count
    assert deals.loc["D4", "account_prior_closed"] == 1


def test_account_history_is_empty_not_zero_rate_without_prior_closes(deals):
    for deal in ("D1", "D2"):
        assert deals.loc[deal, "account_prior_closed"] == 0
        assert np.isnan(deals.loc[deal, "account_prior_win_rate"])
        assert np.isnan(deals.loc[deal, "account_days_since_last_close"])


def test_account_open_deals_are_engaged_before_and_not_closed_before(deals):
    # D3 (Jan 20): D2 (closes that day) and D4 (open) were open, D1 had closed, D3 is itself
    assert deals.loc["D3", "account_open_deals"] == 2
    assert deals.loc["D4", "account_open_deals"] == 1  # D2
    assert deals.loc["D2", "account_open_deals"] == 1  # D1, closed only on Jan 10
    assert deals.loc["D1", "account_open_deals"] == 0


def test_deal_without_account_has_missing_account_history(deals):
    assert pd.isna(deals.loc["D6", "account"])
    assert (
        deals.loc[["D6"], ["sector", "account_prior_closed", "account_open_deals"]]
        .isna()
        .all(axis=None)
    )


def test_agent_history_uses_the_same_rule(deals):
    # Ann at D3 (Jan 20): D1 won Jan 10, D5 lost Jan 8
    assert deals.loc["D3", ["agent_prior_closed", "agent_prior_won"]].tolist() == [2, 1]
    assert deals.loc["D3", "agent_prior_win_rate"] == 0.5
    # Bob at D4 (Jan 15): D2 closes only on Jan 20
    assert deals.loc["D4", "agent_prior_closed"] == 0
    assert np.isnan(deals.loc["D4", "agent_prior_win_rate"])
    # Bob at D6 (Feb 1): D2 lost
    assert deals.loc["D6", "agent_prior_win_rate"] == 0.0


def test_product_win_rate_uses_the_same_rule(deals):
    assert deals.loc["D3", "product_prior_win_rate"] == 1.0  # D1 only, D2 closes on the day
    assert deals.loc["D6", "product_prior_win_rate"] == 0.5  # D1 won, D2 lost; D3 open on Feb 1


def test_a_pipeline_without_closed_deals_has_empty_history(maven_frames):
    pipeline = maven_frames["pipeline"].assign(deal_stage="Engaging", close_date=None)
    frame = deal_table(pipeline, *(maven_frames[k] for k in ("accounts", "teams", "products")))
    assert (frame["account_prior_closed"].dropna() == 0).all()
    assert frame["account_days_since_last_close"].isna().all()
    assert frame["account_open_deals"].tolist()[:4] == [0, 1, 3, 2]


def test_outcome_fields_are_kept_for_the_screen(deals):
    assert deals.loc["D1", "days_to_close"] == 9
    assert deals.loc["D3", "close_value"] == 300
    assert np.isnan(deals.loc["D4", "days_to_close"])


def test_maven_typos_are_fixed_so_the_joins_work(deals):
    assert deals.loc["D5", "product"] == "GTX Pro"
    assert deals.loc["D5", ["series", "sales_price"]].tolist() == ["GTX", 4821]
    assert deals.loc["D1", "sector"] == "technology"
    assert deals.loc["D5", "subsidiary_of"] == "A"


def test_a_deal_closing_before_it_engages_is_refused(maven_frames):
    maven_frames["pipeline"].loc[0, "close_date"] = "2016-12-01"
    with pytest.raises(ValueError, match="close before they engage"):
        deal_table(**maven_frames)


def test_contract_tables_map_the_maven_fields(maven_frames):
    tables = contract_tables(maven_frames["pipeline"], maven_frames["accounts"])
    accounts = tables.accounts.set_index("account_id")
    assert accounts.loc["A", "industry"] == "technology"
    assert accounts.loc["A", "annual_revenue"] == 12.5e6
    assert accounts.loc["B", "country"] == "Kenya"
    opportunities = tables.opportunities.set_index("opportunity_id")
    assert list(opportunities.index) == ["D1", "D2", "D3", "D4", "D5"]  # D6 no account, D7 no date
    assert opportunities["outcome"].tolist() == ["won", "lost", "won", "open", "lost"]
    assert opportunities.loc["D1", "amount"] == 100 and np.isnan(opportunities.loc["D4", "amount"])
    assert set(opportunities["type"]) == {"new_business"}


# --------------------------------------------------------------------------------------------
# Olist


@pytest.fixture
def olist_frames() -> dict[str, pd.DataFrame]:
    mqls = pd.DataFrame(
        {
            "mql_id": ["m1", "m2", "m3"],
            "first_contact_date": ["2018-01-02", "2018-01-05", "2017-11-30"],
            "landing_page_id": ["lp1", "lp2", "lp1"],
            "origin": ["social", None, "paid_search"],
        }
    )
    closed = pd.DataFrame(
        {
            "mql_id": ["m2"],
            "seller_id": ["s2"],
            "won_date": ["2018-02-01 10:00:00"],
            "business_segment": ["pet"],
            "declared_monthly_revenue": [0.0],
        }
    )
    return {"mqls": mqls, "closed_deals": closed}


def test_mql_is_converted_when_it_appears_in_closed_deals(olist_frames):
    frame = mql_table(**olist_frames)
    assert frame["converted"].tolist() == ["no", "yes", "no"]
    assert pd.isna(frame.loc[1, "origin"])  # missing origin stays missing
    assert pd.api.types.is_datetime64_dtype(frame["first_contact_date"])


def test_without_the_join_only_pre_conversion_columns(olist_frames):
    frame = mql_table(**olist_frames)
    assert list(frame.columns) == [
        "mql_id",
        "first_contact_date",
        "landing_page_id",
        "origin",
        "converted",
    ]


def test_with_the_join_closed_deal_columns_appear_missing_unless_converted(olist_frames):
    frame = mql_table(**olist_frames, join_closed_deals=True)
    assert {"seller_id", "won_date", "business_segment", "declared_monthly_revenue"} <= set(
        frame.columns
    )
    assert pd.api.types.is_datetime64_dtype(frame["won_date"])
    assert frame.loc[1, "seller_id"] == "s2"
    unconverted = frame.loc[frame["converted"] == "no", ["seller_id", "won_date"]]
    assert unconverted.isna().all(axis=None)


# --------------------------------------------------------------------------------------------
# X Education


def test_unanswered_select_becomes_missing_and_the_rest_is_kept():
    leads = pd.DataFrame(
        {
            "Prospect ID": ["p1", "p2"],
            "Lead Number": [1, 2],
            "Converted": [0, 1],
            "City": ["Select", "Mumbai"],
            "Tags": ["Ringing", "Closed by Horizzon"],
            "TotalVisits": [0.0, 5.0],
        }
    )
    frame = lead_table(leads)
    assert pd.isna(frame.loc[0, "City"]) and frame.loc[1, "City"] == "Mumbai"
    assert list(frame.columns) == list(leads.columns)
    assert frame["Tags"].tolist() == ["Ringing", "Closed by Horizzon"]
    assert leads.loc[0, "City"] == "Select"  # the input is not mutated


# --------------------------------------------------------------------------------------------
# reading


def test_a_missing_file_says_where_the_data_is_expected(tmp_path):
    assert not real_data_available("maven", tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"sales_pipeline\.csv.*{ENV_VAR}"):
        maven_deals(tmp_path)
    with pytest.raises(FileNotFoundError, match="Leads.csv"):
        x_education_leads(tmp_path)
    assert set(SOURCES) == {"maven", "olist", "x_education"}


def test_the_real_data_folder_is_looked_up_when_a_loader_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        x_education_leads()
    assert not real_data_available("olist")
    assert tmp_path / "elsewhere" == adapters.REAL_DATA  # the older name follows too


def test_a_date_that_is_not_iso_8601_names_the_table_column_and_row(olist_frames):
    olist_frames["mqls"].loc[2, "first_contact_date"] = "30/11/2017"
    with pytest.raises(
        ValueError, match=r"MQLs: column 'first_contact_date' has 1 values .*ISO 8601.*row 2"
    ):
        mql_table(**olist_frames)


# --------------------------------------------------------------------------------------------
# real data


@pytest.fixture(scope="module")
def maven() -> TableSource:
    return maven_deals()


@needs("maven")
def test_real_maven_deal_counts(maven):
    frame = maven.frame
    assert len(frame) == 8_800 - 500
    assert frame["deal_stage"].value_counts().to_dict() == {
        "Won": 4_238,
        "Lost": 2_473,
        "Engaging": 1_589,
    }
    assert frame["opportunity_id"].is_unique
    assert isinstance(frame.index, pd.RangeIndex)
    assert (maven.positive, maven.negative, maven.time_column) == (
        ("Won",),
        ("Lost",),
        "engage_date",
    )
    assert frame["product"].notna().all() and frame["series"].notna().all()
    assert "technolgy" not in set(frame["sector"].dropna())


@needs("maven")
def test_real_maven_history_matches_a_brute_force_count(maven):
    frame = maven.frame
    deals = frame[["opportunity_id", "account", "sales_agent", "engage_date"]]
    closed = frame.loc[frame["close_date"].notna(), ["account", "sales_agent", "close_date"]]
    for key, column in (("account", "account_prior_closed"), ("sales_agent", "agent_prior_closed")):
        pairs = deals.merge(closed[[key, "close_date"]], on=key)
        before = pairs[pairs["close_date"] < pairs["engage_date"]]
        expected = (
            before.groupby("opportunity_id").size().reindex(deals["opportunity_id"], fill_value=0)
        )
        expected = expected.where(deals[key].notna().to_numpy())  # no account: unknown
        np.testing.assert_array_equal(frame[column].to_numpy(), expected.to_numpy(dtype=float))


@needs("maven")
def test_real_maven_contract_tables_validate():
    tables = maven_tables()
    assert isinstance(tables, Tables)
    assert len(tables.accounts) == 85
    assert len(tables.opportunities) == 8_800 - 500 - 1_088  # no engage_date, no account
    assert tables.opportunities["outcome"].value_counts().to_dict() == {
        "won": 4_238,
        "lost": 2_473,
        "open": 501,
    }


@needs("olist")
def test_real_olist_labels():
    source = olist_mqls()
    assert len(source.frame) == 8_000
    assert (source.frame["converted"] == "yes").sum() == 842
    assert any("2017-12-05" in note for note in source.notes)


@needs("x_education")
def test_real_x_education_leads():
    source = x_education_leads()
    frame = source.frame
    assert len(frame) == 9_240
    assert frame["Converted"].astype("str").value_counts().to_dict() == {"0": 5_679, "1": 3_561}
    assert (source.positive, source.negative, source.identifiers) == (
        ("1",),
        ("0",),
        ("Lead Number",),
    )
    text = frame.select_dtypes(include="str")
    assert not (text == "Select").any(axis=None)
    assert {"Tags", "Lead Quality", "Last Activity", "Last Notable Activity"} <= set(frame.columns)
