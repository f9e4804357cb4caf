"""The learned points scorecard: bins and points a marketing-automation tool can run, learned
from labelled rows, written in the shape of scorecard.yaml and exported through the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from conftest import cli
from propensity.model.learned_scorecard import PointsSettings, learn_scorecard
from propensity.model.scorecard import FieldPoints, Scorecard

INDUSTRY_EFFECT = {"software": 1.0, "retail": 0.0, "government": -1.0}


def accounts_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows whose label rises with meetings and the industry's effect; ``noise`` says nothing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "industry": rng.choice(list(INDUSTRY_EFFECT), size=n),
            "eng_meeting_90d": rng.poisson(1.0, size=n).astype(float),
            "tech_crm": rng.integers(0, 2, size=n).astype(float),
            "noise": rng.normal(size=n),
        }
    )
    frame.loc[rng.random(n) < 0.05, "eng_meeting_90d"] = np.nan
    log_odds = (
        -2.5
        + 0.9 * frame["eng_meeting_90d"].fillna(0)
        + frame["industry"].map(INDUSTRY_EFFECT)
        + 0.6 * frame["tech_crm"]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(int)
    return frame, y


COLUMNS = ["industry", "eng_meeting_90d", "tech_crm", "noise"]


@pytest.fixture(scope="module")
def learned() -> Scorecard:
    frame, y = accounts_frame(6000, seed=1)
    incumbent = Scorecard(fit={"flags": {"tech_crm": 10}}, handover_threshold=10)
    return learn_scorecard(
        frame, y, COLUMNS, ["industry"], PointsSettings(), incumbent, name="learned-conversion"
    )


def test_a_value_on_an_edge_falls_in_the_upper_bin_and_missing_gets_its_own_points():
    points = FieldPoints(edges=[1, 3], points=[0, 4, 9], missing=2)
    values = pd.Series([0, 1, 2.9, 3, 40, None])
    assert points.of(values).tolist() == [0, 4, 4, 9, 9, 2]


def test_a_value_the_card_does_not_list_scores_other():
    points = FieldPoints(categories={"software": 7, "retail": -3}, other=1)
    assert points.of(pd.Series(["software", "mining", None, "retail"])).tolist() == [7, 1, 1, -3]


def test_field_points_name_what_is_wrong():
    with pytest.raises(ValidationError, match="2 edges cut 3 bins"):
        FieldPoints(edges=[1, 3], points=[0, 4])
    with pytest.raises(ValidationError, match="edges must increase"):
        FieldPoints(edges=[3, 1], points=[0, 1, 2])
    with pytest.raises(ValidationError, match="either categories"):
        FieldPoints(categories={"a": 1}, edges=[1], points=[0, 1])


def test_more_meetings_never_score_fewer_points(learned):
    meetings = learned.fields["eng_meeting_90d"]
    assert len(meetings.points) >= 3
    assert meetings.points == sorted(meetings.points)
    assert meetings.points[0] == 0 and meetings.points[-1] > meetings.points[0]


def test_industries_and_flags_keep_their_places_in_the_hand_made_shape(learned):
    industry = learned.fit.industry
    assert industry["software"] > industry["retail"] > industry["government"]
    assert learned.fit.flags["tech_crm"] > 0
    assert "industry" not in learned.fields and "tech_crm" not in learned.fields


def test_a_field_without_signal_gets_no_points(learned):
    assert "noise" not in learned.fields


def test_points_are_whole_numbers(learned):
    values = [*learned.fit.industry.values(), *learned.fit.flags.values()]
    for points in learned.fields.values():
        values += [*points.points, points.missing]
    assert all(float(v).is_integer() for v in values)


def test_the_card_ranks_rows_it_never_saw(learned):
    frame, y = accounts_frame(4000, seed=2)
    assert roc_auc_score(y, learned.score(frame)) > 0.75


def test_the_hand_over_keeps_the_hand_made_cards_share_of_accounts():
    frame, y = accounts_frame(6000, seed=3)
    incumbent = Scorecard(fit={"flags": {"tech_crm": 10}}, handover_threshold=10)
    card = learn_scorecard(frame, y, COLUMNS, ["industry"], PointsSettings(), incumbent)
    share = incumbent.qualified(frame).mean()
    assert 0.3 < share < 0.7
    assert card.qualified(frame).mean() == pytest.approx(share, abs=0.1)


def test_the_same_rows_learn_the_same_card():
    frame, y = accounts_frame(3000, seed=4)
    first = learn_scorecard(frame, y, COLUMNS, ["industry"])
    assert first == learn_scorecard(frame, y, COLUMNS, ["industry"])


def test_a_learned_card_reads_back_from_its_yaml(learned, tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text(learned.to_yaml("learned\nfor a test"))
    assert path.read_text().startswith("# learned\n# for a test\n")
    assert Scorecard.from_yaml(path) == learned
    frame, _ = accounts_frame(500, seed=5)
    assert Scorecard.from_yaml(path).score(frame).equals(learned.score(frame))


def test_the_hand_made_card_is_unchanged_by_the_new_section():
    card = Scorecard.from_yaml()
    assert card.fields == {}
    assert Scorecard.model_validate(yaml.safe_load(card.to_yaml())) == card


def test_scorecard_export_writes_the_runs_card_for_each_head(trained, tmp_path):
    out = tmp_path / "learned.yaml"
    result = cli("scorecard", "export", "--run", str(trained.run_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    card = Scorecard.from_yaml(out)
    scorers = trained.result.scoring_model.scorers
    assert card.name == f"learned-conversion-{scorers['conversion'].version}"
    text = out.read_text()
    assert "Test-window ROC-AUC: this card" in text and "the hand-made card" in text
    assert card.fields, "a conversion card without fields"
    evaluation = trained.result.evaluation
    rows = set(evaluation.loc[evaluation["head"] == "conversion", "scorer"])
    assert {"learned_scorecard", "scorecard"} <= rows

    fit_out = tmp_path / "fit.yml"
    result = cli(
        "scorecard", "export", "--run", str(trained.run_dir), "--head", "fit", "--out", str(fit_out)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert Scorecard.from_yaml(fit_out).name == f"learned-fit-{scorers['fit'].version}"


def test_scorecard_export_refuses_a_file_that_is_not_yaml(trained, tmp_path):
    out = tmp_path / "card.csv"
    result = cli("scorecard", "export", "--run", str(trained.run_dir), "--out", str(out))
    assert result.returncode == 2
    assert "name it .yaml or .yml" in result.stderr and not out.exists()
