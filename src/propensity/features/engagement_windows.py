"""The window counts of the engagement family, in numpy: running totals over ``engagement_daily``.

:mod:`propensity.features.engagement_engine` cuts the days into periods that every window of
every snapshot covers whole or not at all, and counts the events per (account, period); here
each spine row reads a window's sum as the difference of two running totals. Point-in-time
rule: a period counts for ``as_of`` only if it ends before ``as_of`` (every window ends at the
period starting at ``as_of - newest``).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from propensity.features.engagement_engine import MASK_BITS, period_edges
from propensity.features.registry import FeatureConfig


@dataclass(frozen=True)
class WindowSum:
    """A column of ``engagement_daily`` summed over the days ``as_of - oldest <= day < as_of -
    newest`` (its value divided by ``scale``: minutes are summed in thousandths)."""

    name: str
    column: str
    oldest: int
    newest: int = 0
    scale: float = 1.0


def read_daily(
    con: duckdb.DuckDBPyConnection,
    sums: list[WindowSum],
    mask_columns: list[str],
    first_day: bool,
) -> tuple[pa.Table, pa.Table]:
    """What :class:`WindowCounts` reads: the rows of ``engagement_daily`` sorted by (account,
    period), with the columns ``sums`` and the masks need (and ``first_day`` if asked), and the
    spine in ``_row`` order."""
    columns = list(dict.fromkeys([item.column for item in sums] + mask_columns))
    days = "first_day, last_day" if first_day else "last_day"
    daily = con.sql(
        f"SELECT akey, period, {days}, {', '.join(columns)} FROM engagement_daily "
        "ORDER BY akey, period"
    ).to_arrow_table()
    spine = con.sql(
        "SELECT _row, akey, CAST(as_of AS DATE) AS day FROM spine ORDER BY _row"
    ).to_arrow_table()
    return daily, spine


def helper_sums(config: FeatureConfig) -> list[WindowSum]:
    """The counts the SQL features read (``engagement_counts``): the events without a contact
    and all events in the longest window, and the recent and prior counts of every momentum."""
    longest = max(config.windows_days)
    recent, prior = config.momentum_recent_days, config.momentum_prior_days
    weekly = []
    for recent_weeks, prior_weeks in config.momentum_weeks:
        name = f"_eng_momentum_{recent_weeks}w_{prior_weeks}w"
        days = 7 * recent_weeks
        weekly += [
            WindowSum(f"{name}_recent", "n_all", days),
            WindowSum(f"{name}_prior", "n_all", days + 7 * prior_weeks, days),
        ]
    return [
        WindowSum("_no_contact_long", "n_no_contact", longest),
        WindowSum("_events_long", "n_all", longest),
        WindowSum("_recent", "n_all", recent),
        WindowSum("_prior", "n_all", recent + prior, recent),
        *weekly,
    ]


class WindowCounts:
    """Window sums over ``engagement_daily`` per spine row, in ``_row`` order, as floats (a
    count is exact, as a float, up to 2**53). ``daily`` and ``spine`` as :func:`read_daily`
    returns them; numpy only, so it can run while DuckDB works on something else.

    Every window starts and ends on a period boundary, so a window's sum is the difference of
    two running totals: the daily rows are summed cumulatively once, and each spine row reads
    the totals before the period where its window starts and before the one where it ends. No
    period row meets every snapshot that sees it, which is what a grouped SQL sum over the
    expanded rows would do.
    """

    def __init__(
        self, daily: pa.Table, spine: pa.Table, config: FeatureConfig, cuts: np.ndarray
    ) -> None:
        if not np.array_equal(spine.column("_row").to_numpy(), np.arange(spine.num_rows)):
            raise ValueError("WindowCounts needs the spine in _row order")
        self.daily = daily.combine_chunks()  # one chunk per column: numpy reads it as it is
        self.n_rows = spine.num_rows
        self.spine_days = spine.column("day").to_numpy().astype("datetime64[D]")
        edges = period_edges(config)
        # the period of a day is the number of cuts up to it (as in engagement_periods)
        self.accounts = self.daily.column("akey").to_numpy().astype(np.int64)
        periods = self.daily.column("period").to_numpy().astype(np.int64)
        self.spine_accounts = spine.column("akey").to_numpy().astype(np.int64)
        n_accounts = int(max(self.spine_accounts.max(initial=0), self.accounts.max(initial=0)))
        # the daily rows are sorted by (account, period): an account's rows start at
        # first_row, and rows_before[account, period] of them come before the period
        first_row = np.searchsorted(self.accounts, np.arange(n_accounts + 1), side="left")
        rows_before = np.zeros((n_accounts + 1, len(cuts) + 2), dtype=np.int64)
        rows_before[self.accounts, periods + 1] = 1
        np.cumsum(rows_before, axis=1, out=rows_before)
        # per window edge and spine row: the daily rows before the period starting at
        # as_of - edge
        self.positions = {}
        for edge in edges:
            period = np.searchsorted(cuts, self.spine_days - np.timedelta64(edge, "D"), "right")
            self.positions[edge] = (
                first_row[self.spine_accounts] + rows_before[self.spine_accounts, period]
            )

    def sums(self, items: list[WindowSum]) -> dict[str, np.ndarray]:
        """Per item, its window sum for every spine row."""
        out: dict[str, np.ndarray] = {}
        read = self._buffers({e for item in items for e in (item.oldest, item.newest)})
        for name in dict.fromkeys(item.column for item in items):
            windows = [item for item in items if item.column == name]
            self._read(self._column(name), {e for w in windows for e in (w.oldest, w.newest)}, read)
            for item in windows:
                total = np.subtract(read[item.newest], read[item.oldest], dtype=np.float64)
                if item.scale != 1.0:
                    total /= item.scale
                out[item.name] = total
        return out

    def channels(self, mask_columns: list[str], n_channels: int, days: int) -> np.ndarray:
        """Distinct channels with an event in the last ``days`` (edges of the config): a channel
        was reached in the window iff the daily rows with its bit set add up."""
        reached = np.zeros(self.n_rows, dtype=np.float64)
        bits = np.empty(self.daily.num_rows, dtype=np.int64)
        read = self._buffers({0, days})
        for j, mask in enumerate(mask_columns):
            masks = self._column(mask)
            for code in range(j * MASK_BITS, min(n_channels, (j + 1) * MASK_BITS)):
                np.right_shift(masks, code % MASK_BITS, out=bits)
                np.bitwise_and(bits, 1, out=bits)
                self._read(bits, {0, days}, read)
                reached += read[0] > read[days]
        return reached

    def days_since(self) -> np.ndarray:
        """Days since the last day with activity before as_of (all history; NaN: none). The
        last daily row before the period starting at as_of holds it, if it is the same
        account's."""
        if not self.daily.num_rows:
            return np.full(self.n_rows, np.nan)
        before = self.positions[0]
        last = np.maximum(before - 1, 0)
        same = (before > 0) & (self.accounts[last] == self.spine_accounts)
        last_days = self.daily.column("last_day").to_numpy().astype("datetime64[D]")
        since = (self.spine_days - last_days[last]).astype(np.float64)
        return np.where(same, since, np.nan)

    def days_in_episode(self, gap_days: int) -> np.ndarray:
        """Days since the current episode of activity began (NaN: none). An episode is a run of
        active days of one account with no quiet spell over ``gap_days`` between two of them; it
        is current at as_of if its last active day before as_of is at most ``gap_days`` old.
        Two days of one period are at most ``gap_days`` apart (:func:`period_cuts`), so the
        quiet spells that end an episode lie between periods: one period's last day, the next
        one's first."""
        if not self.daily.num_rows:
            return np.full(self.n_rows, np.nan)
        first_days = self.daily.column("first_day").to_numpy().astype("datetime64[D]")
        last_days = self.daily.column("last_day").to_numpy().astype("datetime64[D]")
        gap = np.timedelta64(gap_days, "D")
        starts = np.ones(self.daily.num_rows, dtype=bool)
        starts[1:] = (self.accounts[1:] != self.accounts[:-1]) | (
            first_days[1:] - last_days[:-1] > gap
        )
        # each row's episode began on the first day of the latest starting row up to it
        began = first_days[np.maximum.accumulate(np.where(starts, np.arange(len(starts)), 0))]
        before = self.positions[0]  # the account's rows before the period starting at as_of
        last = np.maximum(before - 1, 0)
        same = (before > 0) & (self.accounts[last] == self.spine_accounts)
        current = same & (self.spine_days - last_days[last] <= gap)
        return np.where(current, (self.spine_days - began[last]).astype(np.float64), np.nan)

    def _column(self, name: str) -> np.ndarray:
        return pc.fill_null(self.daily.column(name), 0).to_numpy()

    def _buffers(self, edges: set[int]) -> dict[int, np.ndarray]:
        """A spine-sized buffer per edge, for :meth:`_read`: reused for every column, as fresh
        memory is what the reads cost most."""
        return {edge: np.empty(self.n_rows, dtype=np.int64) for edge in edges}

    def _read(self, values: np.ndarray, edges: set[int], into: dict[int, np.ndarray]) -> None:
        """Per edge, into ``into[edge]``: for every spine row, the sum of ``values`` over the
        daily rows before the period starting at as_of - edge (the spine is in (as_of, account)
        order: for each as_of the reads move forward)."""
        totals = np.zeros(len(values) + 1, dtype=np.int64)
        np.cumsum(values, out=totals[1:])
        for edge in edges:
            np.take(totals, self.positions[edge], out=into[edge])
