"""Checks of the training data that name the column, the rows and the rule, never values.

Without them a scaler fails with "Input X contains infinity" (which column?) and an
empty column is silently learned from. A constant column is not an error (scikit-learn and
the boosting libraries handle it; a ``month`` column is constant when as_of covers one
month): it is a warning, recorded in the lock and the model card.
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


def check_inputs(X: pd.DataFrame, train: np.ndarray) -> list[str]:
    """Refuse feature inputs with infinite values or empty on the training rows; return
    warnings for inputs that are constant on them.

    Row numbers are 0-based positions in the snapshot (which is in ``order_by`` order).
    """
    warnings: list[str] = []
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
            warnings.append(
                f"column '{col}' has the same value in all {len(fit_rows)} training rows: a "
                "constant carries no information (leave it out of source.query, or widen "
                "as_of's range, if the model should learn from it)"
            )
    return warnings


def id_like(name: str, keys: tuple[str, ...] | list[str]) -> bool:
    """A unique key of the source, or a column named like one (``id``, ``*_id``, ``*Id``)."""
    text = str(name)
    return (
        text in keys
        or text.lower() == "id"
        or text.lower().endswith("_id")
        or (text.endswith("Id") and len(text) > 2)
    )


def id_feature_warnings(features: list[str], keys: tuple[str, ...] | list[str]) -> list[str]:
    """Warnings for model features that look like row identifiers."""
    return [
        f"model feature '{f}' looks like a row identifier (a unique key or a column named "
        "*_id): the model may learn the row numbering, which does not generalise; leave it "
        "out of source.query or of the feature steps unless it carries meaning"
        for f in features
        if id_like(f, keys)
    ]
