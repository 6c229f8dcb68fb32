"""Compare a recorded result with a re-executed one: frames, values, fitted estimators.

Pure functions (no I/O) that return a ``Diff``: a verdict (identical, equivalent, different),
sentences saying what differs, numeric statistics and the row keys involved. "Equivalent"
means not bit-identical but every numeric value within the tolerance and everything else
equal. numpy and pandas are imported inside the functions (the CLI must start fast).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

IDENTICAL, EQUIVALENT, DIFFERENT = "identical", "equivalent", "different"
_RANK = {IDENTICAL: 0, EQUIVALENT: 1, DIFFERENT: 2}
MAX_SHOWN = 10  # row keys / names listed in a sentence
MAX_KEYS = 100  # row keys kept in the JSON report


@dataclass(frozen=True)
class Tolerance:
    """``|reproduced - recorded| <= atol + rtol * |recorded|`` (numpy.isclose)."""

    rtol: float = 1e-9
    atol: float = 1e-12


@dataclass
class NumStats:
    """How far apart two sets of numbers are."""

    compared: int = 0  # values compared
    differing: int = 0  # values that are not bit-identical
    beyond: int = 0  # values outside the tolerance
    max_abs: float = 0.0
    max_rel: float = 0.0

    def add(self, other: NumStats) -> None:
        self.compared += other.compared
        self.differing += other.differing
        self.beyond += other.beyond
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)

    def text(self) -> str:
        return (
            f"{self.differing} of {self.compared} value(s) differ, "
            f"max abs diff {self.max_abs:.3g}, max rel diff {self.max_rel:.3g}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared_values": self.compared,
            "differing_values": self.differing,
            "beyond_tolerance": self.beyond,
            "max_abs_diff": _finite(self.max_abs),
            "max_rel_diff": _finite(self.max_rel),
        }


@dataclass
class Diff:
    """Outcome of one comparison; ``merge`` combines several (the worst verdict wins)."""

    verdict: str = IDENTICAL
    reasons: list[str] = field(default_factory=list)
    stats: NumStats = field(default_factory=NumStats)
    keys: dict[str, list[Any]] = field(default_factory=dict)  # added / removed / changed rows

    def flag(self, verdict: str, reason: str | None = None) -> Diff:
        if _RANK[verdict] > _RANK[self.verdict]:
            self.verdict = verdict
        if reason:
            self.reasons.append(reason)
        return self

    def merge(self, other: Diff) -> Diff:
        self.flag(other.verdict)
        self.reasons.extend(other.reasons)
        self.stats.add(other.stats)
        for kind, keys in other.keys.items():
            self.keys.setdefault(kind, []).extend(keys)
        return self

    def numeric(self, stats: NumStats, what: str) -> Diff:
        """Record numeric differences: equivalent within tolerance, else different."""
        self.stats.add(stats)
        if stats.beyond:
            self.flag(DIFFERENT, f"{what}: {stats.text()} ({stats.beyond} beyond tolerance)")
        elif stats.differing:
            self.flag(EQUIVALENT, f"{what}: {stats.text()} (all within tolerance)")
        return self


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=lambda v: _RANK[v], default=IDENTICAL)


def _finite(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def show(value: Any, limit: int = 60) -> str:
    """A short, readable rendering of a value for a sentence."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        shown = ", ".join(value[:MAX_SHOWN]) + (", ..." if len(value) > MAX_SHOWN else "")
        text = f"[{shown}]"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(items: Sequence[Any]) -> str:
    shown = ", ".join(str(i) for i in items[:MAX_SHOWN])
    return shown + (f" ... ({len(items)} in all)" if len(items) > MAX_SHOWN else "")


# ------------------------------------------------------------------------------- numbers


def compare_numbers(recorded: Any, reproduced: Any, tol: Tolerance) -> NumStats:
    """Element-wise distance of two equally shaped numeric arrays (NaN equals NaN)."""
    import numpy as np

    a = np.asarray(recorded, dtype="float64").ravel()
    b = np.asarray(reproduced, dtype="float64").ravel()
    both_nan = np.isnan(a) & np.isnan(b)
    differing = (a != b) & ~both_nan
    close = np.isclose(b, a, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    stats = NumStats(compared=int(a.size), differing=int(differing.sum()))
    stats.beyond = int((~close).sum())
    if stats.differing:
        with np.errstate(invalid="ignore", divide="ignore"):
            absdiff = np.abs(b[differing] - a[differing])
            absdiff = np.where(np.isnan(absdiff), np.inf, absdiff)  # NaN vs number, inf - inf
            scale = np.abs(a[differing])
            rel = np.where(scale > 0, absdiff / scale, np.inf)
        stats.max_abs = float(absdiff.max())
        stats.max_rel = float(rel.max())
    return stats


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------ values / params


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts (and lists of dicts) as ``{"a.b[0].c": leaf}``; other lists are leaves."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


_ABSENT = object()


def compare_values(
    recorded: dict[str, Any], reproduced: dict[str, Any], tol: Tolerance | None = None
) -> Diff:
    """Compare two JSON-like records leaf by leaf; ``tol=None`` means exact.

    Each difference reads ``path: recorded -> reproduced``, e.g.
    ``model.params.n_estimators: 200 -> 300``.
    """
    diff = Diff()
    flat_a, flat_b = flatten(recorded), flatten(reproduced)
    for path in list(flat_a) + [p for p in flat_b if p not in flat_a]:
        a, b = flat_a.get(path, _ABSENT), flat_b.get(path, _ABSENT)
        if a is _ABSENT or b is _ABSENT:
            diff.flag(DIFFERENT, f"{path}: {_shown(a)} -> {_shown(b)}")
        elif a == b and type(a) is type(b):
            continue
        elif tol is not None and _numeric_leaf(a) and _numeric_leaf(b) and _same_shape(a, b):
            stats = compare_numbers(a, b, tol)
            if stats.beyond:
                diff.flag(DIFFERENT, f"{path}: {show(a)} -> {show(b)}")
                diff.stats.add(stats)
            elif stats.differing:
                diff.numeric(stats, path)
        elif isinstance(a, list) and isinstance(b, list):
            diff.flag(DIFFERENT, f"{path}: {list_change(a, b)}")
        elif a != b or type(a) is not type(b):
            diff.flag(DIFFERENT, f"{path}: {show(a)} -> {show(b)}")
    return diff


def _shown(v: Any) -> str:
    return "absent" if v is _ABSENT else show(v)


def _numeric_leaf(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and all(_is_number(x) for x in v)
    return _is_number(v)


def _same_shape(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
    return True


def list_change(recorded: list[Any], reproduced: list[Any]) -> str:
    """What changed between two lists of names: order, additions, removals."""
    try:
        same_items = sorted(map(str, recorded)) == sorted(map(str, reproduced))
    except TypeError:
        same_items = False
    if same_items:
        return f"order changed: {show(recorded, 200)} -> {show(reproduced, 200)}"
    added = [x for x in reproduced if x not in recorded]
    removed = [x for x in recorded if x not in reproduced]
    parts = []
    if added:
        parts.append(f"added {_names(added)}")
    if removed:
        parts.append(f"removed {_names(removed)}")
    if not parts:
        return f"{show(recorded)} -> {show(reproduced)}"
    return ", ".join(parts)


# --------------------------------------------------------------------------------- frames


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
        diff.flag(DIFFERENT, f"columns added: {_names(added)}")
    if removed:
        diff.flag(DIFFERENT, f"columns removed: {_names(removed)}")
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
        diff.flag(DIFFERENT, f"{len(rows)} row(s) changed (row numbers {_names(rows)})")
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
        diff.numeric(stats, f"numeric values in column(s) {_names(beyond or within)}")
    if other:
        diff.flag(DIFFERENT, f"values differ in column(s) {_names(other)}")
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


# ----------------------------------------------------------------------- fitted estimators


def fitted_state(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """The state a model fingerprint covers, flattened to ``{path: leaf}``.

    Estimators contribute their attributes (hyper-parameters, fitted ``name_`` values, private
    state; not execution-only settings such as ``n_jobs``), opaque objects such as a tree's
    structure their pickled state, structured arrays one leaf per field.
    """
    import numpy as np

    from .fingerprint import EXECUTION_ONLY_PARAMS

    out: dict[str, Any] = {}
    if depth > 12:
        out[prefix] = f"<{type(obj).__name__}>"
    elif isinstance(obj, np.ndarray) and obj.dtype.names:
        for name in obj.dtype.names:
            out.update(fitted_state(obj[name], f"{prefix}.{name}", depth + 1))
    elif obj is None or isinstance(obj, (np.ndarray, np.generic, str, int, float, bool)):
        out[prefix] = obj
    elif callable(getattr(obj, "get_params", None)) and hasattr(obj, "__dict__"):
        for name, value in vars(obj).items():
            if name not in EXECUTION_ONLY_PARAMS:
                out.update(fitted_state(value, f"{prefix}.{name}" if prefix else name, depth + 1))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(fitted_state(v, f"{prefix}[{i}]", depth + 1))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(fitted_state(v, f"{prefix}.{k}", depth + 1))
    elif isinstance(obj, type) or callable(obj):
        out[prefix] = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    else:
        state = _state_of(obj)
        if isinstance(state, dict):
            out.update(fitted_state(state, prefix, depth + 1))
        else:
            out[prefix] = repr(obj)
    return out


def _state_of(obj: Any) -> Any:
    try:
        return obj.__getstate__()
    except Exception:  # objects without a usable pickled state compare by repr
        return None


def compare_fitted(recorded: Any, reproduced: Any, tol: Tolerance) -> Diff:
    """Compare two fitted estimators attribute by attribute (numbers within tolerance)."""
    import numpy as np

    diff = Diff()
    a, b = fitted_state(recorded), fitted_state(reproduced)
    stats = NumStats()
    beyond: list[str] = []
    within: list[str] = []
    other: list[str] = []
    for path in list(a) + [p for p in b if p not in a]:
        x, y = a.get(path, _ABSENT), b.get(path, _ABSENT)
        if x is _ABSENT or y is _ABSENT:
            other.append(f"{path}: {_shown(x)} -> {_shown(y)}")
            continue
        xa, ya = np.asarray(x), np.asarray(y)
        if xa.shape != ya.shape:
            other.append(f"{path}: shape {xa.shape} -> {ya.shape}")
        elif xa.dtype.kind in "fiu" and ya.dtype.kind in "fiu":
            s = compare_numbers(xa, ya, tol)
            stats.add(s)
            if s.beyond:
                beyond.append(path)
            elif s.differing:
                within.append(path)
        elif not _equal(xa, ya):
            other.append(f"{path}: {show(_leaf(x))} -> {show(_leaf(y))}")
    if other:
        examples = "; ".join(other[:2])
        diff.flag(DIFFERENT, f"fitted state differs in {len(other)} attribute(s), e.g. {examples}")
    if stats.differing:
        paths = beyond or within
        diff.numeric(
            stats, f"fitted values in {len(paths)} attribute(s) (e.g. {_names(paths[:3])})"
        )
    return diff


def _equal(x: Any, y: Any) -> bool:
    try:
        return bool(np_all(x == y))
    except (TypeError, ValueError):
        return str(x.tolist()) == str(y.tolist())


def np_all(value: Any) -> bool:
    import numpy as np

    return bool(np.all(value))


def _leaf(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def compare_text(recorded: str, reproduced: str) -> Diff:
    """First differing line of two texts."""
    from itertools import zip_longest

    rows = zip_longest(recorded.splitlines(), reproduced.splitlines(), fillvalue="")
    for i, (x, y) in enumerate(rows, start=1):
        if x != y:
            return Diff().flag(DIFFERENT, f"line {i}: {show(x)} -> {show(y)}")
    return Diff()


def compare_outputs(
    recorded: Any, reproduced: Any, tol: Tolerance, what: str, *, labels: bool = False
) -> Diff:
    """Compare two prediction arrays row by row: scores within tolerance, labels exactly."""
    import numpy as np

    diff = Diff()
    a, b = np.asarray(recorded), np.asarray(reproduced)
    if a.shape != b.shape:
        return diff.flag(DIFFERENT, f"{what}: shape {a.shape} -> {b.shape}")
    if not labels and a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
        return diff.numeric(compare_numbers(a, b, tol), what)
    ne = np.asarray(a != b).reshape(len(a), -1).any(axis=1) if a.size else np.zeros(0, bool)
    if ne.any():
        diff.flag(DIFFERENT, f"{what}: {int(ne.sum())} of {len(a)} differ")
    return diff
