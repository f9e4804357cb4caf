"""The small pieces every family's reason wording is made of: numbers, missing values, windows.

A wording turns one business field of one account into a sentence: it is called with the field,
the values of the field's features (feature name -> value, ``None`` or NaN when missing) and
``reference`` (values typical of converting accounts, e.g. ``{"employees": 400.0}``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

Wording = Callable[[str, dict, dict], str]  # (field, values, reference) -> sentence


def number(value) -> str:
    """A count or amount as sales reads it: '1,250', '3.4M', '1.2B', 'unknown'."""
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


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def all_missing(values: dict) -> bool:
    """True when no feature of the field was observed (also for no features at all)."""
    return all(is_missing(v) for v in values.values())


def window_counts(values: dict, prefix: str) -> list[tuple[int, float]]:
    """(days, value) of the features named ``<prefix><days>d``, shortest window first."""
    found = []
    for name, value in values.items():
        if name.startswith(prefix) and name.endswith("d"):
            days = name[len(prefix) :].rstrip("d")
            if days.isdigit():
                found.append((int(days), value))
    return sorted(found)


def momentum_pairs(values: dict, prefix: str) -> list[tuple[int, int, float]]:
    """(recent weeks, prior weeks, value) of the observed features named
    ``<prefix><recent>w_<prior>w``, shortest first."""
    found = []
    for name, value in values.items():
        weeks = name.removeprefix(prefix).split("_")
        if name.startswith(prefix) and len(weeks) == 2 and not is_missing(value):
            recent, prior = (w.removesuffix("w") for w in weeks)
            if recent.isdigit() and prior.isdigit():
                found.append((int(recent), int(prior), value))
    return sorted(found)


def unknown(field: str) -> str:
    """The wording of a field whose values are all missing: 'Lead source unknown'."""
    return f"{field.replace('_', ' ').capitalize()} unknown"


def plain(field: str, values: dict) -> str:
    """The wording of a field no family words: its first observed value, 'lead source: Web'."""
    if all_missing(values):
        return unknown(field)
    name, value = next((k, v) for k, v in values.items() if not is_missing(v))
    return f"{name.replace('_', ' ')}: {value if isinstance(value, str) else number(value)}"
