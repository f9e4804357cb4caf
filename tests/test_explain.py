"""TreeSHAP contributions, their grouping into business fields and the wording of reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from propensity.explain import EXPECTED_VALUE, contributions, explain, field_contributions, word
from propensity.features import FeatureSpec
from propensity.model.head import HeadModel, LightGBMParams


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n)],
            "eng_pricing_page_7d": rng.poisson(0.3, n).astype(float),
            "eng_pricing_page_30d": rng.poisson(1.0, n).astype(float),
            "employees": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(5, 1, n)),
            "industry": rng.choice(["software", "retail", "education"], n),
            "intent_max_4w": np.where(rng.random(n) < 0.5, np.nan, rng.uniform(40, 100, n)),
            "intent_top_topic_4w": "crm migration",
        }
    )
    X["eng_pricing_page_30d"] = np.maximum(X["eng_pricing_page_30d"], X["eng_pricing_page_7d"])
    logit = (
        -3
        + 0.8 * X["eng_pricing_page_30d"]
        + (X["industry"] == "software")
        + 0.02 * X["intent_max_4w"].fillna(0)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    columns = [
        "eng_pricing_page_7d",
        "eng_pricing_page_30d",
        "employees",
        "industry",
        "intent_max_4w",
    ]
    model = HeadModel(
        features=columns,
        categorical=["industry"],
        params=LightGBMParams(n_estimators=80, min_child_samples=20),
        calibration_methods=("sigmoid",),
    )
    model.fit(X.iloc[:2000], y[:2000], eval_set=(X.iloc[2000:], y[2000:]))
    specs = [
        FeatureSpec("eng_pricing_page_7d", "engagement", "eng_pricing_page", "pricing", "", ""),
        FeatureSpec("eng_pricing_page_30d", "engagement", "eng_pricing_page", "pricing", "", ""),
        FeatureSpec("employees", "firmographic", "company_size", "size", "", ""),
        FeatureSpec("industry", "firmographic", "industry", "industry", "", "", kind="categorical"),
        FeatureSpec("intent_max_4w", "intent", "intent_surge", "intent", "", ""),
        FeatureSpec(
            "intent_top_topic_4w", "intent", "intent_surge", "topic", "", "", kind="context"
        ),
    ]
    return model, X, specs


def test_contributions_sum_to_the_raw_margin(fitted):
    model, X, _ = fitted
    contrib = contributions(model, X)
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict_margin(X), atol=1e-6)
    assert list(contrib.columns) == [
        *model.features_,
        EXPECTED_VALUE,
    ]  # one column per field, no one-hot


def test_contributions_agree_with_shap_tree_explainer(fitted):
    import shap

    model, X, _ = fitted
    sample = X.iloc[:200]
    ours = contributions(model, sample).drop(columns=EXPECTED_VALUE).to_numpy()
    theirs = shap.TreeExplainer(model.model_.booster_).shap_values(model._prepare(sample))
    np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-6)


def test_a_fields_contribution_is_the_sum_of_its_features(fitted):
    model, X, specs = fitted
    contrib = contributions(model, X.iloc[:50])
    fields = field_contributions(contrib, specs)
    np.testing.assert_allclose(
        fields["eng_pricing_page"], contrib["eng_pricing_page_7d"] + contrib["eng_pricing_page_30d"]
    )
    assert "eng_pricing_page_7d" not in fields


def test_reasons_are_worded_from_the_accounts_values(fitted):
    model, X, specs = fitted
    row = X.iloc[[0]].copy()
    row["eng_pricing_page_7d"], row["eng_pricing_page_30d"] = 3.0, 5.0
    row["industry"] = "software"
    row["intent_max_4w"] = 78.0
    reasons = json.loads(
        explain(model, row, specs, top_positive=3, top_negative=2)["reasons_json"].iloc[0]
    )
    texts = {r["field"]: r["text"] for r in reasons}
    assert texts["eng_pricing_page"] == "3 pricing page events in the last 7 days"
    assert texts["industry"] == "Industry: software"
    assert texts["intent_surge"] == "Intent on 'crm migration' surging 78 in the last 4 weeks"
    signs = {r["field"]: r["contribution"] > 0 for r in reasons}
    assert signs["eng_pricing_page"] and signs["industry"] and signs["intent_surge"]
    shares = [abs(r["share"]) for r in reasons]
    assert all(0 < s <= 1 for s in shares)


def test_missing_values_are_not_worded_as_observed():
    assert word("intent_surge", {"intent_max_4w": None, "intent_top_topic_4w": None}, {}, -0.2) == (
        "No third-party intent data for this account"
    )
    assert (
        word("company_size", {"employees": float("nan"), "size_band": None}, {}, -0.1)
        == "Company size unknown"
    )
    for field in (
        "eng_anonymous",
        "eng_reach",
        "industry",
        "company_age_years",
        "eng_momentum",
        "eng_recency",
    ):
        assert "unknown" in word(field, {"x": None}, {}, 0.1).lower() or word(
            field, {"x": None}, {}, 0.1
        ).startswith(("No", "Never"))
    text = word(
        "company_size", {"employees": 40.0, "size_band": "11-50"}, {"employees": 400.0}, -0.3
    )
    assert text == "Company size 40 employees, below the usual customer size"


def test_explain_limits_the_number_of_positive_and_negative_reasons(fitted):
    model, X, specs = fitted
    result = explain(model, X.iloc[:100], specs, top_positive=1, top_negative=1)
    for payload in result["reasons_json"]:
        reasons = json.loads(payload)
        assert sum(r["contribution"] > 0 for r in reasons) <= 1
        assert sum(r["contribution"] < 0 for r in reasons) <= 1


def test_flags_event_types_and_table_columns_are_worded_through_the_one_lookup():
    assert word("tech_crm", {"tech_crm": 1.0}, {}, 0.2) == "Uses CRM"
    assert word("tech_crm", {"tech_crm": None}, {}, -0.2) == "No CRM detected"
    counts = {"eng_web_visit_7d": 0.0, "eng_web_visit_30d": 2.0, "eng_web_visit_90d": 2.0}
    assert word("eng_web_visit", counts, {}, 0.1) == "2 web visit events in the last 30 days"
    assert word("eng_web_visit", dict.fromkeys(counts, 0.0), {}, -0.1) == (
        "No web visit events in 90 days"
    )
    assert (
        word("eng_total", {"eng_events_7d": 1.0}, {}, 0.1)
        == "1 engagement events in the last 7 days"
    )
    # table mode: one field per column, worded by its value
    assert word("lead_source", {"lead_source": "Reference"}, {}, 0.3) == "lead source: Reference"
    assert word("amount", {"amount": 2.5e6}, {}, 0.3) == "amount: 2.5M"
    assert word("lead_source", {"lead_source": None}, {}, 0.3) == "Lead source unknown"
