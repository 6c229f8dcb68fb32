"""Checks of the training data that name the column, the rows and the rule, never values.

Without them a scaler fails with "Input X contains infinity" (which column?) and a
constant or empty column is silently learned from (it carries no information).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlrepro.errors import DataError

MAX_ROWS_SHOWN = 5


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_SHOWN])
    return shown + (f" and {len(rows) - MAX_ROWS_SHOWN} more" if len(rows) > MAX_ROWS_SHOWN else "")


def _infinite(series: pd.Series) -> np.ndarray | None:
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return None
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    return np.isinf(values)


def check_inputs(X: pd.DataFrame, train: np.ndarray) -> None:
    """Refuse feature inputs with infinite values, or empty or constant on the training rows.

    Row numbers are 0-based positions in the snapshot (which is in ``order_by`` order).
    """
    for col in X.columns:
        series = X[col]
        inf = _infinite(series)
        if inf is not None and inf.any():
            raise DataError(
                f"column '{col}' has {int(inf.sum())} infinite value(s) (rows {_rows(inf)})",
                hint=f"replace or filter them in source.query (e.g. NULLIF) so '{col}' holds "
                "finite numbers or NULL",
            )
        fit_rows: Any = series[train]
        if len(fit_rows) and fit_rows.isna().all():
            raise DataError(
                f"column '{col}' has no values: all {len(fit_rows)} training rows are missing",
                hint=f"leave '{col}' out of source.query, or fix the data",
            )
        if len(fit_rows) > 1 and fit_rows.notna().all() and fit_rows.nunique() == 1:
            raise DataError(
                f"column '{col}' has the same value in all {len(fit_rows)} training rows "
                "(a constant carries no information)",
                hint=f"leave '{col}' out of source.query",
            )
