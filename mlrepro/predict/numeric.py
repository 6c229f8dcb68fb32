"""Apply the numeric rule (``mlrepro.core.numbers``) to the numeric input columns of a chunk.

Runs before schema validation, so every way in (CSV and parquet files, queries, the Python
API, serve, stream) refuses the same values: a refused cell makes its row invalid with the
rule as the reason, and the column reaches the schema check as float64.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from mlrepro.core import numbers


@functools.lru_cache(maxsize=64)
def _numeric(schema_yaml: str, columns: tuple[str, ...]) -> tuple[tuple[str, bool], ...]:
    """(column, held integers) for the numeric input columns of a stored schema."""
    import yaml

    doc = yaml.safe_load(schema_yaml) or {}
    stored = doc.get("columns") or {}
    out = []
    for name in columns:
        dtype = str((stored.get(name) or {}).get("dtype") or "")
        if dtype.startswith(("int", "uint", "Int", "UInt")):
            out.append((name, True))
        elif dtype.startswith(("float", "Float")):
            out.append((name, False))
    return tuple(out)


def numeric_columns(contract: Any) -> tuple[tuple[str, bool], ...]:
    return _numeric(contract.schema_yaml, tuple(contract.input_columns))


def enforce(chunk: pd.DataFrame, contract: Any) -> tuple[pd.DataFrame, dict[int, list[str]]]:
    """The chunk with numeric columns as float64, and {row position: [reasons]}."""
    refused: dict[int, list[str]] = {}
    converted = {}
    for name, integer in numeric_columns(contract):
        if name not in chunk.columns:
            continue
        series = chunk[name]
        if series.dtype.kind == "f" and not integer:
            continue  # float64 already: nothing to refuse here (inf: the finite check)
        values = series.to_numpy(dtype=object) if series.dtype.kind not in "iufb" else series
        floats, bad = numbers.parse(values, integer=integer)
        for pos, rule in bad.items():
            refused.setdefault(pos, []).append(f"column '{name}': {rule}")
        converted[name] = pd.Series(floats, index=chunk.index, name=name)
    return (chunk.assign(**converted) if converted else chunk), refused
