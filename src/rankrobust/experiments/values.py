"""The check every number read from the results database passes (:func:`check_values`).

Accuracies and ratios in [0, 1], effective ranks, norms, singular values, ε, timings ≥ 0,
everything finite (the ranges of :mod:`rankrobust.experiments.schema`), else DataError naming
the table, column and run; ``report`` and ``runs`` read through it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from rankrobust.errors import DataError
from rankrobust.experiments.schema import TEXT_COLUMNS, VALUE_RANGES, scalar_range

_SLACK = 1e-9  # float rounding, e.g. erank / min(m, n) = 1 + 2e-16


def check_values(frame: pd.DataFrame, table: str, path: Path | str) -> pd.DataFrame:
    """``frame`` (rows read from ``table``) unchanged, or DataError naming the first stored
    number that is not a finite number within its range (:data:`VALUE_RANGES`,
    :data:`SCALAR_RANGES`), its table, column and run: a report must not turn an accuracy of 1.7
    or a negative effective rank into a verdict. Text or blobs in a numeric column are refused
    too. One vectorized pass per column."""
    if frame.empty:
        return frame
    ranges = VALUE_RANGES.get(table, {})
    columns = ["value"] if table == "scalars" else [
        c for c in frame.columns
        if c in ranges or (c not in TEXT_COLUMNS and pd.api.types.is_numeric_dtype(frame[c]))
    ]
    everything = (-math.inf, math.inf)
    for col in columns:
        raw = frame[col].to_numpy(dtype=object)  # (R,) as stored: numbers, None, text, bytes
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)  # (R,) NaN: none
        if table == "scalars":
            bounds = np.array([scalar_range(str(n)) for n in frame["name"]], float)
        else:
            bounds = np.array([ranges.get(col, everything)], dtype=float)  # (1, 2), broadcast
        low, high = bounds[:, 0] - _SLACK, bounds[:, 1] + _SLACK
        stored = pd.notna(frame[col]).to_numpy()
        missing = np.isnan(values)
        not_number = stored & missing
        with np.errstate(invalid="ignore"):
            outside = ~missing & ~(np.isfinite(values) & (values >= low) & (values <= high))
        bad = np.flatnonzero(not_number | outside)
        if len(bad):
            i = int(bad[0])
            lo, hi = bounds[i if len(bounds) > 1 else 0]
            name = f"{table}.{col}" if table != "scalars" else f"scalar {str(frame['name'].iloc[i])!r}"
            rid = str(frame["run_id"].iloc[i]) if "run_id" in frame.columns else "?"
            what = ("is not a number" if not_number[i] else "is not finite"
                    if not np.isfinite(values[i]) else f"lies outside [{lo:g}, {hi:g}]")
            shown = repr(raw[i]) if not_number[i] else f"{values[i]:g}"
            raise DataError(f"results database {path}: {name} = {shown} of run {rid} {what}; "
                            "refusing to report it (the file was edited or is corrupt)")
    return frame
