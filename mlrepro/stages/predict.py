"""predict: validate input rows against the stored schema, reorder, predict.

Works on one chunk at a time; ``mlrepro.batch`` streams chunks in and out.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, PredictionRejected
from ..safe_text import strip_values
from ..transformers import missing_columns_error

ON_INVALID = ("fail", "skip", "quarantine")
MAX_REASONS = 5


@dataclass
class Contract:
    """What a fitted pipeline expects: ordered input columns and their schema."""

    input_columns: list[str]
    schema_yaml: str
    model_fingerprint: str
    id_columns: list[str] = field(default_factory=list)  # passed through when present
    task: str = "regression"
    classes: list[Any] | None = None
    _schema: Any = None

    def schema(self) -> Any:
        if self._schema is None:
            self._schema = validation_schema(self.schema_yaml, self.input_columns)
        return self._schema


def _finite(series: pd.Series) -> pd.Series:
    # text that is not a number is the dtype check's business ("wrong type"), not ours
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(~np.isinf(values), index=series.index)


def validation_schema(schema_yaml: str, columns: list[str]) -> Any:
    """The stored snapshot schema, restricted to the model's inputs, tolerant of int/float."""
    import pandera.pandas as pa

    stored = pa.DataFrameSchema.from_yaml(schema_yaml)
    cols = {}
    for name in columns:
        col = stored.columns.get(name)
        if col is None:
            continue
        dtype = str(col.dtype)
        if any(t in dtype for t in ("int", "float")):
            cols[name] = pa.Column(
                "float64",
                nullable=col.nullable,
                coerce=True,
                checks=[pa.Check(_finite, error="finite (no inf values)")],
            )
        elif "bool" in dtype:
            cols[name] = pa.Column(dtype, nullable=col.nullable, coerce=True)
        else:
            cols[name] = pa.Column(None, nullable=col.nullable, checks=col.checks)
    return pa.DataFrameSchema(cols, strict=False)


def _rule(check: Any) -> str:
    text = str(check)
    if text == "not_nullable":
        return "missing value where the training data had none"
    if text.startswith("isin"):
        return "unseen category (not seen in training)"
    if text.startswith("coerce_dtype") or text.startswith("dtype"):
        return f"wrong type, expected {text.split('(', 1)[-1].rstrip(')')}"
    if "finite" in text:
        return "infinite value"
    return text[:60]


def invalid_rows(chunk: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, dict[int, str]]:
    """Coerced chunk and {row position: reason}; reasons name column and rule, never values."""
    import pandera.errors as pe

    try:
        return contract.schema().validate(chunk, lazy=True), {}
    except pe.SchemaErrors as exc:
        cases = exc.failure_cases
    reasons: dict[int, str] = {}
    positions = {label: i for i, label in enumerate(chunk.index)}
    for _, case in cases.iterrows():
        idx = case.get("index")
        rule = _rule(case.get("check"))
        col = case.get("column")
        if idx is None or (isinstance(idx, float) and np.isnan(idx)):
            raise DataError(f"column '{col}': {rule}", hint="fix the input column's type")
        pos = positions.get(idx, idx)
        reasons.setdefault(int(pos), f"column '{col}': {rule}")
    # re-validate the valid rows so the returned frame is coerced
    bad = sorted(reasons)
    good = chunk.drop(index=chunk.index[bad])
    with contextlib.suppress(pe.SchemaErrors):
        good = contract.schema().validate(good, lazy=True)
    return good, reasons


def describe(reasons: dict[int, str], offset: int = 0) -> str:
    items = sorted(reasons.items())[:MAX_REASONS]
    text = "; ".join(f"row {offset + r}: {why}" for r, why in items)
    more = len(reasons) - len(items)
    return text + (f"; ... and {more} more" if more > 0 else "")


def check_columns(columns: list[str], contract: Contract) -> list[str]:
    """Error on missing columns; return the extra ones (ignored, with a warning)."""
    missing = [c for c in contract.input_columns if c not in columns]
    if missing:
        raise missing_columns_error(missing, columns, "prediction input")
    known = set(contract.input_columns) | set(contract.id_columns)
    return [c for c in columns if c not in known]


def predict_chunk(
    pipeline: Any,
    chunk: pd.DataFrame,
    contract: Contract,
    *,
    on_invalid: str = "fail",
    keep: list[str] | tuple[str, ...] = (),
    offset: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Predict one chunk; returns (predictions, rejected rows with reasons or None)."""
    chunk = chunk.reset_index(drop=True)
    X = chunk[contract.input_columns]
    valid, reasons = invalid_rows(X, contract)
    if reasons and on_invalid == "fail":
        raise PredictionRejected(
            f"{len(reasons)} input row(s) are invalid: {describe(reasons, offset)}",
            hint="fix the rows, or use --on-invalid skip|quarantine to predict the rest",
        )
    ok = np.ones(len(chunk), dtype=bool)
    ok[list(reasons)] = False
    rejected = None
    if reasons and on_invalid == "quarantine":
        rejected = chunk.loc[~ok].copy()
        rejected.insert(0, "row", np.flatnonzero(~ok) + offset)
        rejected["reason"] = [reasons[i] for i in np.flatnonzero(~ok)]
    out = pd.DataFrame(index=np.flatnonzero(ok))
    for col in [*contract.id_columns, *keep]:
        if col in chunk.columns and col not in out.columns:
            out[col] = chunk.loc[ok, col].to_numpy()
    if ok.any():
        try:
            out["prediction"] = pipeline.predict(valid)
            if contract.task == "classification" and hasattr(pipeline, "predict_proba"):
                proba = pipeline.predict_proba(valid)
                for j, cls in enumerate(pipeline.classes_):
                    out[f"proba_{cls}"] = proba[:, j]
        except ValueError as exc:
            msg = strip_values(exc)
            if "unknown categor" in msg.lower():
                msg = "unseen category in a one-hot encoded column"
            raise PredictionRejected(
                f"the model rejected the input: {msg}",
                hint="check the input against the training schema (mlrepro status --json)",
            ) from None
    else:
        out["prediction"] = pd.Series(dtype="float64")
    out["model_fingerprint"] = contract.model_fingerprint
    out.index = out.index + offset
    out.index.name = None
    return out.reset_index(drop=True), rejected
