"""Validate and predict batches of records with a loaded bundle, for serve and stream.

The bundle's input contract (the pandera schema the CLI validates with) is compiled into
vectorised checks once. A batch whose rows all pass goes straight to the pipeline; any other
batch, or one the model itself rejects, takes ``Bundle.predict_valid`` - the CLI's own path -
so reasons and verdicts are exactly the CLI's. The compiled checks are only a shortcut: they
never accept a row that the CLI rejects (a property test holds them to that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from .api import Bundle

_BOOL_LIKE = frozenset({True, False, "True", "False", "true", "false"})


@dataclass(frozen=True)
class Rule:
    """One column's contract: ``kind`` is number | isin | bool | any."""

    column: str
    kind: str
    nullable: bool
    allowed: frozenset[Any] = frozenset()


def compile_rules(schema: Any) -> list[Rule] | None:
    """Vectorisable rules for a pandera schema, or None when it has a check we do not know."""
    if schema.checks or getattr(schema, "index", None) is not None or schema.unique:
        return None
    rules = []
    for name, col in schema.columns.items():
        checks = [c.name for c in col.checks]
        dtype = None if col.dtype is None else str(col.dtype)
        if dtype == "float64" and col.coerce and checks == ["_finite"]:
            rules.append(Rule(name, "number", col.nullable))
        elif dtype is None and checks == ["isin"]:
            allowed = frozenset(col.checks[0].statistics["allowed_values"])
            rules.append(Rule(name, "isin", col.nullable, allowed))
        elif dtype is None and checks == ["_bool_like"]:
            rules.append(Rule(name, "bool", col.nullable))
        elif dtype is None and not checks:
            rules.append(Rule(name, "any", col.nullable))
        else:
            return None
    return rules


def _na(values: pd.Series) -> np.ndarray:
    return values.isna().to_numpy(dtype=bool)


def _passes(rule: Rule, values: pd.Series) -> np.ndarray | None:
    if rule.kind == "number":
        if values.dtype != np.float64:
            return None  # not coerced yet: leave it to the CLI's validator
        a = values.to_numpy()
        return np.isfinite(a) | (rule.nullable & np.isnan(a))
    na = _na(values)
    if rule.kind == "isin":
        ok = np.fromiter((v in rule.allowed for v in values.tolist()), bool, len(values))
    elif rule.kind == "bool":
        ok = np.fromiter((_hashable_in(v, _BOOL_LIKE) for v in values.tolist()), bool, len(values))
    else:
        ok = np.ones(len(values), dtype=bool)
    return (ok & ~na) | (rule.nullable & na)


def _hashable_in(value: Any, allowed: frozenset[Any]) -> bool:
    try:
        return value in allowed
    except TypeError:  # unhashable
        return False


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
        self.rules = compile_rules(bundle.contract.schema())
        pipeline = bundle.pipeline
        self.proba = bundle.metadata.task == "classification" and hasattr(pipeline, "predict_proba")
        classes = getattr(pipeline, "classes_", None) if self.proba else None
        self.proba_names = [f"proba_{c}" for c in classes] if classes is not None else []

    @property
    def fast(self) -> bool:
        """Whether valid batches skip the pandera validator (every rule is understood)."""
        return self.rules is not None

    def valid_mask(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Rows that certainly pass the contract; None when the fast checks cannot tell."""
        if self.rules is None:
            return None
        ok = np.ones(len(frame), dtype=bool)
        for rule in self.rules:
            passed = _passes(rule, frame[rule.column])
            if passed is None:
                return None
            ok &= passed
        return ok

    def score(self, frame: pd.DataFrame, ids: dict[str, Sequence[Any]] | None = None) -> Scored:
        """Predict every valid row of ``frame`` (input columns, RangeIndex)."""
        ids = ids or {}
        if len(frame) == 0:
            return Scored([], [])
        mask = self.valid_mask(frame)
        # Values past float32 are valid input that some models refuse: they are rejected
        # with the model's reason, so numpy's overflow warning would only be noise.
        with np.errstate(over="ignore"):
            if mask is not None and mask.all():
                try:
                    out = self._predict(frame[self.columns])
                except ValueError:
                    pass  # a row the model rejects: the CLI's path finds it
                else:
                    positions = list(range(len(frame)))
                    return Scored(self._rows(out, ids, positions), positions)
            return self._score_slow(frame, ids)

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

        from .api import IgnoredColumnsWarning

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
