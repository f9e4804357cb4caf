"""Reasons in words: one lookup over the wording each family declares next to its features.

Each family module declares ``WORDING``: business field -> function ``(field, values,
reference) -> sentence``; a key ending in ``*`` words every field that starts with the rest
(``eng_*``: one field per event type; ``tech_*``: one per technographic flag). A field's own key
wins over a ``*`` key. Fields no family words (table mode's columns, user-declared account
columns) read "<column>: <value>", or "<Column> unknown" when nothing was observed.
"""

from __future__ import annotations

import propensity.features.engagement as engagement
import propensity.features.firmographic as firmographic
import propensity.features.history as history
import propensity.features.intent as intent
from propensity.features.phrases import Wording, plain

FAMILY_WORDING = {
    "firmographic": firmographic,
    "engagement": engagement,
    "intent": intent,
    "history": history,
}


def _index() -> tuple[dict[str, Wording], list[tuple[str, Wording]]]:
    declared: dict[str, Wording] = {}
    for family, module in FAMILY_WORDING.items():
        for key, wording in module.WORDING.items():
            if key in declared:
                raise ValueError(f"family {family} words {key!r}, which another family words")
            declared[key] = wording
    exact = {key: w for key, w in declared.items() if not key.endswith("*")}
    prefixes = [(key.removesuffix("*"), w) for key, w in declared.items() if key.endswith("*")]
    # the longest prefix is the most specific
    return exact, sorted(prefixes, key=lambda item: -len(item[0]))


_EXACT, _PREFIXES = _index()


def wording_of(field: str) -> Wording | None:
    """The function that words ``field``, or None when no family words it."""
    found = _EXACT.get(field)
    if found is not None:
        return found
    return next((wording for prefix, wording in _PREFIXES if field.startswith(prefix)), None)


def word(field: str, values: dict, reference: dict, sign: float) -> str:
    """Plain-language reason for one business field from the account's values.

    ``values``: the field's features (name -> value, None/NaN when missing), as scored;
    ``reference``: values of the usual converting account (e.g. its median ``employees``);
    ``sign``: the direction of the field's contribution (the wording does not depend on it).
    """
    wording = wording_of(field)
    if wording is None:
        return plain(field, values)
    return wording(field, values, reference)
