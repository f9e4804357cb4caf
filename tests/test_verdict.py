"""The verdict reads every row of the comparison, not the model's alone."""

from __future__ import annotations

import pandas as pd

from propensity.runs.protocol import verdict


def _evaluation(model: tuple, logistic: tuple, skill: tuple = (0.1, 0.05, 0.15)) -> pd.DataFrame:
    rows = []
    for scorer, (auc, lo, hi), (s, s_lo, s_hi) in (
        ("model", model, skill),
        ("logistic", logistic, (0.1, 0.05, 0.15)),
        ("base_rate", (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)),
    ):
        rows.append(
            {"scorer": scorer, "roc_auc": auc, "roc_auc_lo": lo, "roc_auc_hi": hi,
             "brier_skill": s, "brier_skill_lo": s_lo, "brier_skill_hi": s_hi}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_a_model_below_chance_is_called_an_inverted_ranking_not_no_signal():
    beats, sentence = verdict(_evaluation((0.423, 0.414, 0.432), (0.741, 0.731, 0.751)))
    assert not beats
    assert sentence.startswith("Ranking inverted") and "drift" in sentence
    assert "logistic baseline still ranks" in sentence


def test_a_model_the_logistic_baseline_clearly_beats_says_use_the_baseline():
    beats, sentence = verdict(
        _evaluation((0.62, 0.58, 0.66), (0.74, 0.73, 0.75), skill=(0.01, -0.02, 0.03))
    )
    assert not beats
    assert "use the logistic baseline" in sentence and "columns predict the outcome" in sentence
    beats, sentence = verdict(_evaluation((0.715, 0.692, 0.738), (0.757, 0.733, 0.778)))
    assert beats  # it does beat the base rate; the sentence says which scorer to use
    assert sentence.startswith("The model beats the base rate") and "use the logistic" in sentence


def test_a_model_that_ranks_with_poor_probabilities_is_told_to_recalibrate():
    beats, sentence = verdict(
        _evaluation((0.70, 0.66, 0.73), (0.69, 0.65, 0.72), skill=(0.01, -0.02, 0.04))
    )
    assert not beats and "recalibrate" in sentence


def test_no_model_ranks_gives_no_signal_in_any_model():
    beats, sentence = verdict(_evaluation((0.51, 0.48, 0.54), (0.50, 0.47, 0.53)))
    assert not beats and sentence.startswith("No signal beyond the base rate in any model")


def test_a_good_model_beats_the_base_rate():
    beats, sentence = verdict(_evaluation((0.85, 0.83, 0.87), (0.80, 0.78, 0.82)))
    assert beats and sentence.startswith("The model beats the base rate")
