"""Adapters: real public exports -> a won/lost table (table mode) or the canonical tables.

Each source has a module with a pure core over DataFrames (testable on small hand-built frames)
and a thin reader taking ``real_dir``, the folder that holds one sub-folder per dataset (see its
SOURCE.md). The data is never copied into the repository: it is read from :data:`REAL_DATA`,
``$PROPENSITY_REAL_DATA`` when set, else ``../shared/data/real`` next to the project root.

* :func:`maven_deals` / :func:`maven_tables`: Maven Analytics CRM sales opportunities.
* :func:`olist_mqls`: Olist marketing funnel (MQL -> closed deal).
* :func:`x_education_leads`: X Education lead scoring (no dates).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from propensity import settings

__all__ = [
    "ENV_VAR",
    "REAL_DATA",
    "SOURCES",
    "TableSource",
    "contract_tables",
    "deal_table",
    "lead_table",
    "maven_deals",
    "maven_tables",
    "mql_table",
    "olist_mqls",
    "real_data_available",
    "x_education_leads",
]

ENV_VAR = settings.REAL_DATA_ENV
REAL_DATA: Path = settings.real_data_dir()

# source name -> (sub-folder of the real-data folder, files a loader reads)
FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "maven": (
        "maven_crm_sales_opportunities",
        ("sales_pipeline.csv", "accounts.csv", "sales_teams.csv", "products.csv"),
    ),
    "olist": (
        "olist_marketing_funnel",
        ("olist_marketing_qualified_leads_dataset.csv", "olist_closed_deals_dataset.csv"),
    ),
    "x_education": ("x_education_leads", ("Leads.csv",)),
}


@dataclass(frozen=True)
class TableSource:
    """A won/lost table ready for table mode, with what it means.

    ``frame`` has one row per record and a fresh RangeIndex. Rows whose label (as text) is in
    ``positive`` are won, in ``negative`` lost; any other non-missing label is open (scored,
    never trained). ``negative=None`` means every other non-missing label value is lost.
    ``time_column`` is the row's own time (when the record was known), None when the source
    has no dates. ``identifiers`` are further id-like columns that are never features.
    """

    name: str
    frame: pd.DataFrame
    id_column: str
    label_column: str
    positive: tuple[str, ...]
    negative: tuple[str, ...] | None
    time_column: str | None
    identifiers: tuple[str, ...]
    description: str
    notes: tuple[str, ...]

    def table_config(self, **options):
        """The :class:`propensity.model.config.TableConfig` for this table (identifiers excluded);
        ``options`` set any other key (``keep_suspects``, ``repeats``, ...)."""
        from propensity.model.config import TableConfig

        return TableConfig(
            id_column=self.id_column,
            label_column=self.label_column,
            positive=self.positive,
            negative=self.negative,
            time_column=self.time_column,
            exclude=(*self.identifiers, *options.pop("exclude", ())),
            **options,
        )


def _folder(name: str, real_dir: Path | str) -> tuple[Path, tuple[str, ...]]:
    if name not in FILES:
        raise KeyError(f"unknown real data source {name!r}; sources are: {', '.join(FILES)}")
    sub, files = FILES[name]
    return Path(real_dir) / sub, files


def real_data_available(name: str, real_dir: Path | str = REAL_DATA) -> bool:
    """True when every file the loader of source ``name`` reads exists under ``real_dir``."""
    folder, files = _folder(name, real_dir)
    return all((folder / f).is_file() for f in files)


def data_file(name: str, filename: str, real_dir: Path | str = REAL_DATA) -> Path:
    """Path of ``filename`` of source ``name``; FileNotFoundError saying where it is expected."""
    folder, _ = _folder(name, real_dir)
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{filename} not found: the {name} data is expected at {path} "
            f"(real data folder {Path(real_dir)}; set {ENV_VAR} to the folder holding {folder.name}/)"
        )
    return path


def read_csv(name: str, filename: str, real_dir: Path | str = REAL_DATA) -> pd.DataFrame:
    """One CSV of source ``name``, types inferred by pandas (text as ``str``)."""
    return pd.read_csv(data_file(name, filename, real_dir))


# The loaders import REAL_DATA / TableSource from this module, so they come last.


def text_values(s: pd.Series) -> pd.Series:
    """Text with whitespace stripped; empty text is missing."""
    text = s.astype("str").str.strip()
    return text.mask(text == "")


def iso_dates(s: pd.Series) -> pd.Series:
    """ISO 8601 text (or datetimes) as naive datetime64[us]."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.astype("datetime64[us]")
    return pd.to_datetime(text_values(s), format="ISO8601").astype("datetime64[us]")


from propensity.data.adapters.maven import (  # noqa: E402
    contract_tables,
    deal_table,
    maven_deals,
    maven_tables,
)
from propensity.data.adapters.olist import mql_table, olist_mqls  # noqa: E402
from propensity.data.adapters.x_education import lead_table, x_education_leads  # noqa: E402

SOURCES: dict[str, Callable[..., TableSource]] = {
    "maven": maven_deals,
    "olist": olist_mqls,
    "x_education": x_education_leads,
}
