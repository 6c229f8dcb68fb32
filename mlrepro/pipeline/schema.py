"""The pandera schema stored with every snapshot (YAML), inferred while streaming."""

from __future__ import annotations

from typing import Any


def _pandas_dtype(arrow_type: Any, has_nulls: bool) -> str | None:
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_integer(t):
        return "float64" if has_nulls else "int64"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float64"
    if pa.types.is_boolean(t):
        return None if has_nulls else "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_timestamp(t):
        return f"datetime64[{t.unit}, {t.tz}]" if t.tz else f"datetime64[{t.unit}]"
    return None


def infer_yaml(summary: dict[str, Any], name: str) -> str:
    """A pandera DataFrameSchema as YAML: dtype, nullability, small category sets."""
    import pandera.pandas as pa

    columns = {}
    for col, s in summary.items():
        dtype = _pandas_dtype(s.arrow_type, s.nulls > 0)
        checks = []
        if dtype == "str" and s.categories:
            checks.append(pa.Check.isin(sorted(s.categories)))
        columns[col] = pa.Column(dtype, nullable=s.nulls > 0, checks=checks or None)
    schema = pa.DataFrameSchema(columns, name=name, strict=False, ordered=False)
    text = schema.to_yaml()
    assert text is not None  # no stream given: pandera returns the text
    return text
