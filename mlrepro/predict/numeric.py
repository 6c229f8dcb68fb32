"""Apply the numeric rule (``mlrepro.guards.numbers``) to the numeric input columns of a chunk.

Runs before schema validation, so every way in (CSV and parquet files, queries, the Python
API, serve, stream) refuses the same values: a refused cell makes its row invalid with the
rule as the reason, and the column reaches the schema check as float64.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from mlrepro.guards import numbers

NESTED = "not a single value (a list or a struct)"
_NESTED = (list, tuple, dict, set, np.ndarray)


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
    numeric = {name for name, _ in numeric_columns(contract)}
    for name in contract.input_columns:
        if name in numeric or name not in chunk.columns or chunk[name].dtype != object:
            continue
        nested = chunk[name].map(lambda v: isinstance(v, _NESTED)).to_numpy(dtype=bool)
        if not nested.any():
            continue
        for pos in nested.nonzero()[0].tolist():  # a list/struct cell from parquet or JSON
            refused.setdefault(pos, []).append(f"column '{name}': {NESTED}")
        # the schema check must not see them (unhashable): those rows are refused anyway
        converted[name] = chunk[name].where(~nested, None)
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
