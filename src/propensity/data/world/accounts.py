"""Accounts: correlated firmographics, the hidden ICP fit, traps, names and the leakage bait."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from propensity.data.world.columns import dictionary, timestamps
from propensity.data.world.config import WEEK, Clock, WorldConfig
from propensity.data.world.journey import CUSTOMER, DEAL

# name: (share of accounts, median employees, sigma of log employees, fit effect, revenue per employee)
INDUSTRIES = {
    "software": (0.17, 80, 1.3, 0.7, 220_000),
    "financial_services": (0.10, 300, 1.5, 0.6, 400_000),
    "professional_services": (0.13, 45, 1.2, 0.3, 150_000),
    "manufacturing": (0.15, 220, 1.4, 0.2, 250_000),
    "healthcare": (0.10, 250, 1.5, 0.0, 180_000),
    "telecom": (0.04, 600, 1.5, 0.2, 450_000),
    "retail": (0.12, 120, 1.6, -0.4, 200_000),
    "media": (0.06, 60, 1.3, -0.2, 160_000),
    "education": (0.08, 150, 1.4, -1.1, 90_000),
    "government": (0.05, 500, 1.5, -1.4, 120_000),
}
COUNTRIES = {  # name: (share, fit effect)
    "us": (0.44, 0.25),
    "gb": (0.12, 0.2),
    "de": (0.10, 0.0),
    "fr": (0.06, -0.1),
    "ca": (0.06, 0.2),
    "nl": (0.04, 0.05),
    "au": (0.05, 0.15),
    "in": (0.07, -0.6),
    "br": (0.06, -0.5),
}
INDUSTRY_NAMES = list(INDUSTRIES)
COUNTRY_NAMES = list(COUNTRIES)
TECH_FLAGS = (
    "tech_crm",
    "tech_marketing_automation",
    "tech_cloud_data_warehouse",
    "tech_legacy_erp",
)
CRM_AFFINE_INDUSTRIES = ("software", "financial_services", "professional_services")
TRAP_TYPES = ("none", "student", "competitor", "vendor_staff")
LIFECYCLE_STAGES = (
    "customer",
    "opportunity",
    "sales_qualified_lead",
    "marketing_qualified_lead",
    "subscriber",
    "unknown",
)


@dataclass
class Firmographics:
    """What a data provider knows about each account of a chunk (codes into the name lists)."""

    industry: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    country: np.ndarray
    founded_year: np.ndarray
    tech: dict[str, np.ndarray]
    log_employees: np.ndarray  # of the drawn size: traps rewrite ``employees`` but not this


def draw_firmographics(rng: np.random.Generator, config: WorldConfig, n: int) -> Firmographics:
    """Industry, size, revenue, country, age and technographic flags of ``n`` accounts."""
    names = INDUSTRY_NAMES
    industry = rng.choice(
        len(names),
        size=n,
        p=np.array([INDUSTRIES[i][0] for i in names]) / sum(INDUSTRIES[i][0] for i in names),
    )
    med = np.array([INDUSTRIES[i][1] for i in names])[industry]
    sig = np.array([INDUSTRIES[i][2] for i in names])[industry]
    employees = np.clip(np.round(np.exp(np.log(med) + sig * rng.standard_normal(n))), 1, 400_000)
    rev_per_emp = np.array([INDUSTRIES[i][4] for i in names])[industry]
    revenue = np.round(employees * rev_per_emp * np.exp(0.45 * rng.standard_normal(n)), -3)
    cnames = COUNTRY_NAMES
    country = rng.choice(
        len(cnames),
        size=n,
        p=np.array([COUNTRIES[c][0] for c in cnames]) / sum(COUNTRIES[c][0] for c in cnames),
    )
    log_emp = np.log10(employees)
    age = np.clip(rng.gamma(2.0, 4.0 + 4.0 * log_emp), 0, 150)
    founded_year = np.clip(np.round(config.start.year - age), 1850, config.start.year)
    p_crm = np.clip(0.2 + 0.15 * log_emp + 0.15 * _crm_affine(industry), 0, 0.95)
    tech = {
        "tech_crm": rng.random(n) < p_crm,
        "tech_marketing_automation": rng.random(n) < np.clip(0.1 + 0.12 * log_emp, 0, 0.9),
        "tech_cloud_data_warehouse": rng.random(n) < np.clip(0.05 + 0.1 * log_emp, 0, 0.9),
        "tech_legacy_erp": rng.random(n)
        < np.clip(
            0.05 + 0.08 * log_emp + 0.15 * (industry == names.index("manufacturing")), 0, 0.9
        ),
    }
    return Firmographics(industry, employees, revenue, country, founded_year, tech, log_emp)


def _crm_affine(industry: np.ndarray) -> np.ndarray:
    return np.isin(industry, [INDUSTRY_NAMES.index(i) for i in CRM_AFFINE_INDUSTRIES])


def draw_fit_logit(rng: np.random.Generator, firms: Firmographics) -> np.ndarray:
    """Hidden ICP fit (logit): size sweet spot, industry and country, CRM x industry, noise."""
    log_emp, tech = firms.log_employees, firms.tech
    sweet_spot = 1.6 * np.exp(-((log_emp - np.log10(400)) ** 2) / (2 * 0.5**2)) - 0.8
    crm_interaction = 0.9 * tech["tech_crm"] * _crm_affine(firms.industry)
    return (
        np.array([INDUSTRIES[i][3] for i in INDUSTRY_NAMES])[firms.industry]
        + np.array([COUNTRIES[c][1] for c in COUNTRY_NAMES])[firms.country]
        + sweet_spot
        + crm_interaction
        + 0.4 * tech["tech_marketing_automation"]
        - 0.5 * tech["tech_legacy_erp"]
        + 0.25 * rng.standard_normal(len(log_emp))
        - 1.0
    )


@dataclass
class Traps:
    """Accounts that fool a hand-tuned scorecard."""

    kind: np.ndarray  # codes into TRAP_TYPES
    email_autoopen: np.ndarray  # mail gateway opens and clicks every e-mail


def place_traps(
    rng: np.random.Generator, config: WorldConfig, firms: Firmographics, fit_logit: np.ndarray
) -> tuple[Firmographics, np.ndarray, Traps]:
    """Turn a share of accounts into no-fit traps; returns new firmographics, fit logit, traps.

    Students look like small education accounts, competitors like software, vendors' staff like
    professional services; all lose 4 logits of fit.
    """
    n = len(fit_logit)
    industry, employees, fit_logit = firms.industry.copy(), firms.employees.copy(), fit_logit.copy()
    trap = np.zeros(n, dtype=np.int8)
    trapped = rng.random(n) < config.trap_no_fit_share
    trap[trapped] = rng.choice([1, 2, 3], size=trapped.sum(), p=[0.4, 0.35, 0.25])
    industry[trap == 1] = INDUSTRY_NAMES.index("education")
    employees[trap == 1] = np.clip(
        np.round(np.exp(np.log(30) + 1.0 * rng.standard_normal((trap == 1).sum()))), 1, None
    )
    industry[trap == 2] = INDUSTRY_NAMES.index("software")
    industry[trap == 3] = INDUSTRY_NAMES.index("professional_services")
    fit_logit[trap > 0] -= 4.0
    autoopen = (rng.random(n) < config.trap_email_autoopen_share) & (trap == 0)
    return replace(firms, industry=industry, employees=employees), fit_logit, Traps(trap, autoopen)


def account_ids(first_account: int, n: int) -> np.ndarray:
    """Account ids ``A0000000``... of a chunk starting at account number ``first_account``."""
    return np.array([f"A{first_account + i:07d}" for i in range(n)], dtype=object)


@dataclass
class Missing:
    """Which firmographics the data provider does not know."""

    employees: np.ndarray
    revenue: np.ndarray
    industry: np.ndarray
    country: np.ndarray
    founded_year: np.ndarray


def draw_missing(rng: np.random.Generator, employees: np.ndarray) -> Missing:
    """Realistic missingness; revenue is missing more often for small companies."""
    n = len(employees)
    return Missing(
        employees=rng.random(n) < 0.08,
        revenue=rng.random(n) < (0.12 + 0.15 * (employees < 50)),
        industry=rng.random(n) < 0.04,
        country=rng.random(n) < 0.03,
        founded_year=rng.random(n) < 0.15,
    )


_NAME_HEADS = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Blue Sun",
    "Monarch",
    "Nakatomi",
    "Oceanic",
    "Pied Piper",
    "Sterling",
    "Virtucon",
    "Wernham",
    "Zorg",
    "Dunder",
    "Prestige",
    "Massive",
    "Octan",
    "Rekall",
    "Sirius",
    "Tessier",
    "Nordlicht",
    "Rivera",
    "Lumen",
    "Kestrel",
)
_NAME_TAILS = (
    "Systems",
    "Labs",
    "Holdings",
    "Analytics",
    "Group",
    "Industries",
    "Partners",
    "Software",
    "Logistics",
    "Health",
    "Capital",
    "Media",
    "Works",
    "Networks",
    "Foods",
    "Robotics",
)
_NAME_FORMS = ("Inc.", "Ltd", "GmbH", "SAS", "LLC", "B.V.", "Pty Ltd", "")


def company_names(rng: np.random.Generator, n: int) -> list[str]:
    """Made-up company names such as ``Acme Labs 42 GmbH``."""
    heads = rng.integers(0, len(_NAME_HEADS), n)
    tails = rng.integers(0, len(_NAME_TAILS), n)
    forms = rng.integers(0, len(_NAME_FORMS), n)
    numbers = rng.integers(1, 1000, n)
    return [
        f"{_NAME_HEADS[h]} {_NAME_TAILS[t]} {num} {_NAME_FORMS[f]}".strip()
        for h, t, f, num in zip(heads, tails, forms, numbers, strict=True)
    ]


def lifecycle_stage(
    last_state: np.ndarray,
    ever_opportunity: np.ndarray,
    last_activity: np.ndarray,
    n_contacts: np.ndarray,
    clock: Clock,
) -> np.ndarray:
    """CRM lifecycle stage at the export date (codes into LIFECYCLE_STAGES): leakage bait."""
    engaged_recently = last_activity >= clock.end - 13 * WEEK
    return np.select(
        [
            last_state == CUSTOMER,
            last_state == DEAL,
            ever_opportunity,
            engaged_recently,
            n_contacts > 0,
        ],
        [0, 1, 2, 3, 4],
        5,
    )


def accounts_table(
    ids: np.ndarray,
    names: list[str],
    firms: Firmographics,
    missing: Missing,
    lifecycle: np.ndarray,
    last_activity: np.ndarray,
) -> pa.Table:
    """The ``accounts`` contract table (``last_activity`` < 0 means never active)."""
    return pa.table(
        {
            "account_id": pa.array(ids, pa.string()),
            "name": pa.array(names, pa.string()),
            "industry": dictionary(firms.industry, INDUSTRY_NAMES, mask=missing.industry),
            "employees": pa.array(firms.employees.astype(np.int64), mask=missing.employees),
            "annual_revenue": pa.array(firms.revenue, mask=missing.revenue),
            "country": dictionary(firms.country, COUNTRY_NAMES, mask=missing.country),
            "founded_year": pa.array(
                firms.founded_year.astype(np.int64), mask=missing.founded_year
            ),
            **{flag: pa.array(firms.tech[flag]) for flag in TECH_FLAGS},
            "lifecycle_stage": dictionary(lifecycle, LIFECYCLE_STAGES),
            "last_activity_at": timestamps(last_activity, mask=last_activity < 0),
        }
    )
