"""Firmographic and technographic features: static account fields only.

Only the contract's static columns (industry, employees, annual_revenue, country, founded_year,
``tech_*`` flags) and columns the user declares static are read. Fields that describe the account
as of the export date (``lifecycle_stage``, ``last_activity_at``, ...) would leak the future into
past snapshots and are never used. Company age is computed from ``as_of``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from propensity.features.phrases import Wording, is_missing, number
from propensity.features.registry import FamilyBuild, FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier

if TYPE_CHECKING:  # the stage reads the tables' shape only
    from propensity.data.specs import Tables

FAMILY = "firmographic"
STATIC = "static account attribute, known before any snapshot"

SIZE_BANDS = ((10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"))
REVENUE_BANDS = (
    (1e6, "<1M"),
    (1e7, "1M-10M"),
    (5e7, "10M-50M"),
    (2.5e8, "50M-250M"),
    (1e9, "250M-1B"),
)


def _band_sql(column: str, bands: tuple[tuple[float, str], ...], top: str) -> str:
    cases = " ".join(f"WHEN {column} <= {limit} THEN '{label}'" for limit, label in bands)
    return f"CASE WHEN {column} IS NULL THEN NULL {cases} ELSE '{top}' END"


Column = tuple[FeatureSpec, str]  # a spec and the SQL of its column in features_firmographic


def build(con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig) -> FamilyBuild:
    """Create the view ``features_firmographic`` (``_row`` of the spine, then the features)."""
    accounts = tables.accounts
    features = _account_fields(accounts) + _tech_flags(accounts) + _declared(accounts, config)
    selects = [f"{sql} AS {quote_identifier(spec.name)}" for spec, sql in features]
    columns = ", ".join(selects) if selects else "NULL AS _no_firmographics"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW features_firmographic AS
        SELECT s._row, {columns}
        FROM spine s LEFT JOIN accounts a ON a.account_id = s.account_id
        """
    )
    return FamilyBuild([spec for spec, _ in features])


def _feature(
    name: str,
    sql: str,
    label: str,
    definition: str,
    kind: str = "numeric",
    field: str | None = None,
) -> Column:
    return FeatureSpec(name, FAMILY, field or name, label, definition, STATIC, kind), sql


def _account_fields(accounts: pd.DataFrame) -> list[Column]:
    """The contract's static account columns that are present."""
    features = []
    if "industry" in accounts:
        features.append(
            _feature("industry", "a.industry", "industry", "account industry", "categorical")
        )
    if "country" in accounts:
        features.append(
            _feature("country", "a.country", "country", "account country", "categorical")
        )
    if "employees" in accounts:
        features += [
            _feature(
                "employees",
                "CAST(a.employees AS DOUBLE)",
                "company size",
                "number of employees",
                field="company_size",
            ),
            _feature(
                "size_band",
                _band_sql("a.employees", SIZE_BANDS, "5000+"),
                "company size band",
                "employee band",
                "categorical",
                field="company_size",
            ),
        ]
    if "annual_revenue" in accounts:
        features += [
            _feature(
                "annual_revenue",
                "CAST(a.annual_revenue AS DOUBLE)",
                "annual revenue",
                "annual revenue",
                field="annual_revenue",
            ),
            _feature(
                "revenue_band",
                _band_sql("a.annual_revenue", REVENUE_BANDS, "1B+"),
                "revenue band",
                "annual revenue band",
                "categorical",
                field="annual_revenue",
            ),
        ]
    if "employees" in accounts and "annual_revenue" in accounts:
        features.append(
            _feature(
                "revenue_per_employee",
                "CAST(a.annual_revenue AS DOUBLE) / NULLIF(a.employees, 0)",
                "revenue per employee",
                "annual revenue / employees",
                field="annual_revenue",
            )
        )
    if "founded_year" in accounts:
        features.append(
            _feature(
                "company_age_years",
                "CAST(year(s.as_of) - a.founded_year AS DOUBLE)",
                "company age",
                "years since founding at as_of",
            )
        )
    return features


def _tech_flags(accounts: pd.DataFrame) -> list[Column]:
    """One feature per ``tech_*`` column (technographic flags)."""
    return [
        _feature(
            column,
            f"CAST(a.{quote_identifier(column)} AS DOUBLE)",
            f"uses {column.removeprefix('tech_').replace('_', ' ')}",
            f"technographic flag {column}",
        )
        for column in accounts.columns
        if column.startswith("tech_")
    ]


def _declared(accounts: pd.DataFrame, config: FeatureConfig) -> list[Column]:
    """The account columns the user declares static (``extra_static_account_columns``)."""
    features = []
    for column in config.extra_static_account_columns:
        if column not in accounts:
            raise ValueError(
                f"feature config extra_static_account_columns names '{column}', which table 'accounts' "
                f"does not have (columns: {list(accounts.columns)})"
            )
        numeric = accounts[column].dtype.kind in "biuf"
        sql = f"CAST(a.{quote_identifier(column)} AS {'DOUBLE' if numeric else 'VARCHAR'})"
        features.append(
            _feature(
                column,
                sql,
                column.replace("_", " "),
                f"user-declared static column {column}",
                "numeric" if numeric else "categorical",
            )
        )
    return features


# ---- wording of the reasons: business field -> sentence from the account's values


def _company_size(field: str, values: dict, reference: dict) -> str:
    """Employees, compared with the usual converting account's (``reference``)."""
    employees = values.get("employees")
    if is_missing(employees):
        band = values.get("size_band")
        return f"Company size band {band}" if isinstance(band, str) else "Company size unknown"
    usual = reference.get("employees")
    text = f"Company size {number(employees)} employees"
    if usual and not is_missing(usual):
        if employees < usual / 3:
            text += ", below the usual customer size"
        elif employees > usual * 3:
            text += ", above the usual customer size"
        else:
            text += ", close to the usual customer size"
    return text


def _revenue(field: str, values: dict, reference: dict) -> str:
    revenue = values.get("annual_revenue")
    if is_missing(revenue):
        band = values.get("revenue_band")
        return f"Revenue band {band}" if isinstance(band, str) else "Revenue unknown"
    return f"Annual revenue {number(revenue)}"


def _category(field: str, values: dict, reference: dict) -> str:
    """A categorical field read as 'Industry: software'."""
    value = next(iter(values.values()))
    label = field.replace("_", " ").capitalize()
    if is_missing(value):
        return f"{label} unknown"
    return f"{label}: {str(value).replace('_', ' ')}"


def _company_age(field: str, values: dict, reference: dict) -> str:
    if is_missing(values.get("company_age_years")):
        return "Company age unknown"
    return f"Company founded {number(values.get('company_age_years'))} years ago"


def _tech_flag(field: str, values: dict, reference: dict) -> str:
    """A ``tech_*`` flag (one field per flag): 'Uses CRM' or 'No CRM detected'."""
    tool = field.removeprefix("tech_").replace("_", " ").replace("crm", "CRM").replace("erp", "ERP")
    return f"Uses {tool}" if values.get(field) == 1 else f"No {tool} detected"


# business field -> wording; "tech_*" words every technographic flag
WORDING: dict[str, Wording] = {
    "company_size": _company_size,
    "annual_revenue": _revenue,
    "industry": _category,
    "country": _category,
    "company_age_years": _company_age,
    "tech_*": _tech_flag,
}
