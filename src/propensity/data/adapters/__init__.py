"""Adapters: real public exports -> a won/lost table (table mode) or the canonical tables.

Each source has a module with a pure core over DataFrames (testable on small hand-built frames)
and a thin reader taking ``real_dir``, the folder that holds one sub-folder per dataset (see its
SOURCE.md). The data is never copied into the repository: with ``real_dir=None`` it is read from
:func:`propensity.settings.real_data_dir` (``$PROPENSITY_REAL_DATA`` when set, else
``../shared/data/real`` from the working directory), looked up when the loader runs.

* :func:`maven_deals` / :func:`maven_tables`: Maven Analytics CRM sales opportunities.
* :func:`olist_mqls`: Olist marketing funnel (MQL -> closed deal).
* :func:`x_education_leads`: X Education lead scoring (no dates).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from propensity import settings
from propensity.data.adapters.maven import contract_tables, deal_table, maven_deals, maven_tables
from propensity.data.adapters.olist import mql_table, olist_mqls
from propensity.data.adapters.source import (
    ENV_VAR,
    FILES,
    TableSource,
    data_file,
    read_csv,
    real_data_available,
)
from propensity.data.adapters.x_education import lead_table, x_education_leads

__all__ = [
    "ENV_VAR",
    "FILES",
    "REAL_DATA",
    "SOURCES",
    "TableSource",
    "contract_tables",
    "data_file",
    "deal_table",
    "lead_table",
    "maven_deals",
    "maven_tables",
    "mql_table",
    "olist_mqls",
    "read_csv",
    "real_data_available",
    "x_education_leads",
]

SOURCES: dict[str, Callable[..., TableSource]] = {
    "maven": maven_deals,
    "olist": olist_mqls,
    "x_education": x_education_leads,
}


def __getattr__(name: str) -> Path:
    # REAL_DATA, for older imports: the real-data folder as it is when asked for, never frozen
    # at import (the environment variable may be set later)
    if name == "REAL_DATA":
        return settings.real_data_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
