"""Validate and predict batches of records with a loaded bundle, for serve and stream.

Validation is the CLI's own. A batch that passes the CLI's vectorised rules
(``Contract.plan``, as ``fast_validate`` applies them) goes straight to the pipeline; any
other batch, or one the model itself rejects, takes ``Bundle.predict_valid`` - the CLI's
full path - so verdicts and reasons are exactly the CLI's. The rules are evaluated here
without copying the frame: request frames already hold float64 numbers, and per request
the copy would cost more than validation itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlrepro.delivery.api import Bundle


@dataclass
class Scored:
    """A scored batch: one output row per valid record, reasons for the others."""

    rows: list[dict[str, Any]]  # in input order, without the rejected records
    positions: list[int]  # the input position of each row
    rejects: dict[int, str] = field(default_factory=dict)  # input position -> reason


class Scorer:
    """Thread-safe: validate + predict with one bundle, identical verdicts to the CLI."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.columns = list(bundle.metadata.input_columns)
        pipeline = bundle.pipeline
        self.proba = bundle.metadata.task == "classification" and hasattr(pipeline, "predict_proba")
        classes = getattr(pipeline, "classes_", None) if self.proba else None
        self.proba_names = [f"proba_{c}" for c in classes] if classes is not None else []

    def score(self, frame: pd.DataFrame, ids: dict[str, Sequence[Any]] | None = None) -> Scored:
        """Predict every valid row of ``frame`` (input columns, RangeIndex)."""
        ids = ids or {}
        if len(frame) == 0:
            return Scored([], [])
        X = frame if list(frame.columns) == self.columns else frame[self.columns]
        # Values past float32 are valid input that some models refuse: they are rejected
        # with the model's reason, so numpy's overflow warning would only be noise.
        with np.errstate(over="ignore"):
            if self.certainly_valid(X):
                try:
                    out = self._predict(X)
                except ValueError:
                    pass  # a row the model rejects: the CLI's path finds it
                else:
                    positions = list(range(len(frame)))
                    return Scored(self._rows(out, ids, positions), positions)
            return self._score_slow(frame, ids)

    def certainly_valid(self, X: pd.DataFrame) -> bool:
        """Every row passes the CLI's fast rules, numbers already float64 (False: ask pandera)."""
        for name, kind, nullable, allowed in self.bundle.contract.plan():
            series = X[name]
            if kind == "number":
                if series.dtype != np.float64:
                    return False
                values = series.to_numpy()
                if np.isinf(values).any() or (not nullable and np.isnan(values).any()):
                    return False
            elif kind == "any":
                if not nullable and series.isna().any():
                    return False
            elif kind == "isin":
                ok = series.isin(allowed)
                if not (ok | series.isna() if nullable else ok).all():
                    return False
            else:
                return False
        return True

    def _predict(self, X: pd.DataFrame) -> dict[str, Any]:
        pipeline = self.bundle.pipeline
        out = {"prediction": pipeline.predict(X)}
        if self.proba:
            proba = pipeline.predict_proba(X)
            for j, name in enumerate(self.proba_names):
                out[name] = proba[:, j]
        return out

    def _score_slow(self, frame: pd.DataFrame, ids: dict[str, Sequence[Any]]) -> Scored:
        import warnings

        from mlrepro.delivery.api import IgnoredColumnsWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IgnoredColumnsWarning)
            result = self.bundle.predict_valid(frame)
        rejects = dict(
            zip(
                (int(r) for r in result.rejects["row"].tolist()),
                result.rejects["reason"].tolist(),
                strict=True,
            )
        )
        preds = result.predictions
        positions = [int(p) for p in preds.index]
        out = {c: preds[c].to_numpy() for c in ["prediction", *self.proba_names] if c in preds}
        return Scored(self._rows(out, ids, positions), positions, rejects)

    def _rows(
        self, out: dict[str, Any], ids: dict[str, Sequence[Any]], positions: list[int]
    ) -> list[dict[str, Any]]:
        names = [*ids, *out]
        columns = [[ids[k][p] for p in positions] for k in ids]
        columns += [_json_values(v) for v in out.values()]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_values(values: Any) -> list[Any]:
    """Plain Python values for JSON: numpy scalars unboxed, NaN and infinities as None."""
    items = np.asarray(values).tolist()
    if items and isinstance(items[0], float):
        return [v if math.isfinite(v) else None for v in items]
    return items
