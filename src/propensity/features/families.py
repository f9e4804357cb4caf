"""The feature families, one module each, in the order their columns appear.

A family module declares its features and their wording and computes them:
``build(con, tables, config) -> FamilyBuild`` creates the view ``features_<family>`` (the
spine's ``_row``, then one column per spec it did not compute itself, in spec order) and returns
the specs with the columns it computed outside SQL; ``WORDING`` maps each of its business fields
to the function that words it in reasons (see :mod:`.wording`).
"""

from __future__ import annotations

from types import ModuleType

import propensity.features.engagement as engagement
import propensity.features.firmographic as firmographic
import propensity.features.history as history
import propensity.features.intent as intent

FAMILY_MODULES: dict[str, ModuleType] = {
    "firmographic": firmographic,
    "engagement": engagement,
    "intent": intent,
    "history": history,
}
