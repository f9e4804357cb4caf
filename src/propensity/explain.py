"""Per-account reasons: exact TreeSHAP contributions grouped into business fields and worded.

Contributions come from LightGBM itself (``predict(..., pred_contrib=True)``: exact TreeSHAP,
in log-odds of the uncalibrated model; per row they sum with the expected value to the raw
margin). Categorical features stay native, so each business field has one contribution per
feature. Features are grouped into the business fields of the feature registry (the 7/30/90-day
counts of one event type are one field), each field's contribution is the sum of its features'
contributions, and the strongest fields are worded from the account's actual values. A field
whose values are all missing is worded as missing ("no third-party intent data"), never as an
observed value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from propensity.features import FeatureSpec
from propensity.model.head import HeadModel

EXPECTED_VALUE = "expected_value"


def contributions(model: HeadModel, X: pd.DataFrame) -> pd.DataFrame:
    """Exact TreeSHAP contributions (log-odds) per feature, plus ``expected_value``; index of X."""
    prepared = model._prepare(X)
    values = model.model_.predict(prepared, pred_contrib=True)
    return pd.DataFrame(values, index=X.index, columns=[*model.features_, EXPECTED_VALUE])


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


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    value = float(value)
    if abs(value) >= 1e9:
        return f"{value / 1e9:.1f}B"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _window_counts(values: dict, prefix: str) -> list[tuple[int, float]]:
    found = []
    for name, value in values.items():
        if name.startswith(prefix) and name.endswith("d"):
            days = name[len(prefix) :].rstrip("d")
            if days.isdigit():
                found.append((int(days), value))
    return sorted(found)


def word(field: str, values: dict, reference: dict, sign: float) -> str:
    """Plain-language reason for one business field from the account's values."""
    if all(_missing(v) for v in values.values()):
        if field.startswith("intent"):
            return "No third-party intent data for this account"
        if field not in _WORDING:
            return f"{field.replace('_', ' ').capitalize()} unknown"
    if field.startswith("eng_") and field not in _WORDING:  # one field per event type
        event = field.removeprefix("eng_")
        counts = _window_counts(values, f"eng_{event}_")
        label = event.replace("_", " ")
        observed = [(d, v) for d, v in counts if not _missing(v) and v > 0]
        if not observed:
            longest = counts[-1][0] if counts else 90
            return f"No {label} events in {longest} days"
        days, count = observed[0]
        return f"{_number(count)} {label} event{'s' if count != 1 else ''} in the last {days} days"
    handler = _WORDING.get(field)
    if handler is not None:
        return handler(values, reference)
    name, value = next((k, v) for k, v in values.items() if not _missing(v))
    return f"{name.replace('_', ' ')}: {value if isinstance(value, str) else _number(value)}"


def _buying_group(values: dict, reference: dict) -> str:
    contacts = [(d, v) for d, v in _window_counts(values, "eng_contacts_") if not _missing(v)]
    roles = next(
        (v for k, v in values.items() if k.startswith("eng_roles_") and not _missing(v)), None
    )
    decision = next(
        (v for k, v in values.items() if k.startswith("eng_decision_maker_") and not _missing(v)), 0
    )
    engaged = [(d, v) for d, v in contacts if v > 0]
    if not engaged:
        longest = contacts[-1][0] if contacts else 90
        return f"No known contact engaged in {longest} days"
    days, count = engaged[0]
    text = f"{_number(count)} contact{'s' if count != 1 else ''} engaged in the last {days} days"
    if roles:
        text += f", {_number(roles)} buying-group role{'s' if roles != 1 else ''}"
    return text + (", incl. a decision maker" if decision else ", no decision maker")


def _recency(values: dict, reference: dict) -> str:
    days = values.get("eng_days_since_last_event")
    return "Never engaged" if _missing(days) else f"Last engagement {_number(days)} days ago"


def _momentum(values: dict, reference: dict) -> str:
    ratio = values.get("eng_momentum")
    if _missing(ratio):
        return "Engagement trend unknown"
    if ratio >= 1.5:
        return f"Engagement accelerating ({ratio:.1f}x the prior rate)"
    if ratio <= 0.67:
        return f"Engagement slowing ({ratio:.1f}x the prior rate)"
    return "Engagement steady versus the prior months"


def _coverage(values: dict, reference: dict) -> str:
    known = values.get("eng_known_contacts")
    share = values.get("eng_contact_coverage")
    if _missing(known) or known == 0:
        return "No known contacts at this account"
    text = f"{_number(known)} known contact{'s' if known != 1 else ''}"
    return text + ("" if _missing(share) else f", {share:.0%} engaged recently")


def _anonymous(values: dict, reference: dict) -> str:
    share = next(iter(values.values()))
    if _missing(share):
        return "No recent activity (nothing anonymous or identified)"
    return f"{share:.0%} of recent activity anonymous (web visits without a known contact)"


def _reach(values: dict, reference: dict) -> str:
    count = next(iter(values.values()))
    if _missing(count):
        return "Channels reached unknown"
    return f"Reached through {_number(count)} channel{'s' if count != 1 else ''} in 90 days"


def _minutes(values: dict, reference: dict) -> str:
    windows = [(d, v) for d, v in _window_counts(values, "eng_minutes_") if not _missing(v)]
    positive = [(d, v) for d, v in windows if v > 0]
    if not positive:
        return "No time spent on content or meetings recently"
    days, minutes = positive[0]
    return f"{_number(round(minutes))} minutes of engagement in the last {days} days"


def _intent_surge(values: dict, reference: dict) -> str:
    topic = values.get("intent_top_topic_4w")
    top = values.get("intent_max_4w")
    if _missing(top):
        return "No intent surge delivered in the last 4 weeks"
    about = f" on '{topic}'" if isinstance(topic, str) else ""
    level = "surging" if top >= 60 else "at"
    return f"Intent{about} {level} {_number(top)} in the last 4 weeks"


def _intent_breadth(values: dict, reference: dict) -> str:
    count = values.get("intent_surging_topics_4w", 0)
    if not count:
        return "No intent topic surging in the last 4 weeks"
    return f"{_number(count)} intent topic{'s' if count != 1 else ''} surging in the last 4 weeks"


def _intent_trend(values: dict, reference: dict) -> str:
    trend = values.get("intent_trend")
    if _missing(trend):
        return "Intent trend unknown (too little intent history)"
    return (
        f"Intent {'rising' if trend > 0 else 'falling'} ({trend:+.0f} points vs the prior 12 weeks)"
    )


def _company_size(values: dict, reference: dict) -> str:
    employees = values.get("employees")
    if _missing(employees):
        band = values.get("size_band")
        return f"Company size band {band}" if isinstance(band, str) else "Company size unknown"
    usual = reference.get("employees")
    text = f"Company size {_number(employees)} employees"
    if usual and not _missing(usual):
        if employees < usual / 3:
            text += ", below the usual customer size"
        elif employees > usual * 3:
            text += ", above the usual customer size"
        else:
            text += ", close to the usual customer size"
    return text


def _categorical(label: str):
    def wording(values: dict, reference: dict) -> str:
        value = next(iter(values.values()))
        if _missing(value):
            return f"{label} unknown"
        return f"{label}: {str(value).replace('_', ' ')}"

    return wording


def _revenue(values: dict, reference: dict) -> str:
    revenue = values.get("annual_revenue")
    if _missing(revenue):
        band = values.get("revenue_band")
        return f"Revenue band {band}" if isinstance(band, str) else "Revenue unknown"
    return f"Annual revenue {_number(revenue)}"


def _history(values: dict, reference: dict) -> str:
    parts = []
    if not _missing(values.get("hist_opportunities")):
        count = values["hist_opportunities"]
        parts.append(
            "no earlier opportunity"
            if count == 0
            else f"{_number(count)} earlier opportunit{'ies' if count != 1 else 'y'}"
        )
    if not _missing(values.get("hist_lost")) and values["hist_lost"] > 0:
        parts.append(f"{_number(values['hist_lost'])} lost")
    return (", ".join(parts) or "deal history").capitalize()


def _history_recency(values: dict, reference: dict) -> str:
    closed = values.get("hist_days_since_last_closed")
    if not _missing(closed):
        return f"Last deal closed {_number(closed)} days ago"
    opened = values.get("hist_days_since_last_opportunity")
    return "No earlier deal" if _missing(opened) else f"Last opportunity {_number(opened)} days ago"


def _company_age(values: dict, reference: dict) -> str:
    if _missing(values.get("company_age_years")):
        return "Company age unknown"
    return f"Company founded {_number(values.get('company_age_years'))} years ago"


def _total(values: dict, reference: dict) -> str:
    windows = [(d, v) for d, v in _window_counts(values, "eng_events_") if not _missing(v)]
    positive = [(d, v) for d, v in windows if v > 0]
    if not positive:
        return f"No engagement in {windows[-1][0] if windows else 90} days"
    days, count = positive[0]
    return f"{_number(count)} engagement events in the last {days} days"


_WORDING = {
    "eng_total": _total,
    "eng_buying_group": _buying_group,
    "eng_recency": _recency,
    "eng_momentum": _momentum,
    "eng_coverage": _coverage,
    "eng_anonymous": _anonymous,
    "eng_reach": _reach,
    "eng_minutes": _minutes,
    "intent_surge": _intent_surge,
    "intent_breadth": _intent_breadth,
    "intent_trend": _intent_trend,
    "company_size": _company_size,
    "annual_revenue": _revenue,
    "industry": _categorical("Industry"),
    "country": _categorical("Country"),
    "company_age_years": _company_age,
    "hist_opportunities": _history,
    "hist_lost": _history,
    "hist_recency": _history_recency,
}


def _flag(name: str):
    def wording(values: dict, reference: dict) -> str:
        value = values.get(name)
        tool = (
            name.removeprefix("tech_").replace("_", " ").replace("crm", "CRM").replace("erp", "ERP")
        )
        return f"Uses {tool}" if value == 1 else f"No {tool} detected"

    return wording


def explain(
    model: HeadModel,
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
            handler = _flag(field) if field.startswith("tech_") else None
            text = (
                handler(values, reference)
                if handler
                else word(field, values, reference, field_values[i, j])
            )
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
    data = asdict(reason)
    data["contribution"] = round(data["contribution"], 6)
    data["share"] = round(data["share"], 4)
    data["values"] = {k: (None if _missing(v) else v) for k, v in data["values"].items()}
    return data


def global_importance(
    model: HeadModel, X: pd.DataFrame, specs: Sequence[FeatureSpec], head: str
) -> pd.DataFrame:
    """Mean |contribution| per business field (SHAP summary), largest first."""
    fields = field_contributions(contributions(model, X), specs)
    family_of = {s.field: s.family for s in specs}
    table = fields.abs().mean().rename("mean_abs_contribution").rename_axis("field").reset_index()
    table["family"] = table["field"].map(family_of)
    table["head"] = head
    return table.sort_values("mean_abs_contribution", ascending=False, ignore_index=True)
