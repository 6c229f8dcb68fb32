"""Validate and predict batches of records with a loaded bundle, for serve and stream.

Validation and scoring are the CLI's own: a batch that passes ``fast_validate`` (the CLI's
vectorised rules; request frames already hold float64 numbers, so nothing is copied) goes
straight to ``predict_frame``; any other batch, or one the model itself rejects, takes
``Bundle.predict_valid`` - the CLI's full path - so verdicts and reasons are exactly the CLI's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlrepro.predict.contract import columns_certainly_valid, fast_validate
from mlrepro.predict.scoring import output_columns, predict_frame

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

    def __init__(self, bundle: Bundle, *, fast_path: bool = True) -> None:
        self.bundle = bundle
        self.fast_path = fast_path  # False: every batch takes the CLI's full path
        self.counts = {"fast": 0, "full": 0}  # batches scored by each path
        self.columns = list(bundle.metadata.input_columns)
        pipeline = bundle.pipeline
        task = bundle.metadata.task
        proba = hasattr(pipeline, "predict_proba")
        self.output_names = output_columns(task, getattr(pipeline, "classes_", None), proba)

    def score(
        self,
        frame: pd.DataFrame,
        ids: Mapping[str, Sequence[Any]] | None = None,
        columns: dict[str, Any] | None = None,
    ) -> Scored:
        """Predict every valid row of ``frame`` (input columns, RangeIndex).

        ``columns``: the raw columns ``frame`` was built from (``RecordModels``); when they
        certainly pass the fast rules, the frame is not checked again.
        """
        ids = ids or {}
        if len(frame) == 0:
            return Scored([], [])
        X = frame if list(frame.columns) == self.columns else frame[self.columns]
        # Values past float32 are valid input that some models refuse: they are rejected
        # with the model's reason, so numpy's overflow warning would only be noise.
        with np.errstate(over="ignore"):
            if self.fast_path and (
                (columns is not None and columns_certainly_valid(columns, self.bundle.contract))
                or self.certainly_valid(X)
            ):
                try:
                    out = self._predict(X)
                except ValueError:
                    pass  # a row the model rejects: the CLI's path finds it
                else:
                    positions = list(range(len(frame)))
                    self.counts["fast"] += 1
                    return Scored(self._rows(out, ids, positions), positions)
            self.counts["full"] += 1
            return self._score_full(frame, ids)

    def score_one(
        self,
        values: Mapping[str, Any],
        columns: dict[str, Any],
        ids: Mapping[str, Sequence[Any]],
    ) -> Scored | None:
        """One record without a DataFrame: the accelerated program's record path.

        ``values`` are the record's plain values, ``columns`` the same as one-row columns
        (``RequestModels.single``). None (take ``score``) unless the bundle scores with a
        program, the columns certainly pass the CLI's fast rules and the program reproduces
        the record.
        """
        record_outputs = getattr(self.bundle.pipeline, "record_outputs", None)
        if not self.fast_path or record_outputs is None:
            return None
        if not columns_certainly_valid(columns, self.bundle.contract):
            return None
        out = record_outputs(values)
        if out is None:
            return None
        self.counts["fast"] += 1
        return Scored(self._rows(out, ids, [0]), [0])

    def certainly_valid(self, X: pd.DataFrame) -> bool:
        """Every row passes the CLI's fast rules, numbers already float64 (False: ask pandera)."""
        dtypes = dict(zip(X.columns, X.dtypes, strict=True))  # X[n] per column costs ~0.1 ms
        numbers = (n for n, kind, *_ in self.bundle.contract.plan() if kind == "number")
        if any(dtypes[n] != np.float64 for n in numbers):
            return False
        return fast_validate(X, self.bundle.contract) is not None

    def _predict(self, X: pd.DataFrame) -> dict[str, Any]:
        return predict_frame(self.bundle.pipeline, X, self.bundle.metadata.task)

    def _score_full(self, frame: pd.DataFrame, ids: Mapping[str, Sequence[Any]]) -> Scored:
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
        out = {c: preds[c].to_numpy() for c in self.output_names if c in preds}
        return Scored(self._rows(out, ids, positions), positions, rejects)

    def _rows(
        self, out: dict[str, Any], ids: Mapping[str, Sequence[Any]], positions: list[int]
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
