"""Small SQL helpers for the DuckDB feature engine."""

from __future__ import annotations

import re


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def slug(value: str) -> str:
    """A column-name-safe version of a data value ('Pricing Page' -> 'pricing_page')."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", value.strip().lower()).strip("_")
    return text or "blank"


# The point-in-time comparison every family uses: a row stamped ``t`` is known at snapshot
# ``as_of`` iff ``t < as_of``. One seam, so the leakage tests can prove they catch an inclusive
# cutoff (they set it to "<=" and expect differences).
KNOWN_BEFORE = "<"


def known_at(timestamp: str, as_of: str) -> str:
    """SQL condition: the row stamped ``timestamp`` is known at ``as_of`` (strictly before)."""
    return f"({timestamp} {KNOWN_BEFORE} {as_of})"
