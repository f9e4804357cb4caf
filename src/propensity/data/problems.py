"""What a failed contract check reports: :class:`Problem` (table, column, message, count, example
rows) and :class:`ContractError` (every problem found, raised at once)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["MAX_EXAMPLES", "ContractError", "ContractWarning", "Problem", "plural", "readable"]

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One failed check: where, what (message includes the count), up to 5 example rows.

    ``column`` is None for table-level problems. Each example is a dict with the 0-based input
    row number under ``"row"`` and the row's identifying and offending values as read.
    """

    table: str
    column: str | None
    message: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        where = f"table {self.table!r}" + (
            f", column {self.column!r}" if self.column is not None else ""
        )
        text = f"{where}: {self.message}"
        if self.examples:
            rows = "; ".join(
                f"row {ex['row']} { ({k: v for k, v in ex.items() if k != 'row'}) }"
                for ex in self.examples
            )
            text += f", e.g. {rows}"
        return text


class ContractError(ValueError):
    """All problems found, each naming table, column, what is wrong, count and example rows."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):  # keep picklable despite the custom __init__
        return (type(self), (self.problems,))


class ContractWarning(UserWarning):
    """Rows dropped by ``unknown_accounts="drop"``."""


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def readable(value: Any) -> Any:
    """A plain, readable Python value for error examples."""
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return value
    if pd.isna(value):
        return None
    if isinstance(value, (pd.Timestamp, datetime.datetime, datetime.date)):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
