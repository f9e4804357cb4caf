"""Maven Analytics "CRM Sales Opportunities": a deal table for table mode, and canonical tables.

Source files (``maven_crm_sales_opportunities/``): ``sales_pipeline.csv`` (one row per deal:
opportunity_id, sales_agent, product, account, deal_stage, engage_date, close_date,
close_value), ``accounts.csv``, ``sales_teams.csv``, ``products.csv``. Deal stages run
Prospecting > Engaging > Won / Lost; Prospecting deals have no dates.

Raw quirks handled: product "GTXPro" in the pipeline is "GTX Pro" in products.csv; sector
"technolgy" is "technology"; blank accounts (all on open deals) stay missing. Account
``revenue`` is in millions of USD (data_dictionary.csv).

Point-in-time rule of the history features: for a deal engaged on day ``e``, only deals whose
``close_date < e`` (strictly: a deal closed on ``e`` itself is not counted) contribute outcomes,
and open deals are those engaged strictly before ``e`` and not closed before ``e``. A deal's own
close_date and deal_stage never feed its features (its close_date is never before its
engage_date).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from propensity.data.adapters.source import TableSource, date_column, number_column, read_csv
from propensity.data.contract import Tables, validate_tables
from propensity.data.parse import parse_text

__all__ = ["contract_tables", "deal_table", "maven_deals", "maven_tables"]

log = logging.getLogger(__name__)

NAME = "maven"
PRODUCT_FIXES = {"GTXPro": "GTX Pro"}
SECTOR_FIXES = {"technolgy": "technology"}
WON, LOST = "Won", "Lost"

PIPELINE_COLUMNS = (
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
)
ACCOUNT_COLUMNS = (
    "account",
    "sector",
    "year_established",
    "revenue",
    "employees",
    "office_location",
    "subsidiary_of",
)
TEAM_COLUMNS = ("sales_agent", "manager", "regional_office")
PRODUCT_COLUMNS = ("product", "series", "sales_price")
HISTORY_COLUMNS = (
    "account_prior_closed",
    "account_prior_won",
    "account_prior_win_rate",
    "account_days_since_last_close",
    "account_open_deals",
    "agent_prior_closed",
    "agent_prior_won",
    "agent_prior_win_rate",
    "product_prior_win_rate",
)

DESCRIPTION = (
    "One row per deal of the Maven Analytics CRM sample (a fictitious computer-hardware "
    "company) that reached the Engaging stage, i.e. has an engage_date (the row's time). "
    "The label is the CRM's deal_stage: Won is positive, Lost negative, Engaging deals are "
    "still open and are scored, never trained. Sales team, product and account attributes "
    "are joined from the reference files (account revenue in millions of USD). close_date, "
    "close_value and the analyst-style days_to_close are kept as a real export has them: "
    "they are filled in only when the deal closes and are left for the leakage screen to "
    "catch. The history features (account_*, agent_*, product_prior_win_rate) use only deals "
    "whose close_date is strictly before this deal's engage_date (a deal closed that same "
    "day does not count); account_open_deals counts the account's other deals engaged "
    "strictly before and not closed before that date."
)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(missing)}")


def _counts(values: pd.Series) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in values.value_counts(dropna=False).items())


def _clean_pipeline(pipeline: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Typed pipeline with the product fix; checks ids unique and no close before engage."""
    _require(pipeline, PIPELINE_COLUMNS, "sales_pipeline")
    p = pipeline.loc[:, list(PIPELINE_COLUMNS)].copy()
    for column in ("opportunity_id", "sales_agent", "product", "account", "deal_stage"):
        p[column] = parse_text(p[column]).values
    notes = []
    p["product"] = _fix_values(
        p["product"], PRODUCT_FIXES, "product renamed {} on {:,} deals to match products", notes
    )
    p["engage_date"] = date_column(p, "engage_date", "sales_pipeline")
    p["close_date"] = date_column(p, "close_date", "sales_pipeline")
    p["close_value"] = number_column(p, "close_value", "sales_pipeline")
    duplicated = p["opportunity_id"].duplicated(keep=False) & p["opportunity_id"].notna()
    if duplicated.any() or p["opportunity_id"].isna().any():
        raise ValueError(
            f"opportunity_id must be unique and present: {int(duplicated.sum())} duplicated, "
            f"{int(p['opportunity_id'].isna().sum())} missing"
        )
    early = (p["close_date"] < p["engage_date"]).to_numpy()
    if early.any():
        examples = ", ".join(p.loc[early, "opportunity_id"].head(5))
        raise ValueError(f"{int(early.sum())} deals close before they engage, e.g. {examples}")
    return p, notes


def _fix_values(values: pd.Series, fixes: dict[str, str], note: str, notes: list[str]) -> pd.Series:
    """Replace known misspellings; append ``note`` (fixes, count) to ``notes`` when any was found."""
    fixed = values.isin(list(fixes))
    if not fixed.any():
        return values
    notes.append(
        note.format(", ".join(f"{a!r} -> {b!r}" for a, b in fixes.items()), int(fixed.sum()))
    )
    return values.replace(fixes)


def _clean_accounts(accounts: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    _require(accounts, ACCOUNT_COLUMNS, "accounts")
    a = accounts.loc[:, list(ACCOUNT_COLUMNS)].copy()
    for column in ("account", "sector", "office_location", "subsidiary_of"):
        a[column] = parse_text(a[column]).values
    a = a[a["account"].notna()]
    if a["account"].duplicated().any():
        raise ValueError("accounts: account names must be unique")
    notes: list[str] = []
    a["sector"] = _fix_values(
        a["sector"], SECTOR_FIXES, "sector typo fixed {} on {:,} accounts", notes
    )
    return a.reset_index(drop=True), notes


def _prior_history(
    key: pd.Series, engage: pd.Series, close: pd.Series, won: np.ndarray
) -> dict[str, np.ndarray]:
    """What was known, at each row's engage date, about the deals sharing the row's key.

    ``closed``: deals of the key with close < engage (strict); ``won``: how many of those were
    won; ``last_close``: the latest such close (NaT when none); ``open``: deals of the key
    engaged strictly before and not closed before (assumes close >= engage for every deal).
    Rows with a missing key get NaN (NaT). Exact, O(n log n): one composite integer
    (key code, date rank) per deal, sorted, queried with searchsorted.
    """
    code, _ = pd.factorize(key, use_na_sentinel=True)
    has_key = code >= 0
    e = engage.to_numpy(dtype="datetime64[us]")
    c = close.to_numpy(dtype="datetime64[us]")
    is_closed = has_key & ~np.isnat(c)
    times = np.unique(np.concatenate([e, c[is_closed]]))
    stride = len(times) + 1
    base = code.astype(np.int64)[has_key] * stride
    query = base + np.searchsorted(times, e[has_key])

    closed_key = code.astype(np.int64)[is_closed] * stride + np.searchsorted(times, c[is_closed])
    order = np.argsort(closed_key, kind="stable")
    closed_key = closed_key[order]
    closed_time = c[is_closed][order]
    cum_won = np.concatenate([[0], np.cumsum(won[is_closed][order].astype(np.int64))])
    start = np.searchsorted(closed_key, base, side="left")
    stop = np.searchsorted(closed_key, query, side="left")
    n_closed = stop - start
    n_won = cum_won[stop] - cum_won[start]
    last = np.full(len(query), np.datetime64("NaT"), dtype="datetime64[us]")
    seen = n_closed > 0
    last[seen] = closed_time[stop[seen] - 1]

    engaged_key = np.sort(query)
    n_engaged = np.searchsorted(engaged_key, query, side="left") - np.searchsorted(
        engaged_key, base, side="left"
    )

    def spread(values: np.ndarray, fill) -> np.ndarray:
        out = np.full(len(code), fill, dtype=np.asarray(values).dtype)
        out[has_key] = values
        return out

    return {
        "closed": spread(n_closed.astype("float64"), np.nan),
        "won": spread(n_won.astype("float64"), np.nan),
        "last_close": spread(last, np.datetime64("NaT")),
        "open": spread((n_engaged - n_closed).astype("float64"), np.nan),
    }


def _rate(won: np.ndarray, closed: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(closed > 0, won / np.where(closed > 0, closed, 1), np.nan)


def _history_features(deals: pd.DataFrame) -> pd.DataFrame:
    """The HISTORY_COLUMNS for typed deals with an engage_date (see the module docstring)."""
    won = (deals["deal_stage"] == WON).to_numpy()
    engage, close = deals["engage_date"], deals["close_date"]
    account = _prior_history(deals["account"], engage, close, won)
    agent = _prior_history(deals["sales_agent"], engage, close, won)
    product = _prior_history(deals["product"], engage, close, won)
    since = (engage.to_numpy(dtype="datetime64[us]") - account["last_close"]) / np.timedelta64(
        1, "D"
    )
    return pd.DataFrame(
        {
            "account_prior_closed": account["closed"],
            "account_prior_won": account["won"],
            "account_prior_win_rate": _rate(account["won"], account["closed"]),
            "account_days_since_last_close": since,
            "account_open_deals": account["open"],
            "agent_prior_closed": agent["closed"],
            "agent_prior_won": agent["won"],
            "agent_prior_win_rate": _rate(agent["won"], agent["closed"]),
            "product_prior_win_rate": _rate(product["won"], product["closed"]),
        },
        index=deals.index,
    )


def _deal_table(
    pipeline: pd.DataFrame,
    accounts: pd.DataFrame,
    teams: pd.DataFrame,
    products: pd.DataFrame,
) -> tuple[pd.DataFrame, list[str]]:
    p, notes = _clean_pipeline(pipeline)
    a, account_notes = _clean_accounts(accounts)
    notes += account_notes
    _require(teams, TEAM_COLUMNS, "sales_teams")
    _require(products, PRODUCT_COLUMNS, "products")
    t = teams.loc[:, list(TEAM_COLUMNS)].assign(
        sales_agent=lambda f: parse_text(f["sales_agent"]).values
    )
    pr = products.loc[:, list(PRODUCT_COLUMNS)].assign(
        product=lambda f: parse_text(f["product"]).values
    )
    t, pr = t[t["sales_agent"].notna()], pr[pr["product"].notna()]

    undated = p["engage_date"].isna()
    if undated.any():
        notes.append(
            f"{int(undated.sum()):,} deals without engage_date dropped (not yet engaged, no row "
            f"time; deal_stage: {_counts(p.loc[undated, 'deal_stage'])})"
        )
    p = p.loc[~undated].reset_index(drop=True)

    for column, reference, what in (
        ("sales_agent", t["sales_agent"], "sales_teams"),
        ("product", pr["product"], "products"),
        ("account", a["account"], "accounts"),
    ):
        unknown = p[column].notna() & ~p[column].isin(reference)
        if unknown.any():
            notes.append(
                f"{int(unknown.sum()):,} deals whose {column} is not in {what}: its columns stay missing"
            )
    no_account = p["account"].isna()
    if no_account.any():
        notes.append(
            f"{int(no_account.sum()):,} deals without account kept with account columns and "
            f"account_* history missing (deal_stage: {_counts(p.loc[no_account, 'deal_stage'])})"
        )

    frame = (
        p.merge(t, on="sales_agent", how="left", validate="many_to_one")
        .merge(pr, on="product", how="left", validate="many_to_one")
        .merge(a, on="account", how="left", validate="many_to_one")
    )
    frame["days_to_close"] = (frame["close_date"] - frame["engage_date"]) / pd.Timedelta(days=1)
    frame = pd.concat([frame, _history_features(frame)], axis=1)
    lost_values = frame.loc[frame["deal_stage"] == LOST, "close_value"]
    if len(lost_values) and (lost_values == 0).all():
        notes.append("close_value is 0 on every Lost deal (revenue realised, not deal size)")
    notes.append(
        "close_date, close_value and days_to_close are outcome fields kept on purpose "
        "(leaks for the leakage screen to catch)"
    )
    columns = [
        "opportunity_id",
        "deal_stage",
        "engage_date",
        "close_date",
        "close_value",
        "days_to_close",
        "sales_agent",
        "manager",
        "regional_office",
        "product",
        "series",
        "sales_price",
        *ACCOUNT_COLUMNS,
        *HISTORY_COLUMNS,
    ]
    return frame.loc[:, columns].reset_index(drop=True), notes


def deal_table(
    pipeline: pd.DataFrame,
    accounts: pd.DataFrame,
    teams: pd.DataFrame,
    products: pd.DataFrame,
) -> pd.DataFrame:
    """One row per deal with an engage_date, joined and with point-in-time history features.

    Inputs are the four Maven files as frames (dates as ISO text or datetime64). Output: the
    pipeline columns (engage_date / close_date datetime64, close_value float), days_to_close,
    manager, regional_office, series, sales_price, the account columns (sector fixed; missing
    for a blank account) and HISTORY_COLUMNS, in pipeline order with a fresh RangeIndex.
    History uses only deals closed strictly before the row's engage_date (module docstring).
    ValueError on duplicate opportunity_id, a close before engage, or missing columns.
    """
    return _deal_table(pipeline, accounts, teams, products)[0]


def maven_deals(real_dir: Path | str | None = None) -> TableSource:
    """The Maven deal table (see :func:`deal_table`) as a TableSource: Won vs Lost, Engaging open."""
    frame, notes = _deal_table(
        read_csv(NAME, "sales_pipeline.csv", real_dir),
        read_csv(NAME, "accounts.csv", real_dir),
        read_csv(NAME, "sales_teams.csv", real_dir),
        read_csv(NAME, "products.csv", real_dir),
    )
    return TableSource(
        name=NAME,
        frame=frame,
        id_column="opportunity_id",
        label_column="deal_stage",
        positive=(WON,),
        negative=(LOST,),
        time_column="engage_date",
        identifiers=(),
        description=DESCRIPTION,
        notes=tuple(notes),
    )


def _contract_frames(
    pipeline: pd.DataFrame, accounts: pd.DataFrame
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    p, notes = _clean_pipeline(pipeline)
    a, account_notes = _clean_accounts(accounts)
    notes += account_notes
    undated = p["engage_date"].isna()
    no_account = ~undated & p["account"].isna()
    if undated.any():
        notes.append(f"{int(undated.sum()):,} deals without engage_date dropped")
    if no_account.any():
        notes.append(f"{int(no_account.sum()):,} engaged deals without account dropped")
    p = p.loc[~undated & ~no_account]
    stage = p["deal_stage"]
    account_table = pd.DataFrame(
        {
            "account_id": a["account"],
            "name": a["account"],
            "industry": a["sector"],
            "employees": a["employees"],
            "annual_revenue": number_column(a, "revenue", "accounts") * 1e6,  # millions -> USD
            "country": a["office_location"],
            "founded_year": a["year_established"],
            "subsidiary_of": a["subsidiary_of"],
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": p["opportunity_id"],
            "account_id": p["account"],
            "created_at": p["engage_date"],
            "closed_at": p["close_date"],
            "outcome": np.select([stage == WON, stage == LOST], ["won", "lost"], "open"),
            "amount": p["close_value"].where(stage.isin([WON, LOST])),
            "type": "new_business",
        }
    ).reset_index(drop=True)
    return {"accounts": account_table, "opportunities": opportunities}, notes


def contract_tables(pipeline: pd.DataFrame, accounts: pd.DataFrame) -> Tables:
    """Canonical, validated ``accounts`` and ``opportunities`` from the Maven pipeline/accounts.

    accounts: account_id = name = the account name, industry = sector (typo fixed), employees,
    annual_revenue = revenue x 1e6 (USD), country = office_location, founded_year =
    year_established, plus subsidiary_of (an extra, export-only column). opportunities:
    opportunity_id, account_id, created_at = engage_date, closed_at = close_date, outcome
    won / lost / open (Engaging), amount = close_value of closed deals (0 on Lost deals in the
    raw data; missing when open), type new_business. Deals without engage_date or account are
    dropped (counts logged). Raises propensity.data.contract.ContractError if the result is invalid.
    """
    frames, notes = _contract_frames(pipeline, accounts)
    for note in notes:
        log.info("maven contract tables: %s", note)
    return validate_tables(frames)


def maven_tables(real_dir: Path | str | None = None) -> Tables:
    """:func:`contract_tables` of the Maven files under ``real_dir``."""
    return contract_tables(
        read_csv(NAME, "sales_pipeline.csv", real_dir),
        read_csv(NAME, "accounts.csv", real_dir),
    )
