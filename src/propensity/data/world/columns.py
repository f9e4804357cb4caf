"""Arrow columns shared by the table builders: dictionary-coded names and timestamps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def dictionary(
    codes: np.ndarray, names: Sequence[str] | np.ndarray, mask: np.ndarray | None = None
) -> pa.Array:
    """Codes into ``names`` as a dictionary array (``mask`` marks missing values)."""
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(names), pa.string()))


def timestamps(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """Unix seconds as a microsecond timestamp array (``mask`` marks missing values)."""
    return pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]"), mask=mask)
