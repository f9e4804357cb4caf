"""Firmographic and technographic features: static account fields only.

Only the contract's static columns (industry, employees, annual_revenue, country, founded_year,
``tech_*`` flags) and columns the user declares static are read. Fields that describe the account
as of the export date (``lifecycle_stage``, ``last_activity_at``, ...) would leak the future into
past snapshots and are never used. Company age is computed from ``as_of``.
"""

from __future__ import annotations

import duckdb

from propensity.data.contract import Tables
from propensity.features.registry import FeatureConfig, FeatureSpec
from propensity.features.sql import quote_identifier

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


def build(
    con: duckdb.DuckDBPyConnection, tables: Tables, config: FeatureConfig
) -> list[FeatureSpec]:
    """Create the view ``features_firmographic`` (``_row`` of the spine, then the features)."""
    accounts = tables.accounts
    specs: list[FeatureSpec] = []
    selects: list[str] = []

    def add(
        name: str,
        sql: str,
        label: str,
        definition: str,
        kind: str = "numeric",
        field: str | None = None,
    ):
        selects.append(f"{sql} AS {quote_identifier(name)}")
        specs.append(FeatureSpec(name, FAMILY, field or name, label, definition, STATIC, kind))

    if "industry" in accounts:
        add("industry", "a.industry", "industry", "account industry", "categorical")
    if "country" in accounts:
        add("country", "a.country", "country", "account country", "categorical")
    if "employees" in accounts:
        add(
            "employees",
            "CAST(a.employees AS DOUBLE)",
            "company size",
            "number of employees",
            field="company_size",
        )
        add(
            "size_band",
            _band_sql("a.employees", SIZE_BANDS, "5000+"),
            "company size band",
            "employee band",
            "categorical",
            field="company_size",
        )
    if "annual_revenue" in accounts:
        add(
            "annual_revenue",
            "CAST(a.annual_revenue AS DOUBLE)",
            "annual revenue",
            "annual revenue",
            field="annual_revenue",
        )
        add(
            "revenue_band",
            _band_sql("a.annual_revenue", REVENUE_BANDS, "1B+"),
            "revenue band",
            "annual revenue band",
            "categorical",
            field="annual_revenue",
        )
    if "employees" in accounts and "annual_revenue" in accounts:
        add(
            "revenue_per_employee",
            "CAST(a.annual_revenue AS DOUBLE) / NULLIF(a.employees, 0)",
            "revenue per employee",
            "annual revenue / employees",
            field="annual_revenue",
        )
    if "founded_year" in accounts:
        add(
            "company_age_years",
            "CAST(year(s.as_of) - a.founded_year AS DOUBLE)",
            "company age",
            "years since founding at as_of",
        )
    for column in accounts.columns:
        if column.startswith("tech_"):
            add(
                column,
                f"CAST(a.{quote_identifier(column)} AS DOUBLE)",
                f"uses {column.removeprefix('tech_').replace('_', ' ')}",
                f"technographic flag {column}",
            )
    for column in config.extra_static_account_columns:
        if column not in accounts:
            raise ValueError(
                f"feature config extra_static_account_columns names '{column}', which table 'accounts' "
                f"does not have (columns: {list(accounts.columns)})"
            )
        numeric = accounts[column].dtype.kind in "biuf"
        sql = f"CAST(a.{quote_identifier(column)} AS {'DOUBLE' if numeric else 'VARCHAR'})"
        add(
            column,
            sql,
            column.replace("_", " "),
            f"user-declared static column {column}",
            "numeric" if numeric else "categorical",
        )

    columns = ", ".join(selects) if selects else "NULL AS _no_firmographics"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW features_firmographic AS
        SELECT s._row, {columns}
        FROM spine s LEFT JOIN accounts a ON a.account_id = s.account_id
        """
    )
    return specs
