"""Compare a recorded result with a re-executed one: the ``Diff`` type, numbers, records.

Pure functions (no I/O) that return a ``Diff``: a verdict (identical, equivalent, different),
sentences saying what differs, numeric statistics and the row keys involved. "Equivalent"
means not bit-identical but every numeric value within the tolerance and everything else
equal. Frames are in ``framediff``, fitted estimators in ``modeldiff``. numpy is imported
inside the functions (the CLI must start fast).
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
MAX_DELTAS = 100_000  # prediction differences kept for the report's histogram


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
    # reproduced - recorded prediction (or probability) per row, for the report's histogram
    deltas: list[float] = field(default_factory=list)

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
        self.deltas.extend(other.deltas[: max(0, MAX_DELTAS - len(self.deltas))])
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


def names(items: Sequence[Any]) -> str:
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


ABSENT = object()  # a key present on one side only


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
        a, b = flat_a.get(path, ABSENT), flat_b.get(path, ABSENT)
        if a is ABSENT or b is ABSENT:
            diff.flag(DIFFERENT, f"{path}: {shown(a)} -> {shown(b)}")
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


def shown(v: Any) -> str:
    return "absent" if v is ABSENT else show(v)


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
        parts.append(f"added {names(added)}")
    if removed:
        parts.append(f"removed {names(removed)}")
    if not parts:
        return f"{show(recorded)} -> {show(reproduced)}"
    return ", ".join(parts)


def compare_text(recorded: str, reproduced: str) -> Diff:
    """First differing line of two texts."""
    from itertools import zip_longest

    rows = zip_longest(recorded.splitlines(), reproduced.splitlines(), fillvalue="")
    for i, (x, y) in enumerate(rows, start=1):
        if x != y:
            return Diff().flag(DIFFERENT, f"line {i}: {show(x)} -> {show(y)}")
    return Diff()
