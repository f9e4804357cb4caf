"""Point-in-time account features, one module per family, computed by DuckDB SQL.

``build_features(tables, spine, config)`` returns one row per spine row (same order), with
``account_id`` and ``as_of`` first, then every feature of every family whose table is present.
A feature for ``as_of`` uses only data known strictly before ``as_of`` (each family's docstring
states its availability rule). Families whose table is absent are skipped with a logged note.

Layout: ``registry`` (FeatureSpec, FeatureConfig), one module per family (its features, their
SQL and their wording in reasons), ``families`` (the list), ``matrix`` (the joined build),
``wording`` (the reasons' lookup), ``sql`` and ``phrases`` (shared helpers).
"""

from propensity.features.families import FAMILY_MODULES
from propensity.features.matrix import FeatureSet, build_features
from propensity.features.registry import FAMILIES, FeatureConfig, FeatureSpec

__all__ = [
    "FAMILIES",
    "FAMILY_MODULES",
    "FeatureConfig",
    "FeatureSet",
    "FeatureSpec",
    "build_features",
]
