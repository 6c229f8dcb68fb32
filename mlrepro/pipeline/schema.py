"""The snapshot schema stored with every snapshot: pandera's YAML format, written here.

The text is built from the streamed summary (``pipeline.extract``) without importing pandera
or pandas, and is the same in every environment: ``DataFrameSchema.to_yaml`` renders dtypes
through the installed pandas and pandera (``str`` became ``string[pyarrow]`` with pandas 3,
naive ``datetime64[us]`` becomes ``datetime64[ns]``), so the schema artifact, and with it the
lock, would differ between a research and a production environment. Readers load it with
``pandera.DataFrameSchema.from_yaml`` (``predict.contract``), which gives the very schema
``infer_yaml`` describes (tested against pandera's own object).
"""

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


def schema_document(summary: dict[str, Any], name: str) -> dict[str, Any]:
    """A pandera DataFrameSchema (pandas API) as plain data: dtype, nullability, isin."""
    columns: dict[str, dict[str, Any]] = {}
    for col, s in summary.items():
        spec: dict[str, Any] = {}
        dtype = _pandas_dtype(s.arrow_type, s.nulls > 0)
        if dtype is not None:
            spec["dtype"] = dtype
        if s.nulls > 0:
            spec["nullable"] = True
        if dtype == "str" and s.categories:
            spec["isin"] = sorted(s.categories)
        columns[col] = spec
    return {"schema_type": "dataframe", "api": "pandas", "columns": columns, "name": name}


def infer_yaml(summary: dict[str, Any], name: str) -> str:
    """The schema as YAML, in the layout pandera's ``to_yaml`` writes (not strict, unordered)."""
    import yaml

    return str(yaml.safe_dump(schema_document(summary, name), sort_keys=False))
