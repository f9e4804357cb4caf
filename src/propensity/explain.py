"""Per-account reasons: exact TreeSHAP contributions grouped into business fields and worded.

Contributions come from LightGBM itself (``predict(..., pred_contrib=True)``: exact TreeSHAP,
in log-odds of the uncalibrated model; per row they sum with the expected value to the raw
margin), or, for a head that ships a baseline, from its linear terms (the same units). Categorical features stay native, so each business field has one contribution per
feature. Features are grouped into the business fields of the feature registry (the 7/30/90-day
counts of one event type are one field), each field's contribution is the sum of its features'
contributions, and the strongest fields are worded from the account's actual values. A field
whose values are all missing is worded as missing ("no third-party intent data"), never as an
observed value. The wording of each field is declared next to its features, in the feature
family that builds them (:mod:`propensity.features.wording`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from propensity.features.phrases import is_missing
from propensity.features.registry import FeatureSpec
from propensity.features.wording import word
from propensity.model.candidates import LogisticCandidate, ScorecardCandidate
from propensity.model.head import HeadModel
from propensity.model.stacked import StackedCandidate

ShippedModel = HeadModel | LogisticCandidate | ScorecardCandidate | StackedCandidate

__all__ = [
    "EXPECTED_VALUE",
    "Reason",
    "contributions",
    "explain",
    "field_contributions",
    "global_importance",
    "word",
]

EXPECTED_VALUE = "expected_value"


def contributions(model: ShippedModel, X: pd.DataFrame) -> pd.DataFrame:
    """Contributions (log-odds) per feature, plus ``expected_value``; index of X: exact TreeSHAP
    for a LightGBM head, the linear terms of a baseline
    (:mod:`propensity.model.candidates`)."""
    return model.contributions(X)


def field_contributions(contrib: pd.DataFrame, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Contributions summed per business field (columns: fields, in registry order)."""
    field_of = {s.name: s.field for s in specs}
    columns = [c for c in contrib.columns if c != EXPECTED_VALUE]
    groups = pd.Series([field_of.get(c, c) for c in columns], index=columns)
    return contrib[columns].T.groupby(groups.to_numpy(), sort=False).sum().T


@dataclass(frozen=True)
class Reason:
    field: str
    family: str
    text: str
    contribution: float  # log-odds
    share: float  # signed share of the row's total absolute contribution
    values: dict


def explain(
    model: ShippedModel,
    X: pd.DataFrame,
    specs: Sequence[FeatureSpec],
    *,
    top_positive: int = 3,
    top_negative: int = 2,
) -> pd.DataFrame:
    """Reasons per row of X: ``reasons`` (text, '; '-joined, signed) and ``reasons_json``.

    Also returns ``margin`` (log-odds) and ``expected_value`` so consumers can check additivity.
    """
    contrib = contributions(model, X)
    fields = field_contributions(contrib, specs)
    spec_by_field: dict[str, list[FeatureSpec]] = {}
    for spec in specs:
        spec_by_field.setdefault(spec.field, []).append(spec)
    family_of = {s.field: s.family for s in specs}
    reference = getattr(model, "positive_medians_", {})
    value_columns = [s.name for s in specs if s.name in X.columns]
    records = X[value_columns].to_dict("records")
    texts, payloads = [], []
    field_values = fields.to_numpy()
    field_names = list(fields.columns)
    for i, row in enumerate(records):
        total = float(np.abs(field_values[i]).sum()) or 1.0
        order = np.argsort(-field_values[i], kind="stable")
        chosen = [j for j in order[:top_positive] if field_values[i, j] > 0]
        chosen += [j for j in order[::-1][:top_negative] if field_values[i, j] < 0]
        reasons = []
        for j in chosen:
            field = field_names[j]
            values = {
                s.name: _plain(row.get(s.name))
                for s in spec_by_field.get(field, [])
                if s.name in row
            }
            text = word(field, values, reference, field_values[i, j])
            reasons.append(
                Reason(
                    field,
                    family_of.get(field, ""),
                    text,
                    float(field_values[i, j]),
                    float(field_values[i, j] / total),
                    values,
                )
            )
        texts.append("; ".join(f"{r.text} ({'+' if r.contribution > 0 else '-'})" for r in reasons))
        payloads.append(json.dumps([_reason_json(r) for r in reasons], default=str))
    margin = contrib.sum(axis=1)
    return pd.DataFrame(
        {
            "reasons": texts,
            "reasons_json": payloads,
            "margin": margin.to_numpy(),
            "expected_value": contrib[EXPECTED_VALUE].to_numpy(),
        },
        index=X.index,
    )


def _plain(value):
    if value is pd.NA or value is None:
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def _reason_json(reason: Reason) -> dict:
    # by hand rather than dataclasses.asdict: its deep copy was a third of scoring time
    return {
        "field": reason.field,
        "family": reason.family,
        "text": reason.text,
        "contribution": round(reason.contribution, 6),
        "share": round(reason.share, 4),
        "values": {k: (None if is_missing(v) else v) for k, v in reason.values.items()},
    }


def global_importance(
    model: ShippedModel, X: pd.DataFrame, specs: Sequence[FeatureSpec], head: str
) -> pd.DataFrame:
    """Mean |contribution| per business field (SHAP summary), largest first."""
    fields = field_contributions(contributions(model, X), specs)
    family_of = {s.field: s.family for s in specs}
    table = fields.abs().mean().rename("mean_abs_contribution").rename_axis("field").reset_index()
    table["family"] = table["field"].map(family_of)
    table["head"] = head
    return table.sort_values("mean_abs_contribution", ascending=False, ignore_index=True)
