"""What every adapter shares: :class:`TableSource`, where each source's files are, reading them.

The real-data folder holds one sub-folder per dataset (see its SOURCE.md). It is never copied
into the repository: loaders take ``real_dir`` and, when it is None, use
:func:`propensity.settings.real_data_dir` at call time (``$PROPENSITY_REAL_DATA``, else
``../shared/data/real`` from the working directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from propensity import settings
from propensity.data.parse import Parsed, parse_numbers, parse_timestamps

__all__ = [
    "ENV_VAR",
    "FILES",
    "TableSource",
    "data_file",
    "date_column",
    "number_column",
    "read_csv",
    "real_data_available",
]

ENV_VAR = settings.REAL_DATA_ENV

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
        # imported here: the data layer does not load the model layer (LightGBM) to read data
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


def _folder(name: str, real_dir: Path | str | None) -> tuple[Path, tuple[str, ...]]:
    if name not in FILES:
        raise KeyError(f"unknown real data source {name!r}; sources are: {', '.join(FILES)}")
    sub, files = FILES[name]
    return settings.real_data_dir(real_dir) / sub, files


def real_data_available(name: str, real_dir: Path | str | None = None) -> bool:
    """True when every file the loader of source ``name`` reads exists under ``real_dir``."""
    folder, files = _folder(name, real_dir)
    return all((folder / f).is_file() for f in files)


def data_file(name: str, filename: str, real_dir: Path | str | None = None) -> Path:
    """Path of ``filename`` of source ``name``; FileNotFoundError saying where it is expected."""
    folder, _ = _folder(name, real_dir)
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"{filename} not found: the {name} data is expected at {path} "
            f"(real data folder {folder.parent}; set {ENV_VAR} to the folder holding {folder.name}/)"
        )
    return path


def read_csv(name: str, filename: str, real_dir: Path | str | None = None) -> pd.DataFrame:
    """One CSV of source ``name``, types inferred by pandas (text as ``str``)."""
    return pd.read_csv(data_file(name, filename, real_dir))


def _checked(parsed: Parsed, frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    if parsed.failed.any():
        examples = frame.loc[parsed.failed, column].head(5)
        shown = ", ".join(f"row {i}: {v!r}" for i, v in examples.items())
        raise ValueError(
            f"{table}: column {column!r} has {int(parsed.failed.sum())} values that are "
            f"{parsed.problem}, e.g. {shown}"
        )
    return parsed.values


def date_column(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """Column ``column`` of ``frame`` (ISO 8601 text or datetimes) as naive datetime64[us].

    ValueError naming the table, column and example rows when a value is not an ISO 8601 date.
    """
    return _checked(parse_timestamps(frame[column]), frame, column, table)


def number_column(frame: pd.DataFrame, column: str, table: str) -> pd.Series:
    """Column ``column`` of ``frame`` as float64; ValueError naming example rows that are not
    numbers."""
    return _checked(parse_numbers(frame[column]), frame, column, table)
