"""check_equivalence: the program and the reference pipeline side by side on real rows.

Accepted when the output columns are the same (names, order, dtypes), class labels are
identical, and every score/probability/regression value ``v`` is within ``TOLERANCE`` of
the reference ``r``: ``|v - r| <= TOLERANCE * (1 + |r|)``; NaN only where the reference
has NaN. In practice the program reproduces scikit-learn bit for bit (``max_abs == 0``);
the tolerance absorbs BLAS summation order for linear models. Rows the program hands to
the reference path (it returns None for them) are counted, not failed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TOLERANCE = 1e-9
CHUNK = 512


@dataclass
class Equivalence:
    rows: int
    labels_identical: bool | None
    max_abs: float
    max_rel: float
    ok: bool
    reason: str | None
    fallback_rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_outputs(pipeline: Any, frame: Any, task: str) -> dict[str, Any]:
    """What ``mlrepro.predict.scoring.predict_frame`` computes (same keys and order)."""
    out: dict[str, Any] = {"prediction": pipeline.predict(frame)}
    if task == "classification" and hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(frame)
        for j, c in enumerate(pipeline.classes_):
            out[f"proba_{c}"] = proba[:, j]
    return out


def _covered(program: Any, frame: Any) -> tuple[list[int], list[dict[str, Any]]]:
    """Positions the program predicts, and its outputs for them (in chunks)."""
    whole = program.predict(frame)
    if whole is not None:
        return list(range(len(frame))), [whole]
    rows: list[int] = []
    parts: list[dict[str, Any]] = []
    for lo in range(0, len(frame), CHUNK):
        chunk = frame.iloc[lo : lo + CHUNK]
        got = program.predict(chunk)
        if got is not None:
            rows += range(lo, lo + len(chunk))
            parts.append(got)
            continue
        for i in range(lo, lo + len(chunk)):
            one = program.predict(frame.iloc[i : i + 1])
            if one is not None:
                rows.append(i)
                parts.append(one)
    return rows, parts


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def check_equivalence(
    program: Any, pipeline: Any, frame: Any, task: str, tolerance: float = TOLERANCE
) -> Equivalence:
    n = len(frame)

    def fail(reason: str, fallback: int, labels: bool | None = None) -> Equivalence:
        return Equivalence(n, labels, float("nan"), float("nan"), False, reason, fallback)

    if n == 0:
        return fail("no rows to compare", 0)
    rows, parts = _covered(program, frame)
    fallback = n - len(rows)
    if not rows:
        return fail("every row took the reference path: nothing was compared", fallback)
    got = _concat(parts)
    subset = frame.iloc[rows]
    try:
        ref = reference_outputs(pipeline, subset, task)
    except Exception as exc:  # the reference rejects rows the program accepted
        return fail(
            f"the pipeline rejected rows the program predicted ({type(exc).__name__})", fallback
        )
    if list(got) != list(ref):
        return fail(f"output columns differ: {list(got)} vs {list(ref)}", fallback)
    labels: bool | None = None
    max_abs = 0.0
    max_rel = 0.0
    bad: list[str] = []
    for key, r in ref.items():
        r = np.asarray(r)
        g = np.asarray(got[key])
        if g.dtype != r.dtype or g.shape != r.shape:
            return fail(f"column {key!r}: {g.dtype}{g.shape} vs {r.dtype}{r.shape}", fallback)
        if key == "prediction" and task == "classification":
            labels = bool(np.array_equal(g, r))
            if not labels:
                bad.append("class labels differ")
            continue
        if r.dtype.kind not in "fc":
            if not np.array_equal(g, r):
                bad.append(f"column {key!r} differs")
            continue
        nan_r, nan_g = np.isnan(r), np.isnan(g)
        if (nan_r != nan_g).any():
            bad.append(f"column {key!r}: NaN where the reference has a number")
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.abs(np.where(nan_r, 0.0, g - r))
            scale = np.abs(np.where(nan_r, 0.0, r))
            rel = np.where(diff == 0, 0.0, diff / scale)
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        max_rel = max(max_rel, float(rel.max(initial=0.0)))
        if (diff > tolerance * (1.0 + scale)).any():
            bad.append(f"column {key!r} differs by up to {float(diff.max()):.3g}")
    ok = not bad
    return Equivalence(n, labels, max_abs, max_rel, ok, None if ok else "; ".join(bad), fallback)
