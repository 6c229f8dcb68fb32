"""Canonical JSON: one text per value, whatever the dict order or number spelling."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from mlrepro.fingerprint.digest import (
    _qualname,
    hash_bytes,
)

# --------------------------------------------------------------------------- canonical JSON


def _json_float(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)  # drops float subclasses such as numpy.float64


def _json_key(key: Any) -> str:
    # JSON object keys must be strings; spell other scalars the way json.dumps would.
    if isinstance(key, str):
        return str(key)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(key, np.generic):
        key = key.item()
    if key is None or isinstance(key, (bool, int, float)):
        value = _json_float(key) if isinstance(key, float) else key
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(key, os.PathLike):
        return str(key)
    raise TypeError(f"canonical_json: unsupported dict key type {_qualname(type(key))}")


_UNSUPPORTED = object()


def _lenient(obj: Any) -> Any:
    """Extra conversions for values read back from nested arrow columns."""
    import datetime
    import decimal

    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (datetime.timedelta, decimal.Decimal)):
        return str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    return _UNSUPPORTED


def _jsonable(obj: Any, lenient: bool = False) -> Any:
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            name = _json_key(key)
            if name in out:
                raise ValueError(f"canonical_json: two dict keys both encode as {name!r}")
            out[name] = _jsonable(value, lenient)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x, lenient) for x in obj]
    if isinstance(obj, (set, frozenset)):
        items = [_jsonable(x, lenient) for x in obj]
        return sorted(items, key=_dumps)  # mixed types have no natural order
    if isinstance(obj, os.PathLike):
        return str(obj)
    np = sys.modules.get("numpy")  # never import numpy just to find out it is not used
    if np is not None:
        if isinstance(obj, np.generic):
            return _jsonable(obj.item(), lenient)
        if isinstance(obj, np.ndarray):
            return _jsonable(obj.tolist(), lenient)
    if lenient and (converted := _lenient(obj)) is not _UNSUPPORTED:
        return converted
    raise TypeError(f"canonical_json: unsupported type {_qualname(type(obj))}")


def _dumps(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, NaN/inf as strings.

    Tuples become lists, sets sorted lists, numpy scalars/arrays Python values and paths
    strings. Any other type raises ``TypeError`` naming it.
    """
    return _dumps(_jsonable(obj))


def fingerprint_params(obj: Any) -> str:
    """Fingerprint of a JSON-like structure; dict key order never changes it."""
    return hash_bytes(canonical_json(obj).encode("utf-8", "surrogatepass"))
