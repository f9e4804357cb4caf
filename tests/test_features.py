"""Point-in-time account features: exact values on tiny frames, leakage proofs, invariances."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from propensity.data.contract import Tables, load_tables
from propensity.data.world import WorldConfig, generate_world
from propensity.features import FAMILIES, FAMILY_MODULES, FeatureConfig, build_features, sql
from propensity.features.wording import wording_of
from propensity.spine import SpineConfig, build_spine

AS_OF = pd.Timestamp("2025-03-01")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text)


def tiny_tables(**overrides) -> Tables:
    accounts = pd.DataFrame(
        {
            "account_id": ["A", "B"],
            "name": ["Alpha", "Beta"],
            "industry": ["software", "retail"],
            "employees": pd.array([120, None], dtype="Int64"),
            "annual_revenue": [2.4e7, np.nan],
            "country": ["us", "de"],
            "founded_year": pd.array([2015, None], dtype="Int64"),
            "tech_crm": pd.array([True, False], dtype="boolean"),
            "lifecycle_stage": ["customer", "lead"],
            "last_activity_at": [ts("2025-06-01"), ts("2025-05-01")],
        }
    )
    contacts = pd.DataFrame(
        {
            "contact_id": ["c1", "c2", "c3"],
            "account_id": ["A", "A", "A"],
            "role": ["decision_maker", "user", "it"],
            "seniority": ["vp", "manager", "manager"],
            "created_at": [ts("2024-01-01"), ts("2024-06-01"), AS_OF],  # c3 becomes known at as_of
        }
    )
    events = pd.DataFrame(
        {
            "account_id": ["A"] * 7,
            "contact_id": ["c1", "c2", "c1", None, "c2", "c3", "c1"],
            "ts": [
                AS_OF - pd.Timedelta(seconds=1),  # in every window
                AS_OF - pd.Timedelta(days=7),  # first moment of the 7-day window
                AS_OF - pd.Timedelta(days=7, seconds=1),  # just outside it
                AS_OF - pd.Timedelta(days=20),  # anonymous
                AS_OF - pd.Timedelta(days=100),  # outside 90 days, inside the momentum baseline
                AS_OF - pd.Timedelta(days=2),  # contact not known yet at as_of -> anonymous
                AS_OF,  # exactly at the cutoff: excluded
            ],
            "event_type": [
                "pricing_page",
                "web_visit",
                "web_visit",
                "web_visit",
                "email_open",
                "webinar",
                "meeting",
            ],
            "channel": [
                "direct",
                "organic_search",
                "direct",
                "paid_search",
                "email",
                "webinar",
                "sales",
            ],
            "minutes": [2.5, 1.0, 3.0, 0.5, np.nan, 40.0, 60.0],
        }
    )
    intent = pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "A"],
            "week": [
                AS_OF - pd.Timedelta(days=7),  # ends the day before as_of: known, latest week
                AS_OF - pd.Timedelta(days=6),  # ends on as_of: not known yet
                AS_OF - pd.Timedelta(days=21),  # inside the last 4 weeks
                AS_OF - pd.Timedelta(days=60),  # prior weeks
            ],
            "topic": ["crm migration", "crm migration", "sales engagement", "crm migration"],
            "score": [72.0, 99.0, 64.0, 40.0],
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3"],
            "account_id": ["B", "B", "B"],
            "created_at": [ts("2024-02-01"), ts("2024-09-01"), AS_OF],
            "closed_at": [ts("2024-05-01"), AS_OF, pd.NaT],  # o2 closes exactly at as_of
            "outcome": ["lost", "lost", "open"],
            "amount": [10_000.0, 20_000.0, 5_000.0],
            "type": ["new_business", "new_business", "new_business"],
        }
    )
    frames = dict(
        accounts=accounts,
        contacts=contacts,
        events=events,
        intent=intent,
        opportunities=opportunities,
    )
    frames.update(overrides)
    return Tables(**frames)


def one_row(tables: Tables, account: str = "A", config: FeatureConfig | None = None) -> pd.Series:
    spine = pd.DataFrame({"account_id": [account], "as_of": [AS_OF]})
    return build_features(tables, spine, config).matrix.iloc[0]


def test_event_at_cutoff_is_excluded_and_windows_are_half_open():
    row = one_row(tiny_tables())
    assert row["eng_meeting_90d"] == 0  # the meeting is exactly at as_of
    assert row["eng_web_visit_7d"] == 1  # as_of - 7 days is inside [as_of - 7d, as_of)
    assert row["eng_web_visit_30d"] == 3
    assert row["eng_pricing_page_7d"] == 1
    assert row["eng_events_90d"] == 5
    assert row["eng_email_open_90d"] == 0


def test_contact_known_only_from_created_at():
    row = one_row(tiny_tables())
    assert row["eng_contacts_90d"] == 2  # c1, c2; c3 is created at as_of
    assert row["eng_known_contacts"] == 2
    assert row["eng_roles_90d"] == 2
    assert row["eng_decision_maker_90d"] == 1
    assert row["eng_anonymous_share_90d"] == pytest.approx(2 / 5)  # anonymous visit + c3's webinar
    assert row["eng_contact_coverage"] == pytest.approx(1.0)


def test_recency_minutes_channels_and_momentum():
    row = one_row(tiny_tables())
    assert row["eng_days_since_last_event"] == 1  # event on the day before as_of
    assert row["eng_minutes_30d"] == pytest.approx(2.5 + 1.0 + 3.0 + 0.5 + 40.0)
    assert row["eng_channels_90d"] == 4  # direct, organic_search, paid_search, webinar
    # 5 events in the last 30 days, 1 in the 90 days before (days 31..120)
    assert row["eng_momentum"] == pytest.approx((5 + 1) / (1 * 30 / 90 + 1))


def test_the_thirty_day_features_count_thirty_days_whatever_the_configured_windows():
    events = tiny_tables().events
    day_40 = events.iloc[[0]].assign(ts=AS_OF - pd.Timedelta(days=40), minutes=7.0)
    tables = tiny_tables(events=pd.concat([events, day_40], ignore_index=True))
    config = FeatureConfig(windows_days=(1, 3, 45), momentum_recent_days=14)
    row, default = one_row(tables, config=config), one_row(tables)
    assert row["eng_minutes_30d"] == default["eng_minutes_30d"]
    assert row["eng_contacts_30d"] == default["eng_contacts_30d"]


def test_intent_week_known_only_after_it_ends():
    row = one_row(tiny_tables())
    assert row["intent_max_1w"] == 72  # the 99 of the week ending on as_of is not known
    assert row["intent_max_4w"] == 72
    assert row["intent_mean_4w"] == pytest.approx((72 + 64) / 2)
    assert row["intent_surging_topics_4w"] == 2
    assert row["intent_trend"] == pytest.approx((72 + 64) / 2 - 40)
    assert row["intent_top_topic_4w"] == "crm migration"


def test_opportunity_outcome_known_only_from_closed_at():
    row = one_row(tiny_tables(), account="B")
    assert row["hist_opportunities"] == 2  # o3 is created at as_of
    assert row["hist_lost"] == 1  # o2 closes at as_of: still open then
    assert row["hist_days_since_last_closed"] == (AS_OF - ts("2024-05-01")).days


def test_firmographics_use_static_fields_and_age_at_as_of():
    row = one_row(tiny_tables())
    assert row["industry"] == "software"
    assert row["size_band"] == "51-200"
    assert row["company_age_years"] == 10
    assert row["tech_crm"] == 1.0
    missing = one_row(tiny_tables(), account="B")
    assert pd.isna(missing["employees"]) and pd.isna(missing["size_band"])


WEEKLY_RHYTHM = FeatureConfig(
    short_windows_days=(14, 21, 28), momentum_weeks=((1, 3), (3, 12)), new_contacts_days=28
)


def test_short_windows_count_whole_weeks_and_momentum_compares_the_weeks_before():
    row = one_row(tiny_tables(), config=WEEKLY_RHYTHM)
    # events 1, 2, 7, 8 and 20 days before as_of (and 100 days)
    assert [row[f"eng_events_{d}d"] for d in (7, 14, 21, 28)] == [3, 4, 5, 5]
    # this week's 3 events against the 2 of the 3 weeks before, scaled to one week
    assert row["eng_momentum_1w_3w"] == pytest.approx((3 + 1) / (2 / 3 + 1))
    # the last 3 weeks' 5 events against the 1 of the 12 weeks before (day 100)
    assert row["eng_momentum_3w_12w"] == pytest.approx((5 + 1) / (1 / 4 + 1))


def test_engagement_episode_starts_after_a_quiet_spell_and_ends_with_one():
    row = one_row(tiny_tables())
    assert row["eng_days_in_episode"] == 20  # day 100, then 80 quiet days, then days 20..1
    events = tiny_tables().events
    old = events[events["ts"] <= AS_OF - pd.Timedelta(days=20)]  # days 20 and 100 only
    quiet = one_row(tiny_tables(events=old), config=FeatureConfig(episode_gap_days=14))
    assert pd.isna(quiet["eng_days_in_episode"])  # 20 quiet days > 14: no current episode
    longer = one_row(tiny_tables(events=old), config=FeatureConfig(episode_gap_days=90))
    assert longer["eng_days_in_episode"] == 100  # an 80-day gap does not end a 90-day episode


def test_an_episode_does_not_depend_on_which_other_snapshots_are_built():
    # a visit 200 days before as_of, 60 quiet days, then one every week from day 140 to day 7:
    # the episode began 140 days before as_of, though no window edge of as_of falls in the gap
    days = [200, *range(140, 0, -7)]
    events = pd.DataFrame(
        {
            "account_id": "A",
            "contact_id": None,
            "ts": [AS_OF - pd.Timedelta(days=d) for d in days],
            "event_type": "web_visit",
            "channel": "direct",
            "minutes": 1.0,
        }
    )
    tables = tiny_tables(events=events)
    spine = pd.DataFrame(
        {"account_id": ["A", "A"], "as_of": [AS_OF, AS_OF - pd.Timedelta(days=160)]}
    )
    alone = one_row(tables)["eng_days_in_episode"]
    among_others = build_features(tables, spine).matrix.iloc[0]["eng_days_in_episode"]
    assert alone == among_others == 140


def test_new_contacts_are_those_whose_first_event_is_in_the_window():
    row = one_row(tiny_tables(), config=WEEKLY_RHYTHM)
    # c1's first event is 8 days old; c2 was first seen 100 days ago; c3 is not known yet
    assert row["eng_new_contacts_28d"] == 1
    assert (
        one_row(tiny_tables(), config=FeatureConfig(new_contacts_days=7))["eng_new_contacts_7d"]
        == 0
    )


def test_intent_momentum_and_the_current_surge():
    row = one_row(tiny_tables(), config=WEEKLY_RHYTHM)
    # known weeks end 1, 15 and 54 days before as_of, scoring 72, 64 and 40
    assert row["intent_momentum_1w_3w"] == pytest.approx(72 - 64)
    assert row["intent_momentum_3w_12w"] == pytest.approx((72 + 64) / 2 - 40)
    # surging weeks (>= 60) ending 15 and 1 days before: one run, known from 15 days ago
    assert row["intent_days_in_surge"] == 15
    short = one_row(tiny_tables(), config=FeatureConfig(intent_surge_threshold=70))
    assert short["intent_days_in_surge"] == 1  # only the latest week surges


def test_weekly_rhythm_features_can_be_turned_off():
    config = FeatureConfig(
        short_windows_days=(), momentum_weeks=(), episode_gap_days=None, new_contacts_days=None
    )
    columns = set(one_row(tiny_tables(), config=config).index)
    added = {
        "eng_events_14d",
        "eng_momentum_1w_3w",
        "eng_days_in_episode",
        "eng_new_contacts_28d",
        "intent_momentum_1w_3w",
        "intent_days_in_surge",
    }
    assert not columns & added
    assert added <= set(one_row(tiny_tables(), config=WEEKLY_RHYTHM).index)


def test_a_new_contacts_window_beyond_the_longest_window_is_refused_naming_both_keys():
    with pytest.raises(ValueError, match="new_contacts_days.*windows_days"):
        FeatureConfig(new_contacts_days=120)
    with pytest.raises(ValueError, match="momentum_weeks"):
        FeatureConfig(momentum_weeks=((0, 3),))


def test_account_without_activity_has_zero_counts_and_missing_recency():
    row = one_row(tiny_tables(), account="B")
    assert row["eng_events_90d"] == 0
    assert pd.isna(row["eng_days_since_last_event"])
    assert pd.isna(row["intent_max_4w"])  # no intent delivered: not observed, not zero
    assert row["intent_surging_topics_4w"] == 0


def test_families_of_absent_tables_are_skipped_with_a_note():
    tables = tiny_tables(events=None, intent=None, contacts=None)
    spine = pd.DataFrame({"account_id": ["A", "B"], "as_of": [AS_OF, AS_OF]})
    features = build_features(tables, spine)
    assert features.families == ("firmographic", "history")
    assert set(features.skipped) == {"engagement", "intent"}
    assert "events" in features.skipped["engagement"]
    assert not any(c.startswith(("eng_", "intent_")) for c in features.matrix.columns)


def test_engagement_without_contacts_table_still_builds():
    features = one_row(tiny_tables(contacts=None))
    assert features["eng_events_90d"] == 5
    assert "eng_roles_90d" not in features.index


def test_spine_as_of_with_time_of_day_is_rejected():
    spine = pd.DataFrame({"account_id": ["A"], "as_of": [AS_OF + pd.Timedelta(hours=9)]})
    with pytest.raises(ValueError, match="spine column 'as_of' must hold dates"):
        build_features(tiny_tables(), spine)


def test_spine_with_a_duplicate_row_is_rejected():
    spine = pd.DataFrame({"account_id": ["A", "B", "A"], "as_of": [AS_OF] * 3})
    with pytest.raises(ValueError, match="duplicate"):
        build_features(tiny_tables(), spine)


def test_matrix_rows_follow_the_spine_with_keys_first():
    spine = pd.DataFrame(
        {"account_id": ["B", "A", "B"], "as_of": [AS_OF, AS_OF, AS_OF - pd.Timedelta(days=31)]}
    )
    matrix = build_features(tiny_tables(), spine).matrix
    assert list(matrix.columns[:2]) == ["account_id", "as_of"]
    assert matrix["account_id"].tolist() == ["B", "A", "B"]
    assert matrix["as_of"].tolist() == spine["as_of"].tolist()


# ---------------------------------------------------------------------------------------------
# leakage proofs on a generated world


def truncate_at(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """The tables as they stood at ``as_of`` under the availability rules of DESIGN.md."""
    events = tables.events[tables.events["ts"] < as_of]
    intent = tables.intent[tables.intent["week"] + pd.Timedelta(days=7) <= as_of]
    contacts = tables.contacts[~(tables.contacts["created_at"] >= as_of)]
    opps = tables.opportunities[tables.opportunities["created_at"] < as_of].copy()
    closes_later = ~(opps["closed_at"] < as_of)
    opps.loc[closes_later, "outcome"] = "open"
    opps.loc[closes_later, "closed_at"] = pd.NaT
    return dataclasses.replace(
        tables, events=events, intent=intent, contacts=contacts, opportunities=opps
    )


@pytest.fixture(scope="module")
def world_tables(tmp_path_factory) -> Tables:
    folder = generate_world(
        WorldConfig(n_accounts=800, seed=21), tmp_path_factory.mktemp("w") / "world"
    )
    return load_tables(folder)


@pytest.fixture(scope="module")
def baited(world_tables) -> tuple[Tables, pd.DataFrame]:
    """World tables plus rows planted exactly at the cutoff of sampled (account, as_of) rows."""
    spine = build_spine(world_tables, SpineConfig(cadence="monthly"))
    rng = np.random.default_rng(0)
    dates = rng.choice(spine["as_of"].unique(), size=4, replace=False)
    sample = pd.concat(
        spine[spine["as_of"] == d].sample(8, random_state=int(i)) for i, d in enumerate(dates)
    ).reset_index(drop=True)
    t = world_tables
    contact_of = t.contacts.groupby("account_id")["contact_id"].first()
    planted_events = pd.DataFrame(
        {
            "account_id": sample["account_id"],
            "contact_id": sample["account_id"].map(contact_of),
            "ts": sample["as_of"],
            "event_type": "meeting",
            "channel": "sales",
            "minutes": 45.0,
        }
    )
    planted_intent = pd.DataFrame(
        {
            "account_id": sample["account_id"],
            "week": sample["as_of"] - pd.Timedelta(days=6),
            "topic": "crm migration",
            "score": 99.0,
        }
    )
    planted_contacts = pd.DataFrame(
        {
            "contact_id": "planted-" + sample.index.astype(str),
            "account_id": sample["account_id"],
            "role": "decision_maker",
            "seniority": "vp",
            "created_at": sample["as_of"],
        }
    )
    planted_opps = pd.DataFrame(
        {
            "opportunity_id": "planted-" + sample.index.astype(str),
            "account_id": sample["account_id"],
            "created_at": sample["as_of"] - pd.Timedelta(days=200),
            "closed_at": sample["as_of"],
            "outcome": "lost",
            "amount": 1000.0,
            "type": "new_business",
        }
    )
    intent = pd.concat([t.intent, planted_intent], ignore_index=True)
    intent = intent.drop_duplicates(["account_id", "week", "topic"], keep="last")
    baited_tables = dataclasses.replace(
        t,
        events=pd.concat([t.events, planted_events], ignore_index=True),
        intent=intent,
        contacts=pd.concat([t.contacts, planted_contacts], ignore_index=True),
        opportunities=pd.concat([t.opportunities, planted_opps], ignore_index=True),
    )
    return baited_tables, sample


def leakage_mismatches(tables: Tables, sample: pd.DataFrame) -> list[str]:
    """Features from the full tables vs from tables truncated at each row's as_of."""
    full = build_features(tables, sample).matrix
    mismatches = []
    for as_of, rows in sample.groupby("as_of"):
        truncated = build_features(truncate_at(tables, as_of), rows).matrix
        expected = full.loc[rows.index].reset_index(drop=True)
        for column in expected.columns:
            a, b = expected[column], truncated[column]
            if a.dtype.kind == "f" or b.dtype.kind == "f":
                same = np.isclose(a.astype(float), b.astype(float), rtol=1e-9, equal_nan=True)
            else:
                same = (a == b) | (a.isna() & b.isna())
            if not np.all(same):
                mismatches.append(f"{column} at {as_of.date()}")
    return mismatches


def test_features_equal_those_from_tables_truncated_at_as_of(baited):
    tables, sample = baited
    assert leakage_mismatches(tables, sample) == []


def test_an_inclusive_cutoff_would_be_caught(baited, monkeypatch):
    tables, sample = baited
    monkeypatch.setattr(sql, "KNOWN_BEFORE", "<=")
    mismatches = leakage_mismatches(tables, sample)
    families = {m.split("_")[0] for m in mismatches}
    assert {"eng", "intent", "hist"} <= families, mismatches


def test_shuffling_input_rows_leaves_features_unchanged(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly"))
    spine = spine[spine["as_of"].isin(spine["as_of"].unique()[-3:])]
    reference = build_features(world_tables, spine).matrix
    shuffled = Tables(
        **{
            name: (
                frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
                if frame is not None
                else None
            )
            for name, frame in dataclasses.asdict(world_tables).items()
        }
    )
    again = build_features(shuffled, spine).matrix
    pd.testing.assert_frame_equal(reference, again)


def test_leakage_bait_never_becomes_a_feature(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly")).head(50)
    features = build_features(world_tables, spine)
    names = {s.name for s in features.specs} | set(features.matrix.columns)
    assert {"lifecycle_stage", "last_activity_at"} <= set(world_tables.accounts.columns)
    assert not any("lifecycle" in n or "last_activity" in n for n in names)


def test_user_declared_static_column_is_used_and_unknown_one_is_named(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly")).head(5)
    with pytest.raises(ValueError, match="'segment', which table 'accounts' does not have"):
        build_features(
            world_tables, spine, FeatureConfig(extra_static_account_columns=("segment",))
        )


def test_every_feature_has_a_definition_and_availability(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly")).head(20)
    features = build_features(world_tables, spine)
    definitions = features.definitions()
    assert definitions["name"].is_unique
    assert (definitions["label"].str.len() > 3).all()
    assert (definitions["availability"].str.len() > 10).all()
    assert list(features.matrix.columns[2:]) == definitions["name"].tolist()


def test_each_business_field_is_worded_by_the_family_that_declares_it(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly")).head(20)
    specs = build_features(world_tables, spine, WEEKLY_RHYTHM).specs  # every group on
    fields = {s.field: s.family for s in specs}
    for family, module in FAMILY_MODULES.items():
        own = {f for f, fam in fields.items() if fam == family}
        for key in module.WORDING:  # no wording for a field the family does not declare
            prefix = key.removesuffix("*")
            assert (key in own) if prefix == key else any(f.startswith(prefix) for f in own), key
    worded = {f: wording_of(f) for f in fields}
    assert {f for f, w in worded.items() if w is None} == {"hist_won_amount"}  # read as a value
    for field, wording in worded.items():
        if wording is not None:
            assert wording.__module__ == FAMILY_MODULES[fields[field]].__name__, field


def test_family_modules_never_import_the_package_they_belong_to():
    folder = Path(sql.__file__).parent  # the features package
    assert tuple(FAMILY_MODULES) == FAMILIES
    for path in folder.glob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "propensity.features":
                pytest.fail(f"{path.name} imports from the package __init__: line {node.lineno}")


def test_duckdb_spills_to_a_temporary_folder_it_removes_never_the_working_directory(tmp_path):
    import tempfile

    from propensity.features.matrix import duckdb_connection

    with duckdb_connection(FeatureConfig(duckdb_memory_limit="512MB")) as con:
        temp = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        # made by DuckDB only when it spills, in the system's temporary directory
        assert temp.parent.resolve() == Path(tempfile.gettempdir()).resolve()
        temp.mkdir()  # as a spill would
    assert not temp.exists()
    assert limit == "488.2 MiB"  # 512 MB as DuckDB prints it
    chosen = tmp_path / "spill"
    chosen.mkdir()
    (chosen / "theirs.txt").write_text("kept")
    with duckdb_connection(FeatureConfig(duckdb_temp_directory=str(chosen))) as con:
        own = Path(con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0])
        assert own.parent == chosen  # a folder of this build's own inside the chosen one
    assert not own.exists()
    assert [p.name for p in chosen.iterdir()] == ["theirs.txt"]  # the user's files are left alone
    assert (chosen / "theirs.txt").read_text() == "kept"


def test_a_memory_limit_that_is_not_a_size_is_refused_naming_the_key():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="duckdb_memory_limit"):
        FeatureConfig(duckdb_memory_limit="lots")


def test_features_built_under_a_small_memory_limit_equal_the_default_build(world_tables):
    spine = build_spine(world_tables, SpineConfig(cadence="monthly"))
    reference = build_features(world_tables, spine).matrix
    small = build_features(world_tables, spine, FeatureConfig(duckdb_memory_limit="64MB"))
    pd.testing.assert_frame_equal(reference, small.matrix)


def test_episode_cuts_split_only_the_periods_longer_than_the_gap():
    from propensity.features.engagement_engine import period_cuts

    config = FeatureConfig(episode_gap_days=28)
    as_of = np.array(["2024-06-01"], dtype="datetime64[D]")
    plain = period_cuts(as_of, config.model_copy(update={"episode_gap_days": None}), None, None)
    first = np.datetime64("2023-01-01")
    cuts = period_cuts(as_of, config, first, np.datetime64("2024-05-30"))
    assert set(plain) <= set(cuts)
    span = np.concatenate([[first], cuts[cuts > first]])
    assert (np.diff(span) <= np.timedelta64(29, "D")).all()  # two days of a period: <= 28 apart
    # a period of the snapshots' own cuts short enough already is not cut again
    for start, end in zip(plain[:-1], plain[1:], strict=True):
        inside = cuts[(cuts > start) & (cuts < end)]
        assert len(inside) == 0 if end - start <= np.timedelta64(29, "D") else len(inside) > 0
