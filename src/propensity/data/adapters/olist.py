"""Olist "Marketing Funnel": one row per marketing qualified lead (MQL), converted yes / no.

Source files (``olist_marketing_funnel/``): ``olist_marketing_qualified_leads_dataset.csv``
(mql_id, first_contact_date, landing_page_id, origin) and ``olist_closed_deals_dataset.csv``
(one row per MQL that became a seller: mql_id, seller_id, sdr_id, sr_id, won_date and the
seller profile filled in by the sales team when the deal closed).

Point-in-time rule: an MQL is known from its first_contact_date with only landing_page_id and
origin. Every closed-deal column is known only once the deal is won; joining them
(``join_closed_deals=True``) adds leaks on purpose, for the leakage screen to catch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from propensity.data.adapters.source import TableSource, date_column, read_csv
from propensity.data.parse import parse_text

__all__ = ["mql_table", "olist_mqls"]

NAME = "olist"
MQL_COLUMNS = ("mql_id", "first_contact_date", "landing_page_id", "origin")
LABEL = "converted"

DESCRIPTION = (
    "One row per marketing qualified lead (MQL) of Olist, a Brazilian marketplace recruiting "
    "sellers (real, anonymised data, Jun 2017 - May 2018). The row's time is "
    "first_contact_date; the only pre-conversion fields are landing_page_id and origin. The "
    "label converted is 'yes' when the mql_id appears in the closed-deals file (the lead "
    "became a seller), else 'no'; there are no open rows. No derived or calendar columns are "
    "added. With join_closed_deals=True every other column of the closed-deals file is "
    "left-joined (seller_id, sdr_id, sr_id, won_date, business_segment, lead_type, "
    "lead_behaviour_profile, has_company, has_gtin, average_stock, business_type, "
    "declared_product_catalog_size, declared_monthly_revenue): these are filled in only when "
    "the deal closes, so they are missing on every non-converted lead and leak the label; "
    "they are there for the leakage screen to catch, not for training."
)


def _share(hits: int, total: int) -> str:
    return f"{hits / total:.1%} ({hits:,} of {total:,})" if total else "n/a (0 MQLs)"


def _mql_table(
    mqls: pd.DataFrame, closed_deals: pd.DataFrame, join_closed_deals: bool
) -> tuple[pd.DataFrame, list[str]]:
    missing = [c for c in MQL_COLUMNS if c not in mqls.columns]
    if missing or "mql_id" not in closed_deals.columns:
        raise ValueError(
            f"MQLs need columns {', '.join(MQL_COLUMNS)} (missing: {', '.join(missing) or 'none'}); "
            "closed deals need mql_id"
        )
    frame = mqls.loc[:, list(MQL_COLUMNS)].copy()
    for column in ("mql_id", "landing_page_id", "origin"):
        frame[column] = parse_text(frame[column]).values
    frame["first_contact_date"] = date_column(frame, "first_contact_date", "MQLs")
    if frame["mql_id"].isna().any() or frame["mql_id"].duplicated().any():
        raise ValueError("MQLs: mql_id must be present and unique")
    deals = closed_deals.copy()
    deals["mql_id"] = parse_text(deals["mql_id"]).values
    if deals["mql_id"].isna().any() or deals["mql_id"].duplicated().any():
        raise ValueError("closed deals: mql_id must be present and unique")
    if "won_date" in deals.columns:
        deals["won_date"] = date_column(deals, "won_date", "closed deals")

    notes = []
    won = frame["mql_id"].isin(deals["mql_id"])
    frame[LABEL] = np.where(won, "yes", "no")
    frame[LABEL] = frame[LABEL].astype("str")
    orphans = ~deals["mql_id"].isin(frame["mql_id"])
    if orphans.any():
        notes.append(f"{int(orphans.sum()):,} closed deals whose mql_id is not an MQL: ignored")
    no_origin = frame["origin"].isna()
    if no_origin.any():
        unknown = int((frame["origin"] == "unknown").sum())
        notes.append(
            f"origin missing on {int(no_origin.sum()):,} MQLs, kept missing "
            f"(distinct from the value 'unknown', on {unknown:,} MQLs)"
        )
    if "won_date" in deals.columns and deals["won_date"].notna().any():
        first_won = deals["won_date"].min().normalize()
        early = (frame["first_contact_date"] < first_won).to_numpy()
        late = ~early & frame["first_contact_date"].notna().to_numpy()
        yes = won.to_numpy()
        notes.append(
            f"the closed-deals file has won_date only from {first_won:%Y-%m-%d}, so conversions "
            f"before that date are invisible: the {int(early.sum()):,} MQLs first contacted "
            f"before it convert at {_share(int(yes[early].sum()), int(early.sum()))} vs "
            f"{_share(int(yes[late].sum()), int(late.sum()))} for later MQLs (early 'no' labels "
            "are unreliable)"
        )
        contact = frame.set_index("mql_id")["first_contact_date"]
        before = deals["won_date"] < deals["mql_id"].map(contact)
        if before.any():
            n = int(before.sum())
            notes.append(
                f"{n:,} closed deal{'s have' if n != 1 else ' has'} won_date before the MQL's "
                "first_contact_date (kept)"
            )
        last_contact, last_won = frame["first_contact_date"].max(), deals["won_date"].max()
        notes.append(
            f"MQLs run to {last_contact:%Y-%m-%d} and won dates to {last_won:%Y-%m-%d}: the "
            "latest MQLs had less time to convert"
        )
    if join_closed_deals:
        extra = [c for c in deals.columns if c != "mql_id"]
        clash = [c for c in extra if c in frame.columns]
        if clash:
            raise ValueError(f"closed-deal columns clash with MQL columns: {', '.join(clash)}")
        frame = frame.merge(deals, on="mql_id", how="left", validate="one_to_one")
        notes.append(
            f"closed-deal columns joined ({', '.join(extra)}): known only after the deal "
            "closes, leaks left for the leakage screen"
        )
    return frame.reset_index(drop=True), notes


def mql_table(
    mqls: pd.DataFrame, closed_deals: pd.DataFrame, join_closed_deals: bool = False
) -> pd.DataFrame:
    """One row per MQL (input order): mql_id, first_contact_date (datetime64), landing_page_id,
    origin (missing stays missing), converted ("yes" when mql_id is in ``closed_deals``, else
    "no"); with ``join_closed_deals`` also every closed-deal column but mql_id, left-joined
    (won_date as datetime64; missing on non-converted MQLs). ValueError on missing columns
    or missing / duplicated mql_id.
    """
    return _mql_table(mqls, closed_deals, join_closed_deals)[0]


def olist_mqls(real_dir: Path | str | None = None, join_closed_deals: bool = False) -> TableSource:
    """The Olist MQL table (see :func:`mql_table`) as a TableSource, converted yes vs no."""
    frame, notes = _mql_table(
        read_csv(NAME, "olist_marketing_qualified_leads_dataset.csv", real_dir),
        read_csv(NAME, "olist_closed_deals_dataset.csv", real_dir),
        join_closed_deals,
    )
    return TableSource(
        name=NAME,
        frame=frame,
        id_column="mql_id",
        label_column=LABEL,
        positive=("yes",),
        negative=None,
        time_column="first_contact_date",
        identifiers=(),
        description=DESCRIPTION,
        notes=tuple(notes),
    )
