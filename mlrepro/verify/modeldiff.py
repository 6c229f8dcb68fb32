"""Compare fitted estimators (attribute by attribute) and their predictions."""

from __future__ import annotations

import re
from typing import Any

from mlrepro.verify.compare import (
    ABSENT,
    DIFFERENT,
    EQUIVALENT,
    MAX_DELTAS,
    Diff,
    NumStats,
    Tolerance,
    compare_numbers,
    names,
    show,
    shown,
)


def fitted_state(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """The state a model fingerprint covers, flattened to ``{path: leaf}``.

    Estimators contribute their attributes (hyper-parameters, fitted ``name_`` values, private
    state; not execution-only settings such as ``n_jobs``), opaque objects such as a tree's
    structure their pickled state, structured arrays one leaf per field.
    """
    import numpy as np

    from mlrepro.fingerprint import EXECUTION_ONLY_PARAMS

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
    elif isinstance(obj, np.random.RandomState):  # compare the state, not the repr
        out.update(fitted_state(obj.get_state(legacy=False), prefix, depth + 1))
    elif isinstance(obj, np.random.Generator):  # its repr holds a memory address
        out.update(fitted_state(obj.bit_generator.state, prefix, depth + 1))
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


_SEGMENT = re.compile(r"[^.\[\]]+")
VERSION_ATTRIBUTES = ("_sklearn_version", "__version__", "_version")


def implementation_detail(path: str) -> bool:
    """A private attribute (a path segment with a leading underscore) or a version stamp."""
    return any(seg.startswith("_") for seg in _SEGMENT.findall(path)) or path.endswith(
        VERSION_ATTRIBUTES
    )


def compare_fitted(recorded: Any, reproduced: Any, tol: Tolerance) -> Diff:
    """Compare two fitted estimators attribute by attribute (numbers within tolerance).

    Differences in implementation details (private attributes, library version stamps) and
    attributes present on one side only (a library version added or dropped them) make the
    models ``equivalent``, with those attributes named: whether the model behaves the same
    is decided by its outputs (predictions, the transformed matrix, the selected features),
    which the caller compares. Any other difference is ``different``.
    """
    import numpy as np

    diff = Diff()
    a, b = fitted_state(recorded), fitted_state(reproduced)
    stats = NumStats()
    beyond: list[str] = []
    within: list[str] = []
    other: list[str] = []
    detail: list[str] = []
    for path in list(a) + [p for p in b if p not in a]:
        x, y = a.get(path, ABSENT), b.get(path, ABSENT)
        benign = implementation_detail(path)
        if x is ABSENT or y is ABSENT:
            detail.append(f"{path}: {shown(x)} -> {shown(y)}")
            continue
        xa, ya = np.asarray(x), np.asarray(y)
        if xa.shape != ya.shape:
            (detail if benign else other).append(f"{path}: shape {xa.shape} -> {ya.shape}")
        elif xa.dtype.kind in "fiu" and ya.dtype.kind in "fiu":
            s = compare_numbers(xa, ya, tol)
            if benign:
                if s.differing:
                    detail.append(f"{path}: {s.differing} value(s) differ")
                continue
            stats.add(s)
            if s.beyond:
                beyond.append(path)
            elif s.differing:
                within.append(path)
        elif not _equal(xa, ya):
            (detail if benign else other).append(f"{path}: {show(_leaf(x))} -> {show(_leaf(y))}")
    if other:
        examples = "; ".join(other[:2])
        diff.flag(DIFFERENT, f"fitted state differs in {len(other)} attribute(s), e.g. {examples}")
    if stats.differing:
        paths = beyond or within
        diff.numeric(stats, f"fitted values in {len(paths)} attribute(s) (e.g. {names(paths[:3])})")
    if detail:
        diff.flag(
            EQUIVALENT,
            f"fitted state differs only in {len(detail)} implementation detail(s) (private "
            "attributes, version stamps, attributes one library version has and the other "
            f"not): {'; '.join(detail[:MAX_DETAILS])}"
            + (f"; ... ({len(detail)} in all)" if len(detail) > MAX_DETAILS else ""),
        )
    return diff


MAX_DETAILS = 5


def _equal(x: Any, y: Any) -> bool:
    """Equal values, where missing values (NaN, None) equal each other (e.g. categories_)."""
    import numpy as np
    import pandas as pd

    try:
        eq = np.asarray(x == y)
        if eq.all():
            return True
        return eq.shape == x.shape and bool(np_all(eq | (pd.isna(x) & pd.isna(y))))
    except (TypeError, ValueError):
        return str(x.tolist()) == str(y.tolist())


def np_all(value: Any) -> bool:
    import numpy as np

    return bool(np.all(value))


def _leaf(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def prediction_deltas(recorded: Any, reproduced: Any) -> list[float]:
    """``reproduced - recorded`` for every finite pair (at most ``MAX_DELTAS``)."""
    import numpy as np

    a = np.asarray(recorded, dtype="float64").ravel()
    b = np.asarray(reproduced, dtype="float64").ravel()
    d = (b - a)[np.isfinite(a) & np.isfinite(b)]
    return d[:MAX_DELTAS].tolist()


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
        diff.deltas = prediction_deltas(a, b)
        return diff.numeric(compare_numbers(a, b, tol), what)
    ne = np.asarray(a != b).reshape(len(a), -1).any(axis=1) if a.size else np.zeros(0, bool)
    if ne.any():
        diff.flag(DIFFERENT, f"{what}: {int(ne.sum())} of {len(a)} differ")
    return diff
