"""What a failed contract check reports: :class:`Problem` (table, column, message, count, example
rows) and :class:`ContractError` (every problem found, raised at once)."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MAX_EXAMPLES",
    "ContractError",
    "ContractWarning",
    "Problem",
    "merge_notes",
    "merge_problems",
    "plural",
    "readable",
]

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
    # where the check stands among all checks (table, stage, position), the same in every part
    # of a table: problems merged from parts are listed in the order of one check of the whole
    order: tuple[int, ...] = field(default=(), compare=False, repr=False)

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


# --------------------------------------------------------------------------------------------
# problems found in parts of the tables (an engine that checks each account's rows apart)

# the counts in a message: its leading count, a count in parentheses, a count of dropped rows
_COUNTED = re.compile(r"(^|\(|dropped )(\d+) (\w+)")


def _template(text: str) -> tuple[str, list[tuple[int, str]]]:
    """``text`` with its counts taken out, and the counts with their (singular) nouns."""
    counts: list[tuple[int, str]] = []

    def take(match: re.Match[str]) -> str:
        count, noun = int(match.group(2)), match.group(3)
        counts.append((count, noun[:-1] if count != 1 and noun.endswith("s") else noun))
        return f"{match.group(1)}{{}}"

    return _COUNTED.sub(take, text), counts


def _summed(texts: list[str]) -> str:
    """One text from texts that differ only in their counts: the counts added up."""
    template, counts = _template(texts[0])
    totals = [count for count, _ in counts]
    for text in texts[1:]:
        for i, (count, _) in enumerate(_template(text)[1]):
            totals[i] += count
    return template.format(*(plural(t, noun) for t, (_, noun) in zip(totals, counts, strict=True)))


def _in_order(parts: list[list[Any]]) -> list[Any]:
    """The keys of every part in an order that keeps each part's order (each part lists a
    subset of the checks, in the checks' order); ties by first appearance."""
    first: dict[Any, int] = {}
    after: dict[Any, set[Any]] = {}
    for keys in parts:
        for key in keys:
            first.setdefault(key, len(first))
            after.setdefault(key, set())
        for before, key in zip(keys, keys[1:], strict=False):
            after[key].add(before)
    ordered: list[Any] = []
    waiting = sorted(first, key=first.get)
    while waiting:
        ready = next((k for k in waiting if not after[k] - set(ordered)), waiting[0])
        ordered.append(ready)
        waiting.remove(ready)
    return ordered


def merge_problems(parts: list[list[Problem]]) -> list[Problem]:
    """The problems of the whole tables from those of their parts (each part: some accounts'
    rows, numbered as in the whole table): a row-level problem's counts are added up and its
    examples are the first rows of all parts; a problem without example rows (a missing column)
    is the same in every part and kept once."""
    keyed: list[list[tuple[str, str | None, str]]] = []
    found: dict[tuple[str, str | None, str], list[Problem]] = {}
    for problems in parts:
        keys = []
        for problem in problems:
            text = _template(problem.message)[0] if problem.examples else problem.message
            key = (problem.table, problem.column, text)
            found.setdefault(key, []).append(problem)
            keys.append(key)
        keyed.append(keys)
    merged = []
    for key in sorted(_in_order(keyed), key=lambda k: found[k][0].order):
        same = found[key]
        if not same[0].examples:
            merged.append(same[0])
            continue
        examples = sorted((e for p in same for e in p.examples), key=lambda e: e["row"])
        merged.append(
            Problem(
                same[0].table,
                same[0].column,
                _summed([p.message for p in same]),
                sum(p.count for p in same),
                examples[:MAX_EXAMPLES],
                same[0].order,
            )
        )
    return merged


def merge_notes(parts: list[list[str]]) -> list[str]:
    """Notes on dropped rows from those of the parts (as :func:`merge_problems`)."""
    found: dict[str, list[str]] = {}
    for notes in parts:
        for note in notes:
            found.setdefault(_template(note)[0], []).append(note)
    return [_summed(found[key]) for key in _in_order([[_template(n)[0] for n in p] for p in parts])]
