"""Compare two DataFrames: columns, dtypes, rows by key (added / removed / changed), values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mlrepro.verify.compare import (
    DIFFERENT,
    MAX_KEYS,
    MAX_SHOWN,
    Diff,
    NumStats,
    Tolerance,
    compare_numbers,
    list_change,
    names,
)


def compare_frames(
    recorded: Any,
    reproduced: Any,
    tol: Tolerance,
    *,
    key: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> Diff:
    """Compare two DataFrames: columns, dtypes, rows (by ``key`` when it is unique), values."""
    diff = Diff()
    rec_cols = [str(c) for c in recorded.columns if c not in ignore]
    new_cols = [str(c) for c in reproduced.columns if c not in ignore]
    added = [c for c in new_cols if c not in rec_cols]
    removed = [c for c in rec_cols if c not in new_cols]
    if added:
        diff.flag(DIFFERENT, f"columns added: {names(added)}")
    if removed:
        diff.flag(DIFFERENT, f"columns removed: {names(removed)}")
    common = [c for c in rec_cols if c in new_cols]
    if [c for c in new_cols if c in common] != common:
        diff.flag(
            DIFFERENT,
            f"columns reordered: {list_change(common, [c for c in new_cols if c in common])}",
        )
    for c in common:
        a, b = str(recorded[c].dtype), str(reproduced[c].dtype)
        if a != b:
            diff.flag(DIFFERENT, f"column {c}: dtype {a} -> {b}")
    key = [k for k in key if k in common]
    if key and _unique(recorded, key) and _unique(reproduced, key):
        _compare_keyed(recorded, reproduced, common, key, tol, diff)
    else:
        _compare_positional(recorded, reproduced, common, tol, diff)
    return diff


def _unique(df: Any, key: list[str]) -> bool:
    return not df.duplicated(subset=key).any()


def _key_index(df: Any, key: list[str]) -> Any:
    import pandas as pd

    if len(key) == 1:
        return pd.Index(df[key[0]].to_numpy(dtype=object))
    return pd.MultiIndex.from_frame(df[key].astype(object))


def format_key(key: list[str], value: Any) -> str:
    values = value if isinstance(value, tuple) else (value,)
    pairs = ", ".join(f"{k}={_scalar(v)}" for k, v in zip(key, values, strict=False))
    return pairs if len(key) == 1 else f"({pairs})"


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _key_json(key: list[str], values: Iterable[Any]) -> list[Any]:
    out = []
    for v in list(values)[:MAX_KEYS]:
        if isinstance(v, tuple):
            out.append({k: _jsonable(x) for k, x in zip(key, v, strict=False)})
        else:
            out.append(_jsonable(v))
    return out


def _jsonable(v: Any) -> Any:
    v = _scalar(v)
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def _keys_text(kind: str, key: list[str], values: list[Any]) -> str:
    shown = ", ".join(format_key(key, v) for v in values[:MAX_SHOWN])
    more = f" ... ({len(values)} in all)" if len(values) > MAX_SHOWN else ""
    return f"{len(values)} row(s) {kind}: {shown}{more}"


def _compare_keyed(
    recorded: Any, reproduced: Any, common: list[str], key: list[str], tol: Tolerance, diff: Diff
) -> None:
    import numpy as np

    rk, nk = _key_index(recorded, key), _key_index(reproduced, key)
    added = list(nk[~nk.isin(rk)])
    removed = list(rk[~rk.isin(nk)])
    rpos = np.flatnonzero(rk.isin(nk))
    npos = nk.get_indexer(rk[rpos])
    if len(recorded) != len(reproduced):
        diff.flag(DIFFERENT, f"row count {len(recorded)} -> {len(reproduced)}")
    if added:
        diff.flag(DIFFERENT, _keys_text("added", key, added))
        diff.keys["added"] = _key_json(key, added)
    if removed:
        diff.flag(DIFFERENT, _keys_text("removed", key, removed))
        diff.keys["removed"] = _key_json(key, removed)
    if not added and not removed and not np.array_equal(npos, np.arange(len(npos))):
        diff.flag(DIFFERENT, f"row order changed (rows are ordered by {', '.join(key)})")
    values = [c for c in common if c not in key]
    changed = _compare_rows(recorded.iloc[rpos], reproduced.iloc[npos], values, tol, diff)
    if changed.any():
        keys = list(rk[rpos][changed])
        diff.flag(DIFFERENT, _keys_text("changed", key, keys))
        diff.keys["changed"] = _key_json(key, keys)


def _compare_positional(
    recorded: Any, reproduced: Any, common: list[str], tol: Tolerance, diff: Diff
) -> None:
    import numpy as np

    if len(recorded) != len(reproduced):
        diff.flag(DIFFERENT, f"row count {len(recorded)} -> {len(reproduced)}")
        return
    changed = _compare_rows(recorded, reproduced, common, tol, diff)
    if changed.any():
        rows = np.flatnonzero(changed).tolist()
        diff.flag(DIFFERENT, f"{len(rows)} row(s) changed (row numbers {names(rows)})")
        diff.keys["changed"] = rows[:MAX_KEYS]


def _compare_rows(a: Any, b: Any, columns: list[str], tol: Tolerance, diff: Diff) -> Any:
    """Per-row mask of values beyond the tolerance; numeric statistics go into ``diff``."""
    import numpy as np

    changed = np.zeros(len(a), dtype=bool)
    stats = NumStats()
    beyond, within, other = [], [], []
    for c in columns:
        x, y = a[c], b[c]
        if _numeric(x) and _numeric(y):
            xv = x.to_numpy(dtype="float64", na_value=np.nan)
            yv = y.to_numpy(dtype="float64", na_value=np.nan)
            col = compare_numbers(xv, yv, tol)
            stats.add(col)
            if col.beyond:
                changed |= ~np.isclose(yv, xv, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
                beyond.append(c)
            elif col.differing:
                within.append(c)
        else:
            ne = _not_equal(x.reset_index(drop=True), y.reset_index(drop=True))
            if ne.any():
                changed |= ne
                other.append(c)
    if stats.differing:
        diff.numeric(stats, f"numeric values in column(s) {names(beyond or within)}")
    else:
        diff.stats.add(stats)  # compared, all bit-identical
    if other:
        diff.flag(DIFFERENT, f"values differ in column(s) {names(other)}")
    return changed


def _numeric(s: Any) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def _not_equal(x: Any, y: Any) -> Any:
    import numpy as np

    both_na = (x.isna() & y.isna()).to_numpy(dtype=bool)
    try:
        eq = x.eq(y).fillna(False).to_numpy(dtype=bool)
    except (TypeError, ValueError):  # e.g. tz-aware vs naive timestamps
        eq = (x.astype(str) == y.astype(str)).to_numpy(dtype=bool)
    return np.asarray(~(eq | both_na))
