"""X Education "Lead Scoring" (Leads.csv): one row per lead, Converted 1 / 0, no dates.

The only change is that "Select" (a drop-down left unanswered on the web form) becomes missing
in every text column. Every other column is kept as exported, including the fields sales staff
fill in while working the lead (Tags, Lead Quality, Last Activity, Last Notable Activity, the
Asymmetrique indices and scores): they leak the outcome and are left for the leakage screen to
catch. With no dates there is no point-in-time rule the adapter could apply.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from propensity.data.adapters.source import TableSource, read_csv

__all__ = ["lead_table", "x_education_leads"]

NAME = "x_education"
ID, LABEL, LEAD_NUMBER = "Prospect ID", "Converted", "Lead Number"
UNANSWERED = "Select"

DESCRIPTION = (
    "One row per lead of X Education, an Indian online-education company (B2C), with web "
    "engagement (visits, time on site, page views), lead origin and source, and the answers "
    "to the sign-up form. The label Converted (1 = the lead became a paying student, 0 = not) "
    "comes with the export; there are no open rows and no dates, so no row time and no "
    "point-in-time rule can be applied by the adapter. 'Select' (an unanswered drop-down) is "
    "made missing; nothing else is changed. Tags, Lead Quality, Last Activity, Last Notable "
    "Activity and the Asymmetrique columns are filled in by sales staff while or after working "
    "the lead and leak the outcome; they are kept for the leakage screen to catch. Lead "
    "Number is a second identifier, never a feature."
)


def _is_text(s: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(s.dtype) or s.dtype == object


def _lead_table(leads: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    missing = [c for c in (ID, LABEL) if c not in leads.columns]
    if missing:
        raise ValueError(f"leads lack column(s) {', '.join(missing)}")
    frame = leads.copy()
    stripped = {c: c.strip() for c in frame.columns if c != c.strip()}
    notes = []
    if stripped:
        frame = frame.rename(columns=stripped)
        notes.append(f"whitespace stripped from {len(stripped)} column names")
    if frame[ID].isna().any() or frame[ID].duplicated().any():
        raise ValueError(f"leads: {ID!r} must be present and unique")
    counts = {}
    for column in frame.columns:
        if column in (ID, LABEL) or not _is_text(frame[column]):
            continue
        select = (frame[column] == UNANSWERED).to_numpy()
        if select.any():
            frame[column] = frame[column].mask(select)
            counts[column] = int(select.sum())
    if counts:
        detail = ", ".join(f"{c} {n:,}" for c, n in counts.items())
        notes.append(
            f"{sum(counts.values()):,} cells {UNANSWERED!r} (unanswered drop-down) made missing: "
            f"{detail}"
        )
    notes.append(
        "Tags, Lead Quality, Last Activity, Last Notable Activity and the Asymmetrique columns "
        "kept unchanged (post-outcome fields, for the leakage screen to catch)"
    )
    return frame.reset_index(drop=True), notes


def lead_table(leads: pd.DataFrame) -> pd.DataFrame:
    """``leads`` (Leads.csv as a frame) with "Select" made missing in every text column.

    All columns and rows are kept, in input order, with a fresh RangeIndex. ValueError when
    "Prospect ID" or "Converted" is absent, or "Prospect ID" is missing or duplicated.
    """
    return _lead_table(leads)[0]


def x_education_leads(real_dir: Path | str | None = None) -> TableSource:
    """The X Education leads (see :func:`lead_table`) as a TableSource, Converted 1 vs 0."""
    frame, notes = _lead_table(read_csv(NAME, "Leads.csv", real_dir))
    return TableSource(
        name=NAME,
        frame=frame,
        id_column=ID,
        label_column=LABEL,
        positive=("1",),
        negative=("0",),
        time_column=None,
        identifiers=(LEAD_NUMBER,) if LEAD_NUMBER in frame.columns else (),
        description=DESCRIPTION,
        notes=tuple(notes),
    )
